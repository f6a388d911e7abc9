// tests/vectors/attachment.json in JavaScript: open every blob (whole, in pieces and through
// decryptStream), recompute size and hash, refuse every reject case by name, check file names.
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { blobHash, blobLength, checkFileName } from '../../postbox/webclient/static/js/crypto/attachment.js';
import { decryptStream } from '../../postbox/webclient/static/js/crypto/attachment_pipe.js';
import { decryptBytes } from '../../postbox/webclient/static/js/crypto/attachment_stream.js';
import { BLOB } from '../../postbox/webclient/static/js/crypto/domain.js';
import { b64d } from '../../postbox/webclient/static/js/crypto/encoding.js';
import { H } from '../../postbox/webclient/static/js/crypto/primitives.js';
import { errorName, opened, splits } from './helpers.js';

const V = JSON.parse(readFileSync(new URL('../vectors/attachment.json', import.meta.url), 'utf8'));
const SPLITS = [[1e9], [24, 65553], [997], [65552, 3]];

for (const c of V.cases) {
  test(`attachment vector ${c.name}`, async () => {
    const key = b64d(c.key, 32);
    const blob = b64d(c.blob);
    const hash = b64d(c.hash, 32);
    const plaintext = b64d(c.plaintext);
    assert.equal(c.size, blob.length);
    assert.equal(c.size, blobLength(plaintext.length));
    assert.deepEqual(hash, blobHash(blob));
    assert.deepEqual(hash, H(blob, 32, BLOB));
    assert.deepEqual(decryptBytes(blob, key, c.size, hash), plaintext);
    for (const s of SPLITS) assert.deepEqual(opened(blob, key, c.size, hash, s), plaintext);
    const dec = decryptStream(key, c.size, hash);
    const parts = [];
    const source = new ReadableStream({
      start(controller) {
        for (const piece of splits(blob, [40000])) controller.enqueue(piece);
        controller.close();
      },
    });
    for await (const piece of source.pipeThrough(dec)) parts.push(...piece);
    assert.deepEqual(Uint8Array.from(parts), plaintext);
    assert.deepEqual(await dec.result, { plainSize: plaintext.length });
  });
}

for (const r of V.reject) {
  test(`attachment reject ${r.name}`, () => {
    const key = b64d(r.key, 32);
    const blob = b64d(r.blob);
    const hash = b64d(r.hash, 32);
    assert.equal(errorName(() => decryptBytes(blob, key, r.size, hash)), r.error);
    for (const s of SPLITS) {
      assert.equal(errorName(() => opened(blob, key, r.size, hash, s)), r.error, `split ${s}`);
    }
  });
}

test('attachment vectors: file names', () => {
  for (const c of V.file_name_cases) checkFileName(c.file_name);
  for (const r of V.file_name_reject) {
    assert.equal(errorName(() => checkFileName(r.file_name)), r.error, r.name);
  }
});

test('attachment vectors: every kind of failure is covered', () => {
  const errors = new Set([...V.reject, ...V.file_name_reject].map((r) => r.error));
  for (const name of ['DecryptionFailed', 'TruncatedStream', 'StreamFramingError',
    'BlobHashMismatch', 'BlobLengthMismatch', 'BadPadding', 'MalformedObject']) {
    assert.ok(errors.has(name), name);
  }
});
