"""Attachments as opaque blobs (PROTOCOL.md §6): chunked resumable uploads, reads, quotas.

The server never sees a file key: a blob is ciphertext to it, checked only by length and
by its hash ``H(key="postbox/v1/blob", blob)``, which the server computes itself when an
upload completes and which the message header must repeat (the send path compares).

An upload is a blob row in state ``uploading`` whose id the client chose. Its parts have
a fixed size chosen by the server at creation (``part_bytes``, at most
``settings.max_part_bytes``): part ``n`` covers ``[n·part_bytes, …)`` and only the last is
shorter. Each part arrives with the BLAKE2b-256 of its bytes; it streams to a temporary
file while its checksum is computed and becomes visible only when length and checksum
match. Sending a part again with the same bytes is harmless (200); other bytes for a part
the server has are refused (409): parts never change, so a resumed upload can trust what
``GET /uploads/{blob}`` lists. Completing needs every part. The blob hash comes from the
stored parts, hashed in index order on worker threads while the upload goes on
(:class:`RunningHashes`); completing finishes what is left.

Limits are checked before any byte is stored: the announced size against
``max_blob_bytes`` and the account's quota (announced sizes of all its blobs, complete or
not, against ``quota_bytes``), and each part's length against its slot before and while
its body is read.

Expiry: an upload expires ``upload_expiry_seconds`` after its last progress (creation or
a new part), a complete blob that no message references the same time after completion;
the send path sets ``expires`` to NULL when it links a blob, and retention deletes the
rows of blobs whose messages go (:func:`delete_blob_rows`). The garbage collector
(:mod:`postbox.mailbox.blobs.gc`) deletes expired rows and any file without a row.

Who sees a blob: its owner (the uploading account), and any account acting for a mailbox
that holds a message referencing it (a ``mailbox_entries`` row of a message linked in
``message_blobs``). Everyone else gets the same 404 as for a blob that does not exist.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Collection,
    Coroutine,
    Sequence,
)
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from postbox.crypto import shapes
from postbox.crypto.attachment import MAX_BLOB, BlobHasher, padded_length_for_blob
from postbox.crypto.encoding import ID_BYTES, b64d, b64e
from postbox.crypto.errors import CryptoError
from postbox.crypto.primitives import equal
from postbox.mailbox.access import Principal
from postbox.mailbox.blobs import store
from postbox.mailbox.blobs.storage import (
    CHECKSUM_BYTES,
    BlobStore,
    PartRef,
    PartSink,
    StorageError,
)
from postbox.mailbox.clock import Clock
from postbox.mailbox.db.engine import Database
from postbox.mailbox.errors import BadRequest, Conflict, NotFound, PostboxError, TooLarge
from postbox.mailbox.http import check_shape
from postbox.mailbox.mailboxes.store import acting_for

log = logging.getLogger("postbox.blobs")
T = TypeVar("T")

#: most parts of one upload (the server's part size makes a blob's part count)
MAX_PARTS: Final = 10_000
#: received part bytes are written to disk in pieces of about this size
WRITE_BUFFER: Final = 2 * 1024 * 1024
#: unfinished uploads whose blob hash this process keeps up to date (a few hundred bytes each)
MAX_RUNNING: Final = 1024


# --- errors ------------------------------------------------------------------------------------
class RangeNotSatisfiable(PostboxError):
    status = 416
    title = "Range not satisfiable"
    default_code = "range-not-satisfiable"


def _upload_not_found() -> NotFound:
    return NotFound("no such upload", code="upload-not-found")


def _blob_not_found() -> NotFound:
    return NotFound("no such blob", code="blob-not-found")


# --- commands and views ------------------------------------------------------------------------
@dataclass(frozen=True)
class NewUpload:
    """``POST /api/v1/uploads`` ``{"blob": id, "size": n}``."""

    blob: str
    size: int

    @classmethod
    def from_json(cls, body: Any) -> NewUpload:
        check_shape(shapes.obj({"blob": shapes.ID, "size": shapes.COUNT}), body, "body")
        return cls(body["blob"], body["size"])


@dataclass(frozen=True)
class UploadState:
    blob: str
    size: int
    part_bytes: int
    state: str  # uploading | complete
    received: list[int]
    expires: int | None

    def to_json(self) -> dict[str, Any]:
        return {
            "blob": self.blob,
            "size": self.size,
            "part_bytes": self.part_bytes,
            "state": self.state,
            "received": self.received,
            "expires": self.expires,
        }

    def created_json(self) -> dict[str, Any]:
        """The answer of ``POST /api/v1/uploads``."""
        return {
            "blob": self.blob,
            "size": self.size,
            "part_bytes": self.part_bytes,
            "expires": self.expires,
            "received": self.received,
        }


@dataclass(frozen=True)
class StoredPart:
    blob: str
    part: int
    size: int

    def to_json(self) -> dict[str, Any]:
        return {"blob": self.blob, "part": self.part, "size": self.size}


@dataclass(frozen=True)
class Completed:
    blob: str
    size: int
    hash: bytes

    def to_json(self) -> dict[str, Any]:
        return {"blob": self.blob, "size": self.size, "hash": b64e(self.hash)}


@dataclass(frozen=True)
class Storage:
    used: int
    quota: int
    blob_bytes: int
    part_bytes: int

    def to_json(self) -> dict[str, Any]:
        return {
            "used": self.used,
            "quota": self.quota,
            "blob_bytes": self.blob_bytes,
            "part_bytes": self.part_bytes,
        }


@dataclass(frozen=True)
class Readable:
    """A complete blob the caller may read: what a download needs."""

    blob: str
    size: int
    hash: bytes
    parts: tuple[PartRef, ...]

    @property
    def etag(self) -> str:
        return f'"{b64e(self.hash)}"'


@dataclass(frozen=True)
class Limits:
    max_blob_bytes: int
    max_part_bytes: int
    quota_bytes: int
    expiry_ms: int


def part_size(size: int, part_bytes: int, index: int) -> int:
    """Length of part ``index`` of a ``size``-byte blob cut into ``part_bytes`` pieces."""
    return min(part_bytes, size - index * part_bytes)


def part_count(size: int, part_bytes: int) -> int:
    return max(1, -(-size // part_bytes))


def parse_blob_id(text: str) -> str | None:
    """The id if ``text`` is one (strict b64 of 16 bytes), else None (never an error: an
    id that cannot exist is simply not found)."""
    try:
        b64d(text, ID_BYTES)
    except CryptoError:
        return None
    return text


def parse_checksum(header: str | None) -> bytes:
    """The ``X-Checksum`` header: b64 of the part's BLAKE2b-256."""
    if header is None:
        raise BadRequest("send X-Checksum: b64(BLAKE2b-256 of the part)", code="invalid-checksum")
    try:
        return b64d(header.strip(), CHECKSUM_BYTES)
    except CryptoError as exc:
        raise BadRequest(
            "X-Checksum must be the b64 of 32 bytes (BLAKE2b-256 of the part)",
            code="invalid-checksum",
        ) from exc


