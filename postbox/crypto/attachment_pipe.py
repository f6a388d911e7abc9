"""Attachment blobs from and to iterables of byte pieces (PROTOCOL.md §6).

Drivers of :class:`~postbox.crypto.attachment_stream.AttachmentEncryptor` and
:class:`~postbox.crypto.attachment_stream.AttachmentDecryptor` for a file or a blob that
arrives as an iterable (:func:`encrypt_iter`, :func:`decrypt_iter`) or an async iterable
(:func:`encrypt_aiter`, :func:`decrypt_aiter`), such as a file read in pieces or an
upload. Each closes its encryptor or decryptor (stopping the hash worker) when it ends,
fails or is abandoned; the async ones process a piece of 256 KiB or more on a thread, so
the event loop stays free.

The plaintext pieces a decrypting iterator yields are provisional (see
:mod:`postbox.crypto.attachment_stream`): the blob is verified only when the iterator
ends without raising.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from typing import Final

from postbox.crypto.attachment import Bytes
from postbox.crypto.attachment_stream import AttachmentDecryptor, AttachmentEncryptor, BlobInfo

# A piece at least this large is processed on a thread, not on the event loop.
_ASYNC_INLINE_BYTES: Final = 256 * 1024


async def _update_async(update: Callable[[Bytes], list[bytes]], data: Bytes) -> list[bytes]:
    """``update(data)``, on a thread when ``data`` is large, so the event loop stays free."""
    if len(data) >= _ASYNC_INLINE_BYTES:
        return await asyncio.to_thread(update, data)
    return update(data)


class _Encrypting:
    """What an encrypting iterator tells: its key at once, its result once exhausted."""

    _encryptor: AttachmentEncryptor

    @property
    def key(self) -> bytes:
        return self._encryptor.key

    @property
    def result(self) -> BlobInfo:
        return self._encryptor.result


class EncryptingStream(_Encrypting, Iterator[bytes]):
    """The blob of the file read from ``source``, as an iterator of pieces.

    :attr:`key` is known at once; :attr:`result` once the iterator is exhausted.
    """

    def __init__(
        self, source: Iterable[Bytes], key: bytes | None = None, *, offload_hash: bool = True
    ) -> None:
        self._encryptor = AttachmentEncryptor(key, offload_hash=offload_hash)
        self._pieces = self._run(source)

    def _run(self, source: Iterable[Bytes]) -> Iterator[bytes]:
        encryptor = self._encryptor
        try:
            for data in source:
                yield from encryptor.update_pieces(data)
            yield from encryptor.finish_pieces()
        finally:
            encryptor.close()

    def __next__(self) -> bytes:
        return next(self._pieces)


class AsyncEncryptingStream(_Encrypting, AsyncIterator[bytes]):
    """:class:`EncryptingStream` over an async source; large pieces run on a thread."""

    def __init__(
        self, source: AsyncIterable[Bytes], key: bytes | None = None, *, offload_hash: bool = True
    ) -> None:
        self._encryptor = AttachmentEncryptor(key, offload_hash=offload_hash)
        self._pieces = self._run(source)

    async def _run(self, source: AsyncIterable[Bytes]) -> AsyncIterator[bytes]:
        encryptor = self._encryptor
        try:
            async for data in source:
                for piece in await _update_async(encryptor.update_pieces, data):
                    yield piece
            # One padding chunk costs tens of microseconds, so the tail runs inline.
            for piece in encryptor.finish_pieces():
                yield piece
        finally:
            encryptor.close()

    async def __anext__(self) -> bytes:
        return await anext(self._pieces)


def encrypt_iter(
    source: Iterable[Bytes], key: bytes | None = None, *, offload_hash: bool = True
) -> EncryptingStream:
    """Encrypt a file given as an iterable of byte pieces; see :class:`EncryptingStream`."""
    return EncryptingStream(source, key, offload_hash=offload_hash)


def encrypt_aiter(
    source: AsyncIterable[Bytes], key: bytes | None = None, *, offload_hash: bool = True
) -> AsyncEncryptingStream:
    """Encrypt a file given as an async iterable of byte pieces."""
    return AsyncEncryptingStream(source, key, offload_hash=offload_hash)


def decrypt_iter(
    source: Iterable[Bytes],
    key: bytes,
    size: int,
    hash: bytes,
    *,
    file_size: int | None = None,
    offload_hash: bool = True,
) -> Iterator[bytes]:
    """Plaintext pieces of the blob read from ``source``.

    The size is checked before this returns. The pieces are provisional: the blob is
    verified only when the iterator ends without raising (write them to a temporary file
    and rename it after the loop).
    """
    decryptor = AttachmentDecryptor(key, size, hash, file_size=file_size, offload_hash=offload_hash)

    def run() -> Iterator[bytes]:
        try:
            for data in source:
                yield from decryptor.update_pieces(data)
            decryptor.finish()
        finally:
            decryptor.close()

    return run()


def decrypt_aiter(
    source: AsyncIterable[Bytes],
    key: bytes,
    size: int,
    hash: bytes,
    *,
    file_size: int | None = None,
    offload_hash: bool = True,
) -> AsyncIterator[bytes]:
    """:func:`decrypt_iter` over an async source; large pieces run on a thread."""
    decryptor = AttachmentDecryptor(key, size, hash, file_size=file_size, offload_hash=offload_hash)

    async def run() -> AsyncIterator[bytes]:
        try:
            async for data in source:
                for piece in await _update_async(decryptor.update_pieces, data):
                    yield piece
            decryptor.finish()
        finally:
            decryptor.close()

    return run()
