// Helpers shared by tests/js/attachment.test.js and tests/js/attachment_vectors.test.js.
import assert from 'node:assert/strict';
import { CHUNK_BYTES } from '../../postbox/webclient/static/js/crypto/attachment.js';
import { AttachmentDecryptor } from '../../postbox/webclient/static/js/crypto/attachment_stream.js';
import { concatBytes } from '../../postbox/webclient/static/js/crypto/primitives.js';

/** `data` cut into pieces of sizes[0], sizes[1], … (round robin), the last one shorter. */
export function* splits(data, sizes) {
  let pos = 0;
  for (let i = 0; pos < data.length; i += 1) {
    const size = sizes[i % sizes.length];
    yield data.subarray(pos, pos + size);
    pos += size;
  }
}

/** The file in a blob fed to an AttachmentDecryptor in pieces of `sizes`, verified. */
export function opened(blob, key, size, hash, sizes) {
  const decryptor = new AttachmentDecryptor(key, size, hash);
  const out = [];
  for (const piece of splits(blob, sizes)) out.push(...decryptor.update(piece));
  decryptor.finish();
  assert.ok(out.every((p) => p.length <= CHUNK_BYTES));
  return concatBytes(...out);
}

/** The name of the error `fn` throws, or 'no error'. */
export function errorName(fn) {
  try {
    fn();
  } catch (e) {
    return e.name;
  }
  return 'no error';
}
