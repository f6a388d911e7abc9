"""Where blob bytes live: the :class:`BlobStore` interface and its local-folder implementation.

A blob is kept as the parts it was uploaded in (PROTOCOL.md §6: parts of a few MiB), and
the database (``uploads``/``upload_parts``) says which parts make it. Completing an upload
therefore moves no data; reading a blob reads its parts in order. Every part file is
named by its index *and its checksum*, so two concurrent PUTs of different bytes for one
part can never overwrite each other: each lands in its own file and the database row
decides which one counts (the loser's file is removed, or collected later).

:class:`LocalBlobStore` keeps ``<root>/<hh>/<hex id>/<index>-<checksum hex>``, where ``hex
id`` is the blob id's 16 bytes in lower-case hex (so paths never depend on the case of
b64 letters, and no id can name ``..`` or a separator) and ``hh`` its first byte. Paths are
derived only from validated ids and indices: nothing a client sends becomes a path
component. Writes are atomic: a temporary file in the same folder (created exclusively,
mode 0600), fsync, rename, fsync of the folder. A part's bytes are written with
``writev`` straight from the pieces the socket delivered (no joined copy) and checksummed
on the same worker thread. Downloads go out with ``sendfile`` (the kernel copies from the
page cache to the socket; the read-ahead is started on a worker thread first);
:meth:`LocalBlobStore.read` streams pieces of :data:`READ_CHUNK` bytes on a worker thread
for whoever wants the bytes themselves, and :meth:`LocalBlobStore.feed` hands them out of
one reused buffer for hashing, so neither allocates fresh memory per piece.

Nothing in this module knows who owns a blob or whether it is complete: that is the
service's job (:mod:`postbox.mailbox.blobs.service`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import secrets
import shutil
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final, Protocol

from postbox.crypto.encoding import ID_BYTES, b64d, b64e
from postbox.crypto.errors import EncodingError

#: bytes read from disk per step when streaming or hashing a blob
READ_CHUNK: Final = 1024 * 1024
#: most buffers one ``writev`` call takes (Linux ``IOV_MAX``)
_IOV_MAX: Final = 1024
#: bytes of a part checksum (BLAKE2b-256, the ``X-Checksum`` header)
CHECKSUM_BYTES: Final = 32
#: part indices have six decimal digits in file names
MAX_PART_INDEX: Final = 999_999
FILE_MODE: Final = 0o600
DIR_MODE: Final = 0o700
_TMP_PREFIX: Final = ".tmp-"


class StorageError(Exception):
    """The store's files are not what the database says (missing, wrong size): a server
    fault, never the client's."""


@dataclass(frozen=True, slots=True)
class PartRef:
    """One stored part: its place in the blob, its length and its BLAKE2b-256 checksum."""

    index: int
    size: int
    checksum: bytes


@dataclass(frozen=True, slots=True)
class StoredFile:
    """A file of a blob's folder, as the garbage collector sees it."""

    name: str
    #: (index, checksum) of a part file; None for a temporary or unknown file
    part: tuple[int, bytes] | None
    size: int
    mtime: float  # seconds since the epoch, file-system time


def part_checksum(data: bytes) -> bytes:
    """BLAKE2b-256 of one part (what ``X-Checksum`` carries, b64)."""
    return hashlib.blake2b(data, digest_size=CHECKSUM_BYTES).digest()


class PartSink(Protocol):
    """One part being received: bytes go to a temporary place and are checksummed as
    they arrive; :meth:`commit` makes them durable under their final name."""

    @property
    def size(self) -> int: ...

    async def write(self, data: bytes) -> None: ...

    async def write_pieces(self, pieces: Sequence[bytes]) -> None:
        """Append ``pieces`` in order (one worker-thread hop, no joined copy)."""
        ...

    def digest(self) -> bytes:
        """BLAKE2b-256 of everything written so far."""
        ...

    async def commit(self) -> PartRef:
        """Make the part durable and visible; the sink is closed afterwards."""
        ...

    async def discard(self) -> None:
        """Drop what was written (idempotent; harmless after commit)."""
        ...