# --- blob hashes computed while parts arrive -------------------------------------------------
@dataclass
class _Running:
    hasher: BlobHasher = field(default_factory=BlobHasher)
    next_index: int = 0  # parts [0, next_index) are hashed
    ready: dict[int, PartRef] = field(default_factory=dict)  # recorded, not yet hashed
    task: asyncio.Task[None] | None = None
    failed: bool = False


class RunningHashes:
    """The blob hash of each unfinished upload of this process, advanced as its parts are
    recorded, so that completing an upload need not read the whole blob again.

    Parts arrive in any order and in parallel; the hash takes them in index order from the
    stored (immutable) part files, on worker threads, while the upload goes on. Completing
    finishes from wherever the hash got to — parts recorded by another process, or before a
    restart, are read then. This is only a shortcut: forgetting a state (at most
    :data:`MAX_RUNNING` uploads are tracked) costs a read, never correctness.
    """

    def __init__(self, blob_store: BlobStore) -> None:
        self._store = blob_store
        self._runs: OrderedDict[str, _Running] = OrderedDict()

    def recorded(self, blob_id: str, part: PartRef) -> None:
        """A new part of ``blob_id`` was recorded (its row committed)."""
        run = self._runs.get(blob_id)
        if run is None:
            run = self._runs[blob_id] = _Running()
            while len(self._runs) > MAX_RUNNING:
                self._drop(next(iter(self._runs)))
        self._runs.move_to_end(blob_id)
        run.ready[part.index] = part
        if not run.failed and (run.task is None or run.task.done()):
            run.task = asyncio.ensure_future(self._advance(blob_id, run))

    async def _advance(self, blob_id: str, run: _Running) -> None:
        try:
            while run.next_index in run.ready:
                part = run.ready.pop(run.next_index)
                await self._store.feed(blob_id, [part], run.hasher.update)
                run.next_index += 1
        except (StorageError, OSError, ValueError):
            run.failed = True  # e.g. aborted meanwhile: completing reads from the start

    def _drop(self, blob_id: str) -> None:
        run = self._runs.pop(blob_id, None)
        if run is not None and run.task is not None:
            run.task.cancel()

    def forget(self, blob_id: str) -> None:
        self._drop(blob_id)

    async def finish(self, blob_id: str, parts: Sequence[PartRef]) -> tuple[int, bytes]:
        """Length and hash of the blob made of ``parts`` (all of them, in index order)."""
        run = self._runs.pop(blob_id, None)
        if run is not None and run.task is not None:
            await asyncio.wait([run.task])
        if run is None or run.failed or (run.task is not None and run.task.cancelled()):
            run = _Running()
        rest = [p for p in parts if p.index >= run.next_index]
        await self._store.feed(blob_id, rest, run.hasher.update)
        return run.hasher.size, run.hasher.digest()

    def close(self) -> None:
        for blob_id in list(self._runs):
            self._drop(blob_id)


