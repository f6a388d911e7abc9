// Attachment streams in JavaScript (PROTOCOL.md §6): layout, round trips, tampering, framing,
// padding, Web Streams with backpressure, file names. Mirrors tests/crypto/test_attachment.py.
import test from 'node:test';
import assert from 'node:assert/strict';
import sodium from 'libsodium-wrappers-sumo';
import {
  ABYTES, CHUNK_BYTES, CHUNK_CIPHER_BYTES, HEADER_BYTES, MAX_BLOB, MIN_BLOB,
  BlobHasher, blobHash, blobLength, checkFileName, chunkCount, fileLengthBounds, paddedLengthForBlob,
} from '../../postbox/webclient/static/js/crypto/attachment.js';
import { decryptStream, encryptStream } from '../../postbox/webclient/static/js/crypto/attachment_pipe.js';
import {
  AttachmentDecryptor, AttachmentEncryptor, decryptBytes, encryptBytes,
} from '../../postbox/webclient/static/js/crypto/attachment_stream.js';
import { BLOB } from '../../postbox/webclient/static/js/crypto/domain.js';
import { H, concatBytes } from '../../postbox/webclient/static/js/crypto/primitives.js';
import { MAX_FILE, pad, paddedLength } from '../../postbox/webclient/static/js/crypto/padding.js';
import { errorName, opened, splits } from './helpers.js';

await sodium.ready;
const TAG = {
  MESSAGE: sodium.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE,
  PUSH: sodium.crypto_secretstream_xchacha20poly1305_TAG_PUSH,
  REKEY: sodium.crypto_secretstream_xchacha20poly1305_TAG_REKEY,
  FINAL: sodium.crypto_secretstream_xchacha20poly1305_TAG_FINAL,
};

// --- helpers ------------------------------------------------------------------------------
function bytesOf(length, seed = 1) {
  return sodium.randombytes_buf_deterministic(length, sodium.crypto_generichash(32, Uint8Array.of(seed)));
}

const concat = (parts) => concatBytes(...parts);

function rawBlob(key, chunks) {
  const { state, header } = sodium.crypto_secretstream_xchacha20poly1305_init_push(key);
  return concat([header, ...chunks.map(([plain, tag]) => (
    sodium.crypto_secretstream_xchacha20poly1305_push(state, plain, null, tag)))]);
}

function checkLayout(blob, key, data) {
  const n = paddedLength(data.length);
  const k = chunkCount(n);
  assert.equal(blob.length, HEADER_BYTES + n + ABYTES * k);
  assert.equal(blob.length, blobLength(data.length));
  const state = sodium.crypto_secretstream_xchacha20poly1305_init_pull(blob.subarray(0, 24), key);
  const plain = [];
  for (let i = 0; i < k; i += 1) {
    const start = HEADER_BYTES + i * CHUNK_CIPHER_BYTES;
    const r = sodium.crypto_secretstream_xchacha20poly1305_pull(
      state, blob.subarray(start, start + CHUNK_CIPHER_BYTES), null,
    );
    assert.ok(r);
    assert.equal(r.tag, i === k - 1 ? TAG.FINAL : TAG.MESSAGE);
    if (i < k - 1) assert.equal(r.message.length, CHUNK_BYTES);
    plain.push(r.message);
  }
  assert.deepEqual(concat(plain), pad(data, MAX_FILE));
}

const SPLITS = [[1e9], [HEADER_BYTES, CHUNK_CIPHER_BYTES], [997], [65552, 3]];

// --- lengths ------------------------------------------------------------------------------
test('constants and the blob length formula', () => {
  assert.equal(CHUNK_BYTES, 65536);
  assert.equal(HEADER_BYTES, sodium.crypto_secretstream_xchacha20poly1305_HEADERBYTES);
  assert.equal(ABYTES, sodium.crypto_secretstream_xchacha20poly1305_ABYTES);
  assert.equal(MIN_BLOB, 297);
  assert.equal(MAX_BLOB, blobLength(MAX_FILE));
  for (const length of [0, 1, 255, 256, 65279, 65535, 65536, 200000, MAX_FILE]) {
    const n = paddedLength(length);
    assert.equal(blobLength(length), 24 + n + 17 * Math.max(1, Math.ceil(n / 65536)));
    assert.equal(paddedLengthForBlob(blobLength(length)), n);
    const [lo, hi] = fileLengthBounds(blobLength(length));
    assert.ok(lo <= length && length <= hi);
    assert.ok(lo === 0 || paddedLength(lo - 1) < n);
    assert.ok(hi === MAX_FILE || paddedLength(hi + 1) > n);
  }
  assert.throws(() => blobLength(MAX_FILE + 1), { name: 'BadPadding' });
});

