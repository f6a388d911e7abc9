// Attachment blobs (PROTOCOL.md §6): the format rules, mirroring postbox/crypto/attachment.py.
//
// The stream plaintext is the file padded by the rule of §5; with n its length and
// k = max(1, ceil(n / 65536)), chunks 1..k-1 carry 65,536 bytes with TAG_MESSAGE and chunk k
// the rest (1..65,536 bytes) with TAG_FINAL, no additional data, one fresh key per blob.
// blob = 24-byte header ‖ chunks (24 + n + 17k bytes); hash = H(key="postbox/v1/blob", blob).
//
// This module holds what needs no file key: the constants and lengths (a size no writer can
// produce is a BlobLengthMismatch), the blob hash and the file-name rule. attachment_stream.js
// writes and reads blobs; attachment_pipe.js does both through Web Streams.
import { sodium, equal } from './primitives.js';
import { BLOB } from './domain.js';
import { MAX_FILE, MIN_PADDED, paddedLength, padme } from './padding.js';
import {
  BadPadding, BlobHashMismatch, BlobLengthMismatch, MalformedObject,
} from './errors.js';

export const CHUNK_BYTES = 65536;
export const HEADER_BYTES = 24;
export const ABYTES = 17;
export const CHUNK_CIPHER_BYTES = CHUNK_BYTES + ABYTES;
export const KEY_BYTES = 32;
export const HASH_BYTES = 32;
export const MAX_FILE_NAME_BYTES = 255;

// --- lengths ------------------------------------------------------------------------------
export function chunkCount(padded) {
  return Math.max(1, Math.ceil(padded / CHUNK_BYTES));
}

function blobLengthOfPadded(padded) {
  return HEADER_BYTES + padded + ABYTES * chunkCount(padded);
}

/** Length of the blob of a fileLength-byte file: 24 + n + 17k. */
export function blobLength(fileLength) {
  if (!Number.isSafeInteger(fileLength) || fileLength < 0) throw new RangeError('bad length');
  if (fileLength > MAX_FILE) throw new BadPadding('file larger than 2 GiB');
  return blobLengthOfPadded(paddedLength(fileLength));
}

export const MAX_PADDED = paddedLength(MAX_FILE);
export const MIN_BLOB = blobLengthOfPadded(MIN_PADDED);
export const MAX_BLOB = blobLengthOfPadded(MAX_PADDED);

/** [shortest, longest] length of a file padded to `padded` bytes; BlobLengthMismatch if none. */
export function fileBoundsForPadded(padded) {
  if (padded < MIN_PADDED || padded > MAX_PADDED || padme(padded) !== padded) {
    throw new BlobLengthMismatch('not a padded length');
  }
  let lo = 0;
  let hi = padded - 1; // paddedLength is non-decreasing and paddedLength(padded - 1) = padded
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2);
    if (paddedLength(mid) >= padded) hi = mid;
    else lo = mid + 1;
  }
  if (paddedLength(lo) !== padded || lo > MAX_FILE) throw new BlobLengthMismatch('not a padded length');
  return [lo, Math.min(padded - 1, MAX_FILE)];
}

/** The padded plaintext length n of a blob; BlobLengthMismatch if no valid n exists. */
export function paddedLengthForBlob(blobLen) {
  if (!Number.isSafeInteger(blobLen)) throw new BlobLengthMismatch('blob length must be an integer');
  if (blobLen < MIN_BLOB || blobLen > MAX_BLOB) throw new BlobLengthMismatch('blob length out of range');
  const body = blobLen - HEADER_BYTES;
  const k = Math.ceil(body / CHUNK_CIPHER_BYTES);
  const padded = body - ABYTES * k;
  if (padded - CHUNK_BYTES * (k - 1) < 1) throw new BlobLengthMismatch('no chunk layout has this length');
  fileBoundsForPadded(padded);
  return padded;
}

/** [shortest, longest] length of a file whose blob has blobLen bytes. */
export function fileLengthBounds(blobLen) {
  return fileBoundsForPadded(paddedLengthForBlob(blobLen));
}

// --- hashing ------------------------------------------------------------------------------
/** Incremental H(key="postbox/v1/blob", blob, 32), for whoever sees a blob without its key. */
export class BlobHasher {
  #state = sodium.crypto_generichash_init(BLOB, HASH_BYTES);
  #digest = null;
  #size = 0;

  get size() {
    return this.#size;
  }

  update(data) {
    if (this.#digest !== null) throw new Error('digest() was already called');
    const bytes = asBytes(data);
    this.#size += bytes.length;
    sodium.crypto_generichash_update(this.#state, bytes);
  }

  digest() {
    if (this.#digest === null) this.#digest = sodium.crypto_generichash_final(this.#state, HASH_BYTES);
    return this.#digest;
  }

  verify(expected) {
    if (!(expected instanceof Uint8Array) || !equal(this.digest(), expected)) {
      throw new BlobHashMismatch('blob hash does not match');
    }
  }
}

export function blobHash(blob) {
  const hasher = new BlobHasher();
  hasher.update(blob);
  return hasher.digest();
}

/** A Uint8Array view of `data` (any ArrayBuffer or view), without copying. */
export function asBytes(data) {
  if (data instanceof Uint8Array) return data;
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  throw new TypeError('expected bytes');
}

// --- file names ---------------------------------------------------------------------------
const CONTROL = /\p{Cc}/u;
const LONE_SURROGATE = /\p{Surrogate}/u;
const utf8 = new TextEncoder();

/** Throw MalformedObject unless `name` is a file name §6 allows. */
export function checkFileName(name) {
  if (typeof name !== 'string') throw new MalformedObject('file name must be a string');
  const wellFormed = typeof name.isWellFormed === 'function' ? name.isWellFormed() : !LONE_SURROGATE.test(name);
  if (!wellFormed) throw new MalformedObject('file name is not valid Unicode');
  const length = utf8.encode(name).length;
  if (length < 1 || length > MAX_FILE_NAME_BYTES) {
    throw new MalformedObject('file name must be 1 to 255 bytes of UTF-8');
  }
  if (name === '.' || name === '..') throw new MalformedObject('file name must not be . or ..');
  if (name.includes('/') || name.includes('\\')) throw new MalformedObject('file name must not contain / or \\');
  if (CONTROL.test(name)) throw new MalformedObject('file name must not contain control characters');
  if (name.normalize('NFC') !== name) throw new MalformedObject('file name must be NFC');
}
