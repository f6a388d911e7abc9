"""Named queries for published procedures (signed form definitions, stored as served)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import exists, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from postbox.crypto.encoding import cj, parse_canonical
from postbox.mailbox.db.schema import organisations, procedures


@dataclass(frozen=True)
class ProcedureRow:
    org_id: str
    id: str
    version: int
    signed: dict[str, Any]  # {"procedure","sig","by"} exactly as published
    by_kid: str
    digest: bytes
    published: int
    published_by: str


def _row(r: Any) -> ProcedureRow:
    return ProcedureRow(
        org_id=r.org_id,
        id=r.id,
        version=r.version,
        signed=parse_canonical(r.signed.encode("utf-8")),
        by_kid=r.by_kid,
        digest=bytes(r.digest),
        published=r.published,
        published_by=r.published_by,
    )


async def lock_org(conn: AsyncConnection, org_id: str) -> bool:
    """Lock the organisation's row until the transaction ends (PostgreSQL; SQLite writers are
    serial): publications of one org are decided one at a time, so versions only grow.
    False if the organisation does not exist."""
    row = (
        await conn.execute(
            select(organisations.c.id).where(organisations.c.id == org_id).with_for_update()
        )
    ).first()
    return row is not None


async def org_exists(conn: AsyncConnection, org_id: str) -> bool:
    query = select(exists().where(organisations.c.id == org_id))
    return bool((await conn.execute(query)).scalar())


async def latest_version(conn: AsyncConnection, org_id: str, procedure_id: str) -> int | None:
    value = (
        await conn.execute(
            select(func.max(procedures.c.version)).where(
                procedures.c.org_id == org_id, procedures.c.id == procedure_id
            )
        )
    ).scalar()
    return None if value is None else int(value)


async def insert(
    conn: AsyncConnection,
    *,
    org_id: str,
    procedure_id: str,
    version: int,
    signed: dict[str, Any],
    by_kid: str,
    digest: bytes,
    now: int,
    by_id: str,
) -> None:
    await conn.execute(
        procedures.insert().values(
            org_id=org_id,
            id=procedure_id,
            version=version,
            signed=cj(signed).decode("utf-8"),
            by_kid=by_kid,
            digest=digest,
            published=now,
            published_by=by_id,
        )
    )


async def get(
    conn: AsyncConnection, org_id: str, procedure_id: str, version: int
) -> ProcedureRow | None:
    row = (
        await conn.execute(
            select(procedures).where(
                procedures.c.org_id == org_id,
                procedures.c.id == procedure_id,
                procedures.c.version == version,
            )
        )
    ).first()
    return None if row is None else _row(row)


async def is_published(conn: AsyncConnection, org_id: str, procedure_id: str, version: int) -> bool:
    query = select(
        exists().where(
            procedures.c.org_id == org_id,
            procedures.c.id == procedure_id,
            procedures.c.version == version,
        )
    )
    return bool((await conn.execute(query)).scalar())


async def latest_of_org(conn: AsyncConnection, org_id: str) -> list[ProcedureRow]:
    """The newest version of each of the organisation's procedures, by id."""
    newest = (
        select(procedures.c.id, func.max(procedures.c.version).label("version"))
        .where(procedures.c.org_id == org_id)
        .group_by(procedures.c.id)
        .subquery()
    )
    rows = await conn.execute(
        select(procedures)
        .join(
            newest,
            (procedures.c.id == newest.c.id) & (procedures.c.version == newest.c.version),
        )
        .where(procedures.c.org_id == org_id)
        .order_by(procedures.c.id)
    )
    return [_row(r) for r in rows]