test('paddedLengthForBlob accepts exactly the writable lengths', () => {
  const valid = new Map();
  for (let length = 0; blobLength(length) <= 140000; length += 1) {
    valid.set(blobLength(length), paddedLength(length));
  }
  for (let size = 0; size <= 140000; size += 1) {
    if (valid.has(size)) assert.equal(paddedLengthForBlob(size), valid.get(size));
    else assert.throws(() => paddedLengthForBlob(size), { name: 'BlobLengthMismatch' });
  }
  for (const bad of [-1, MAX_BLOB + 1, 2 ** 53, 297.5, '297', null]) {
    assert.throws(() => paddedLengthForBlob(bad), { name: 'BlobLengthMismatch' });
  }
});

// --- round trips --------------------------------------------------------------------------
test('round trips at chunk boundaries, any split', () => {
  const lengths = [0, 1, 255, 256, 65279, 65280, 65535, 65536, 65537, 131071, 131072, 196607,
    196608, 200000];
  for (const length of lengths) {
    const data = bytesOf(length, length % 251);
    const { blob, key, hash, size } = encryptBytes(data);
    checkLayout(blob, key, data);
    assert.equal(size, blob.length);
    assert.deepEqual(hash, H(blob, 32, BLOB));
    assert.deepEqual(decryptBytes(blob, key, size, hash), data);
    assert.deepEqual(opened(blob, key, size, hash, [1000, 65553, 3]), data);
    const encryptor = new AttachmentEncryptor();
    const pieces = [];
    for (const piece of splits(data, [70000, 1, 4096])) pieces.push(...encryptor.update(piece));
    pieces.push(...encryptor.finish());
    const again = concat(pieces);
    checkLayout(again, encryptor.key, data);
    assert.deepEqual(encryptor.result.hash, blobHash(again));
    assert.equal(encryptor.result.plainSize, length);
  }
});

test('files that look like padding come back whole', () => {
  const shapes = [
    Uint8Array.of(0x80), Uint8Array.of(0x80, 0), Uint8Array.of(0, 0x80), new Uint8Array(300),
    concat([bytesOf(63000), new Uint8Array(3000), Uint8Array.of(0x80, 0, 0)]),
    concat([bytesOf(200), new Uint8Array(140000), Uint8Array.of(1)]),
  ];
  for (const data of shapes) {
    const { blob, key, hash, size } = encryptBytes(data);
    for (const s of SPLITS) assert.deepEqual(opened(blob, key, size, hash, s), data);
  }
  // A file of 8 MiB + 100 KiB zeros + 0x01: the zeros after 8 MiB are held as a count.
  const data = concat([bytesOf(8 << 20), new Uint8Array(100 << 10), Uint8Array.of(1)]);
  const { blob, key, hash, size } = encryptBytes(data);
  const decryptor = new AttachmentDecryptor(key, size, hash);
  assert.equal(decryptor.fileLengthBounds[0], 8 << 20);
  const pieces = decryptor.update(blob);
  decryptor.finish();
  assert.ok(pieces.every((p) => p.length <= CHUNK_BYTES));
  assert.deepEqual(concat(pieces), data);
  assert.equal(decryptor.plainSize, data.length);
});

test('keys: given, fresh, checked', () => {
  const key = new Uint8Array(32).fill(7);
  assert.deepEqual(encryptBytes(Uint8Array.of(1), { key }).key, key);
  const a = encryptBytes(new Uint8Array(5));
  const b = encryptBytes(new Uint8Array(5));
  assert.notDeepEqual(a.key, b.key);
  assert.notDeepEqual(a.blob.subarray(0, 24), b.blob.subarray(0, 24));
  assert.throws(() => new AttachmentEncryptor({ key: new Uint8Array(31) }), { name: 'InvalidKey' });
  assert.throws(() => new AttachmentDecryptor(new Uint8Array(31), a.size, a.hash), { name: 'DecryptionFailed' });
  assert.throws(() => new AttachmentDecryptor(a.key, a.size, a.hash.subarray(1)), { name: 'BlobHashMismatch' });
  assert.equal(errorName(() => decryptBytes(a.blob, b.key, a.size, a.hash)), 'DecryptionFailed');
});

