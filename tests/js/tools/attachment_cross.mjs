// Cross-language attachments, driven by tests/crypto/test_attachment_cross.py:
//   node attachment_cross.mjs decrypt <in.json>   open Python-made blobs through decryptStream
//   node attachment_cross.mjs encrypt <in.json>   encrypt files through encryptStream
// Pieces of odd sizes go through the Web Streams API, as a browser upload or download would.
import { readFileSync } from 'node:fs';
import { decryptStream, encryptStream } from '../../../postbox/webclient/static/js/crypto/attachment_pipe.js';
import { b64d, b64e } from '../../../postbox/webclient/static/js/crypto/encoding.js';
import { concatBytes } from '../../../postbox/webclient/static/js/crypto/primitives.js';

function source(data, size) {
  let pos = 0;
  return new ReadableStream({
    pull(controller) {
      if (pos >= data.length) {
        controller.close();
        return;
      }
      controller.enqueue(data.slice(pos, pos + size));
      pos += size;
    },
  });
}

async function collect(readable) {
  const parts = [];
  for await (const piece of readable) parts.push(piece);
  return concatBytes(...parts);
}

const [mode, path] = process.argv.slice(2);
const input = JSON.parse(readFileSync(path, 'utf8'));
const out = [];
if (mode === 'decrypt') {
  for (const b of input.blobs) {
    try {
      const dec = decryptStream(b64d(b.key, 32), b.size, b64d(b.hash, 32));
      const plaintext = await collect(source(b64d(b.blob), 50001).pipeThrough(dec));
      const { plainSize } = await dec.result;
      out.push({ ok: true, plaintext: b64e(plaintext), plain_size: plainSize });
    } catch (e) {
      out.push({ ok: false, error: e.name });
    }
  }
} else if (mode === 'encrypt') {
  for (const f of input.files) {
    const enc = encryptStream();
    const blob = await collect(source(b64d(f), 70001).pipeThrough(enc));
    const { key, hash, size, plainSize } = await enc.result;
    out.push({ blob: b64e(blob), key: b64e(key), hash: b64e(hash), size, plain_size: plainSize });
  }
} else {
  throw new Error(`unknown mode ${mode}`);
}
process.stdout.write(JSON.stringify(out));
