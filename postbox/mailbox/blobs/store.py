"""SQL of blobs and uploads: named queries over ``blobs``, ``uploads`` and ``upload_parts``.

Rows, not rules: the service decides who may do what. Every statement that changes a blob
is conditional (``WHERE state = 'uploading'``, ``WHERE expires < :now AND NOT EXISTS
(message_blobs …)``) so that several server processes, and the send path linking a blob
at the same moment, never act on a state they did not see; callers look at the row count.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, delete, exists, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from postbox.mailbox.blobs.storage import PartRef
from postbox.mailbox.db.schema import (
    accounts,
    blobs,
    mailbox_entries,
    message_blobs,
    upload_parts,
    uploads,
)

UPLOADING = "uploading"
COMPLETE = "complete"


@dataclass(frozen=True)
class BlobRow:
    id: str
    owner_id: str
    state: str  # uploading | complete
    size: int
    received: int
    hash: bytes | None
    created: int
    completed: int | None
    expires: int | None
    part_bytes: int
    parts: int


_COLUMNS = (
    blobs.c.id,
    blobs.c.owner_id,
    blobs.c.state,
    blobs.c.size,
    blobs.c.received,
    blobs.c.hash,
    blobs.c.created,
    blobs.c.completed,
    blobs.c.expires,
    uploads.c.part_bytes,
    uploads.c.parts,
)


def _row(r: object) -> BlobRow:
    return BlobRow(*r)  # type: ignore[misc]


async def get_blob(conn: AsyncConnection, blob_id: str, *, lock: bool = False) -> BlobRow | None:
    """The blob and how it is cut into parts; ``lock`` holds its row (PostgreSQL) until
    the transaction ends (SQLite's one writer needs no lock)."""
    query = select(*_COLUMNS).join(uploads, uploads.c.blob_id == blobs.c.id)
    query = query.where(blobs.c.id == blob_id)
    if lock:
        query = query.with_for_update(of=blobs)
    r = (await conn.execute(query)).first()
    return None if r is None else _row(r)


async def lock_account(conn: AsyncConnection, account_id: str) -> None:
    """Serialise quota checks of one account (PostgreSQL row lock; SQLite has one writer)."""
    await conn.execute(select(accounts.c.id).where(accounts.c.id == account_id).with_for_update())


@dataclass(frozen=True)
class Usage:
    used: int  # announced sizes of every blob the account owns
    complete: int  # sizes of its complete blobs
    received: int  # bytes of parts received for its unfinished uploads


async def usage(conn: AsyncConnection, account_id: str) -> Usage:
    complete = func.coalesce(func.sum(blobs.c.size).filter(blobs.c.state == COMPLETE), 0)
    received = func.coalesce(func.sum(blobs.c.received).filter(blobs.c.state == UPLOADING), 0)
    used = func.coalesce(func.sum(blobs.c.size), 0)
    r = (
        await conn.execute(select(used, complete, received).where(blobs.c.owner_id == account_id))
    ).one()
    return Usage(int(r[0]), int(r[1]), int(r[2]))


async def insert_upload(
    conn: AsyncConnection,
    *,
    blob_id: str,
    owner_id: str,
    size: int,
    part_bytes: int,
    parts: int,
    now: int,
    expires: int,
) -> None:
    await conn.execute(
        insert(blobs).values(
            id=blob_id,
            owner_id=owner_id,
            state=UPLOADING,
            size=size,
            received=0,
            hash=None,
            created=now,
            completed=None,
            expires=expires,
        )
    )
    await conn.execute(insert(uploads).values(blob_id=blob_id, part_bytes=part_bytes, parts=parts))


async def parts_of(conn: AsyncConnection, blob_id: str) -> list[PartRef]:
    """The blob's stored parts, in index order."""
    rows = await conn.execute(
        select(upload_parts.c.idx, upload_parts.c.size, upload_parts.c.checksum)
        .where(upload_parts.c.blob_id == blob_id)
        .order_by(upload_parts.c.idx)
    )
    return [PartRef(int(r.idx), int(r.size), bytes(r.checksum)) for r in rows]


async def get_part(conn: AsyncConnection, blob_id: str, index: int) -> PartRef | None:
    r = (
        await conn.execute(
            select(upload_parts.c.size, upload_parts.c.checksum).where(
                upload_parts.c.blob_id == blob_id, upload_parts.c.idx == index
            )
        )
    ).first()
    return None if r is None else PartRef(index, int(r.size), bytes(r.checksum))


async def insert_part(
    conn: AsyncConnection, blob_id: str, part: PartRef, *, now: int, expires: int
) -> None:
    """Record a received part (the caller holds the blob row and checked the part is new)
    and push the upload's expiry forward: an upload expires only without progress."""
    await conn.execute(
        insert(upload_parts).values(
            blob_id=blob_id,
            idx=part.index,
            size=part.size,
            checksum=part.checksum,
            received=now,
        )
    )
    await conn.execute(
        update(blobs)
        .where(blobs.c.id == blob_id)
        .values(received=blobs.c.received + part.size, expires=expires)
    )


async def mark_complete(
    conn: AsyncConnection, blob_id: str, *, hash: bytes, now: int, expires: int
) -> bool:
    """uploading → complete; False if the blob is gone or no longer uploading."""
    result = await conn.execute(
        update(blobs)
        .where(blobs.c.id == blob_id, blobs.c.state == UPLOADING)
        .values(state=COMPLETE, hash=hash, completed=now, expires=expires)
    )
    return result.rowcount == 1


def _unreferenced() -> ColumnElement[bool]:
    return ~exists().where(message_blobs.c.blob_id == blobs.c.id)


async def delete_unreferenced(conn: AsyncConnection, blob_id: str, owner_id: str) -> bool:
    """Delete the owner's blob unless a message references it (its upload rows cascade)."""
    result = await conn.execute(
        delete(blobs).where(
            blobs.c.id == blob_id,
            blobs.c.owner_id == owner_id,
            _unreferenced(),
        )
    )
    return result.rowcount == 1


async def is_referenced(conn: AsyncConnection, blob_id: str) -> bool:
    r = await conn.execute(
        select(message_blobs.c.blob_id).where(message_blobs.c.blob_id == blob_id)
    )
    return r.first() is not None


async def readable_through(
    conn: AsyncConnection, blob_id: str, mailbox_ids: Collection[str]
) -> bool:
    """Whether one of ``mailbox_ids`` holds a message that references the blob."""
    if not mailbox_ids:
        return False
    query = (
        select(mailbox_entries.c.pk)
        .join(message_blobs, message_blobs.c.message_pk == mailbox_entries.c.message_pk)
        .where(
            message_blobs.c.blob_id == blob_id,
            mailbox_entries.c.mailbox_id.in_(sorted(set(mailbox_ids))),
        )
        .limit(1)
    )
    return (await conn.execute(query)).first() is not None


# --- garbage collection -----------------------------------------------------------------------
def _expired(now: int) -> ColumnElement[bool]:
    return and_(blobs.c.expires.is_not(None), blobs.c.expires < now, _unreferenced())


async def expired(conn: AsyncConnection, now: int, limit: int) -> list[str]:
    """Ids of blobs past their expiry that no message references (oldest first)."""
    rows = await conn.execute(
        select(blobs.c.id).where(_expired(now)).order_by(blobs.c.expires).limit(limit)
    )
    return [r[0] for r in rows]


async def delete_expired(conn: AsyncConnection, blob_ids: Sequence[str], now: int) -> list[str]:
    """Delete those of ``blob_ids`` that are still expired and unreferenced; returns the ids
    deleted here. A blob linked by a message, completed with a new expiry or deleted by
    another process meanwhile is left alone: the condition is evaluated by the DELETE."""
    if not blob_ids:
        return []
    result = await conn.execute(
        delete(blobs).where(blobs.c.id.in_(list(blob_ids)), _expired(now)).returning(blobs.c.id)
    )
    return [r[0] for r in result]


async def existing(conn: AsyncConnection, blob_ids: Sequence[str]) -> set[str]:
    """Which of ``blob_ids`` have a row."""
    if not blob_ids:
        return set()
    rows = await conn.execute(select(blobs.c.id).where(blobs.c.id.in_(list(blob_ids))))
    return {r[0] for r in rows}


async def part_keys(
    conn: AsyncConnection, blob_ids: Sequence[str]
) -> dict[str, set[tuple[int, bytes]]]:
    """(index, checksum) of every recorded part of each blob."""
    out: dict[str, set[tuple[int, bytes]]] = {b: set() for b in blob_ids}
    if not blob_ids:
        return out
    rows = await conn.execute(
        select(upload_parts.c.blob_id, upload_parts.c.idx, upload_parts.c.checksum).where(
            upload_parts.c.blob_id.in_(list(blob_ids))
        )
    )
    for r in rows:
        out[r.blob_id].add((int(r.idx), bytes(r.checksum)))
    return out


async def delete_rows(conn: AsyncConnection, blob_ids: Collection[str]) -> int:
    """Delete blob rows (with their links and upload rows) inside the caller's transaction."""
    ids = sorted(set(blob_ids))
    if not ids:
        return 0
    await conn.execute(delete(message_blobs).where(message_blobs.c.blob_id.in_(ids)))
    await conn.execute(delete(upload_parts).where(upload_parts.c.blob_id.in_(ids)))
    await conn.execute(delete(uploads).where(uploads.c.blob_id.in_(ids)))
    result = await conn.execute(delete(blobs).where(blobs.c.id.in_(ids)))
    return int(result.rowcount or 0)
