"""Mailboxes: who a mailbox is, and which mailboxes an account may act for.

A mailbox id is either an account id (a citizen's or a staff member's personal mailbox,
PROTOCOL.md §1) or a team id (a team mailbox, Funktionspostfach). An account acts for its
own mailbox and, while it is a current member, for each of its teams. These named queries
are shared by every feature that checks access to a mailbox (sending, listing, fetching,
blobs, live events); they never raise HTTP errors.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from postbox.mailbox.db.schema import accounts, team_members, teams

MailboxKind = Literal["account", "team"]


@dataclass(frozen=True)
class Mailbox:
    id: str
    kind: MailboxKind
    org_id: str | None
    #: the account's kind (citizen, caseworker, connector, admin, operator) or "team"
    role: str
    active: bool  # an account that is not disabled; teams are always active


async def mailboxes(conn: AsyncConnection, ids: Collection[str]) -> dict[str, Mailbox]:
    """The mailboxes among ``ids`` that exist (unknown ids are simply absent)."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    found: dict[str, Mailbox] = {}
    rows = await conn.execute(
        select(accounts.c.id, accounts.c.kind, accounts.c.org_id, accounts.c.status).where(
            accounts.c.id.in_(wanted)
        )
    )
    for r in rows:
        found[r.id] = Mailbox(r.id, "account", r.org_id, r.kind, r.status == "active")
    rest = [i for i in wanted if i not in found]
    if rest:
        rows = await conn.execute(select(teams.c.id, teams.c.org_id).where(teams.c.id.in_(rest)))
        for r in rows:
            found[r.id] = Mailbox(r.id, "team", r.org_id, "team", True)
    return found


async def teams_of(conn: AsyncConnection, account_id: str) -> list[str]:
    """The teams ``account_id`` is a current member of."""
    rows = await conn.execute(
        select(team_members.c.team_id)
        .where(team_members.c.account_id == account_id, team_members.c.removed.is_(None))
        .order_by(team_members.c.team_id)
    )
    return [r[0] for r in rows]


async def acting_for(conn: AsyncConnection, account_id: str) -> list[str]:
    """Every mailbox ``account_id`` may act for: its own, then its teams."""
    return [account_id, *await teams_of(conn, account_id)]


async def may_act_for(conn: AsyncConnection, account_id: str, mailbox_id: str) -> bool:
    if mailbox_id == account_id:
        return True
    row = (
        await conn.execute(
            select(team_members.c.team_id).where(
                team_members.c.team_id == mailbox_id,
                team_members.c.account_id == account_id,
                team_members.c.removed.is_(None),
            )
        )
    ).first()
    return row is not None


async def members_of(conn: AsyncConnection, team_ids: Iterable[str]) -> dict[str, list[str]]:
    """Current members of each team (teams without members map to an empty list)."""
    wanted = sorted(set(team_ids))
    result: dict[str, list[str]] = {t: [] for t in wanted}
    if not wanted:
        return result
    rows = await conn.execute(
        select(team_members.c.team_id, team_members.c.account_id)
        .where(team_members.c.team_id.in_(wanted), team_members.c.removed.is_(None))
        .order_by(team_members.c.team_id, team_members.c.account_id)
    )
    for r in rows:
        result[r.team_id].append(r.account_id)
    return result


async def accounts_behind(
    conn: AsyncConnection, mailbox_ids: Iterable[str]
) -> dict[str, list[str]]:
    """The accounts that read each mailbox: the account itself, or a team's current members
    (used to address notifications and live events)."""
    ids = sorted(set(mailbox_ids))
    boxes = await mailboxes(conn, ids)
    team_ids = [i for i in ids if i in boxes and boxes[i].kind == "team"]
    members = await members_of(conn, team_ids)
    result: dict[str, list[str]] = {}
    for i in ids:
        box = boxes.get(i)
        if box is None:
            result[i] = []
        elif box.kind == "team":
            result[i] = members[i]
        else:
            result[i] = [i]
    return result
