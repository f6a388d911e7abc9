"""Writing and reading attachment blobs (PROTOCOL.md §6), piece by piece.

The blob format (layout, lengths, hash, file names) is in :mod:`postbox.crypto.attachment`;
:mod:`postbox.crypto.attachment_pipe` drives the writer and reader below from iterables
and async iterables. A reader checks the stated size against the format before it reads
a byte, then processes the blob in stream order and reports the first failure, so the
error never depends on how the input is split into pieces. It rejects:

=====================  ================================================================
``BlobLengthMismatch``  the stated size is not the length of any valid blob, or the file
                        size the manifest states does not fit it (checked up front, before
                        anything is released) or is not the decrypted file's length
``DecryptionFailed``    a chunk that does not authenticate where it sits: a flipped byte
                        anywhere (header, ciphertext, tag), the wrong key, chunks swapped,
                        dropped, duplicated or cut at another boundary (secretstream binds
                        each chunk to its position, so a moved chunk never opens)
``StreamFramingError``  an authentic chunk with the wrong tag (``TAG_FINAL`` early,
                        ``TAG_MESSAGE`` last, ``PUSH``/``REKEY``), or any byte beyond the
                        stated size (data after the final chunk)
``TruncatedStream``     the input ends before the final chunk is complete (also a dropped
                        chunk when the input runs out before a chunk fails to open)
``BlobHashMismatch``    the blob opens but its hash is not the stated one (or the stated
                        hash is not 32 bytes)
``BadPadding``          the final plaintext is not exactly ``file ‖ 0x80 ‖ 0x00…`` with the
                        length rule (also raised by the writer for files over 2 GiB,
                        like :func:`postbox.crypto.padding.pad`)
=====================  ================================================================

**Released plaintext is provisional.** :meth:`AttachmentDecryptor.update` returns plaintext
as soon as its chunk authenticates, so that a large file never has to sit in memory. It is
genuine (it was made with the file key) but the blob is only proven complete, in order
and equal to what the header signed when :meth:`AttachmentDecryptor.finish` returns.
Callers write to a temporary file and rename it into place only after ``finish()``;
:func:`decrypt_bytes` does this for them in memory and returns nothing on failure.

Bounded memory. The writer emits each full chunk of file data as soon as 65,536 bytes are
buffered (a padded stream always has at least one more byte, so such a chunk is never the
last) and generates the padding — tens of MiB for a 1 GiB file — chunk by chunk in
:meth:`AttachmentEncryptor.finish_pieces`. The reader releases everything before the
earliest position the marker can take and, inside that window, holds back at most one
candidate marker byte plus a *count* of zeros after it; a run of zeros is released as
repeated references to one shared zero block by :meth:`AttachmentDecryptor.update_pieces`.

Speed. The blob hash more than doubles the work: BLAKE2b (about 1 GB/s per core, hashlib
or libsodium alike) is slower than secretstream push or pull (about 1.2 GB/s). Once a
stream passes 1 MiB, hashing moves to a worker thread that reads the same immutable
``bytes`` objects in order, and hashlib releases the GIL, so on two cores the hash runs
beside the cipher; at
most three 1 MiB batches are in flight. Each direction is then bound by its hash, which
caps encrypt + decrypt at about 0.8 of raw push + pull throughput (``bench/crypto.py``
reports the ratio and this ceiling).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Final, NamedTuple

import nacl.bindings as sodium
import nacl.exceptions
from nacl.bindings.crypto_secretstream import crypto_secretstream_xchacha20poly1305_state

from postbox.crypto.attachment import (
    ABYTES,
    CHUNK_BYTES,
    CHUNK_CIPHER_BYTES,
    HASH_BYTES,
    HEADER_BYTES,
    BlobHasher,
    Bytes,
    chunk_count,
    file_bounds_for_padded,
    padded_length_for_blob,
)
from postbox.crypto.encoding import KEY_BYTES
from postbox.crypto.errors import (
    BadPadding,
    BlobHashMismatch,
    BlobLengthMismatch,
    CryptoError,
    DecryptionFailed,
    InvalidKey,
    StreamFramingError,
    TruncatedStream,
)
from postbox.crypto.padding import MARKER, MAX_FILE, padded_length
from postbox.crypto.primitives import equal

_TAG_MESSAGE: Final[int] = sodium.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE
_TAG_FINAL: Final[int] = sodium.crypto_secretstream_xchacha20poly1305_TAG_FINAL
_ZEROS: Final = bytes(CHUNK_BYTES)  # shared, immutable: padding and released zero runs

# Hashing moves to a worker once a stream has this much to hash; at most _HASH_IN_FLIGHT
# batches wait for it, so the worker holds at most a few MiB of chunk references.
_HASH_BATCH_BYTES: Final = 1 << 20
_HASH_IN_FLIGHT: Final = 3


# --- hashing -------------------------------------------------------------------------------
def _hash_pieces(hasher: BlobHasher, pieces: list[bytes]) -> None:
    for piece in pieces:
        hasher.update(piece)


class _StreamHash:
    """The :class:`BlobHasher` of one stream, moved to a worker thread once the stream is large.

    Pieces must be immutable ``bytes`` and are hashed strictly in the order given: one
    worker, FIFO. ``offload=False`` keeps everything on the caller's thread.
    """

    __slots__ = ("_batch", "_batch_bytes", "_executor", "_hasher", "_offload", "_pending")

    def __init__(self, offload: bool) -> None:
        self._hasher = BlobHasher()
        self._offload = offload
        self._batch: list[bytes] = []
        self._batch_bytes = 0
        self._pending: deque[Future[None]] = deque()
        self._executor: ThreadPoolExecutor | None = None

    def add(self, piece: bytes) -> None:
        self._batch.append(piece)
        self._batch_bytes += len(piece)
        if self._batch_bytes >= _HASH_BATCH_BYTES:
            batch, self._batch, self._batch_bytes = self._batch, [], 0
            if not self._offload:
                _hash_pieces(self._hasher, batch)
                return
            if self._executor is None:
                self._executor = ThreadPoolExecutor(1, thread_name_prefix="postbox-blob-hash")
            self._pending.append(self._executor.submit(_hash_pieces, self._hasher, batch))
            while len(self._pending) > _HASH_IN_FLIGHT:
                self._pending.popleft().result()

    def digest(self) -> bytes:
        while self._pending:
            self._pending.popleft().result()
        _hash_pieces(self._hasher, self._batch)
        self._batch = []
        self.close()
        return self._hasher.digest()

    def close(self) -> None:
        """Stop the worker (if any) without waiting for queued work; idempotent."""
        for pending in self._pending:
            pending.cancel()
        self._pending.clear()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None


def _as_bytes_view(data: Bytes) -> memoryview:
    view = memoryview(data)
    if view.ndim != 1 or view.format != "B":
        view = view.cast("B")  # any C-contiguous buffer, seen as bytes
    return view


def _slice(data: Bytes, view: memoryview, start: int, stop: int) -> bytes:
    """``bytes`` of ``data[start:stop]`` (no copy when that is all of an exact ``bytes``)."""
    if type(data) is bytes:
        return data[start:stop]
    return bytes(view[start:stop])


# --- writer --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class BlobInfo:
    """What a finished writer knows: the file key, the blob's hash and both lengths."""

    key: bytes = field(repr=False)
    hash: bytes
    size: int  # blob length: the header's blobs[].size
    plain_size: int  # file length: the manifest's attachments[].size