# --- the service --------------------------------------------------------------------------------
class BlobService:
    """``app[BLOBS]``: uploads, blob reads and storage figures; one transaction per call."""

    def __init__(self, db: Database, clock: Clock, blob_store: BlobStore, limits: Limits) -> None:
        self._db = db
        self._clock = clock
        self._store = blob_store
        self._limits = limits
        self._running = RunningHashes(blob_store)

    async def run(self) -> None:
        """The background job that owns the running hashes: it only waits, and stops their
        work when the server shuts down."""
        try:
            await asyncio.Event().wait()
        finally:
            self._running.close()

    @property
    def blob_store(self) -> BlobStore:
        return self._store

    # -- helpers --
    def _state(self, row: store.BlobRow, received: Sequence[int]) -> UploadState:
        return UploadState(
            row.id, row.size, row.part_bytes, row.state, sorted(received), row.expires
        )

    async def _own(self, conn: AsyncConnection, who: Principal, blob_id: str) -> store.BlobRow:
        wanted = parse_blob_id(blob_id)
        row = None if wanted is None else await store.get_blob(conn, wanted)
        if row is None or row.owner_id != who.account_id:
            raise _upload_not_found()
        return row

    # -- uploads --
    async def create(self, who: Principal, cmd: NewUpload) -> tuple[UploadState, bool]:
        """Open an upload; ``(state, True)`` when new, ``(state, False)`` for a repeated
        request for the caller's own unfinished upload of the same size (its answer was
        lost): creating is safe to retry."""
        limits = self._limits
        if cmd.size > limits.max_blob_bytes:
            raise TooLarge(
                f"blobs are at most {limits.max_blob_bytes} bytes on this server",
                code="blob-too-large",
            )
        try:
            padded_length_for_blob(cmd.size)
        except CryptoError as exc:
            raise BadRequest(
                "the size is not the length of an attachment blob (PROTOCOL.md §6)",
                code="invalid-blob-size",
            ) from exc
        part_bytes = limits.max_part_bytes
        parts = part_count(cmd.size, part_bytes)
        if parts > MAX_PARTS:
            raise TooLarge(
                f"a blob this large needs more than {MAX_PARTS} parts of {part_bytes} bytes",
                code="too-many-parts",
            )
        return await _to_the_end(self._create(who, cmd, part_bytes, parts))

    async def _create(
        self, who: Principal, cmd: NewUpload, part_bytes: int, parts: int
    ) -> tuple[UploadState, bool]:
        limits = self._limits
        now = self._clock()
        async with self._db.write() as conn:
            await store.lock_account(conn, who.account_id)
            row = await store.get_blob(conn, cmd.blob, lock=True)
            if row is not None:
                same = row.owner_id == who.account_id and row.size == cmd.size
                if same and row.state == store.UPLOADING:
                    received = [p.index for p in await store.parts_of(conn, cmd.blob)]
                    return self._state(row, received), False
                raise Conflict("this blob id is already in use", code="blob-exists")
            used = (await store.usage(conn, who.account_id)).used
            if used + cmd.size > limits.quota_bytes:
                raise Conflict(
                    f"the upload would exceed the storage quota ({used} of "
                    f"{limits.quota_bytes} bytes used)",
                    code="quota-exceeded",
                )
            expires = now + limits.expiry_ms
            try:
                async with conn.begin_nested():
                    await store.insert_upload(
                        conn,
                        blob_id=cmd.blob,
                        owner_id=who.account_id,
                        size=cmd.size,
                        part_bytes=part_bytes,
                        parts=parts,
                        now=now,
                        expires=expires,
                    )
            except IntegrityError as exc:  # the same id, created by another process just now
                raise Conflict("this blob id is already in use", code="blob-exists") from exc
        return UploadState(cmd.blob, cmd.size, part_bytes, store.UPLOADING, [], expires), True

    async def state(self, who: Principal, blob_id: str) -> UploadState:
        async with self._db.read() as conn:
            row = await self._own(conn, who, blob_id)
            received = [p.index for p in await store.parts_of(conn, row.id)]
        return self._state(row, received)

    async def put_part(
        self,
        who: Principal,
        blob_id: str,
        index: int,
        checksum: bytes,
        declared: int | None,
        body: AsyncIterator[bytes],
    ) -> tuple[StoredPart, bool]:
        """Store part ``index`` from ``body``; ``(part, True)`` when new, ``(part, False)``
        when the server already had these very bytes.

        Nothing is stored unless the part has exactly its slot's length and ``checksum``.
        ``declared`` (the Content-Length) is checked before the body is read.
        """
        async with self._db.read() as conn:
            row = await self._own(conn, who, blob_id)
        if row.state != store.UPLOADING:
            raise Conflict("the upload is complete", code="upload-complete")
        if not 0 <= index < row.parts:
            raise BadRequest(
                f"this upload has parts 0 to {row.parts - 1}", code="part-out-of-range"
            )
        expected = part_size(row.size, row.part_bytes, index)
        if declared is not None:
            self._check_length(declared, expected, index)
        sink = await self._receive(row.id, index, expected, checksum, body)
        # From here the part is good: it is kept even if the client is gone meanwhile.
        outcome = await _to_the_end(self._keep(who, row.id, sink))
        if isinstance(outcome, PostboxError):
            raise outcome
        return StoredPart(row.id, index, expected), outcome is not None

    async def _keep(
        self, who: Principal, blob_id: str, sink: PartSink
    ) -> PostboxError | PartRef | None:
        """Commit the part and record it: the refusal, the new part, or None when the
        server had these very bytes already."""
        try:
            part = await sink.commit()
        except FileNotFoundError:  # the upload's folder went: aborted or collected meanwhile
            await sink.discard()
            return _upload_not_found()
        except BaseException:
            await sink.discard()
            raise
        now = self._clock()
        async with self._db.write() as conn:
            outcome = await self._record(conn, who, blob_id, part, now)
        if isinstance(outcome, PostboxError):
            # Our file has a name of its own (index and checksum) that no row refers to.
            await self._store.delete_part(blob_id, part.index, part.checksum)
            return outcome
        if not outcome:
            return None
        self._running.recorded(blob_id, part)
        return part

    def _check_length(self, length: int, expected: int, index: int) -> None:
        if length > expected:
            raise TooLarge(f"part {index} has {expected} bytes", code="part-too-large")
        if length < expected:
            raise BadRequest(
                f"part {index} has {expected} bytes (only the last part is shorter)",
                code="wrong-part-size",
            )

    async def _receive(
        self, blob_id: str, index: int, expected: int, checksum: bytes, body: AsyncIterator[bytes]
    ) -> PartSink:
        """The part, streamed to a temporary file and checked (length, checksum); not yet
        committed. Anything wrong discards it."""
        sink = self._store.part_sink(blob_id, index)
        # What arrived is written (and checksummed) on a worker thread while the next
        # pieces arrive: the pieces as the socket delivered them, never joined (a joined
        # copy would cost a fresh, page-faulting buffer per write).
        writing: asyncio.Future[None] | None = None
        try:
            pending: list[bytes] = []
            pending_bytes = 0
            total = 0
            async for chunk in body:
                total += len(chunk)
                if total > expected:
                    self._check_length(total, expected, index)
                pending.append(chunk)
                pending_bytes += len(chunk)
                if pending_bytes >= WRITE_BUFFER:
                    if writing is not None:
                        await writing
                    writing = asyncio.ensure_future(sink.write_pieces(pending))
                    pending, pending_bytes = [], 0
            if writing is not None:
                await writing
            if pending:
                await sink.write_pieces(pending)
            self._check_length(total, expected, index)
            if not equal(sink.digest(), checksum):
                raise BadRequest("the part does not match its X-Checksum", code="checksum-mismatch")
            return sink
        except BaseException:
            if writing is not None:
                await asyncio.wait([writing])  # the sink's lock orders it before the discard
                if not writing.cancelled():
                    writing.exception()
            await sink.discard()
            raise

    async def _record(
        self, conn: AsyncConnection, who: Principal, blob_id: str, part: PartRef, now: int
    ) -> PostboxError | bool:
        """Record a stored part: whether it is new, or the refusal to raise once the
        transaction is over and the part's file removed."""
        row = await store.get_blob(conn, blob_id, lock=True)
        if row is None or row.owner_id != who.account_id:
            return _upload_not_found()  # aborted (or expired) while the part arrived
        existing = await store.get_part(conn, blob_id, part.index)
        if existing is not None:
            if existing.checksum == part.checksum:
                return False  # the same bytes again: the file we wrote is that part's file
            return Conflict(
                f"the server has other bytes for part {part.index}", code="part-conflict"
            )
        if row.state != store.UPLOADING:
            return Conflict("the upload is complete", code="upload-complete")
        await store.insert_part(conn, blob_id, part, now=now, expires=now + self._limits.expiry_ms)
        return True

    async def complete(self, who: Principal, blob_id: str) -> Completed:
        """Every part present → the blob is complete; its length and hash come from the
        server's own pass over the stored parts. Completing again answers the same."""
        async with self._db.read() as conn:
            row = await self._own(conn, who, blob_id)
            parts = await store.parts_of(conn, row.id)
        if row.state == store.COMPLETE:
            assert row.hash is not None
            return Completed(row.id, row.size, row.hash)
        have = {p.index for p in parts}
        missing = [i for i in range(row.parts) if i not in have]
        if missing:
            shown = ", ".join(str(i) for i in missing[:20]) + (" …" if len(missing) > 20 else "")
            raise Conflict(
                f"{len(missing)} of {row.parts} parts are missing: {shown}",
                code="parts-missing",
            )
        try:
            length, digest = await self._running.finish(row.id, parts)
        except StorageError:
            async with self._db.read() as conn:
                if await store.get_blob(conn, row.id) is None:
                    raise _upload_not_found() from None  # aborted while it was read
            raise
        if length != row.size:  # pragma: no cover - every part was checked on arrival
            raise StorageError(f"blob {row.id} has {length} bytes stored, not {row.size}")
        return await _to_the_end(self._mark_complete(who, row, digest))

    async def _mark_complete(self, who: Principal, row: store.BlobRow, digest: bytes) -> Completed:
        now = self._clock()
        async with self._db.write() as conn:
            if await store.mark_complete(
                conn, row.id, hash=digest, now=now, expires=now + self._limits.expiry_ms
            ):
                return Completed(row.id, row.size, digest)
            again = await store.get_blob(conn, row.id)
        if again is None or again.owner_id != who.account_id:
            raise _upload_not_found()  # aborted meanwhile
        assert again.hash is not None  # completed by a concurrent request
        return Completed(again.id, again.size, again.hash)

    async def abort(self, who: Principal, blob_id: str) -> None:
        """Delete the caller's upload or unreferenced blob (row first, then its files)."""
        await _to_the_end(self._abort(who, blob_id))

    async def _abort(self, who: Principal, blob_id: str) -> None:
        async with self._db.write() as conn:
            row = await self._own(conn, who, blob_id)
            if not await store.delete_unreferenced(conn, row.id, who.account_id):
                raise Conflict("a message references this blob", code="blob-in-use")
        self._running.forget(row.id)
        await self._store.delete_blob(row.id)

    # -- reading --
    async def open(self, who: Principal, blob_id: str) -> Readable:
        """A complete blob the caller may read, else 404 (409 for the owner's own
        unfinished upload)."""
        wanted = parse_blob_id(blob_id)
        if wanted is None:
            raise _blob_not_found()
        async with self._db.read() as conn:
            row = await store.get_blob(conn, wanted)
            if row is None:
                raise _blob_not_found()
            if row.owner_id != who.account_id:
                mailboxes = await acting_for(conn, who.account_id)
                if not await store.readable_through(conn, row.id, mailboxes):
                    raise _blob_not_found()
            if row.state != store.COMPLETE or row.hash is None:
                if (
                    row.owner_id != who.account_id
                ):  # pragma: no cover - only complete blobs are linked
                    raise _blob_not_found()
                raise Conflict("the upload is not complete yet", code="blob-incomplete")
            parts = await store.parts_of(conn, row.id)
        return Readable(row.id, row.size, row.hash, tuple(parts))

    def read(self, blob: Readable, offset: int, length: int) -> AsyncGenerator[bytes, None]:
        """``length`` bytes of an opened blob from ``offset``, streamed from the store."""
        return self._store.read(blob.blob, blob.parts, offset, length)

    async def send(
        self, blob: Readable, offset: int, length: int, transport: asyncio.WriteTransport
    ) -> None:
        """``length`` bytes of an opened blob from ``offset``, written to ``transport`` by
        the store (``sendfile`` where it can)."""
        await self._store.send(blob.blob, blob.parts, offset, length, transport)

    async def storage(self, who: Principal) -> Storage:
        async with self._db.read() as conn:
            use = await store.usage(conn, who.account_id)
        return Storage(use.used, self._limits.quota_bytes, use.complete, use.received)

    # -- for the features that delete messages --
    async def remove_files(self, blob_ids: Collection[str]) -> None:
        """Remove the files of blobs whose rows a committed transaction deleted (best
        effort: whatever is left, the garbage collector removes after its grace period)."""
        for blob_id in sorted(set(blob_ids)):
            try:
                await self._store.delete_blob(blob_id)
            except (OSError, ValueError):
                log.warning("could not remove the files of a deleted blob", exc_info=True)


