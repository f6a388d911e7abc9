"""SQL of the delivery feature (never raises HTTP errors).

Tables (``schema.py`` section ``[delivery]``): ``delivery_events`` (the signed chain of
each authority message), ``delivery_clocks`` (the legal clock of each decision),
``legal_settings`` (per organisation) and ``read_receipts``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from postbox.mailbox.db.schema import (
    accounts,
    delivery_clocks,
    delivery_events,
    legal_settings,
    mailbox_entries,
    messages,
    read_receipts,
)


@dataclass(frozen=True, slots=True)
class MessageFacts:
    pk: int
    id: str
    from_id: str
    org_id: str | None
    kind: str
    digest: bytes
    accepted: int


@dataclass(frozen=True, slots=True)
class StoredDelivery:
    seq: int
    event: str
    by_id: str | None
    at: int
    signed: str  # cj of the signed delivery event


@dataclass(frozen=True, slots=True)
class LegalSettings:
    org_id: str
    time_zone: str
    country: str
    subdivision: str | None
    decision_rule: str
    updated: int | None  # None: the defaults, never stored


@dataclass(frozen=True, slots=True)
class ClockRow:
    message_pk: int
    mailbox_id: str
    org_id: str
    rule_id: str
    time_zone: str
    country: str
    subdivision: str | None
    available: int
    notified: int | None
    retrieved: int | None
    deadline: int | None
    overdue: int | None


@dataclass(frozen=True, slots=True)
class StoredRead:
    mailbox_id: str
    reader_id: str
    signed_read: str
    countersign: str
    received: int


_MESSAGE_COLS = (
    messages.c.pk,
    messages.c.id,
    messages.c.from_id,
    messages.c.org_id,
    messages.c.kind,
    messages.c.digest,
    messages.c.accepted,
)


def _facts(r: Any) -> MessageFacts:
    return MessageFacts(r.pk, r.id, r.from_id, r.org_id, r.kind, bytes(r.digest), r.accepted)


async def message_by_pk(
    conn: AsyncConnection, message_pk: int, *, lock: bool = False
) -> MessageFacts | None:
    """The message row; ``lock`` takes its row lock (PostgreSQL; SQLite has one writer),
    which serialises appends to its delivery chain across processes."""
    query = select(*_MESSAGE_COLS).where(messages.c.pk == message_pk)
    if lock:
        query = query.with_for_update()
    row = (await conn.execute(query)).first()
    return None if row is None else _facts(row)


async def message_by_address(
    conn: AsyncConnection, from_id: str, message_id: str
) -> MessageFacts | None:
    row = (
        await conn.execute(
            select(*_MESSAGE_COLS).where(messages.c.from_id == from_id, messages.c.id == message_id)
        )
    ).first()
    return None if row is None else _facts(row)


async def entry_mailboxes(conn: AsyncConnection, message_pk: int) -> list[str]:
    """The mailboxes holding the message (its ``to`` and ``from`` that kept an entry)."""
    rows = await conn.execute(
        select(mailbox_entries.c.mailbox_id)
        .where(mailbox_entries.c.message_pk == message_pk)
        .order_by(mailbox_entries.c.mailbox_id)
    )
    return [r[0] for r in rows]


async def has_entry(conn: AsyncConnection, message_pk: int, mailbox_id: str) -> bool:
    row = (
        await conn.execute(
            select(mailbox_entries.c.pk).where(
                mailbox_entries.c.message_pk == message_pk,
                mailbox_entries.c.mailbox_id == mailbox_id,
            )
        )
    ).first()
    return row is not None


async def account_kind(conn: AsyncConnection, account_id: str) -> str | None:
    row = (await conn.execute(select(accounts.c.kind).where(accounts.c.id == account_id))).first()
    return None if row is None else str(row[0])


# --- delivery chain ---------------------------------------------------------------------------
async def chain(conn: AsyncConnection, message_pk: int) -> list[StoredDelivery]:
    rows = await conn.execute(
        select(
            delivery_events.c.seq,
            delivery_events.c.event,
            delivery_events.c.by_id,
            delivery_events.c.at,
            delivery_events.c.signed,
        )
        .where(delivery_events.c.message_pk == message_pk)
        .order_by(delivery_events.c.seq)
    )
    return [StoredDelivery(r.seq, r.event, r.by_id, r.at, r.signed) for r in rows]


async def append_delivery(
    conn: AsyncConnection,
    message_pk: int,
    seq: int,
    event: str,
    by_id: str | None,
    at: int,
    signed: str,
) -> None:
    await conn.execute(
        delivery_events.insert().values(
            message_pk=message_pk, seq=seq, event=event, by_id=by_id, at=at, signed=signed
        )
    )


# --- legal settings ---------------------------------------------------------------------------
async def legal_settings_of(conn: AsyncConnection, org_id: str) -> LegalSettings | None:
    row = (
        await conn.execute(select(legal_settings).where(legal_settings.c.org_id == org_id))
    ).first()
    if row is None:
        return None
    return LegalSettings(
        row.org_id, row.time_zone, row.country, row.subdivision, row.decision_rule, row.updated
    )


async def put_legal_settings(conn: AsyncConnection, s: LegalSettings, at: int) -> None:
    values = {
        "time_zone": s.time_zone,
        "country": s.country,
        "subdivision": s.subdivision,
        "decision_rule": s.decision_rule,
        "updated": at,
    }
    result = await conn.execute(
        update(legal_settings).where(legal_settings.c.org_id == s.org_id).values(**values)
    )
    if not result.rowcount:
        await conn.execute(legal_settings.insert().values(org_id=s.org_id, **values))


# --- legal clocks -----------------------------------------------------------------------------
def _clock(r: Any) -> ClockRow:
    return ClockRow(*r)


_CLOCK_COLS = (
    delivery_clocks.c.message_pk,
    delivery_clocks.c.mailbox_id,
    delivery_clocks.c.org_id,
    delivery_clocks.c.rule_id,
    delivery_clocks.c.time_zone,
    delivery_clocks.c.country,
    delivery_clocks.c.subdivision,
    delivery_clocks.c.available,
    delivery_clocks.c.notified,
    delivery_clocks.c.retrieved,
    delivery_clocks.c.deadline,
    delivery_clocks.c.overdue,
)


async def insert_clock(conn: AsyncConnection, c: ClockRow) -> None:
    await conn.execute(
        delivery_clocks.insert().values(
            message_pk=c.message_pk,
            mailbox_id=c.mailbox_id,
            org_id=c.org_id,
            rule_id=c.rule_id,
            time_zone=c.time_zone,
            country=c.country,
            subdivision=c.subdivision,
            available=c.available,
            notified=c.notified,
            retrieved=c.retrieved,
            deadline=c.deadline,
            overdue=c.overdue,
        )
    )


async def clock_of(conn: AsyncConnection, message_pk: int) -> ClockRow | None:
    row = (
        await conn.execute(select(*_CLOCK_COLS).where(delivery_clocks.c.message_pk == message_pk))
    ).first()
    return None if row is None else _clock(row)


async def update_clock(
    conn: AsyncConnection,
    message_pk: int,
    *,
    notified: int | None,
    retrieved: int | None,
    deadline: int | None,
) -> None:
    await conn.execute(
        update(delivery_clocks)
        .where(delivery_clocks.c.message_pk == message_pk)
        .values(notified=notified, retrieved=retrieved, deadline=deadline)
    )


def _late() -> ColumnElement[bool]:
    """Not retrieved before the deadline (no retrieval yet, or a late one)."""
    return or_(
        delivery_clocks.c.retrieved.is_(None),
        delivery_clocks.c.retrieved >= delivery_clocks.c.deadline,
    )


async def due_clocks(conn: AsyncConnection, now: int, limit: int) -> list[ClockRow]:
    """Clocks whose deadline passed without a timely retrieval and not yet marked."""
    rows = await conn.execute(
        select(*_CLOCK_COLS)
        .where(
            delivery_clocks.c.overdue.is_(None),
            delivery_clocks.c.deadline.is_not(None),
            delivery_clocks.c.deadline <= now,
            _late(),
        )
        .order_by(delivery_clocks.c.deadline, delivery_clocks.c.message_pk)
        .limit(limit)
    )
    return [_clock(r) for r in rows]


async def mark_overdue(conn: AsyncConnection, message_pk: int, at: int) -> bool:
    """Mark once; ``False`` when another process marked it first."""
    result = await conn.execute(
        update(delivery_clocks)
        .where(delivery_clocks.c.message_pk == message_pk, delivery_clocks.c.overdue.is_(None))
        .values(overdue=at)
    )
    return bool(result.rowcount)


async def overdue_of(
    conn: AsyncConnection, mailbox_id: str, now: int, limit: int, before: int | None
) -> list[tuple[ClockRow, str]]:
    """A team's decisions not retrieved in time at ``now`` (deadline order, newest
    deadline first; ``before`` pages by message pk), with each message's id."""
    query = (
        select(*_CLOCK_COLS, messages.c.id)
        .join(messages, messages.c.pk == delivery_clocks.c.message_pk)
        .where(
            delivery_clocks.c.mailbox_id == mailbox_id,
            delivery_clocks.c.deadline.is_not(None),
            delivery_clocks.c.deadline <= now,
            _late(),
        )
        .order_by(delivery_clocks.c.message_pk.desc())
        .limit(limit)
    )
    if before is not None:
        query = query.where(delivery_clocks.c.message_pk < before)
    rows = await conn.execute(query)
    return [(_clock(r[:12]), r[12]) for r in rows]