class AttachmentEncryptor:
    """Encrypt one file into one blob, piece by piece.

    ``update`` returns the blob bytes that are ready (the header first, then every chunk
    of 65,536 file bytes as soon as it is complete); ``finish`` pads, writes the final
    chunk and makes :attr:`result` available. ``key`` is a fresh random file key unless
    given (for test vectors). ``offload_hash=False`` keeps the hash on the caller's thread.

    ``header`` (with ``key``) replays a stream: the same key, header and file give the
    same blob byte for byte, which is what resuming an upload needs (the parts the server
    has are checked, not sent again). Never pass a header with a key for *another* file:
    two files under one key and header share a keystream. Without it the header is random.
    """

    def __init__(
        self,
        key: bytes | None = None,
        *,
        header: bytes | None = None,
        offload_hash: bool = True,
    ) -> None:
        if key is None:
            if header is not None:
                raise InvalidKey("a recorded header needs its recorded key")
            key = bytes(sodium.crypto_secretstream_xchacha20poly1305_keygen())
        key = bytes(key)
        if len(key) != KEY_BYTES:
            raise InvalidKey("file key must be 32 bytes")
        self._key = key
        self._state = sodium.crypto_secretstream_xchacha20poly1305_state()
        if header is None:
            header = bytes(sodium.crypto_secretstream_xchacha20poly1305_init_push(self._state, key))
        else:
            header = bytes(header)
            if len(header) != HEADER_BYTES:
                raise InvalidKey("a secretstream header has 24 bytes")
            # init_push draws a random header, then derives the state from key and header
            # exactly as init_pull does (HChaCha20 subkey from header[:16], counter reset,
            # header[16:] as nonce); pushing is deterministic from there. So init_pull on a
            # recorded header gives the state init_push gave when the header was drawn.
            sodium.crypto_secretstream_xchacha20poly1305_init_pull(self._state, header, key)
        self._hash = _StreamHash(offload_hash)
        self._hash.add(header)
        self._header: bytes | None = header  # not yet handed out
        self._buf = bytearray()
        self._plain = 0  # file bytes received
        self._size = HEADER_BYTES  # blob bytes produced
        self._open = True
        self._result: BlobInfo | None = None

    @property
    def key(self) -> bytes:
        return self._key

    @property
    def result(self) -> BlobInfo:
        if self._result is None:
            raise RuntimeError("the blob is not finished")
        return self._result

    @property
    def hash(self) -> bytes:
        return self.result.hash

    @property
    def size(self) -> int:
        return self.result.size

    @property
    def plain_size(self) -> int:
        return self.result.plain_size

    def _check_open(self) -> None:
        if not self._open:
            raise RuntimeError("the encryptor is finished or closed")

    def _push(self, chunk: bytes, tag: int) -> bytes:
        sealed: bytes = sodium.crypto_secretstream_xchacha20poly1305_push(
            self._state, chunk, None, tag
        )
        self._hash.add(sealed)
        self._size += len(sealed)
        return sealed

    def update_pieces(self, data: Bytes) -> list[bytes]:
        """Blob pieces ready after ``data``: the header first, then whole chunks."""
        self._check_open()
        view = _as_bytes_view(data)
        total = len(view)
        if self._plain + total > MAX_FILE:
            raise BadPadding("file larger than 2 GiB")
        self._plain += total
        out: list[bytes] = []
        if self._header is not None:
            out.append(self._header)
            self._header = None
        pos = 0
        if self._buf:
            pos = min(CHUNK_BYTES - len(self._buf), total)
            self._buf += view[:pos]
            if len(self._buf) < CHUNK_BYTES:
                return out
            # A full chunk of file data is never the last: at least the marker follows.
            out.append(self._push(bytes(self._buf), _TAG_MESSAGE))
            self._buf.clear()
        while total - pos >= CHUNK_BYTES:
            out.append(self._push(_slice(data, view, pos, pos + CHUNK_BYTES), _TAG_MESSAGE))
            pos += CHUNK_BYTES
        if pos < total:
            self._buf += view[pos:]
        return out

    def update(self, data: Bytes) -> bytes:
        """Blob bytes ready after ``data`` (see :meth:`update_pieces`), joined."""
        return b"".join(self.update_pieces(data))

    def finish_pieces(self) -> Iterator[bytes]:
        """The rest of the blob, chunk by chunk, generated lazily (bounded memory).

        :attr:`result` is available once the iterator is exhausted.
        """
        self._check_open()
        self._open = False
        return self._tail()

    def _tail(self) -> Iterator[bytes]:
        try:
            if self._header is not None:
                yield self._header
                self._header = None
            padded = padded_length(self._plain)
            remaining = padded - (self._plain - len(self._buf))
            first = min(CHUNK_BYTES, remaining)
            self._buf.append(MARKER)
            chunk = bytes(self._buf) + _ZEROS[: first - len(self._buf)]
            self._buf = bytearray()
            while True:
                remaining -= len(chunk)
                yield self._push(chunk, _TAG_FINAL if remaining == 0 else _TAG_MESSAGE)
                if remaining == 0:
                    break
                chunk = _ZEROS if remaining >= CHUNK_BYTES else _ZEROS[:remaining]
            self._result = BlobInfo(self._key, self._hash.digest(), self._size, self._plain)
        finally:
            self._hash.close()

    def finish(self) -> bytes:
        """The rest of the blob, joined (holds the padding's ciphertext in memory)."""
        return b"".join(self.finish_pieces())

    def close(self) -> None:
        """Abandon the stream (stops the hash worker); idempotent, harmless after finish."""
        self._open = False
        self._hash.close()


