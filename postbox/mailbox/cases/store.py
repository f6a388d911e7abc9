"""Named queries for cases, their history, reference counters and reference patterns.

Never raises HTTP errors; the rules live in :mod:`postbox.mailbox.cases.effects` (the send
path) and :mod:`postbox.mailbox.cases.service` (the routes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, exists, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from postbox.mailbox.db.schema import (
    case_counters,
    case_history,
    case_settings,
    cases,
    legal_settings,
    mailbox_entries,
    messages,
)


@dataclass(frozen=True)
class CaseRow:
    pk: int
    id: str
    org_id: str
    team_id: str
    citizen_id: str
    procedure_id: str
    procedure_version: int
    reference: str
    status: str
    opened_from: str
    opened_id: str
    created: int
    updated: int


@dataclass(frozen=True)
class HistoryRow:
    status: str
    at: int
    by_id: str
    via: str
    message_from: str | None
    message_id: str | None


@dataclass(frozen=True)
class CaseMessageRow:
    from_id: str
    id: str
    kind: str
    signer_id: str
    accepted: int


def _case(row: Any) -> CaseRow:
    return CaseRow(
        pk=row.pk,
        id=row.id,
        org_id=row.org_id,
        team_id=row.team_id,
        citizen_id=row.citizen_id,
        procedure_id=row.procedure_id,
        procedure_version=row.procedure_version,
        reference=row.reference,
        status=row.status,
        opened_from=row.opened_from,
        opened_id=row.opened_id,
        created=row.created,
        updated=row.updated,
    )


# --- cases ---------------------------------------------------------------------------------------
async def get_case(conn: AsyncConnection, case_id: str, *, lock: bool = False) -> CaseRow | None:
    """The case, optionally locked until the transaction ends (PostgreSQL; SQLite writers
    are serial), so that status changes of one case are decided one at a time."""
    query = select(cases).where(cases.c.id == case_id)
    if lock:
        query = query.with_for_update()
    row = (await conn.execute(query)).first()
    return None if row is None else _case(row)


async def insert_case(
    conn: AsyncConnection,
    *,
    case_id: str,
    org_id: str,
    team_id: str,
    citizen_id: str,
    procedure_id: str,
    procedure_version: int,
    reference: str,
    status: str,
    opened_from: str,
    opened_id: str,
    now: int,
) -> int:
    result = await conn.execute(
        cases.insert()
        .values(
            id=case_id,
            org_id=org_id,
            team_id=team_id,
            citizen_id=citizen_id,
            procedure_id=procedure_id,
            procedure_version=procedure_version,
            reference=reference,
            status=status,
            opened_from=opened_from,
            opened_id=opened_id,
            created=now,
            updated=now,
        )
        .returning(cases.c.pk)
    )
    return int(result.scalar_one())


async def set_status(
    conn: AsyncConnection, case_pk: int, *, expected: str, status: str, now: int
) -> bool:
    """Move the case from ``expected`` to ``status``; False if it is no longer ``expected``."""
    result = await conn.execute(
        update(cases)
        .where(cases.c.pk == case_pk, cases.c.status == expected)
        .values(status=status, updated=now)
    )
    return result.rowcount == 1


async def add_history(
    conn: AsyncConnection,
    *,
    case_pk: int,
    status: str,
    at: int,
    by_id: str,
    via: str,
    message: tuple[str, str] | None,
) -> None:
    await conn.execute(
        case_history.insert().values(
            case_pk=case_pk,
            status=status,
            at=at,
            by_id=by_id,
            via=via,
            message_from=None if message is None else message[0],
            message_id=None if message is None else message[1],
        )
    )


async def history(conn: AsyncConnection, case_pk: int) -> list[HistoryRow]:
    rows = await conn.execute(
        select(case_history).where(case_history.c.case_pk == case_pk).order_by(case_history.c.pk)
    )
    return [HistoryRow(r.status, r.at, r.by_id, r.via, r.message_from, r.message_id) for r in rows]


async def case_messages(
    conn: AsyncConnection, case_id: str, mailbox_id: str, limit: int
) -> list[CaseMessageRow]:
    """The newest ``limit`` messages of the case that ``mailbox_id`` holds, oldest first."""
    rows = await conn.execute(
        select(
            messages.c.from_id,
            messages.c.id,
            messages.c.kind,
            messages.c.signer_id,
            messages.c.accepted,
            mailbox_entries.c.pk,
        )
        .select_from(mailbox_entries.join(messages, messages.c.pk == mailbox_entries.c.message_pk))
        .where(mailbox_entries.c.mailbox_id == mailbox_id, mailbox_entries.c.case_id == case_id)
        .order_by(mailbox_entries.c.pk.desc())
        .limit(limit)
    )
    found = [CaseMessageRow(r.from_id, r.id, r.kind, r.signer_id, r.accepted) for r in rows]
    found.reverse()
    return found


async def list_cases(
    conn: AsyncConnection,
    *,
    citizen_id: str | None,
    team_ids: Sequence[str],
    status: str | None,
    before: int | None,
    limit: int,
) -> list[CaseRow]:
    """Cases of a citizen (``citizen_id``) and/or of teams (``team_ids``), newest first (keyset
    pagination on ``pk``: the next page starts below the last ``pk`` returned)."""
    owners = []
    if citizen_id is not None:
        owners.append(cases.c.citizen_id == citizen_id)
    if len(team_ids) == 1:
        owners.append(cases.c.team_id == team_ids[0])
    elif team_ids:
        owners.append(cases.c.team_id.in_(list(team_ids)))
    if not owners:
        return []
    conditions = [or_(*owners)]
    if status is not None:
        conditions.append(cases.c.status == status)
    if before is not None:
        conditions.append(cases.c.pk < before)
    rows = await conn.execute(
        select(cases).where(and_(*conditions)).order_by(cases.c.pk.desc()).limit(limit)
    )
    return [_case(r) for r in rows]


# --- reference numbers ---------------------------------------------------------------------------
async def next_number(conn: AsyncConnection, org_id: str, year: int) -> int:
    """Hand out the organisation's next running number for ``year``, atomically.

    Insert-if-missing (``ON CONFLICT DO NOTHING``) then increment with ``UPDATE … RETURNING``:
    on PostgreSQL the update locks the counter row until the transaction ends, so concurrent
    allocations (in any process) queue and each sees the other's committed value; SQLite
    writers are serial anyway. A rolled-back transaction gives its number back.
    """
    values = {"org_id": org_id, "year": year, "last": 0}
    if conn.dialect.name == "postgresql":
        await conn.execute(pg_insert(case_counters).values(values).on_conflict_do_nothing())
    else:
        await conn.execute(sqlite_insert(case_counters).values(values).on_conflict_do_nothing())
    result = await conn.execute(
        update(case_counters)
        .where(case_counters.c.org_id == org_id, case_counters.c.year == year)
        .values(last=case_counters.c.last + 1)
        .returning(case_counters.c.last)
    )
    return int(result.scalar_one())


async def reference_taken(conn: AsyncConnection, org_id: str, reference: str) -> bool:
    query = select(exists().where(cases.c.org_id == org_id, cases.c.reference == reference))
    return bool((await conn.execute(query)).scalar())


async def get_pattern(conn: AsyncConnection, org_id: str) -> str | None:
    row = (
        await conn.execute(select(case_settings.c.pattern).where(case_settings.c.org_id == org_id))
    ).first()
    return None if row is None else str(row[0])


async def put_pattern(
    conn: AsyncConnection, org_id: str, *, pattern: str, now: int, by_id: str
) -> None:
    values = {"org_id": org_id, "pattern": pattern, "updated": now, "updated_by": by_id}
    changes = {"pattern": pattern, "updated": now, "updated_by": by_id}
    if conn.dialect.name == "postgresql":
        stmt: Any = pg_insert(case_settings).values(values)
    else:
        stmt = sqlite_insert(case_settings).values(values)
    await conn.execute(stmt.on_conflict_do_update(index_elements=["org_id"], set_=changes))


async def org_time_zone(conn: AsyncConnection, org_id: str) -> str | None:
    """The organisation's time zone from its legal settings (delivery feature), if set."""
    row = (
        await conn.execute(
            select(legal_settings.c.time_zone).where(legal_settings.c.org_id == org_id)
        )
    ).first()
    return None if row is None else str(row[0])