def _to_the_end(coro: Coroutine[Any, Any, T]) -> Awaitable[T]:
    """``coro`` (a write transaction and what must follow it) in a task of its own, which a
    cancelled request cannot interrupt.

    A request is cancelled when its client goes away (with aiohttp's ``handler_cancellation``;
    the test server has it on). Cut off inside the database driver, a transaction can leave
    SQLite's write lock behind — aiosqlite finishes the statement on its own thread after
    the await was cancelled — and a part file whose row never came. So the work runs to its
    end; only the answer is lost.
    """
    task = asyncio.ensure_future(coro)
    task.add_done_callback(_retrieve)
    return asyncio.shield(task)


def _retrieve(task: asyncio.Future[Any]) -> None:
    # The request that wanted the result may be gone: its error is not worth a warning.
    if not task.cancelled():
        task.exception()


async def delete_blob_rows(conn: AsyncConnection, blob_ids: Collection[str]) -> int:
    """Delete these blobs' rows — their ``message_blobs`` links, upload rows and the blob
    rows — inside the caller's transaction (the inbox and retention deleting messages).

    The files stay until the garbage collector finds them without a row (after its grace
    period), or until the caller, after its commit, calls :meth:`BlobService.remove_files`.
    Returns how many blob rows were deleted.
    """
    return await store.delete_rows(conn, blob_ids)


#: the largest blob any v1 client can produce (a 2 GiB file); settings may lower it
PROTOCOL_MAX_BLOB: Final = MAX_BLOB