// --- tampering and framing ----------------------------------------------------------------
test('every byte flip of a one-chunk blob is caught', () => {
  const { blob, key, hash, size } = encryptBytes(new Uint8Array(0));
  for (let i = 0; i < blob.length; i += 1) {
    const bad = blob.slice();
    bad[i] ^= 1;
    assert.equal(errorName(() => decryptBytes(bad, key, size, hash)), 'DecryptionFailed');
  }
});

const FOUR = bytesOf(200000, 4);
const four = encryptBytes(FOUR);
const CHUNKS = [0, 1, 2, 3].map((i) => four.blob.subarray(
  HEADER_BYTES + i * CHUNK_CIPHER_BYTES, HEADER_BYTES + (i + 1) * CHUNK_CIPHER_BYTES,
));
const HEADER = four.blob.subarray(0, HEADER_BYTES);

function fourError(blob, size = four.size, hash = four.hash) {
  const names = new Set(SPLITS.map((s) => errorName(() => opened(blob, four.key, size, hash, s))));
  assert.equal(names.size, 1, `the error depends on the split: ${[...names]}`);
  return [...names][0];
}

test('byte flips in every region of a four-chunk blob', () => {
  const targets = [...Array(HEADER_BYTES).keys()];
  for (let start = HEADER_BYTES; start < four.blob.length; start += CHUNK_CIPHER_BYTES) {
    const end = Math.min(start + CHUNK_CIPHER_BYTES, four.blob.length);
    targets.push(start, start + 1, (start + end) >> 1, end - 17, ...[...Array(16).keys()].map((j) => end - 16 + j));
  }
  for (const i of targets) {
    const bad = four.blob.slice();
    bad[i] ^= 0x80;
    assert.equal(errorName(() => decryptBytes(bad, four.key, four.size, four.hash)), 'DecryptionFailed');
  }
});

test('truncation at and around every chunk boundary', () => {
  const cuts = new Set([0, 1, 23, 24, 25, four.blob.length - 1]);
  for (let b = HEADER_BYTES; b < four.blob.length; b += CHUNK_CIPHER_BYTES) [b - 1, b, b + 1].forEach((c) => cuts.add(c));
  for (const cut of cuts) assert.equal(fourError(four.blob.subarray(0, cut)), 'TruncatedStream');
  for (const k of [1, 2, 3]) {
    const cut = HEADER_BYTES + k * CHUNK_CIPHER_BYTES;
    const blob = four.blob.subarray(0, cut);
    assert.equal(fourError(blob, cut, blobHash(blob)), 'StreamFramingError');
  }
});

test('reordered, dropped and duplicated chunks; data after the final chunk', () => {
  const orders = [[1, 0, 2, 3], [0, 2, 1, 3], [0, 1, 3, 2], [3, 2, 1, 0]];
  for (const order of orders) {
    assert.equal(fourError(concat([HEADER, ...order.map((i) => CHUNKS[i])])), 'DecryptionFailed');
  }
  const dropped = ['DecryptionFailed', 'DecryptionFailed', 'TruncatedStream', 'TruncatedStream'];
  dropped.forEach((expected, d) => {
    assert.equal(fourError(concat([HEADER, ...CHUNKS.filter((_, i) => i !== d)])), expected);
  });
  const duplicated = ['DecryptionFailed', 'DecryptionFailed', 'DecryptionFailed', 'StreamFramingError'];
  duplicated.forEach((expected, d) => {
    assert.equal(fourError(concat([HEADER, ...CHUNKS.slice(0, d + 1), ...CHUNKS.slice(d)])), expected);
  });
  for (const extra of [Uint8Array.of(0), CHUNKS[0]]) {
    assert.equal(fourError(concat([four.blob, extra])), 'StreamFramingError');
  }
});