class BlobStore(Protocol):
    """Blob bytes by blob id and part (the database says which parts make a blob)."""

    def part_sink(self, blob_id: str, index: int) -> PartSink: ...

    def read(
        self, blob_id: str, parts: Sequence[PartRef], offset: int, length: int
    ) -> AsyncGenerator[bytes, None]:
        """``length`` bytes of the blob made of ``parts`` (in index order), from ``offset``."""
        ...

    async def send(
        self,
        blob_id: str,
        parts: Sequence[PartRef],
        offset: int,
        length: int,
        transport: asyncio.WriteTransport,
    ) -> None:
        """Write ``length`` bytes of the blob from ``offset`` to ``transport`` (an HTTP
        response whose headers have gone out), by ``sendfile`` where the transport allows."""
        ...

    async def feed(
        self, blob_id: str, parts: Sequence[PartRef], consume: Callable[[memoryview], None]
    ) -> None:
        """Pass the bytes of ``parts`` (in order) to ``consume``, piece by piece, on a worker
        thread: one call for work such as hashing, without a thread hop per piece. A piece
        is a view of a reused buffer, valid only during its call."""
        ...

    async def delete_part(self, blob_id: str, index: int, checksum: bytes) -> None: ...

    async def delete_blob(self, blob_id: str) -> None:
        """Every file of the blob (idempotent)."""
        ...

    def blob_ids(self) -> AsyncIterator[list[str]]:
        """Every blob id with files in the store, in batches (for the garbage collector)."""
        ...

    async def files(self, blob_id: str) -> list[StoredFile]: ...

    async def delete_file(self, blob_id: str, name: str) -> None: ...

    async def folder_mtime(self, blob_id: str) -> float | None:
        """When the blob's folder last changed (None: the store has nothing of it)."""
        ...


# --- the local folder --------------------------------------------------------------------------
def _hex_of(blob_id: str) -> str:
    try:
        return b64d(blob_id, ID_BYTES).hex()
    except EncodingError as exc:
        raise ValueError(f"not a blob id: {blob_id!r}") from exc


def _check_index(index: int) -> None:
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index <= MAX_PART_INDEX:
        raise ValueError(f"not a part index: {index!r}")


def _part_name(index: int, checksum: bytes) -> str:
    _check_index(index)
    if len(checksum) != CHECKSUM_BYTES:
        raise ValueError("a part checksum has 32 bytes")
    return f"{index:06d}-{checksum.hex()}"


