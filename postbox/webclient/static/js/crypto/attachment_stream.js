// Writing and reading attachment blobs (PROTOCOL.md §6) piece by piece, mirroring
// postbox/crypto/attachment_stream.py. The format is in attachment.js; attachment_pipe.js
// drives the encryptor and decryptor below through Web Streams.
//
// Readers check the stated size before reading, then process the blob in stream order and
// report the first failure (so the error does not depend on how the input is split):
//   BlobLengthMismatch  the stated size is not the length of any valid blob, or the file size
//                       the manifest states does not fit it or is not the file's length
//   DecryptionFailed    a chunk does not authenticate (flipped byte, wrong key, chunks
//                       swapped, dropped, duplicated or cut at another boundary)
//   StreamFramingError  an authentic chunk with the wrong tag, or bytes past the stated size
//   TruncatedStream     the input ends before the final chunk is complete
//   BlobHashMismatch    the blob opens but its hash is not the stated one
//   BadPadding          the final plaintext is not exactly file ‖ 0x80 ‖ 0x00… (also: a file
//                       over 2 GiB given to the writer, as padding.pad does)
//
// Plaintext is released as soon as its chunk authenticates: genuine, but PROVISIONAL until
// the end of the stream is verified (final chunk, length, hash) by finish(): keep it only
// then. decryptBytes does this in memory and returns nothing on failure.
//
// Memory stays bounded: the writer emits each full chunk as soon as it is buffered and makes
// the padding (tens of MiB for a 1 GiB file) chunk by chunk; the reader holds back at most one
// candidate marker byte and a *count* of zeros.
import { sodium, concatBytes, equal } from './primitives.js';
import { MARKER, MAX_FILE, paddedLength } from './padding.js';
import {
  BadPadding, BlobHashMismatch, BlobLengthMismatch, DecryptionFailed, InvalidKey, StreamFramingError,
  TruncatedStream,
} from './errors.js';
import {
  ABYTES, CHUNK_BYTES, CHUNK_CIPHER_BYTES, HASH_BYTES, HEADER_BYTES, KEY_BYTES,
  BlobHasher, asBytes, chunkCount, fileBoundsForPadded, paddedLengthForBlob,
} from './attachment.js';

const TAG_MESSAGE = sodium.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE;
const TAG_FINAL = sodium.crypto_secretstream_xchacha20poly1305_TAG_FINAL;

function checkKey(key, Err) {
  if (!(key instanceof Uint8Array) || key.length !== KEY_BYTES) throw new Err('file key must be 32 bytes');
}

// --- writer -------------------------------------------------------------------------------
/**
 * Encrypt one file into one blob. update(data) returns the blob pieces that are ready (the
 * header first, then each chunk of 65,536 file bytes once complete); finish() is a generator
 * of the rest (padding made chunk by chunk), after which `result` = {key, hash, size,
 * plainSize}. `key` is a fresh random file key unless given (test vectors).
 */
export class AttachmentEncryptor {
  #key;
  #state;
  #hasher = new BlobHasher();
  #header;
  #buf = new Uint8Array(CHUNK_BYTES);
  #bufLen = 0;
  #plain = 0;
  #size = HEADER_BYTES;
  #open = true;
  #result = null;

  constructor({ key = null } = {}) {
    const k = key ?? sodium.crypto_secretstream_xchacha20poly1305_keygen();
    checkKey(k, InvalidKey);
    this.#key = k;
    const { state, header } = sodium.crypto_secretstream_xchacha20poly1305_init_push(k);
    this.#state = state;
    this.#header = header;
    this.#hasher.update(header);
  }

  get key() {
    return this.#key;
  }