test('wrong hash and wrong sizes', () => {
  const wrong = four.hash.slice();
  wrong[0] ^= 1;
  assert.equal(fourError(four.blob, four.size, wrong), 'BlobHashMismatch');
  const decryptor = new AttachmentDecryptor(four.key, four.size, wrong);
  assert.deepEqual(concat(decryptor.update(four.blob)), FOUR); // provisional ...
  assert.throws(() => decryptor.finish(), { name: 'BlobHashMismatch' }); // ... and refused
  assert.throws(() => decryptor.finish(), { name: 'BlobHashMismatch' }); // the failure sticks
  for (const size of [four.size + 1, four.size - 1, 0, 296]) {
    assert.throws(() => new AttachmentDecryptor(four.key, size, four.hash), { name: 'BlobLengthMismatch' });
    assert.throws(() => decryptStream(four.key, size, four.hash), { name: 'BlobLengthMismatch' });
  }
  const longer = blobLength(fileLengthBounds(four.size)[1] + 1);
  assert.equal(fourError(four.blob, longer), 'TruncatedStream');
  assert.equal(fourError(four.blob, blobLength(3 * CHUNK_BYTES - 1)), 'StreamFramingError');
});

test('streams written by a misbehaving key holder', () => {
  const key = new Uint8Array(32).fill(9);
  const full = bytesOf(CHUNK_BYTES, 9);
  const tail = pad(concat([full, Uint8Array.of(1, 2, 3, 4)]), MAX_FILE).subarray(CHUNK_BYTES);
  const hi = (rest) => concat([Uint8Array.of(0x68, 0x69), rest]);
  const cases = [
    [[[full, TAG.FINAL], [tail, TAG.FINAL]], 'StreamFramingError'],
    [[[full, TAG.PUSH], [tail, TAG.FINAL]], 'StreamFramingError'],
    [[[full, TAG.REKEY], [tail, TAG.FINAL]], 'StreamFramingError'],
    [[[full, TAG.MESSAGE], [tail, TAG.MESSAGE]], 'StreamFramingError'],
    [[[tail, TAG.MESSAGE], [full, TAG.FINAL]], 'DecryptionFailed'],
    [[[pad(hi(new Uint8Array(0)), MAX_FILE), TAG.MESSAGE]], 'StreamFramingError'],
    [[[new Uint8Array(256), TAG.FINAL]], 'BadPadding'],
    [[[hi(concat([Uint8Array.of(0x80, 1), new Uint8Array(252)])), TAG.FINAL]], 'BadPadding'],
    [[[hi(concat([Uint8Array.of(0x80), new Uint8Array(509)])), TAG.FINAL]], 'BadPadding'],
  ];
  for (const [chunks, expected] of cases) {
    const blob = rawBlob(key, chunks);
    const hash = blobHash(blob);
    for (const s of SPLITS) assert.equal(errorName(() => opened(blob, key, blob.length, hash, s)), expected);
  }
  const blob = rawBlob(key, [[hi(concat([Uint8Array.of(0x80, 0, 0x80), new Uint8Array(251)])), TAG.FINAL]]);
  assert.deepEqual(decryptBytes(blob, key, blob.length, blobHash(blob)), hi(Uint8Array.of(0x80, 0)));
});

// --- Web Streams --------------------------------------------------------------------------
function source(data, sizes) {
  const pieces = [...splits(data, sizes)];
  return new ReadableStream({
    pull(c) {
      if (pieces.length) c.enqueue(pieces.shift());
      else c.close();
    },
  });
}

async function collect(readable) {
  const out = [];
  for await (const piece of readable) out.push(piece);
  return concat(out);
}

test('encryptStream and decryptStream round trip', async () => {
  const data = concat([bytesOf(300000, 3), new Uint8Array(9000)]);
  const enc = encryptStream();
  const blob = await collect(source(data, [100000, 7]).pipeThrough(enc));
  const info = await enc.result;
  assert.deepEqual(info.key, enc.key);
  assert.equal(info.size, blob.length);
  assert.equal(info.plainSize, data.length);
  assert.deepEqual(info.hash, blobHash(blob));
  const dec = decryptStream(info.key, info.size, info.hash);
  assert.deepEqual(await collect(source(blob, [65553, 10]).pipeThrough(dec)), data);
  assert.deepEqual(await dec.result, { plainSize: data.length });
  const key = new Uint8Array(32).fill(3);
  const fixed = encryptStream({ key });
  await collect(source(data, [1e9]).pipeThrough(fixed));
  assert.deepEqual((await fixed.result).key, key);
});