# --- read receipts ----------------------------------------------------------------------------
async def read_of(
    conn: AsyncConnection, message_pk: int, mailbox_id: str, reader_id: str
) -> StoredRead | None:
    row = (
        await conn.execute(
            select(read_receipts).where(
                read_receipts.c.message_pk == message_pk,
                read_receipts.c.mailbox_id == mailbox_id,
                read_receipts.c.reader_id == reader_id,
            )
        )
    ).first()
    if row is None:
        return None
    return StoredRead(row.mailbox_id, row.reader_id, row.signed_read, row.countersign, row.received)


async def insert_read(conn: AsyncConnection, message_pk: int, r: StoredRead) -> None:
    await conn.execute(
        read_receipts.insert().values(
            message_pk=message_pk,
            mailbox_id=r.mailbox_id,
            reader_id=r.reader_id,
            signed_read=r.signed_read,
            countersign=r.countersign,
            received=r.received,
        )
    )


async def reads_of(
    conn: AsyncConnection, message_pk: int, mailbox_ids: Sequence[str] | None
) -> list[StoredRead]:
    """Read receipts of a message (only of ``mailbox_ids`` when given), oldest first."""
    query = select(read_receipts).where(read_receipts.c.message_pk == message_pk)
    if mailbox_ids is not None:
        query = query.where(read_receipts.c.mailbox_id.in_(sorted(set(mailbox_ids))))
    rows = await conn.execute(
        query.order_by(
            read_receipts.c.received, read_receipts.c.mailbox_id, read_receipts.c.reader_id
        )
    )
    return [
        StoredRead(r.mailbox_id, r.reader_id, r.signed_read, r.countersign, r.received)
        for r in rows
    ]
