"""Attachment blobs (PROTOCOL.md §6): the format rules, one secretstream blob per file.

Layout. The stream plaintext is the file padded by the rule of §5 (``file ‖ 0x80 ‖ 0x00…``
up to ``n = max(256, padme(len(file) + 1))`` bytes). With ``k = max(1, ⌈n / 65,536⌉)``,
chunks 1…k-1 carry exactly 65,536 plaintext bytes with ``TAG_MESSAGE`` and chunk k the
rest (1…65,536 bytes) with ``TAG_FINAL``; no additional data; one fresh key per blob. The
blob is the 24-byte secretstream header followed by the chunks: ``24 + n + 17·k`` bytes.
Its hash is ``H(key="postbox/v1/blob", blob, 32)``, which the message header signs.

Because the layout is a function of ``n`` alone, the stated blob size fixes where every
chunk ends, which chunk must carry ``TAG_FINAL`` and the window in which the padding
marker may lie: :func:`padded_length_for_blob` and :func:`file_length_bounds` raise
``BlobLengthMismatch`` for a size no writer can produce.

This module holds what needs no file key: the constants and lengths, the blob hash
(:class:`BlobHasher`, for the server checking an upload and a client before it stores a
download) and the file-name rule. Writing and reading blobs — encryption, decryption,
the checks a reader runs in stream order and their errors — are in
:mod:`postbox.crypto.attachment_stream`, and :mod:`postbox.crypto.attachment_pipe` does
both over iterables and async iterables.
"""

from __future__ import annotations

import hashlib
import unicodedata
from typing import Final

import nacl.bindings as sodium

from postbox.crypto import domain
from postbox.crypto.encoding import KEY_BYTES
from postbox.crypto.errors import BadPadding, BlobHashMismatch, BlobLengthMismatch, MalformedObject
from postbox.crypto.padding import MAX_FILE, MIN_PADDED, padded_length, padme
from postbox.crypto.primitives import equal

Bytes = bytes | bytearray | memoryview

CHUNK_BYTES: Final = 65_536  # plaintext bytes of every chunk but the last
HEADER_BYTES: Final = 24  # crypto_secretstream_xchacha20poly1305_HEADERBYTES
ABYTES: Final = 17  # crypto_secretstream_xchacha20poly1305_ABYTES (1 tag byte + 16 MAC)
CHUNK_CIPHER_BYTES: Final = CHUNK_BYTES + ABYTES
HASH_BYTES: Final = 32
MAX_FILE_NAME_BYTES: Final = 255

assert sodium.crypto_secretstream_xchacha20poly1305_HEADERBYTES == HEADER_BYTES
assert sodium.crypto_secretstream_xchacha20poly1305_ABYTES == ABYTES
assert sodium.crypto_secretstream_xchacha20poly1305_KEYBYTES == KEY_BYTES