test('decryptStream errors the stream with the precise name and never closes it early', async () => {
  const cases = [
    [four.blob.subarray(0, four.blob.length - 1), 'TruncatedStream'],
    [concat([four.blob, Uint8Array.of(0)]), 'StreamFramingError'],
    [concat([HEADER, CHUNKS[1], CHUNKS[0], CHUNKS[2], CHUNKS[3]]), 'DecryptionFailed'],
  ];
  for (const [blob, expected] of cases) {
    const dec = decryptStream(four.key, four.size, four.hash);
    await assert.rejects(collect(source(blob, [30000]).pipeThrough(dec)), { name: expected });
    await assert.rejects(dec.result, { name: expected });
  }
  const wrong = four.hash.slice();
  wrong[5] ^= 1;
  const dec = decryptStream(four.key, four.size, wrong);
  await assert.rejects(collect(source(four.blob, [1e9]).pipeThrough(dec)), { name: 'BlobHashMismatch' });
});

test('the streams wait for their reader (bounded memory)', async () => {
  // One 1 MiB write releases 16 pieces; the write must wait until the reader takes them.
  const data = bytesOf(1 << 20, 8);
  const { blob, key, hash, size } = encryptBytes(data);
  const dec = decryptStream(key, size, hash);
  const writer = dec.writable.getWriter();
  let written = false;
  const write = writer.write(blob).then(() => { written = true; });
  for (let i = 0; i < 20; i += 1) await new Promise((r) => setImmediate(r));
  assert.equal(written, false);
  const reader = dec.readable.getReader();
  const out = [];
  const close = write.then(() => writer.close());
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    out.push(value);
  }
  await close;
  assert.deepEqual(concat(out), data);
  // The padding of a 2^23 + 1 byte file (four chunks) also comes one piece at a time.
  const enc = encryptStream();
  const w = enc.writable.getWriter();
  await w.ready;
  w.write(new Uint8Array((1 << 23) + 1)).catch(() => {});
  const closing = w.close();
  let closed = false;
  closing.then(() => { closed = true; });
  for (let i = 0; i < 20; i += 1) await new Promise((r) => setImmediate(r));
  assert.equal(closed, false);
  const total = (await collect(enc.readable)).length;
  await closing;
  assert.equal(total, blobLength((1 << 23) + 1));
});

test('an aborted encryptStream rejects its result', async () => {
  const enc = encryptStream();
  const writer = enc.writable.getWriter();
  await writer.abort(new Error('user cancelled'));
  await assert.rejects(enc.result, /user cancelled/);
});

// --- hashing and file names ---------------------------------------------------------------
test('BlobHasher', () => {
  const blob = bytesOf(200000, 6);
  const hasher = new BlobHasher();
  for (const piece of splits(blob, [1, 65553, 7])) hasher.update(piece);
  assert.equal(hasher.size, blob.length);
  assert.deepEqual(hasher.digest(), H(blob, 32, BLOB));
  hasher.verify(H(blob, 32, BLOB));
  assert.throws(() => hasher.verify(new Uint8Array(32)), { name: 'BlobHashMismatch' });
  assert.throws(() => hasher.update(Uint8Array.of(1)));
});

test('checkFileName', () => {
  for (const good of ['Antrag.pdf', 'a'.repeat(255), 'ü'.repeat(127), '..x', '\u202ename', 'نموذج.pdf']) {
    checkFileName(good);
  }
  for (const bad of ['', '.', '..', 'a/b', 'a\\b', 'a\0', '\x1f', '\x7f', '\x85', 'a'.repeat(256),
    'ü'.repeat(128), 'e\u0301', '\ud800', 42]) {
    assert.throws(() => checkFileName(bad), { name: 'MalformedObject' }, JSON.stringify(bad));
  }
});

test('the manifest file size is enforced', () => {
  for (const n of [0, 1, 300, 65536, 200000]) {
    const data = new Uint8Array(n).map((_, i) => i % 251);
    const { blob, key, hash } = encryptBytes(data);
    assert.deepEqual(decryptBytes(blob, key, blob.length, hash, { fileSize: n }), data);
    const [low, high] = fileLengthBounds(blob.length);
    for (const wrong of new Set([low, high])) {
      if (wrong === n) continue;
      assert.throws(() => decryptBytes(blob, key, blob.length, hash, { fileSize: wrong }),
        (e) => e.name === 'BlobLengthMismatch');
    }
    assert.throws(() => new AttachmentDecryptor(key, blob.length, hash, { fileSize: high + 1 }),
      (e) => e.name === 'BlobLengthMismatch');
  }
});