def _parse_part_name(name: str) -> tuple[int, bytes] | None:
    index, dash, digest = name.partition("-")
    if not dash or len(index) != 6 or not index.isdigit() or len(digest) != 2 * CHECKSUM_BYTES:
        return None
    try:
        checksum = bytes.fromhex(digest)
    except ValueError:
        return None
    if checksum.hex() != digest:  # lower-case only: one name per part
        return None
    return int(index), checksum


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _LocalPartSink:
    """A part written to ``.tmp-…`` in the blob's folder, hashed on the same worker thread.

    File work runs on worker threads under one lock: a request cancelled while a write or
    the commit is still running on its thread cleans up only after that work ended, so a
    descriptor is never closed twice (a number the process may already have reused).
    """

    def __init__(self, folder: Path, index: int) -> None:
        self._lock = threading.Lock()
        self._folder = folder
        self._index = index
        self._hash = hashlib.blake2b(digest_size=CHECKSUM_BYTES)
        self._size = 0
        self._fd: int | None = None
        self._tmp: Path | None = None
        self._done = False

    @property
    def size(self) -> int:
        return self._size

    def _open(self) -> int:
        if self._fd is None:
            created = not self._folder.is_dir()
            self._folder.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
            if created:  # the new folder's entry must survive a crash with the part
                _fsync_dir(self._folder.parent)
            name = f"{_TMP_PREFIX}{self._index:06d}-{secrets.token_hex(8)}"
            self._tmp = self._folder / name
            self._fd = os.open(self._tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        return self._fd

    def _write(self, pieces: Sequence[bytes]) -> None:
        with self._lock:
            self._write_locked(pieces)

    def _write_locked(self, pieces: Sequence[bytes]) -> None:
        fd = self._open()
        _writev_all(fd, pieces)
        for piece in pieces:  # hashlib releases the GIL on large pieces
            self._hash.update(piece)

    async def write(self, data: bytes) -> None:
        await self.write_pieces([data])

    async def write_pieces(self, pieces: Sequence[bytes]) -> None:
        if self._done:
            raise RuntimeError("the part is closed")
        pieces = [piece for piece in pieces if piece]
        if not pieces:
            return
        await asyncio.to_thread(self._write, pieces)
        self._size += sum(len(piece) for piece in pieces)

    def digest(self) -> bytes:
        return self._hash.digest()

    def _commit(self) -> PartRef:
        with self._lock:
            return self._commit_locked()

    def _commit_locked(self) -> PartRef:
        fd = self._open()  # an empty part still gets its (empty) file
        assert self._tmp is not None
        checksum = self._hash.digest()
        os.fsync(fd)
        os.close(fd)
        self._fd = None
        os.replace(self._tmp, self._folder / _part_name(self._index, checksum))
        self._tmp = None
        _fsync_dir(self._folder)
        return PartRef(self._index, self._size, checksum)

    async def commit(self) -> PartRef:
        if self._done:
            raise RuntimeError("the part is closed")
        self._done = True
        try:
            return await asyncio.to_thread(self._commit)
        except BaseException:
            await self._cleanup()
            raise

    def _remove(self) -> None:
        with self._lock:
            self._remove_locked()

    def _remove_locked(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
            self._tmp = None

    async def _cleanup(self) -> None:
        # shielded: a cancelled request must not leave its temporary file behind
        await asyncio.shield(asyncio.to_thread(self._remove))

    async def discard(self) -> None:
        self._done = True
        await self._cleanup()


class LocalBlobStore:
    """Blobs in a local folder (``settings.blobs_dir``); see the module docstring."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    # -- paths (from validated ids only) --
    def folder(self, blob_id: str) -> Path:
        hex_id = _hex_of(blob_id)
        return self.root / hex_id[:2] / hex_id

    def part_path(self, blob_id: str, index: int, checksum: bytes) -> Path:
        return self.folder(blob_id) / _part_name(index, checksum)

    # -- writing --
    def part_sink(self, blob_id: str, index: int) -> PartSink:
        _check_index(index)
        return _LocalPartSink(self.folder(blob_id), index)

    async def delete_part(self, blob_id: str, index: int, checksum: bytes) -> None:
        path = self.part_path(blob_id, index, checksum)
        await asyncio.to_thread(path.unlink, missing_ok=True)

    async def delete_blob(self, blob_id: str) -> None:
        folder = self.folder(blob_id)
        await asyncio.to_thread(shutil.rmtree, folder, ignore_errors=True)

    # -- reading --
    def _open_parts(
        self, blob_id: str, parts: Sequence[PartRef], offset: int, length: int
    ) -> Iterator[tuple[Path, int, int, int]]:
        """(path, expected size, start, count) of each part overlapping the range."""
        position = 0
        end = offset + length
        for part in parts:
            lo, hi = position, position + part.size
            position = hi
            if hi <= offset or lo >= end:
                continue
            start = max(offset, lo) - lo
            count = min(end, hi) - lo - start
            yield self.part_path(blob_id, part.index, part.checksum), part.size, start, count
        if position < end:
            raise ValueError("the range lies beyond the blob")

    async def read(
        self, blob_id: str, parts: Sequence[PartRef], offset: int, length: int
    ) -> AsyncGenerator[bytes, None]:
        if offset < 0 or length < 0:
            raise ValueError("negative range")
        for path, expected, start, count in self._open_parts(blob_id, parts, offset, length):
            reader = await asyncio.to_thread(_PartReader, path, expected)
            try:
                while count > 0:
                    chunk = await asyncio.to_thread(reader.read, start, min(READ_CHUNK, count))
                    start += len(chunk)
                    count -= len(chunk)
                    yield chunk
            finally:
                await asyncio.to_thread(reader.close)

    async def send(
        self,
        blob_id: str,
        parts: Sequence[PartRef],
        offset: int,
        length: int,
        transport: asyncio.WriteTransport,
    ) -> None:
        if offset < 0 or length < 0:
            raise ValueError("negative range")
        loop = asyncio.get_running_loop()
        for path, expected, start, count in self._open_parts(blob_id, parts, offset, length):
            handle = await asyncio.to_thread(_open_for_sending, path, expected, start, count)
            try:
                # The kernel copies page cache to socket in the event loop's thread
                # (non-blocking; the read-ahead above makes a disk wait unlikely). Where
                # sendfile is not possible (TLS), asyncio falls back to reads and writes.
                await loop.sendfile(transport, handle, start, count)
            finally:
                handle.close()

    def _feed(
        self, blob_id: str, parts: Sequence[PartRef], consume: Callable[[memoryview], None]
    ) -> None:
        buffer = bytearray(READ_CHUNK)  # reused: no fresh (page-faulting) memory per piece
        view = memoryview(buffer)
        for part in parts:
            reader = _PartReader(self.part_path(blob_id, part.index, part.checksum), part.size)
            try:
                offset = 0
                while offset < part.size:
                    got = reader.read_into(view[: min(READ_CHUNK, part.size - offset)], offset)
                    offset += got
                    consume(view[:got])
            finally:
                reader.close()

    async def feed(
        self, blob_id: str, parts: Sequence[PartRef], consume: Callable[[memoryview], None]
    ) -> None:
        await asyncio.to_thread(self._feed, blob_id, parts, consume)

    # -- listing (garbage collection) --
    def _list_ids(self) -> list[str]:
        ids: list[str] = []
        with contextlib.suppress(FileNotFoundError):
            for top in os.scandir(self.root):
                if not (top.is_dir(follow_symlinks=False) and _is_hex(top.name, 1)):
                    continue
                for entry in os.scandir(top.path):
                    name = entry.name
                    is_blob = entry.is_dir(follow_symlinks=False) and _is_hex(name, ID_BYTES)
                    if is_blob and name.startswith(top.name):
                        ids.append(b64e(bytes.fromhex(name)))
        return ids

    async def blob_ids(self, batch: int = 500) -> AsyncIterator[list[str]]:
        # One listing per top-level folder would bound memory for huge stores; a list of
        # ids (22 characters each) is small enough for millions of blobs.
        ids = await asyncio.to_thread(self._list_ids)
        for start in range(0, len(ids), batch):
            yield ids[start : start + batch]

    def _files(self, blob_id: str) -> list[StoredFile]:
        out: list[StoredFile] = []
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(self.folder(blob_id)):
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                out.append(
                    StoredFile(entry.name, _parse_part_name(entry.name), st.st_size, st.st_mtime)
                )
        return out

    async def files(self, blob_id: str) -> list[StoredFile]:
        return await asyncio.to_thread(self._files, blob_id)

    async def delete_file(self, blob_id: str, name: str) -> None:
        if "/" in name or name in ("", ".", "..") or os.sep in name:
            raise ValueError(f"not a file name: {name!r}")
        path = self.folder(blob_id) / name
        await asyncio.to_thread(_remove_path, path)

    async def folder_mtime(self, blob_id: str) -> float | None:

        def stat() -> float | None:
            try:
                return self.folder(blob_id).stat().st_mtime
            except FileNotFoundError:
                return None

        return await asyncio.to_thread(stat)


def _is_hex(name: str, size: int) -> bool:
    if len(name) != 2 * size:
        return False
    try:
        return bytes.fromhex(name).hex() == name
    except ValueError:
        return False


class _PartReader:
    """One open part file, read on worker threads. The lock lets a reader that is closed
    (a download cancelled mid-read) close its descriptor only after the read running on
    a thread returned."""

    def __init__(self, path: Path, expected: int) -> None:
        self._lock = threading.Lock()
        self._name = path.name
        try:
            self._fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError as exc:
            raise StorageError(f"part file {path.name} is missing") from exc
        size = os.fstat(self._fd).st_size
        if size != expected:
            os.close(self._fd)
            raise StorageError(f"part file {path.name} has {size} bytes, not {expected}")

    def read(self, offset: int, count: int) -> bytes:
        with self._lock:
            if self._fd < 0:
                raise StorageError("the part file is closed")
            chunk = os.pread(self._fd, count, offset)
        if not chunk:
            raise StorageError(f"part file {self._name} ended early")
        return chunk

    def read_into(self, into: memoryview, offset: int) -> int:
        """Fill the start of ``into`` from ``offset``; how many bytes (at least one)."""
        with self._lock:
            if self._fd < 0:
                raise StorageError("the part file is closed")
            got = os.preadv(self._fd, [into], offset)
        if not got:
            raise StorageError(f"part file {self._name} ended early")
        return got

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1


def _open_for_sending(path: Path, expected: int, start: int, count: int) -> BinaryIO:
    """The part file, checked against its recorded size, with read-ahead of the range begun."""
    try:
        handle = path.open("rb", buffering=0)
    except FileNotFoundError as exc:
        raise StorageError(f"part file {path.name} is missing") from exc
    try:
        size = os.fstat(handle.fileno()).st_size
        if size != expected:
            raise StorageError(f"part file {path.name} has {size} bytes, not {expected}")
        with contextlib.suppress(AttributeError, OSError):  # advice only
            os.posix_fadvise(handle.fileno(), start, count, os.POSIX_FADV_WILLNEED)
    except BaseException:
        handle.close()
        raise
    return handle


def _writev_all(fd: int, pieces: Sequence[bytes]) -> None:
    """Write every piece, in order, with as few ``writev`` calls as the kernel allows."""
    views = [memoryview(piece) for piece in pieces]
    while views:
        batch = views[:_IOV_MAX]
        written = os.writev(fd, batch)
        while written and views:  # drop what went out; a piece may be cut
            if written >= len(views[0]):
                written -= len(views.pop(0))
            else:
                views[0] = views[0][written:]
                written = 0


def _remove_path(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
