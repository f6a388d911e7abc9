// Attachment blobs through Web Streams (PROTOCOL.md §6): encryptStream and decryptStream
// drive the encryptor and decryptor of attachment_stream.js, as postbox/crypto/attachment_pipe.py
// drives them over Python iterables.
//
// decryptStream's plaintext is PROVISIONAL: it closes its readable side only after the whole
// blob verified (final chunk, length, hash), and errors it (dropping whatever is still queued)
// otherwise: write to temporary storage and keep the file only once the readable closed.
//
// The streams wait for their reader between pieces, so memory stays bounded (a
// TransformStream cannot wait inside flush(), hence the {writable, readable} pairs).
import { AttachmentDecryptor, AttachmentEncryptor } from './attachment_stream.js';

const QUEUE_PIECES = 4; // readable-side queue of the streams, in pieces of ≤ 64 KiB

// --- Web Streams --------------------------------------------------------------------------
// A {writable, readable} pair (pipeThrough accepts it) whose writer waits for the reader
// after every piece, so that nothing piles up however much one write or close produces, and
// the `result` promise: what close() returns. A failure or an abort closes `codec` (the
// encryptor or decryptor) and rejects `result`.
function backpressured(codec, { write, close }) {
  const result = settle();
  let controller;
  let wake = null;
  let cancelled = null;
  const readable = new ReadableStream({
    start(c) {
      controller = c;
    },
    pull() {
      const w = wake;
      wake = null;
      w?.();
    },
    cancel(reason) {
      cancelled = reason ?? new Error('reader cancelled');
      const w = wake;
      wake = null;
      w?.();
    },
  }, new CountQueuingStrategy({ highWaterMark: QUEUE_PIECES }));
  async function emit(piece) {
    if (cancelled !== null) throw cancelled;
    controller.enqueue(piece);
    while (controller.desiredSize <= 0 && cancelled === null) {
      await new Promise((resolve) => {
        wake = resolve;
      });
    }
    if (cancelled !== null) throw cancelled;
  }
  const stop = (reason) => {
    codec.close();
    result.reject(reason);
    if (cancelled === null) controller.error(reason);
  };
  const writable = new WritableStream({
    async write(chunk) {
      try {
        await write(chunk, emit);
      } catch (error) {
        stop(error);
        throw error;
      }
    },
    async close() {
      try {
        result.resolve(await close(emit));
      } catch (error) {
        stop(error);
        throw error;
      }
      if (cancelled === null) controller.close();
    },
    abort(reason) {
      stop(reason);
    },
  });
  return { writable, readable, result: result.promise };
}

function settle() {
  let resolve;
  let reject;
  const promise = new Promise((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(() => {}); // the stream reports the error too; an unread result is fine
  return { promise, resolve, reject };
}

/**
 * Encrypt a file stream: `file.pipeThrough(encryptStream())` gives the blob.
 * Returns {key, writable, readable, result}; `result` resolves to {key, hash, size, plainSize}
 * once the blob is complete (the message header needs size and hash) and rejects on failure.
 */
export function encryptStream({ key = null } = {}) {
  const encryptor = new AttachmentEncryptor({ key });
  const { writable, readable, result } = backpressured(encryptor, {
    async write(chunk, emit) {
      for (const piece of encryptor.update(chunk)) await emit(piece);
    },
    async close(emit) {
      for (const piece of encryptor.finish()) await emit(piece);
      return encryptor.result;
    },
  });
  return { key: encryptor.key, writable, readable, result };
}

/**
 * Decrypt and verify a blob stream: `blob.pipeThrough(decryptStream(key, size, hash))` gives
 * the file. The size is checked at once (throws BlobLengthMismatch). The readable side errors
 * with the precise CryptoError on any failure and closes only after the whole blob verified;
 * `result` resolves to {plainSize} then.
 */
export function decryptStream(key, size, hash, { fileSize = null } = {}) {
  const decryptor = new AttachmentDecryptor(key, size, hash, { fileSize });
  return backpressured(decryptor, {
    async write(chunk, emit) {
      for (const piece of decryptor.pieces(chunk)) await emit(piece);
    },
    async close() {
      decryptor.finish();
      return { plainSize: decryptor.plainSize };
    },
  });
}
