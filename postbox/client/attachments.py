"""Attachments: encrypt while uploading, verify while downloading (PROTOCOL.md §6).

**Upload** (:func:`upload`). The file is read in pieces, padded and encrypted as one
secretstream blob by the crypto core (:class:`~postbox.crypto.attachment_stream.
AttachmentEncryptor`, 64 KiB chunks), cut into parts of the server's ``part_bytes``, and
each part is sent with its BLAKE2b-256 checksum as soon as it is complete. Memory stays
bounded whatever the file size: at most one part being filled, one waiting and
:data:`PARALLEL_PARTS` being sent. The result, :class:`AttachmentRef`, holds what the
encrypted manifest (``{"blob","name","type","size","key"}``) and ``header.blobs``
(``{"id","size","hash"}``) need; the server's own length and hash, returned when the
upload completes, must equal the client's.

**Resuming.** An upload from a file (a :class:`~pathlib.Path`) keeps a *resume record* in
the client's state folder (``<state>/uploads/…``, mode 0600): the blob id, the file key,
the secretstream header, the file's identity (size, modification time, inode) and the
checksum of every part, written *before* the part is sent. Calling :func:`upload` again
for the same file (after a crash, a lost connection, an interrupted process) asks the
server which parts it has, encrypts the file again with the same key and header — which
reproduces the same blob byte for byte, because secretstream is deterministic once key
and header are fixed — checks every part the server has against the recorded checksum and
sends only the missing ones. Why keep the key rather than re-derive it: a derivation would
need a long-term secret of the account and a new domain string outside the protocol,
while the record protects nothing the disk does not already hold in clear (the file
itself). A file that changed since, or a part the record cannot vouch for, is never
encrypted again under the recorded key: the old upload is aborted and a fresh one (new
id, new key) starts, so the server never sees two ciphertexts under one keystream. Sources
that cannot be read twice (bytes, iterators) retry failed parts within the call but do not
resume across calls.

**Download** (:func:`download`). The blob streams through the crypto core's decryptor into
a temporary file in the destination folder; interrupted transfers continue with an HTTP
``Range`` request (``If-Range`` on the ETag). Length, chunk framing, padding and the blob
hash are all verified before the file is renamed into place under its basename (never
overwriting: ``name (1).ext``…); on any failure the temporary file is removed and nothing
is released.

Progress callbacks get ``(done, total)`` in blob bytes and run on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import hashlib
import io
import json
import os
import secrets
import threading
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import aiohttp
import nacl.bindings as sodium

from postbox.client.errors import (
    ClientError,
    NotFoundError,
    NotLoggedIn,
    ProtocolViolation,
    ServerFailure,
    ServerProblem,
    TransportError,
    UnauthorizedError,
    UsageError,
    VerificationFailed,
    problem_error,
)
from postbox.client.http import read_capped, segment
from postbox.client.session import REFRESH_MARGIN_MS, Session
from postbox.client.state import DIR_MODE, FILE_MODE
from postbox.crypto.attachment import (
    HEADER_BYTES,
    blob_length,
    check_file_name,
)
from postbox.crypto.attachment_stream import AttachmentDecryptor, AttachmentEncryptor
from postbox.crypto.encoding import ID_BYTES, KEY_BYTES, b64d, b64e, cj, parse_json
from postbox.crypto.envelope import MAX_TYPE_BYTES, Attachment
from postbox.crypto.errors import BlobHashMismatch, CryptoError
from postbox.crypto.padding import MAX_FILE
from postbox.crypto.primitives import H, equal, random_bytes

Progress = Callable[[int, int], None]
Source = Path | bytes | bytearray | memoryview | Iterable[bytes] | AsyncIterable[bytes]

#: plaintext read from a file per step
PIECE: Final = 1024 * 1024
#: parts in flight at once: while one is on the wire, others are checksummed, or being
#: written, made durable and recorded by the server
PARALLEL_PARTS: Final = 3
#: attempts per request before a transport failure is given up
ATTEMPTS: Final = 4
#: pause before the second, third… attempt (seconds)
BACKOFF_S: Final = (0.2, 1.0, 3.0)
#: blobs come in pieces of this size; the socket buffer may hold a few more
DOWNLOAD_PIECE: Final = 1024 * 1024
#: decrypted batches (of about DOWNLOAD_PIECE) waiting for the file writer
WRITES_IN_FLIGHT: Final = 4
#: the download's writer starts the disk write-back after this many bytes
WRITEBACK_BYTES: Final = 16 * 1024 * 1024
#: most buffers one ``writev`` call takes (Linux ``IOV_MAX``)
_IOV_MAX: Final = 1024
#: problems read from a non-2xx answer are at most this long
MAX_PROBLEM_BYTES: Final = 64 * 1024
RECORD_VERSION: Final = 1
#: no total timeout for a blob transfer; a stalled socket is still noticed
TRANSFER_TIMEOUT: Final = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=120)


# --- results ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class AttachmentRef:
    """An uploaded attachment: what its manifest entry and header entry state."""

    blob: str
    name: str
    type: str
    size: int  # the file's length (manifest `size`)
    key: bytes = field(repr=False)  # the file key (manifest `key`)
    blob_size: int  # header.blobs[].size
    hash: bytes  # header.blobs[].hash

    def manifest(self) -> dict[str, Any]:
        """The entry of ``content.attachments`` (encrypted with the message)."""
        return {
            "blob": self.blob,
            "name": self.name,
            "type": self.type,
            "size": self.size,
            "key": b64e(self.key),
        }

    def header_entry(self) -> dict[str, Any]:
        """The entry of ``header.blobs`` (what the server checks and the signature covers)."""
        return {"id": self.blob, "size": self.blob_size, "hash": b64e(self.hash)}


# --- raw requests -----------------------------------------------------------------------------
async def _access_token(session: Session) -> str:
    await session.server()
    tokens = session.state.tokens
    if tokens is None:
        raise NotLoggedIn("no session: log in first")
    if tokens.expires - session.clock() < REFRESH_MARGIN_MS:
        await session.refresh(tokens)
        tokens = session.state.tokens
        assert tokens is not None
    return tokens.access


async def _problem(resp: aiohttp.ClientResponse) -> ServerProblem:
    raw = await read_capped(resp, MAX_PROBLEM_BYTES)
    parsed: Any = None
    with contextlib.suppress(CryptoError):
        parsed = parse_json(raw[:MAX_PROBLEM_BYTES])
    return problem_error(resp.status, parsed, resp.headers.get("Retry-After"))


@asynccontextmanager
async def _request(
    session: Session,
    method: str,
    path: str,
    *,
    data: bytes | bytearray | memoryview | None = None,
    headers: Mapping[str, str] | None = None,
    ok: tuple[int, ...] = (200, 201),
) -> AsyncIterator[aiohttp.ClientResponse]:
    """One authenticated request with a raw body; the response while it streams.

    A 401 refreshes the tokens once; any other status outside ``ok`` raises the server's
    problem; a broken connection raises :class:`TransportError`.
    """
    # The transport's own session: one connection pool and user agent per client.
    http = session.transport._session()
    url = session.transport.base_url + path
    for attempt in (1, 2):
        token = await _access_token(session)
        sent = {"Authorization": f"Bearer {token}", **(headers or {})}
        try:
            async with http.request(
                method,
                url,
                data=data,
                headers=sent,
                allow_redirects=False,
                timeout=TRANSFER_TIMEOUT,
                read_bufsize=DOWNLOAD_PIECE,
            ) as resp:
                if resp.status == 401 and attempt == 1:
                    await session.refresh(session.state.tokens)
                    continue
                if resp.status not in ok:
                    raise await _problem(resp)
                yield resp
                return
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransportError(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
    raise UnauthorizedError("the session was not accepted after a refresh", status=401)


async def _json(
    session: Session,
    method: str,
    path: str,
    body: Any = None,
    ok: tuple[int, ...] = (200, 201),
) -> Any:
    data = None if body is None else cj(body)
    headers = {"Accept": "application/json, application/problem+json"}
    if data is not None:
        headers["Content-Type"] = "application/json"
    async with _request(session, method, path, data=data, headers=headers, ok=ok) as resp:
        raw = await read_capped(resp, MAX_PROBLEM_BYTES)
    try:
        return parse_json(raw) if raw else None
    except CryptoError as exc:
        raise ProtocolViolation(f"{method} {path}: answer is not JSON") from exc


def _retryable(exc: ClientError) -> bool:
    return isinstance(exc, TransportError | ServerFailure)


async def _with_retries(what: Callable[[], Any]) -> Any:
    for attempt in range(ATTEMPTS):
        try:
            return await what()
        except ClientError as exc:
            if not _retryable(exc) or attempt == ATTEMPTS - 1:
                raise
            await asyncio.sleep(BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)])
    raise AssertionError("unreachable")  # pragma: no cover


def _need_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ProtocolViolation(f"{what} is not a count")
    return int(value)


@dataclass(frozen=True)
class _Upload:
    """The server's view of an upload."""

    blob: str
    size: int
    part_bytes: int
    state: str
    received: frozenset[int]

    @classmethod
    def from_json(cls, body: Any, *, blob: str, size: int) -> _Upload:
        try:
            received = frozenset(_need_int(i, "received[]") for i in body["received"])
            upload = cls(
                blob=body["blob"],
                size=_need_int(body["size"], "size"),
                part_bytes=_need_int(body["part_bytes"], "part_bytes"),
                state=str(body.get("state", "uploading")),
                received=received,
            )
        except (KeyError, TypeError) as exc:
            raise ProtocolViolation(f"upload answer: {exc}") from exc
        if upload.blob != blob or upload.size != size or upload.part_bytes < 1:
            raise ProtocolViolation("the upload answer is not about this upload")
        return upload

    @property
    def parts(self) -> int:
        return max(1, -(-self.size // self.part_bytes))


# --- the resume record ------------------------------------------------------------------------
def _fingerprint(path: Path) -> dict[str, int]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "ino": st.st_ino, "dev": st.st_dev}


class _Record:
    """The resume record of one file's upload (see the module docstring), locked while in
    use so that two uploads of one file never share it."""

    def __init__(self, session: Session, path: Path) -> None:
        account = session.require_account()
        scope = H(f"{session.origin}\x00{account}".encode(), 10).hex()
        folder = session.store.root / "uploads" / scope
        self.path = folder / f"{H(os.fsencode(path), 16).hex()}.json"
        self._lock_fd: int | None = None
        self._saving: asyncio.Future[None] | None = None
        self.data: dict[str, Any] | None = None

    def lock(self) -> bool:
        """Take the record's lock; False if another upload of this file holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
        fd = os.open(self.path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return False
            raise
        self._lock_fd = fd
        return True

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def load(self) -> dict[str, Any] | None:
        try:
            value = json.loads(self.path.read_text("utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(value, dict) or value.get("v") != RECORD_VERSION:
            return None
        self.data = value
        return value

    def _write(self, data: bytes) -> None:
        """Atomically (a temporary file of its own, fsync, rename), mode 0600."""
        tmp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(6)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        try:
            _write_all(fd, [data])
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)

    async def save(self) -> None:
        """Write the record (serialised here, written on a worker thread). A write still
        running when its caller is cancelled finishes; :meth:`settle` waits for it."""
        assert self.data is not None
        await self.settle()
        data = json.dumps(self.data, sort_keys=True).encode("utf-8")
        self._saving = asyncio.ensure_future(asyncio.to_thread(self._write, data))
        await self._saving

    async def settle(self) -> None:
        saving, self._saving = self._saving, None
        if saving is not None:
            await asyncio.wait([saving])
            if not saving.cancelled():
                saving.exception()

    async def drop(self) -> None:
        await self.settle()
        self.data = None
        await asyncio.to_thread(self.path.unlink, missing_ok=True)
        await asyncio.to_thread(self.path.with_suffix(".lock").unlink, missing_ok=True)


# --- the plaintext source ---------------------------------------------------------------------
def _read_into(handle: io.FileIO, buffer: bytearray) -> memoryview:
    view = memoryview(buffer)
    return view[: handle.readinto(view)]


async def _file_pieces(path: Path) -> AsyncIterator[memoryview]:
    """The file in pieces of :data:`PIECE` bytes: views of two buffers used in turn, so
    a piece is valid until the consumer asks for the one after next (the encryptor
    copies what it keeps), and no fresh memory is touched per piece."""
    handle = await asyncio.to_thread(io.FileIO, path, "r")
    buffers = (bytearray(PIECE), bytearray(PIECE))
    turn = 0
    reading: asyncio.Future[memoryview] | None = None
    try:
        # the next piece is read on a worker thread while this one is encrypted
        reading = asyncio.ensure_future(asyncio.to_thread(_read_into, handle, buffers[turn]))
        while True:
            piece = await reading
            if not piece:
                return
            turn ^= 1
            reading = asyncio.ensure_future(asyncio.to_thread(_read_into, handle, buffers[turn]))
            yield piece
    finally:
        if reading is not None:
            await asyncio.wait([reading])
            if not reading.cancelled():
                reading.exception()
        await asyncio.to_thread(handle.close)


async def _sync_pieces(source: Iterable[bytes]) -> AsyncIterator[bytes]:
    it: Iterator[bytes] = iter(source)
    while True:
        # a sync iterator may block (a pipe, a slow generator): never on the event loop
        piece = await asyncio.to_thread(next, it, None)
        if piece is None:
            return
        yield bytes(piece)


async def _buffer_pieces(data: bytes | bytearray | memoryview) -> AsyncIterator[bytes]:
    view = memoryview(data).cast("B")
    for start in range(0, len(view), PIECE):
        yield bytes(view[start : start + PIECE])


async def _async_pieces(source: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    async for piece in source:
        yield bytes(piece)


def _pieces(source: Source) -> AsyncIterator[bytes] | AsyncIterator[memoryview]:
    """The plaintext of ``source`` in pieces (a piece is valid until the next but one)."""
    if isinstance(source, Path):
        return _file_pieces(source)
    if isinstance(source, bytes | bytearray | memoryview):
        return _buffer_pieces(source)
    if isinstance(source, AsyncIterable):
        return _async_pieces(source)
    return _sync_pieces(source)


# --- upload -----------------------------------------------------------------------------------
class _SourceChanged(Exception):
    """The file no longer encrypts to what the server has: start afresh."""


def _check_type(media_type: str) -> None:
    raw = media_type.encode("utf-8", "surrogatepass")
    if not media_type.isascii() or len(raw) > MAX_TYPE_BYTES:
        raise UsageError(f"the media type must be ASCII, at most {MAX_TYPE_BYTES} bytes")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in media_type):
        raise UsageError("the media type must not contain control characters")


@dataclass
class _Plan:
    """One upload attempt: which blob, under which key and header, and what to skip."""

    blob: str
    key: bytes = field(repr=False)
    header: bytes
    upload: _Upload
    #: checksums the record vouches for (index → checksum)
    known: dict[int, bytes]


async def _put_part(
    session: Session, blob: str, index: int, data: memoryview, checksum: bytes
) -> None:
    path = f"/api/v1/uploads/{segment(blob)}/parts/{index}"
    headers = {"Content-Type": "application/octet-stream", "X-Checksum": b64e(checksum)}

    async def once() -> None:
        async with _request(session, "PUT", path, data=data, headers=headers) as resp:
            await resp.read()

    await _with_retries(once)


async def _send_parts(
    session: Session,
    plan: _Plan,
    pieces: AsyncIterator[bytes] | AsyncIterator[memoryview],
    record: _Record | None,
    progress: Progress | None,
) -> AttachmentEncryptor:
    """Encrypt ``pieces`` into the planned blob and send the parts the server lacks.

    Returns the finished encryptor (its ``result`` holds hash and lengths).
    """
    upload = plan.upload
    # the recorded key and header: a resumed upload reproduces the same blob
    encryptor = AttachmentEncryptor(plan.key, header=plan.header)
    queue: asyncio.Queue[tuple[int, list[bytes]] | None] = asyncio.Queue(maxsize=1)
    announcing = asyncio.Lock()
    # Part-sized buffers, reused: a fresh 8 MiB buffer per part would be new memory each
    # time (page faults for every byte sent). As many exist as parts are being sent.
    buffers: list[bytearray] = []
    done = 0

    def advance(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(done, upload.size)

    async def announce(index: int, checksum: bytes) -> None:
        """Check a part against the record, or write its checksum there before it is sent:
        then a resumed upload can tell whether the file still gives the same part."""
        async with announcing:
            known = plan.known.get(index)
            if known is not None:
                if not equal(known, checksum):
                    raise _SourceChanged(f"part {index} differs from what was announced")
                return
            plan.known[index] = checksum
            if record is not None and record.data is not None:
                record.data["parts"][str(index)] = b64e(checksum)
                await record.save()

    async def sender() -> None:
        # Each sender joins and checksums its own part on a worker thread, so that work
        # runs beside the encryption and the event loop only moves bytes.
        while True:
            item = await queue.get()
            if item is None:
                return
            index, pieces = item
            buffer = buffers.pop() if buffers else bytearray(upload.part_bytes)
            try:
                size, checksum = await asyncio.to_thread(_assemble, pieces, buffer)
                del pieces
                await announce(index, checksum)
                with memoryview(buffer) as view:
                    await _put_part(session, plan.blob, index, view[:size], checksum)
            finally:
                # The transport has sent or copied the bytes once the request is over.
                buffers.append(buffer)
            advance(size)

    async def produce() -> None:
        index = 0
        buf: list[bytes] = []
        held = 0  # bytes in buf

        async def emit(part: list[bytes], size: int) -> None:
            nonlocal index
            if index in upload.received:
                checksum = await asyncio.to_thread(_checksum_of, part)
                if not equal(plan.known.get(index, b""), checksum):
                    raise _SourceChanged(f"part {index} differs from what the server has")
                advance(size)
            else:
                await queue.put((index, part))
            index += 1

        async def take(blob_pieces: list[bytes]) -> None:
            # Pieces are collected per part and joined once, by the sender on a worker
            # thread (one copy of each byte); only a piece that straddles a part boundary
            # is cut.
            nonlocal held, buf
            for piece in blob_pieces:
                while piece:
                    room = upload.part_bytes - held
                    if len(piece) < room:
                        buf.append(piece)
                        held += len(piece)
                        break
                    buf.append(piece[:room])
                    piece = piece[room:]
                    part, buf, held = buf, [], 0
                    await emit(part, upload.part_bytes)

        async for piece in pieces:
            if len(piece) >= 256 * 1024:
                out = await asyncio.to_thread(encryptor.update_pieces, piece)
            else:
                out = encryptor.update_pieces(piece)
            await take(out)
        tail = encryptor.finish_pieces()
        while True:  # the padding, a few chunks at a time (it can be tens of MiB)
            batch = await asyncio.to_thread(_next_batch, tail)
            if not batch:
                break
            await take(batch)
        if buf:
            await emit(buf, held)
        if index != upload.parts:
            raise UsageError(
                f"the source gave {encryptor.size} blob bytes, not the announced {upload.size}"
            )

    senders = [asyncio.create_task(sender()) for _ in range(PARALLEL_PARTS)]
    producer = asyncio.create_task(produce())
    try:
        # Whichever fails first ends the upload; the others are cancelled.
        waiting: set[asyncio.Task[None]] = {producer, *senders}
        while producer in waiting:
            finished, waiting = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            for task in finished:
                task.result()
        for _ in senders:
            await queue.put(None)
        for task in senders:
            await task
    finally:
        encryptor.close()
        for task in (producer, *senders):
            task.cancel()
        await asyncio.gather(producer, *senders, return_exceptions=True)
    return encryptor


def _checksum_of(pieces: list[bytes]) -> bytes:
    """BLAKE2b-256 of a part given as pieces (the ``X-Checksum``)."""
    digest = hashlib.blake2b(digest_size=32)
    for piece in pieces:
        digest.update(piece)
    return digest.digest()


def _assemble(pieces: list[bytes], into: bytearray) -> tuple[int, bytes]:
    """Copy a part's pieces to the start of ``into``; its length and checksum (on a
    worker thread)."""
    digest = hashlib.blake2b(digest_size=32)
    at = 0
    with memoryview(into) as view:
        for piece in pieces:
            end = at + len(piece)
            view[at:end] = piece
            digest.update(view[at:end])  # the copy just made is still in the cache
            at = end
    return at, digest.digest()


def _next_batch(tail: Iterator[bytes], limit: int = PIECE) -> list[bytes]:
    out: list[bytes] = []
    size = 0
    for piece in tail:
        out.append(piece)
        size += len(piece)
        if size >= limit:
            break
    return out


async def _create(session: Session, blob: str, size: int) -> _Upload:
    async def once() -> Any:
        return await _json(session, "POST", "/api/v1/uploads", {"blob": blob, "size": size})

    body = await _with_retries(once)
    return _Upload.from_json(body, blob=blob, size=size)


async def _state(session: Session, blob: str, size: int) -> _Upload | None:
    try:
        body = await _with_retries(
            lambda: _json(session, "GET", f"/api/v1/uploads/{segment(blob)}")
        )
    except NotFoundError:
        return None
    return _Upload.from_json(body, blob=blob, size=size)


async def _abort(session: Session, blob: str) -> None:
    with contextlib.suppress(ClientError):
        await _json(session, "DELETE", f"/api/v1/uploads/{segment(blob)}", ok=(204,))


async def _plan_fresh(
    session: Session, blob_size: int, record: _Record | None, path: Path | None
) -> _Plan:
    blob = b64e(random_bytes(ID_BYTES))
    key = bytes(sodium.crypto_secretstream_xchacha20poly1305_keygen())
    header = random_bytes(HEADER_BYTES)
    if record is not None and path is not None:
        record.data = {
            "v": RECORD_VERSION,
            "blob": blob,
            "size": blob_size,
            "key": b64e(key),
            "header": b64e(header),
            "file": _fingerprint(path),
            "parts": {},
        }
        await record.save()
    upload = await _create(session, blob, blob_size)
    return _Plan(blob, key, header, upload, {})


async def _plan_resume(
    session: Session, blob_size: int, record: _Record, path: Path
) -> _Plan | None:
    """The recorded upload of this file, if it can still be continued."""
    data = await asyncio.to_thread(record.load)
    if data is None:
        return None
    try:
        blob, key = str(data["blob"]), b64d(data["key"], KEY_BYTES)
        header = b64d(data["header"], HEADER_BYTES)
        known = {int(i): b64d(c, 32) for i, c in dict(data["parts"]).items()}
        same_file = data["file"] == _fingerprint(path) and data["size"] == blob_size
    except (KeyError, TypeError, ValueError, CryptoError):
        same_file = False
    if not same_file:
        if "blob" in data:
            await _abort(session, str(data["blob"]))
        return None
    upload = await _state(session, blob, blob_size)
    if upload is None:  # expired and collected: a fresh upload, with a fresh key
        return None
    if not upload.received <= set(known):  # parts the record cannot vouch for
        await _abort(session, blob)
        return None
    return _Plan(blob, key, header, upload, known)


async def _complete(session: Session, plan: _Plan) -> tuple[int, bytes]:
    path = f"/api/v1/uploads/{segment(plan.blob)}/complete"
    body = await _with_retries(lambda: _json(session, "POST", path))
    try:
        size = _need_int(body["size"], "size")
        digest = b64d(body["hash"], 32)
    except (KeyError, TypeError, CryptoError) as exc:
        raise ProtocolViolation(f"complete answer: {exc}") from exc
    return size, digest


async def upload(
    session: Session,
    source: Source,
    *,
    name: str,
    type: str = "application/octet-stream",
    size: int | None = None,
    progress: Progress | None = None,
) -> AttachmentRef:
    """Encrypt ``source`` and upload it as one blob; see the module docstring.

    ``source`` is a file path (resumable across calls), bytes, or an iterable or async
    iterable of byte pieces (then ``size``, the file's length, is required). ``name`` and
    ``type`` go only into the returned :class:`AttachmentRef` (the encrypted manifest);
    the server never sees them.
    """
    try:
        check_file_name(name)
    except CryptoError as exc:
        raise UsageError(f"file name: {exc}") from exc
    _check_type(type)
    path: Path | None = None
    if isinstance(source, Path):
        path = source.resolve()
        size = (await asyncio.to_thread(path.stat)).st_size
    elif isinstance(source, bytes | bytearray | memoryview):
        size = memoryview(source).nbytes
    elif size is None:
        raise UsageError("give the size of a streamed source")
    if size < 0 or size > MAX_FILE:
        raise UsageError("attachments are at most 2 GiB")
    blob_size = blob_length(size)
    info = await session.server()
    if blob_size > info.blob_bytes:
        raise UsageError(
            f"the file is too large for this server (blobs up to {info.blob_bytes} bytes)"
        )
    record = None if path is None else _Record(session, path)
    if record is not None and not await asyncio.to_thread(record.lock):
        record = None  # another upload of this file is running: this one starts its own
    plan: _Plan | None = None
    try:
        encryptor = None
        for _ in range(2):
            plan = None
            if record is not None and path is not None:
                plan = await _plan_resume(session, blob_size, record, path)
            if plan is None:
                plan = await _plan_fresh(session, blob_size, record, path)
            pieces = _pieces(path if path is not None else source)
            try:
                encryptor = await _send_parts(session, plan, pieces, record, progress)
                break
            except _SourceChanged:
                await _abort(session, plan.blob)
                plan = None
                if record is None:
                    raise UsageError("the source changed while it was read") from None
                await record.drop()
        if encryptor is None or plan is None:
            raise UsageError("the file keeps changing while it is uploaded")
        result = encryptor.result
        server_size, server_hash = await _complete(session, plan)
        if server_size != result.size or not equal(server_hash, result.hash):
            raise ProtocolViolation("the server's blob differs from what was uploaded")
        if record is not None:
            await record.drop()
        return AttachmentRef(
            blob=plan.blob,
            name=name,
            type=type,
            size=result.plain_size,
            key=plan.key,
            blob_size=result.size,
            hash=result.hash,
        )
    except Exception:
        # Only a file's upload can be resumed; any other upload is abandoned for good.
        if record is None and plan is not None:
            await _abort(session, plan.blob)
        raise
    finally:
        if record is not None:
            await record.settle()
            record.unlock()


# --- download ---------------------------------------------------------------------------------
def _unique_target(folder: Path, name: str) -> Iterator[Path]:
    stem, dot, ext = name.rpartition(".")
    if not stem or not dot:  # no extension, or a leading dot only
        stem, ext = name, ""
    yield folder / name
    for n in range(1, 10_000):
        yield folder / (f"{stem} ({n}).{ext}" if ext else f"{stem} ({n})")
    raise UsageError(f"too many files named like {name!r} in {folder}")


def _place(tmp: Path, folder: Path, name: str) -> Path:
    """Move the verified temporary file to a name that does not exist yet (hard link, so
    an existing file is never replaced), then remove the temporary name."""
    for target in _unique_target(folder, name):
        try:
            os.link(tmp, target)
        except FileExistsError:
            continue
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV):
                raise
            # no hard links here: claim the name exclusively, then move onto the claim
            try:
                os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
            except FileExistsError:
                continue
            os.replace(tmp, target)
            return target
        tmp.unlink()
        return target
    raise AssertionError("unreachable")  # pragma: no cover


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, pieces: list[bytes]) -> None:
    for piece in pieces:
        view = memoryview(piece)
        while view:
            view = view[os.write(fd, view) :]


class _Spool:
    """A download's temporary file and the decryptor that feeds it.

    :meth:`feed` runs on a worker thread: it decrypts what arrived and hands the plaintext
    to a writer thread of its own, so decryption, the blob hash (the decryptor's worker)
    and the file writes run side by side; at most :data:`WRITES_IN_FLIGHT` batches wait
    for the writer. The writer starts the disk write-back of what it wrote every
    :data:`WRITEBACK_BYTES`, so the final ``fsync`` finds little left to do (the data is
    durable only after that ``fsync``, as before). One lock orders feeding, finishing and
    abandoning, so a download cancelled while a piece is still being decrypted on its
    thread cleans up only after that piece, and every write it queued, is done (a
    descriptor is never closed under a running write).
    """

    def __init__(self, path: Path, decryptor: AttachmentDecryptor) -> None:
        self.path = path
        self._decryptor = decryptor
        self._lock = threading.Lock()
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="postbox-download-write")
        self._writes: deque[Future[None]] = deque()
        self._written = 0
        self._flushed = 0

    def _write(self, pieces: list[bytes]) -> None:
        # Only this thread writes; the lock holder waits for it before closing the file.
        _writev_all(self._fd, pieces)
        self._written += sum(len(piece) for piece in pieces)
        if self._written - self._flushed >= WRITEBACK_BYTES:
            # Linux starts write-back of dirty pages on this advice (then drops clean
            # pages from the cache); elsewhere it is a no-op. Not a durability step.
            with contextlib.suppress(AttributeError, OSError):
                os.posix_fadvise(self._fd, self._flushed, 0, os.POSIX_FADV_DONTNEED)
            self._flushed = self._written

    def _wait_writes(self, keep: int) -> None:
        while len(self._writes) > keep:
            self._writes.popleft().result()

    def feed(self, chunks: list[bytes]) -> None:
        with self._lock:
            if self._fd < 0:
                raise RuntimeError("the download was abandoned")
            # One contiguous piece: chunks then straddle the decryptor's 65,553-byte
            # frames once per call instead of at almost every socket read.
            data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            plain = self._decryptor.update_pieces(data)
            del data
            self._wait_writes(WRITES_IN_FLIGHT - 1)
            if plain:
                self._writes.append(self._writer.submit(self._write, plain))

    def finish(self) -> None:
        """Verify the whole blob (raises a CryptoError), then make the file durable."""
        with self._lock:
            self._wait_writes(0)
            self._decryptor.finish()
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1
            self._writer.shutdown(wait=False)

    def abandon(self) -> None:
        with self._lock:
            self._decryptor.close()
            for write in self._writes:
                write.cancel()
            self._writer.shutdown(wait=True)  # a running write ends before the close
            self._writes.clear()
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
            self.path.unlink(missing_ok=True)


def _writev_all(fd: int, pieces: list[bytes]) -> None:
    """Write every piece in order, with as few ``writev`` calls as the kernel allows."""
    views = [memoryview(piece) for piece in pieces]
    while views:
        written = os.writev(fd, views[:_IOV_MAX])
        while written and views:  # drop what went out; a piece may be cut
            if written >= len(views[0]):
                written -= len(views.pop(0))
            else:
                views[0] = views[0][written:]
                written = 0


async def download(
    session: Session,
    blob: str,
    key: bytes,
    size: int,
    hash: bytes,
    dest: Path,
    progress: Progress | None = None,
    *,
    name: str | None = None,
    file_size: int | None = None,
) -> Path:
    """Download, decrypt and verify one attachment; returns the path it was saved to.

    ``size`` and ``hash`` are the header's ``blobs[]`` entry, ``key`` (and ``file_size``,
    ``name``) the manifest's. ``dest`` is a folder (the file is saved there under ``name``)
    or the path of a file to create. An existing file is never replaced: a free name
    ``name (1).ext``… is chosen instead. Nothing is left behind on failure.
    """
    dest = Path(dest)
    if dest.is_dir():
        if name is None:
            raise UsageError("saving into a folder needs the attachment's name")
        folder, final = dest, name
    else:
        folder, final = dest.parent, dest.name
    try:
        check_file_name(final)
    except CryptoError as exc:
        raise UsageError(f"file name: {exc}") from exc
    try:
        decryptor = AttachmentDecryptor(key, size, hash, file_size=file_size)
    except CryptoError as exc:
        raise VerificationFailed("attachment", exc) from exc
    etag = f'"{b64e(hash)}"'
    tmp = folder / f".{H(os.fsencode(final), 6).hex()}.{secrets.token_hex(6)}.part"
    try:
        spool = await asyncio.to_thread(_Spool, tmp, decryptor)
    except BaseException:
        decryptor.close()
        raise
    placed: Path | None = None
    try:
        await _fetch(session, blob, size, etag, spool, progress)
        await asyncio.to_thread(spool.finish)
        placed = await asyncio.to_thread(_place, tmp, folder, final)
        await asyncio.to_thread(_fsync_dir, folder)
        return placed
    except CryptoError as exc:
        raise VerificationFailed("attachment", exc) from exc
    finally:
        if placed is None:
            await asyncio.to_thread(spool.abandon)


async def _chunks_then_end(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The chunks, then one empty chunk marking the end (to flush what is pending)."""
    async for chunk in chunks:
        if chunk:
            yield chunk
    yield b""


async def _fetch(
    session: Session, blob: str, size: int, etag: str, spool: _Spool, progress: Progress | None
) -> None:
    """Stream the blob into ``spool``, continuing a cut connection with a Range request.

    Pieces of about :data:`DOWNLOAD_PIECE` go to a worker thread (the socket hands out much
    smaller ones), one at a time, while the next one arrives.
    """
    path = f"/api/v1/blobs/{segment(blob)}"
    received = 0
    attempt = 0
    feeding: asyncio.Future[None] | None = None
    try:
        while received < size:
            headers = {"Accept": "application/octet-stream, application/problem+json"}
            if received:
                headers["Range"] = f"bytes={received}-"
                headers["If-Range"] = etag
            try:
                async with _request(session, "GET", path, headers=headers, ok=(200, 206)) as resp:
                    continued = resp.headers.get("Content-Range", "")
                    if received and (
                        resp.status != 206 or not continued.startswith(f"bytes {received}-")
                    ):
                        raise ProtocolViolation("the server did not continue the download")
                    if resp.headers.get("ETag") not in (None, etag):
                        # not the blob the header signed: no need to read it
                        raise BlobHashMismatch("the server's blob has another hash (ETag)")
                    pending: list[bytes] = []
                    pending_bytes = 0
                    async for chunk in _chunks_then_end(resp.content.iter_any()):
                        if chunk:
                            pending.append(chunk)
                            pending_bytes += len(chunk)
                            if pending_bytes < DOWNLOAD_PIECE:
                                continue
                        if not pending:
                            break
                        piece, got = pending, pending_bytes
                        pending, pending_bytes = [], 0
                        if received + got > size:  # one byte too many: the decryptor refuses it
                            piece = [b"".join(piece)[: size - received + 1]]
                            got = len(piece[0])
                        if feeding is not None:  # in order: one piece at a time
                            await feeding
                        feeding = asyncio.ensure_future(asyncio.to_thread(spool.feed, piece))
                        received += got
                        if progress is not None:
                            progress(min(received, size), size)
            except (TransportError, ServerFailure):
                if feeding is not None:  # a piece that does not decrypt beats a cut connection
                    await feeding
                    feeding = None
                attempt += 1
                if attempt >= ATTEMPTS:
                    raise
                await asyncio.sleep(BACKOFF_S[min(attempt - 1, len(BACKOFF_S) - 1)])
        if feeding is not None:
            await feeding
            feeding = None
    finally:
        if feeding is not None:
            await asyncio.wait([feeding])
            if not feeding.cancelled():
                feeding.exception()


async def save(
    session: Session, attachment: Attachment, dest: Path, progress: Progress | None = None
) -> Path:
    """:func:`download` of an attachment of an opened message, into folder ``dest``."""
    return await download(
        session,
        attachment.blob,
        attachment.key,
        attachment.blob_size,
        attachment.blob_hash,
        dest,
        progress,
        name=attachment.name,
        file_size=attachment.size,
    )


class Attachments:
    """``client.attachments``: :func:`upload`, :func:`download` and :func:`save` on the
    client's session."""

    def __init__(self, session: Session) -> None:
        self._session = session

    async def upload(
        self,
        source: Source,
        *,
        name: str,
        type: str = "application/octet-stream",
        size: int | None = None,
        progress: Progress | None = None,
    ) -> AttachmentRef:
        return await upload(
            self._session, source, name=name, type=type, size=size, progress=progress
        )

    async def download(
        self,
        blob: str,
        key: bytes,
        size: int,
        hash: bytes,
        dest: Path,
        progress: Progress | None = None,
        *,
        name: str | None = None,
        file_size: int | None = None,
    ) -> Path:
        return await download(
            self._session, blob, key, size, hash, dest, progress, name=name, file_size=file_size
        )

    async def save(
        self, attachment: Attachment, dest: Path, progress: Progress | None = None
    ) -> Path:
        return await save(self._session, attachment, dest, progress)


__all__ = ["AttachmentRef", "Attachments", "Progress", "download", "save", "upload"]
