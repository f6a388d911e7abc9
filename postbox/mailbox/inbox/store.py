"""Named queries of the inbox: listing, counting, fetching, changing and deleting entries.

A mailbox's view of a message is its ``mailbox_entries`` row (folder, read, flagged); the
message itself (``messages``: the wire envelope, the signed receipt) is shared by every
mailbox it was addressed to. Every listing query is a range of one index of ``schema.py``
read newest-first from a keyset cursor (``pk < before``), so the first page costs the same
in a mailbox of 100 or of 100,000 messages (``tests/inbox/test_plans.py`` checks the plans):

| filter | index (``ix_mailbox_entries_…``) |
| --- | --- |
| folder | ``mailbox_id_folder_pk`` |
| folder, unread | ``unread`` (partial), or in SQLite ``mailbox_id_folder_read`` (rowid = pk) |
| folder, flagged | ``flagged`` (partial: flagged entries only) |
| thread | ``mailbox_id_thread_id_pk`` |
| case | ``mailbox_id_case_id_pk`` |

Deleting is generic over the foreign keys of the schema: when the last entry of a message
goes, every row that references the message (blob links, delivery records, read receipts,
…) is deleted, nullable references (the notification outbox) are cleared, then the
message and its blob rows go (the blobs feature's collector removes the files). The
message rows are locked first (PostgreSQL ``FOR UPDATE``, in primary-key order), so two
transactions that remove the last two entries of one message cannot both leave it behind.
Stores never raise HTTP errors.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    Select,
    Table,
    TextClause,
    delete,
    func,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from postbox.crypto.encoding import parse_canonical
from postbox.mailbox.db.schema import (
    accounts,
    blobs,
    mailbox_entries,
    message_blobs,
    messages,
    metadata,
    retention,
    teams,
)

FOLDERS: Final = ("inbox", "sent", "archive", "trash")
DAY_MS: Final = 24 * 3600 * 1000

e = mailbox_entries
m = messages

#: the predicate of the partial index ``ix_mailbox_entries_flagged``, written exactly as the
#: index has it (SQLite uses a partial index only for a textually matching term)
_FLAGGED: Final = text("mailbox_entries.flagged = true")


@dataclass(frozen=True)
class EntryRow:
    """One message as one mailbox sees it (the listing's summary, plus row keys)."""

    pk: int  # mailbox_entries.pk: the keyset cursor
    message_pk: int
    mailbox_id: str
    from_id: str
    id: str
    signer_id: str
    kind: str
    thread_id: str | None
    case_id: str | None
    accepted: int
    size: int
    read: int | None
    flagged: bool
    folder: str
    moved: int | None


_ENTRY_COLUMNS: Final = (
    e.c.pk,
    e.c.message_pk,
    e.c.mailbox_id,
    m.c.from_id,
    m.c.id,
    m.c.signer_id,
    e.c.kind,
    e.c.thread_id,
    e.c.case_id,
    e.c.accepted,
    m.c.size,
    e.c.read,
    e.c.flagged,
    e.c.folder,
    e.c.moved,
)


def _entry(row: Any) -> EntryRow:
    return EntryRow(
        pk=row.pk,
        message_pk=row.message_pk,
        mailbox_id=row.mailbox_id,
        from_id=row.from_id,
        id=row.id,
        signer_id=row.signer_id,
        kind=row.kind,
        thread_id=row.thread_id,
        case_id=row.case_id,
        accepted=row.accepted,
        size=row.size,
        read=row.read,
        flagged=bool(row.flagged),
        folder=row.folder,
        moved=row.moved,
    )


def _entries() -> Select[Any]:
    return select(*_ENTRY_COLUMNS).select_from(e.join(m, m.c.pk == e.c.message_pk))


# --- listing -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Filter:
    """A listing's filters. ``folder`` None means every folder but the trash (allowed only
    with a thread or case filter, whose index does not contain the folder)."""

    folder: str | None = "inbox"
    unread: bool | None = None
    flagged: bool | None = None
    thread: str | None = None
    case: str | None = None


def listing_query(mailbox_id: str, f: Filter, *, before: int | None, limit: int) -> Select[Any]:
    """The listing statement (named, so tests can check its plan on both databases)."""
    conds: list[ColumnElement[bool] | TextClause] = [e.c.mailbox_id == mailbox_id]
    if f.thread is not None:
        conds.append(e.c.thread_id == f.thread)
    if f.case is not None:
        conds.append(e.c.case_id == f.case)
    if f.folder is not None:
        conds.append(e.c.folder == f.folder)
    else:
        conds.append(e.c.folder != "trash")
    if f.unread is True:
        conds.append(e.c.read.is_(None))
    elif f.unread is False:
        conds.append(e.c.read.is_not(None))
    if f.flagged is True:
        conds.append(_FLAGGED)
    elif f.flagged is False:
        conds.append(e.c.flagged.is_(False))
    if before is not None:
        conds.append(e.c.pk < before)
    return _entries().where(*conds).order_by(e.c.pk.desc()).limit(limit)


async def list_entries(
    conn: AsyncConnection, mailbox_id: str, f: Filter, *, before: int | None, limit: int
) -> list[EntryRow]:
    """At most ``limit`` entries of the mailbox, newest first (``pk`` below ``before``)."""
    rows = await conn.execute(listing_query(mailbox_id, f, before=before, limit=limit))
    return [_entry(r) for r in rows]


async def blob_counts(conn: AsyncConnection, message_pks: Collection[int]) -> dict[int, int]:
    """How many attachments each message has (absent: none)."""
    if not message_pks:
        return {}
    rows = await conn.execute(
        select(message_blobs.c.message_pk, func.count())
        .where(message_blobs.c.message_pk.in_(sorted(set(message_pks))))
        .group_by(message_blobs.c.message_pk)
    )
    return {int(r[0]): int(r[1]) for r in rows}


@dataclass(frozen=True)
class Counts:
    unread: dict[str, int]
    total: dict[str, int]


def unread_query(mailbox_id: str, folder: str) -> Select[Any]:
    """Unread entries of one folder: a range of the partial index of unread entries."""
    return (
        select(func.count())
        .select_from(e)
        .where(e.c.mailbox_id == mailbox_id, e.c.folder == folder, e.c.read.is_(None))
    )


def totals_query(mailbox_id: str) -> Select[Any]:
    return select(e.c.folder, func.count()).where(e.c.mailbox_id == mailbox_id).group_by(e.c.folder)


async def counts(conn: AsyncConnection, mailbox_id: str) -> Counts:
    """Unread and total entries per folder.

    Unread counts are ranges of the partial index of unread entries, one per folder: their
    cost grows with the unread entries only, however large the mailbox. Totals count the
    mailbox's index entries (covering, no table access).
    """
    unread = {
        folder: int((await conn.execute(unread_query(mailbox_id, folder))).scalar_one())
        for folder in FOLDERS
    }
    total = dict.fromkeys(FOLDERS, 0)
    for r in await conn.execute(totals_query(mailbox_id)):
        total[str(r[0])] = int(r[1])
    return Counts(unread, total)


async def team_names(conn: AsyncConnection, team_ids: Collection[str]) -> dict[str, Any]:
    """Display names of the teams among ``team_ids`` (``{"de": ..., ...}``)."""
    if not team_ids:
        return {}
    rows = await conn.execute(
        select(teams.c.id, teams.c.names).where(teams.c.id.in_(sorted(set(team_ids))))
    )
    return {r.id: parse_canonical(r.names.encode("utf-8")) for r in rows}


# --- one entry -------------------------------------------------------------------------------
async def entry(
    conn: AsyncConnection, mailbox_id: str, from_id: str, message_id: str, *, lock: bool = False
) -> EntryRow | None:
    """The mailbox's entry of message ``(from_id, message_id)``, or None."""
    q = _entries().where(m.c.from_id == from_id, m.c.id == message_id, e.c.mailbox_id == mailbox_id)
    if lock:
        q = q.with_for_update(of=e)
    row = (await conn.execute(q)).first()
    return None if row is None else _entry(row)


@dataclass(frozen=True)
class Stored:
    wire: bytes  # the canonical wire envelope, exactly as received
    receipt: dict[str, Any]  # the signed submission receipt
    digest: bytes


async def stored_message(conn: AsyncConnection, message_pk: int) -> Stored | None:
    row = (
        await conn.execute(select(m.c.wire, m.c.receipt, m.c.digest).where(m.c.pk == message_pk))
    ).first()
    if row is None:
        return None
    return Stored(bytes(row.wire), json.loads(row.receipt), bytes(row.digest))


async def update_entry(conn: AsyncConnection, entry_pk: int, values: dict[str, Any]) -> None:
    await conn.execute(update(e).where(e.c.pk == entry_pk).values(**values))


# --- deleting ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Purged:
    entries: int = 0
    messages: int = 0
    blobs: int = 0

    def __add__(self, other: Purged) -> Purged:
        return Purged(
            self.entries + other.entries, self.messages + other.messages, self.blobs + other.blobs
        )


def _referrers(table: Table) -> list[tuple[Table, Column[Any], Column[Any]]]:
    """Every (table, column, referenced column) whose foreign key points into ``table``."""
    found = []
    for other in metadata.sorted_tables:
        for fk in other.foreign_keys:
            if fk.column.table is table and other is not table:
                found.append((other, fk.parent, fk.column))
    return found


Keys = Sequence[Any] | Select[Any]


async def _delete_rows(
    conn: AsyncConnection, table: Table, column: Column[Any], keys: Keys, depth: int = 0
) -> int:
    """Delete the rows of ``table`` whose ``column`` is in ``keys``, after the rows that
    reference them (NOT NULL references are deleted, nullable ones cleared)."""
    if depth > 5:  # pragma: no cover - the schema has no such chains
        raise RuntimeError("foreign keys nested too deeply")
    for child, child_col, parent_col in _referrers(table):
        parent_keys: Keys = (
            keys if parent_col is column else select(parent_col).where(column.in_(keys))
        )
        if child_col.nullable:
            await conn.execute(
                update(child).where(child_col.in_(parent_keys)).values({child_col.name: None})
            )
        else:
            await _delete_rows(conn, child, child_col, parent_keys, depth + 1)
    result = await conn.execute(delete(table).where(column.in_(keys)))
    return int(result.rowcount or 0)


async def lock_messages(conn: AsyncConnection, message_pks: Collection[int]) -> list[int]:
    """Lock these messages (PostgreSQL ``FOR UPDATE``, in primary-key order); returns those
    that still exist. Every deletion takes these locks before it touches entries, so two
    deletions (a user's, the collector's) wait for each other instead of deadlocking."""
    wanted = sorted(set(message_pks))
    if not wanted:
        return []
    rows = await conn.execute(
        select(m.c.pk).where(m.c.pk.in_(wanted)).order_by(m.c.pk).with_for_update()
    )
    return [int(r[0]) for r in rows]


async def delete_entry(conn: AsyncConnection, entry_pk: int) -> bool:
    result = await conn.execute(delete(e).where(e.c.pk == entry_pk))
    return bool(result.rowcount)


async def delete_trash_entries(conn: AsyncConnection, chosen: Sequence[EntryRow]) -> int:
    """Delete these entries if they are still in the trash since the same time (a user may
    have restored one since it was chosen)."""
    removed = 0
    for x in chosen:
        result = await conn.execute(
            delete(e).where(e.c.pk == x.pk, e.c.folder == "trash", e.c.moved == x.moved)
        )
        removed += int(result.rowcount or 0)
    return removed


async def delete_entries_of(conn: AsyncConnection, message_pks: Collection[int]) -> int:
    if not message_pks:
        return 0
    result = await conn.execute(delete(e).where(e.c.message_pk.in_(sorted(set(message_pks)))))
    return int(result.rowcount or 0)


async def mailboxes_of(conn: AsyncConnection, message_pks: Collection[int]) -> list[str]:
    """The mailboxes holding entries of these messages."""
    if not message_pks:
        return []
    rows = await conn.execute(
        select(e.c.mailbox_id).where(e.c.message_pk.in_(sorted(set(message_pks)))).distinct()
    )
    return sorted(r[0] for r in rows)


async def purge_orphans(conn: AsyncConnection, message_pks: Collection[int]) -> Purged:
    """Delete those of ``message_pks`` that no mailbox entry references any more, with
    their blob links and blob rows (and every other row that references them).

    Takes the message locks itself (a no-op if the caller holds them already) and looks
    at the entries only then: an entry another transaction removed meanwhile has
    committed by the time the lock is ours, so the last remover always sees "none left".
    """
    locked = await lock_messages(conn, message_pks)
    if not locked:
        return Purged()
    held = {
        int(r[0])
        for r in await conn.execute(
            select(e.c.message_pk).where(e.c.message_pk.in_(locked)).distinct()
        )
    }
    orphans = [pk for pk in locked if pk not in held]
    if not orphans:
        return Purged()
    blob_ids = sorted(
        r[0]
        for r in await conn.execute(
            select(message_blobs.c.blob_id).where(message_blobs.c.message_pk.in_(orphans))
        )
    )
    gone = await _delete_rows(conn, m, m.c.pk, orphans)
    blob_rows = await _delete_rows(conn, blobs, blobs.c.id, blob_ids) if blob_ids else 0
    return Purged(0, gone, blob_rows)


# --- retention ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class RuleRow:
    org_id: str
    delete_after_days: int | None
    trash_days: int
    updated: int
    updated_by: str | None


def _rule(row: Any) -> RuleRow:
    return RuleRow(row.org_id, row.delete_after_days, row.trash_days, row.updated, row.updated_by)


async def rule_of(conn: AsyncConnection, org_id: str) -> RuleRow | None:
    row = (await conn.execute(select(retention).where(retention.c.org_id == org_id))).first()
    return None if row is None else _rule(row)


async def all_rules(conn: AsyncConnection) -> list[RuleRow]:
    rows = await conn.execute(select(retention).order_by(retention.c.org_id))
    return [_rule(r) for r in rows]


async def put_rule(conn: AsyncConnection, rule: RuleRow) -> None:
    values = {
        "delete_after_days": rule.delete_after_days,
        "trash_days": rule.trash_days,
        "updated": rule.updated,
        "updated_by": rule.updated_by,
    }
    done = await conn.execute(
        update(retention).where(retention.c.org_id == rule.org_id).values(**values)
    )
    if not done.rowcount:
        await conn.execute(retention.insert().values(org_id=rule.org_id, **values))


def expired_messages_query(org_id: str, cutoff: int, limit: int) -> Select[Any]:
    return (
        select(m.c.pk)
        .where(m.c.org_id == org_id, m.c.accepted < cutoff)
        .order_by(m.c.accepted, m.c.pk)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )


async def expired_messages(
    conn: AsyncConnection, org_id: str, cutoff: int, limit: int
) -> list[int]:
    """Up to ``limit`` of the organisation's messages accepted before ``cutoff``, oldest
    first (a range of ``ix_messages_org_id_accepted``), claimed: PostgreSQL locks them and
    another collector skips them."""
    rows = await conn.execute(expired_messages_query(org_id, cutoff, limit))
    return [int(r[0]) for r in rows]


def expired_trash_query(now: int, *, default_days: int, min_days: int, limit: int) -> Select[Any]:
    org = func.coalesce(teams.c.org_id, accounts.c.org_id)
    days = func.coalesce(retention.c.trash_days, literal(default_days))
    return (
        select(*_ENTRY_COLUMNS)
        .select_from(
            e.join(m, m.c.pk == e.c.message_pk)
            .outerjoin(teams, teams.c.id == e.c.mailbox_id)
            .outerjoin(accounts, accounts.c.id == e.c.mailbox_id)
            .outerjoin(retention, retention.c.org_id == org)
        )
        .where(
            e.c.folder == "trash",
            e.c.moved.is_not(None),
            e.c.moved < now - min_days * DAY_MS,
            # typed: PostgreSQL would take a bare Python int here for a 32-bit parameter
            e.c.moved < literal(now, BigInteger()) - days * literal(DAY_MS, BigInteger()),
        )
        .order_by(e.c.moved, e.c.pk)
        .limit(limit)
    )


async def expired_trash(
    conn: AsyncConnection, now: int, *, default_days: int, min_days: int, limit: int
) -> list[EntryRow]:
    """Up to ``limit`` trash entries whose time is up: moved to the trash more than the
    ``trash_days`` of their mailbox's organisation ago (``default_days`` without a rule or
    an organisation). ``min_days`` (the smallest rule) bounds the range read from the
    partial index ``ix_mailbox_entries_trash_moved``. Not locked: the caller locks the
    messages, then deletes only entries still in the trash since the same time."""
    q = expired_trash_query(now, default_days=default_days, min_days=min_days, limit=limit)
    return [_entry(r) for r in await conn.execute(q)]