  get result() {
    if (this.#result === null) throw new Error('the blob is not finished');
    return this.#result;
  }

  #push(chunk, tag) {
    const sealed = sodium.crypto_secretstream_xchacha20poly1305_push(this.#state, chunk, null, tag);
    this.#hasher.update(sealed);
    this.#size += sealed.length;
    return sealed;
  }

  #takeHeader(out) {
    if (this.#header !== null) {
      out.push(this.#header);
      this.#header = null;
    }
  }

  update(data) {
    if (!this.#open) throw new Error('the encryptor is finished or closed');
    const bytes = asBytes(data);
    if (this.#plain + bytes.length > MAX_FILE) throw new BadPadding('file larger than 2 GiB');
    this.#plain += bytes.length;
    const out = [];
    this.#takeHeader(out);
    let pos = 0;
    if (this.#bufLen > 0) {
      pos = Math.min(CHUNK_BYTES - this.#bufLen, bytes.length);
      this.#buf.set(bytes.subarray(0, pos), this.#bufLen);
      this.#bufLen += pos;
      if (this.#bufLen < CHUNK_BYTES) return out;
      // A full chunk of file data is never the last: at least the marker follows.
      out.push(this.#push(this.#buf, TAG_MESSAGE));
      this.#bufLen = 0;
    }
    while (bytes.length - pos >= CHUNK_BYTES) {
      out.push(this.#push(bytes.subarray(pos, pos + CHUNK_BYTES), TAG_MESSAGE));
      pos += CHUNK_BYTES;
    }
    this.#buf.set(bytes.subarray(pos), 0);
    this.#bufLen = bytes.length - pos;
    return out;
  }

  /** The rest of the blob, chunk by chunk (a generator: the padding is made lazily). */
  finish() {
    if (!this.#open) throw new Error('the encryptor is finished or closed');
    this.#open = false;
    return this.#tail();
  }

  * #tail() {
    if (this.#header !== null) {
      yield this.#header;
      this.#header = null;
    }
    let remaining = paddedLength(this.#plain) - (this.#plain - this.#bufLen);
    let chunk = new Uint8Array(Math.min(CHUNK_BYTES, remaining)); // zero-filled
    chunk.set(this.#buf.subarray(0, this.#bufLen), 0);
    chunk[this.#bufLen] = MARKER;
    this.#buf = null;
    let zeros = null;
    for (;;) {
      remaining -= chunk.length;
      yield this.#push(chunk, remaining === 0 ? TAG_FINAL : TAG_MESSAGE);
      if (remaining === 0) break;
      zeros ??= new Uint8Array(CHUNK_BYTES);
      chunk = zeros.subarray(0, Math.min(CHUNK_BYTES, remaining));
    }
    this.#result = Object.freeze({
      key: this.#key, hash: this.#hasher.digest(), size: this.#size, plainSize: this.#plain,
    });
  }

  close() {
    this.#open = false;
  }
}

// --- reader -------------------------------------------------------------------------------
/**
 * Decrypt and verify one blob. `size` and `hash` are what the signed message header states;
 * the size is checked here, before any input. update(data) returns plaintext pieces whose
 * chunk authenticated (provisional!); finish() throws unless the final chunk arrived and the
 * hash matches. After a failure every further call throws the same error class.
 */
export class AttachmentDecryptor {
  #key;
  #size;
  #expectedHash;
  #padded;
  #minFile;
  #maxFile;
  #chunks;
  #lastCipher;
  #hasher = new BlobHasher();
  #state = null;
  #buf = new Uint8Array(CHUNK_CIPHER_BYTES);
  #bufLen = 0;
  #received = 0;
  #index = 0;
  #offset = 0;
  #heldByte = -1; // candidate marker inside the window, -1 for none
  #heldZeros = 0;
  #plainSize = null;
  #failed = null;
  #finished = false;

  #fileSize = null;

  // `fileSize`, when given, is the file length the signed manifest states: it must fit the
  // blob length up front, and the decrypted file must have exactly that length.
  constructor(key, size, hash, { fileSize = null } = {}) {
    checkKey(key, DecryptionFailed);
    if (!(hash instanceof Uint8Array) || hash.length !== HASH_BYTES) {
      throw new BlobHashMismatch('stated blob hash must be 32 bytes');
    }
    this.#padded = paddedLengthForBlob(size);
    [this.#minFile, this.#maxFile] = fileBoundsForPadded(this.#padded);
    if (fileSize !== null && !(this.#minFile <= fileSize && fileSize <= this.#maxFile)) {
      throw new BlobLengthMismatch('the stated file size does not fit the blob length');
    }
    this.#fileSize = fileSize;
    this.#key = key;
    this.#size = size;
    this.#expectedHash = hash;
    this.#chunks = chunkCount(this.#padded);
    this.#lastCipher = this.#padded - CHUNK_BYTES * (this.#chunks - 1) + ABYTES;
  }

  get size() {
    return this.#size;
  }

  get fileLengthBounds() {
    return [this.#minFile, this.#maxFile];
  }

  get plainSize() {
    if (!this.#finished) throw new Error('the blob is not verified yet');
    return this.#plainSize;
  }

  #checkUsable() {
    if (this.#failed !== null) {
      const Err = this.#failed.constructor;
      throw new Err(`stream already failed: ${this.#failed.message}`);
    }
    if (this.#finished) throw new Error('the decryptor is finished');
  }

  #fail(error) {
    this.#failed = error;
    this.#state = null;
    this.#buf = null;
    return error;
  }

  /** Plaintext released by `data`: Uint8Arrays, and numbers standing for runs of zeros. */
  parts(data) {
    this.#checkUsable();
    let bytes = asBytes(data);
    // Stream order: bytes past the stated size count only after everything before them.
    const excess = bytes.length > this.#size - this.#received;
    if (excess) bytes = bytes.subarray(0, this.#size - this.#received);
    this.#received += bytes.length;
    const out = [];
    try {
      let pos = 0;
      if (this.#state === null) {
        pos = Math.min(HEADER_BYTES - this.#bufLen, bytes.length);
        this.#buf.set(bytes.subarray(0, pos), this.#bufLen);
        this.#bufLen += pos;
        if (this.#bufLen < HEADER_BYTES) return out; // (so no excess either: size > 24)
        const header = this.#buf.slice(0, HEADER_BYTES);
        this.#bufLen = 0;
        this.#hasher.update(header);
        this.#state = sodium.crypto_secretstream_xchacha20poly1305_init_pull(header, this.#key);
      }
      while (this.#index < this.#chunks) {
        const want = this.#index < this.#chunks - 1 ? CHUNK_CIPHER_BYTES : this.#lastCipher;
        let sealed;
        if (this.#bufLen > 0) {
          const take = Math.min(want - this.#bufLen, bytes.length - pos);
          this.#buf.set(bytes.subarray(pos, pos + take), this.#bufLen);
          this.#bufLen += take;
          pos += take;
          if (this.#bufLen < want) break;
          sealed = this.#buf.subarray(0, want);
          this.#bufLen = 0;
        } else if (bytes.length - pos >= want) {
          sealed = bytes.subarray(pos, pos + want);
          pos += want;
        } else {
          this.#buf.set(bytes.subarray(pos), 0);
          this.#bufLen = bytes.length - pos;
          break;
        }
        this.#openChunk(sealed, out);
      }
      if (excess) throw new StreamFramingError('data after the final chunk');
    } catch (error) {
      throw this.#fail(error);
    }
    return out;
  }

  /** Plaintext released by `data`, as pieces of at most 65,536 bytes. */
  update(data) {
    return [...this.pieces(data)];
  }

  /**
   * The pieces of update(data), each run of zeros made only when it is taken (an iterable:
   * for a writer that waits between pieces). `data` is consumed at once, as by parts().
   */
  pieces(data) {
    return expandZeros(this.parts(data));
  }

  #openChunk(sealed, out) {
    this.#hasher.update(sealed);
    const opened = sodium.crypto_secretstream_xchacha20poly1305_pull(this.#state, sealed, null);
    if (!opened) throw new DecryptionFailed(`chunk ${this.#index} does not authenticate`);
    const last = this.#index === this.#chunks - 1;
    if (opened.tag !== (last ? TAG_FINAL : TAG_MESSAGE)) {
      throw new StreamFramingError(`chunk ${this.#index} has the wrong tag`);
    }
    this.#index += 1;
    this.#release(opened.message, out);
    if (last) this.#endPadding();
  }

  #release(plain, out) {
    const start = this.#offset;
    this.#offset += plain.length;
    if (this.#offset <= this.#minFile) { // wholly before the earliest marker position
      out.push(plain);
      return;
    }
    let rest = plain;
    if (start < this.#minFile) {
      const cut = this.#minFile - start;
      out.push(plain.subarray(0, cut));
      rest = plain.subarray(cut);
    }
    let nonzero = rest.length;
    while (nonzero > 0 && rest[nonzero - 1] === 0) nonzero -= 1;
    if (nonzero === 0) {
      this.#heldZeros += rest.length;
      return;
    }
    // A later non-zero byte: what was held back is file data after all.
    if (this.#heldByte >= 0) out.push(Uint8Array.of(this.#heldByte));
    if (this.#heldZeros > 0) out.push(this.#heldZeros);
    if (nonzero > 1) out.push(rest.subarray(0, nonzero - 1));
    this.#heldByte = rest[nonzero - 1];
    this.#heldZeros = rest.length - nonzero;
  }

  #endPadding() {
    if (this.#heldByte !== MARKER) throw new BadPadding('padding marker missing');
    const fileLength = this.#offset - this.#heldZeros - 1;
    if (fileLength < this.#minFile || fileLength > this.#maxFile) {
      throw new BadPadding('padded length does not match the length rule');
    }
    this.#plainSize = fileLength;
    this.#heldByte = -1;
    this.#heldZeros = 0;
  }

  /** Verify the end of the stream and the blob hash; throws on any failure. */
  finish() {
    this.#checkUsable();
    if (this.#index < this.#chunks) {
      throw this.#fail(new TruncatedStream('the blob ends before its final chunk'));
    }
    if (!equal(this.#hasher.digest(), this.#expectedHash)) {
      throw this.#fail(new BlobHashMismatch('blob hash does not match'));
    }
    if (this.#fileSize !== null && this.#plainSize !== this.#fileSize) {
      throw this.#fail(new BlobLengthMismatch('the file is not the stated size'));
    }
    this.#finished = true;
  }

  close() {
    if (!this.#finished && this.#failed === null) {
      this.#fail(new TruncatedStream('the stream was closed before it ended'));
    }
  }
}

function* expandZeros(parts) {
  for (const part of parts) {
    if (typeof part !== 'number') {
      yield part;
      continue;
    }
    for (let left = part; left > 0; left -= CHUNK_BYTES) {
      yield new Uint8Array(Math.min(CHUNK_BYTES, left)); // fresh: readers may keep or mutate it
    }
  }
}

// --- whole buffers ------------------------------------------------------------------------
/** Encrypt a whole file in memory: {blob, key, hash, size}. */
export function encryptBytes(data, { key = null } = {}) {
  const encryptor = new AttachmentEncryptor({ key });
  const blob = concatBytes(...encryptor.update(data), ...encryptor.finish());
  const { hash, size } = encryptor.result;
  return { blob, key: encryptor.key, hash, size };
}

/** Decrypt and verify a whole blob; returns the file only after every check passed. */
export function decryptBytes(blob, key, size, hash, { fileSize = null } = {}) {
  const decryptor = new AttachmentDecryptor(key, size, hash, { fileSize });
  const pieces = decryptor.update(blob);
  decryptor.finish();
  return concatBytes(...pieces);
}
