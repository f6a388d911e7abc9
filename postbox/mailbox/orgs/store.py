"""Named queries for organisations (and the one id namespace that orgs, teams and accounts share).

Signed objects (the org root) are stored as their canonical JSON text and returned parsed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import exists, select, union_all, update
from sqlalchemy.ext.asyncio import AsyncConnection

from postbox.crypto.encoding import cj, parse_canonical
from postbox.mailbox.db.schema import accounts, certificates, log_leaves, organisations, teams


@dataclass(frozen=True)
class OrgRow:
    id: str
    names: dict[str, str]
    notification_name: str
    self_registration: bool
    #: citizens may write to the org's team mailboxes (replies in threads always)
    citizens_may_write: bool
    root: dict[str, Any] | None  # the signed org root as registered
    root_fingerprint: str | None
    created: int


def _text(value: Any) -> str:
    return cj(value).decode("utf-8")


def _parse(text: str) -> Any:
    return parse_canonical(text.encode("utf-8"))


def _org(row: Any) -> OrgRow:
    return OrgRow(
        id=row.id,
        names=_parse(row.names),
        notification_name=row.notification_name,
        self_registration=bool(row.self_registration),
        citizens_may_write=bool(row.citizens_may_write),
        root=None if row.root is None else _parse(row.root),
        root_fingerprint=row.root_fingerprint,
        created=row.created,
    )


# --- organisations -------------------------------------------------------------------------------
async def insert_org(
    conn: AsyncConnection,
    *,
    org_id: str,
    names: dict[str, str],
    notification_name: str,
    self_registration: bool,
    created: int,
) -> None:
    await conn.execute(
        organisations.insert().values(
            id=org_id,
            names=_text(names),
            notification_name=notification_name,
            self_registration=self_registration,
            root=None,
            root_fingerprint=None,
            created=created,
        )
    )


async def get_org(conn: AsyncConnection, org_id: str) -> OrgRow | None:
    row = (await conn.execute(select(organisations).where(organisations.c.id == org_id))).first()
    return None if row is None else _org(row)


async def list_orgs(conn: AsyncConnection) -> list[OrgRow]:
    rows = await conn.execute(
        select(organisations).order_by(organisations.c.created, organisations.c.id)
    )
    return [_org(r) for r in rows]


async def set_root(
    conn: AsyncConnection, org_id: str, *, root: dict[str, Any], fingerprint: str
) -> bool:
    """Store the signed org root once; False if the org already has one."""
    result = await conn.execute(
        update(organisations)
        .where(organisations.c.id == org_id, organisations.c.root.is_(None))
        .values(root=_text(root), root_fingerprint=fingerprint)
    )
    return result.rowcount == 1


async def lock_org(conn: AsyncConnection, org_id: str) -> OrgRow | None:
    """The organisation's row, locked until the transaction ends (PostgreSQL; SQLite writers
    are serial): a settings change reads the value it replaces under the lock."""
    row = (
        await conn.execute(
            select(organisations).where(organisations.c.id == org_id).with_for_update()
        )
    ).first()
    return None if row is None else _org(row)


async def set_citizens_may_write(conn: AsyncConnection, org_id: str, value: bool) -> None:
    await conn.execute(
        update(organisations).where(organisations.c.id == org_id).values(citizens_may_write=value)
    )


# --- ids -----------------------------------------------------------------------------------------
async def subject_taken(conn: AsyncConnection, subject: str) -> bool:
    """Is ``subject`` already an org, team, account or log subject? Ids share one namespace:
    a mailbox id is an account id or a team id, and a log chain belongs to one of them."""
    probes = union_all(
        select(organisations.c.id.label("x")).where(organisations.c.id == subject),
        select(teams.c.id.label("x")).where(teams.c.id == subject),
        select(accounts.c.id.label("x")).where(accounts.c.id == subject),
        select(certificates.c.subject.label("x")).where(certificates.c.subject == subject),
        select(log_leaves.c.subject.label("x")).where(log_leaves.c.subject == subject),
    ).subquery()
    return bool((await conn.execute(select(exists(select(probes.c.x))))).scalar())
