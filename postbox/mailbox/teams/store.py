"""Named queries for team mailboxes, their members and their opaque key wraps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from postbox.crypto.encoding import cj, parse_canonical
from postbox.mailbox.db.schema import team_members, team_wraps, teams


@dataclass(frozen=True)
class TeamRow:
    id: str
    org_id: str
    names: dict[str, str]
    key_kid: str | None
    rotation_pending: bool
    created: int


@dataclass(frozen=True)
class MemberRow:
    account_id: str
    added: int
    removed: int | None


def _team(row: Any) -> TeamRow:
    return TeamRow(
        id=row.id,
        org_id=row.org_id,
        names=parse_canonical(row.names.encode("utf-8")),
        key_kid=row.key_kid,
        rotation_pending=bool(row.rotation_pending),
        created=row.created,
    )


async def insert_team(
    conn: AsyncConnection, *, team_id: str, org_id: str, names: dict[str, str], created: int
) -> None:
    await conn.execute(
        teams.insert().values(
            id=team_id,
            org_id=org_id,
            names=cj(names).decode("utf-8"),
            key_kid=None,
            rotation_pending=False,
            created=created,
        )
    )


async def get_team(conn: AsyncConnection, team_id: str) -> TeamRow | None:
    row = (await conn.execute(select(teams).where(teams.c.id == team_id))).first()
    return None if row is None else _team(row)


async def lock_team(conn: AsyncConnection, team_id: str) -> TeamRow | None:
    """The team row, locked until the transaction ends (PostgreSQL; SQLite writers are serial):
    membership and key changes of one team are decided one at a time."""
    row = (await conn.execute(select(teams).where(teams.c.id == team_id).with_for_update())).first()
    return None if row is None else _team(row)


async def list_teams(conn: AsyncConnection, org_id: str) -> list[TeamRow]:
    rows = await conn.execute(
        select(teams).where(teams.c.org_id == org_id).order_by(teams.c.created, teams.c.id)
    )
    return [_team(r) for r in rows]


async def member_counts(conn: AsyncConnection, org_id: str) -> dict[str, int]:
    rows = await conn.execute(
        select(team_members.c.team_id, func.count())
        .select_from(team_members.join(teams, teams.c.id == team_members.c.team_id))
        .where(teams.c.org_id == org_id, team_members.c.removed.is_(None))
        .group_by(team_members.c.team_id)
    )
    return {r[0]: int(r[1]) for r in rows}


async def set_key(conn: AsyncConnection, team_id: str, kid: str) -> None:
    await conn.execute(
        update(teams).where(teams.c.id == team_id).values(key_kid=kid, rotation_pending=False)
    )


async def set_rotation_pending(conn: AsyncConnection, team_id: str) -> None:
    await conn.execute(update(teams).where(teams.c.id == team_id).values(rotation_pending=True))


# --- members -------------------------------------------------------------------------------------
async def current_members(conn: AsyncConnection, team_id: str) -> list[str]:
    rows = await conn.execute(
        select(team_members.c.account_id)
        .where(team_members.c.team_id == team_id, team_members.c.removed.is_(None))
        .order_by(team_members.c.account_id)
    )
    return [r[0] for r in rows]


async def get_member(conn: AsyncConnection, team_id: str, account_id: str) -> MemberRow | None:
    row = (
        await conn.execute(
            select(team_members).where(
                team_members.c.team_id == team_id, team_members.c.account_id == account_id
            )
        )
    ).first()
    return None if row is None else MemberRow(row.account_id, row.added, row.removed)


async def add_member(conn: AsyncConnection, team_id: str, account_id: str, now: int) -> None:
    """Make ``account_id`` a current member (a former member is re-added in place)."""
    if await get_member(conn, team_id, account_id) is None:
        await conn.execute(
            team_members.insert().values(
                team_id=team_id, account_id=account_id, added=now, removed=None
            )
        )
    else:
        await conn.execute(
            update(team_members)
            .where(team_members.c.team_id == team_id, team_members.c.account_id == account_id)
            .values(added=now, removed=None)
        )


async def remove_member(conn: AsyncConnection, team_id: str, account_id: str, now: int) -> None:
    await conn.execute(
        update(team_members)
        .where(team_members.c.team_id == team_id, team_members.c.account_id == account_id)
        .values(removed=now)
    )


# --- wraps ---------------------------------------------------------------------------------------
async def put_wrap(
    conn: AsyncConnection,
    *,
    team_id: str,
    team_kid: str,
    member_id: str,
    member_kid: str,
    by_id: str,
    wrap: dict[str, Any],
    now: int,
) -> None:
    """Store one signed wrap, replacing an earlier wrap of the same team key for that member."""
    await conn.execute(
        delete(team_wraps).where(
            team_wraps.c.team_id == team_id,
            team_wraps.c.team_kid == team_kid,
            team_wraps.c.member_id == member_id,
        )
    )
    await conn.execute(
        team_wraps.insert().values(
            team_id=team_id,
            team_kid=team_kid,
            member_id=member_id,
            member_kid=member_kid,
            by_id=by_id,
            wrap=cj(wrap).decode("utf-8"),
            created=now,
        )
    )


async def delete_member_wraps(conn: AsyncConnection, team_id: str, member_id: str) -> None:
    await conn.execute(
        delete(team_wraps).where(
            team_wraps.c.team_id == team_id, team_wraps.c.member_id == member_id
        )
    )


async def wraps_of(conn: AsyncConnection, team_id: str, member_id: str) -> list[dict[str, Any]]:
    rows = await conn.execute(
        select(team_wraps.c.wrap)
        .where(team_wraps.c.team_id == team_id, team_wraps.c.member_id == member_id)
        .order_by(team_wraps.c.created, team_wraps.c.team_kid)
    )
    return [parse_canonical(r[0].encode("utf-8")) for r in rows]