# --- lengths -------------------------------------------------------------------------------
def chunk_count(padded: int) -> int:
    """Number of chunks of a stream whose padded plaintext is ``padded`` bytes."""
    return max(1, -(-padded // CHUNK_BYTES))


def _blob_length_of_padded(padded: int) -> int:
    return HEADER_BYTES + padded + ABYTES * chunk_count(padded)


def blob_length(file_length: int) -> int:
    """Length of the blob of a ``file_length``-byte file: ``24 + n + 17·k``."""
    if file_length < 0:
        raise ValueError("negative length")
    if file_length > MAX_FILE:
        raise BadPadding("file larger than 2 GiB")
    return _blob_length_of_padded(padded_length(file_length))


MAX_PADDED: Final = padded_length(MAX_FILE)
MIN_BLOB: Final = _blob_length_of_padded(MIN_PADDED)
MAX_BLOB: Final = _blob_length_of_padded(MAX_PADDED)


def file_bounds_for_padded(padded: int) -> tuple[int, int]:
    """(shortest, longest) file length whose padded length is ``padded``.

    Raises :class:`BlobLengthMismatch` if no file length of at most 2 GiB pads to it.
    """
    if padded < MIN_PADDED or padded > MAX_PADDED or padme(padded) != padded:
        raise BlobLengthMismatch("not a padded length")
    lo, hi = 0, padded - 1  # padded_length is non-decreasing; padded_length(padded - 1) = padded
    while lo < hi:
        mid = (lo + hi) // 2
        if padded_length(mid) >= padded:
            hi = mid
        else:
            lo = mid + 1
    if padded_length(lo) != padded or lo > MAX_FILE:  # pragma: no cover - padme(padded) == padded
        raise BlobLengthMismatch("not a padded length")
    return lo, min(padded - 1, MAX_FILE)


def padded_length_for_blob(blob_len: int) -> int:
    """The padded plaintext length ``n`` of a blob of ``blob_len`` bytes.

    ``n`` is unique when it exists: the chunk count follows from the length because every
    chunk but the last is exactly 65,553 bytes. Raises :class:`BlobLengthMismatch` when no
    valid ``n`` exists (a length no writer can produce).
    """
    if isinstance(blob_len, bool) or not isinstance(blob_len, int):
        raise BlobLengthMismatch("blob length must be an integer")
    if blob_len < MIN_BLOB or blob_len > MAX_BLOB:
        raise BlobLengthMismatch("blob length out of range")
    body = blob_len - HEADER_BYTES
    k = -(-body // CHUNK_CIPHER_BYTES)
    padded = body - ABYTES * k
    if padded - CHUNK_BYTES * (k - 1) < 1:  # the last chunk would carry no plaintext
        raise BlobLengthMismatch("no chunk layout has this length")
    file_bounds_for_padded(padded)
    return padded


def file_length_bounds(blob_len: int) -> tuple[int, int]:
    """(shortest, longest) length of a file whose blob has ``blob_len`` bytes."""
    return file_bounds_for_padded(padded_length_for_blob(blob_len))


# --- hashing -------------------------------------------------------------------------------
def blob_hash(blob: bytes) -> bytes:
    """``H(key="postbox/v1/blob", blob, 32)`` of a whole blob."""
    hasher = BlobHasher()
    hasher.update(blob)
    return hasher.digest()


class BlobHasher:
    """Incremental ``H(key="postbox/v1/blob", blob, 32)`` (keyed BLAKE2b-256).

    For whoever sees a blob without its key: the server checking an upload against the
    size and hash a message header states, or a client before it stores a download.

    ``hashlib.blake2b`` is RFC 7693 BLAKE2b like libsodium's ``crypto_generichash`` (the
    vectors pin the output); it takes any buffer without a copy and releases the GIL on
    large ones, so a hash on a worker thread runs beside the event loop.
    """

    __slots__ = ("_digest", "_size", "_state")

    def __init__(self) -> None:
        self._state = hashlib.blake2b(key=domain.BLOB, digest_size=HASH_BYTES)
        self._size = 0
        self._digest: bytes | None = None

    @property
    def size(self) -> int:
        """Bytes hashed so far."""
        return self._size

    def update(self, data: Bytes) -> None:
        """Hash ``data`` (any contiguous buffer; not kept after the call)."""
        if self._digest is not None:
            raise RuntimeError("digest() was already called")
        self._size += memoryview(data).nbytes
        self._state.update(data)

    def digest(self) -> bytes:
        if self._digest is None:
            self._digest = self._state.digest()
        return self._digest

    def verify(self, expected: bytes) -> None:
        """Raise :class:`BlobHashMismatch` unless the digest equals ``expected``."""
        if len(expected) != HASH_BYTES or not equal(self.digest(), expected):
            raise BlobHashMismatch("blob hash does not match")


# --- file names ----------------------------------------------------------------------------
def check_file_name(name: str) -> None:
    """Reject a file name PROTOCOL.md §6 does not allow (raises :class:`MalformedObject`).

    At most 255 bytes of UTF-8, NFC, not empty, not ``.`` or ``..``, without ``/``, ``\\``,
    NUL or any other control character (Unicode category Cc).
    """
    if not isinstance(name, str):
        raise MalformedObject("file name must be a string")
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError as error:
        raise MalformedObject("file name is not valid Unicode") from error
    if not encoded or len(encoded) > MAX_FILE_NAME_BYTES:
        raise MalformedObject("file name must be 1 to 255 bytes of UTF-8")
    if name in (".", ".."):
        raise MalformedObject("file name must not be . or ..")
    if "/" in name or "\\" in name:
        raise MalformedObject("file name must not contain / or \\")
    if any(unicodedata.category(ch) == "Cc" for ch in name):
        raise MalformedObject("file name must not contain control characters")
    if not unicodedata.is_normalized("NFC", name):
        raise MalformedObject("file name must be NFC")