# --- reader --------------------------------------------------------------------------------
class AttachmentDecryptor:
    """Decrypt and verify one blob, piece by piece.

    ``size`` and ``hash`` are the values the signed message header states for the blob;
    ``size`` is checked before any input is read. ``file_size``, when given, is the file
    length the signed manifest states: it must fit the blob length up front, and the
    decrypted file must have exactly that length (:class:`BlobLengthMismatch`). ``update``
    returns plaintext whose chunk authenticated (provisional: see the module docstring);
    ``finish`` raises unless the final chunk arrived and the hash matches. After any
    failure the decryptor refuses all further input.
    """

    def __init__(
        self,
        key: bytes,
        size: int,
        hash: bytes,
        *,
        file_size: int | None = None,
        offload_hash: bool = True,
    ) -> None:
        key = bytes(key)
        if len(key) != KEY_BYTES:
            raise DecryptionFailed("file key must be 32 bytes")
        hash = bytes(hash)
        if len(hash) != HASH_BYTES:
            raise BlobHashMismatch("stated blob hash must be 32 bytes")
        self._padded = padded_length_for_blob(size)
        self._min_file, self._max_file = file_bounds_for_padded(self._padded)
        if file_size is not None and not self._min_file <= file_size <= self._max_file:
            raise BlobLengthMismatch("the stated file size does not fit the blob length")
        self._file_size = file_size
        self._key = key
        self._size = size
        self._expected_hash = hash
        self._chunks = chunk_count(self._padded)
        self._last_cipher = self._padded - CHUNK_BYTES * (self._chunks - 1) + ABYTES
        self._hash = _StreamHash(offload_hash)
        self._state: crypto_secretstream_xchacha20poly1305_state | None = None  # after the header
        self._buf = bytearray()
        self._received = 0
        self._index = 0  # chunks opened
        self._offset = 0  # plaintext bytes opened
        self._held_byte: int | None = None  # candidate marker (inside the marker window)
        self._held_zeros = 0  # zeros after it (or after the window start)
        self._plain_size: int | None = None
        self._failed: CryptoError | None = None
        self._finished = False

    @property
    def size(self) -> int:
        """The stated blob length."""
        return self._size

    @property
    def file_length_bounds(self) -> tuple[int, int]:
        """(shortest, longest) file length the stated size allows."""
        return self._min_file, self._max_file

    @property
    def plain_size(self) -> int:
        """The file length, once :meth:`finish` has succeeded."""
        if not self._finished or self._plain_size is None:
            raise RuntimeError("the blob is not verified yet")
        return self._plain_size

    def _check_usable(self) -> None:
        if self._failed is not None:
            raise type(self._failed)(f"stream already failed: {self._failed}")
        if self._finished:
            raise RuntimeError("the decryptor is finished")

    def _fail(self, error: CryptoError) -> CryptoError:
        self._failed = error
        self._state = None
        self._buf = bytearray()
        self._hash.close()
        return error

    def update_pieces(self, data: Bytes) -> list[bytes]:
        """Plaintext released by ``data``, as pieces of at most 65,536 bytes.

        A run of zeros that turned out to be file data comes back as repeated references
        to one shared zero block, so memory stays bounded whatever the file contains.
        """
        self._check_usable()
        view = _as_bytes_view(data)
        total = len(view)
        # Bytes are processed in stream order and the first failure wins, so an input
        # gives the same error however it is split: bytes past the stated size count
        # only after everything before them has been opened.
        excess = total > self._size - self._received
        if excess:
            total = self._size - self._received
            data = view = view[:total]
        self._received += total
        if total:
            # The hash sees the blob exactly as delivered, one piece per call (an immutable
            # ``bytes`` piece is shared with the hash worker, anything else is copied).
            self._hash.add(data if type(data) is bytes else bytes(view))
        out: list[bytes] = []
        try:
            pos = 0
            if self._state is None:
                pos = min(HEADER_BYTES - len(self._buf), total)
                self._buf += view[:pos]
                if len(self._buf) < HEADER_BYTES:
                    return out
                header = bytes(self._buf)
                self._buf.clear()
                self._state = sodium.crypto_secretstream_xchacha20poly1305_state()
                sodium.crypto_secretstream_xchacha20poly1305_init_pull(
                    self._state, header, self._key
                )
            while self._index < self._chunks:
                want = CHUNK_CIPHER_BYTES if self._index < self._chunks - 1 else self._last_cipher
                if self._buf:
                    take = min(want - len(self._buf), total - pos)
                    self._buf += view[pos : pos + take]
                    pos += take
                    if len(self._buf) < want:
                        break
                    sealed = bytes(self._buf)
                    self._buf.clear()
                elif total - pos >= want:
                    sealed = _slice(data, view, pos, pos + want)
                    pos += want
                else:
                    self._buf += view[pos:]
                    break
                self._open_chunk(sealed, out)
            if excess:
                raise StreamFramingError("data after the final chunk")
        except CryptoError as error:
            raise self._fail(error) from None
        return out

    def update(self, data: Bytes) -> bytes:
        """Plaintext released by ``data`` (see :meth:`update_pieces`), joined.

        Inside the window where the padding marker may lie, a run of zeros is held back
        until a later non-zero byte shows that it is file data, and is then released at
        once: one call can return up to the window's size more than it was given (at most
        1/16 of the padded length plus 256 bytes; 64 MiB for a 2 GiB file). Use
        :meth:`update_pieces` or :func:`~postbox.crypto.attachment_pipe.decrypt_iter` where that
        matters.
        """
        return b"".join(self.update_pieces(data))

    def _open_chunk(self, sealed: bytes, out: list[bytes]) -> None:
        assert self._state is not None
        try:
            plain, tag = sodium.crypto_secretstream_xchacha20poly1305_pull(
                self._state, sealed, None
            )
        except nacl.exceptions.CryptoError as error:
            raise DecryptionFailed(f"chunk {self._index} does not authenticate") from error
        last = self._index == self._chunks - 1
        if tag != (_TAG_FINAL if last else _TAG_MESSAGE):
            raise StreamFramingError(f"chunk {self._index} has the wrong tag")
        self._index += 1
        self._release(plain, out)
        if last:
            self._end_padding()

    def _release(self, plain: bytes, out: list[bytes]) -> None:
        start = self._offset
        self._offset += len(plain)
        if self._offset <= self._min_file:  # wholly before the earliest marker position
            out.append(plain)
            return
        rest = plain
        if start < self._min_file:
            cut = self._min_file - start
            out.append(plain[:cut])
            rest = plain[cut:]
        nonzero = len(rest.rstrip(b"\x00"))
        if nonzero == 0:
            self._held_zeros += len(rest)
            return
        # A later non-zero byte: what was held back is file data after all.
        self._release_held(out)
        if nonzero > 1:
            out.append(rest[: nonzero - 1])
        self._held_byte = rest[nonzero - 1]
        self._held_zeros = len(rest) - nonzero

    def _release_held(self, out: list[bytes]) -> None:
        if self._held_byte is not None:
            out.append(bytes((self._held_byte,)))
            self._held_byte = None
        zeros = self._held_zeros
        self._held_zeros = 0
        while zeros >= CHUNK_BYTES:
            out.append(_ZEROS)
            zeros -= CHUNK_BYTES
        if zeros:
            out.append(_ZEROS[:zeros])

    def _end_padding(self) -> None:
        if self._held_byte != MARKER:
            raise BadPadding("padding marker missing")
        file_length = self._offset - self._held_zeros - 1
        if not self._min_file <= file_length <= self._max_file:  # pragma: no cover - window
            raise BadPadding("padded length does not match the length rule")
        self._plain_size = file_length
        self._held_byte = None
        self._held_zeros = 0

    def finish(self) -> None:
        """Verify the end of the stream and the blob hash; raise on any failure."""
        self._check_usable()
        if self._index < self._chunks:
            raise self._fail(TruncatedStream("the blob ends before its final chunk"))
        digest = self._hash.digest()
        if not equal(digest, self._expected_hash):
            raise self._fail(BlobHashMismatch("blob hash does not match"))
        if self._file_size is not None and self._plain_size != self._file_size:
            raise self._fail(BlobLengthMismatch("the file is not the stated size"))
        self._finished = True

    def close(self) -> None:
        """Abandon the stream (stops the hash worker); idempotent."""
        if not self._finished and self._failed is None:
            self._fail(TruncatedStream("the stream was closed before it ended"))


# --- whole buffers -------------------------------------------------------------------------
class EncryptedBlob(NamedTuple):
    blob: bytes
    key: bytes
    hash: bytes


def encrypt_bytes(data: Bytes, key: bytes | None = None) -> EncryptedBlob:
    """Encrypt a whole file in memory: ``(blob, key, hash)``."""
    encryptor = AttachmentEncryptor(key)
    blob = b"".join([*encryptor.update_pieces(data), *encryptor.finish_pieces()])
    return EncryptedBlob(blob, encryptor.key, encryptor.hash)


def decrypt_bytes(
    blob: Bytes, key: bytes, size: int, hash: bytes, *, file_size: int | None = None
) -> bytes:
    """Decrypt and verify a whole blob; returns the file only after every check passed."""
    decryptor = AttachmentDecryptor(key, size, hash, file_size=file_size)
    try:
        pieces = decryptor.update_pieces(blob)
        decryptor.finish()
    finally:
        decryptor.close()
    return b"".join(pieces)
