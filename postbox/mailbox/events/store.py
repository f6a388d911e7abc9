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

from sqlalchemy import delete, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from postbox.crypto.encoding import cj, parse_canonical
from postbox.mailbox.db.schema import accounts, events, sessions

#: PostgreSQL advisory lock that orders event appends (see :func:`append`)
APPEND_LOCK_KEY = 0x706F7374626F7865  # "postboxe"


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
    """Append events inside the caller's transaction (call the bus after it commits).

    Call it **once, as the last write** of the transaction. On PostgreSQL it takes a
    transaction-level advisory lock before the rows get their ``seq``, held until commit,
    so event-appending transactions commit in ``seq`` order: without it, a transaction that
    drew seq 10 could commit after one that drew seq 11 had already been delivered, and a
    reader past cursor 11 would never see 10. (SQLite has a single writer, so its order is
    the commit order already.) Writing more rows after the append only lengthens the time
    the lock is held and risks lock-order deadlocks with other writers.
    """
    if not new:
        return
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": APPEND_LOCK_KEY})
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


async def ended_sessions(conn: AsyncConnection, session_ids: Sequence[str], now: int) -> set[str]:
    """Which of these sessions may no longer listen (revoked, expired, account disabled, gone)."""
    if not session_ids:
        return set()
    rows = await conn.execute(
        select(sessions.c.id, sessions.c.revoked, sessions.c.expires, accounts.c.status)
        .join(accounts, accounts.c.id == sessions.c.account_id)
        .where(sessions.c.id.in_(session_ids))
    )
    live = {r.id for r in rows if r.revoked is None and r.expires > now and r.status == "active"}
    return set(session_ids) - live
