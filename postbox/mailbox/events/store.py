"""Live events at rest: appended in the same transaction as the change they announce.

An event is metadata for an account's connected clients (a new message in a mailbox, a
case's new status, a receipt): ids and states only, never content. ``seq`` grows with every
append and is the cursor a reconnecting client sends to get what it missed. The rows are
the source of truth; the event bus (:mod:`postbox.mailbox.events.bus`) only wakes the
connections of the accounts concerned after the transaction committed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from postbox.crypto.encoding import cj, parse_canonical
from postbox.mailbox.db.schema import events


@dataclass(frozen=True)
class NewEvent:
    account_id: str
    type: str
    data: dict[str, Any]  # ids, kinds, states, times: never content


@dataclass(frozen=True)
class StoredEvent:
    seq: int
    account_id: str
    type: str
    data: dict[str, Any]
    at: int


async def append(conn: AsyncConnection, new: Sequence[NewEvent], at: int) -> None:
    """Append events inside the caller's transaction (call the bus after it commits)."""
    if not new:
        return
    await conn.execute(
        events.insert(),
        [
            {"account_id": e.account_id, "type": e.type, "data": cj(e.data).decode(), "at": at}
            for e in new
        ],
    )


async def since(
    conn: AsyncConnection, account_id: str, cursor: int, limit: int
) -> list[StoredEvent]:
    """The account's events after ``cursor``, oldest first, at most ``limit``."""
    rows = await conn.execute(
        select(events)
        .where(events.c.account_id == account_id, events.c.seq > cursor)
        .order_by(events.c.seq)
        .limit(limit)
    )
    return [
        StoredEvent(r.seq, r.account_id, r.type, parse_canonical(r.data.encode()), r.at)
        for r in rows
    ]


async def latest_seq(conn: AsyncConnection, account_id: str) -> int:
    row = (
        await conn.execute(
            select(events.c.seq)
            .where(events.c.account_id == account_id)
            .order_by(events.c.seq.desc())
            .limit(1)
        )
    ).first()
    return 0 if row is None else int(row[0])


async def prune(conn: AsyncConnection, before: int) -> int:
    """Delete events older than ``before`` (ms); returns how many."""
    result = await conn.execute(delete(events).where(events.c.at < before))
    return int(result.rowcount or 0)
