"""Named queries for team mailbox cards: a team with its organisation, and which teams a
citizen has exchanged mail with."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, union
from sqlalchemy.ext.asyncio import AsyncConnection

from postbox.crypto.encoding import parse_canonical
from postbox.mailbox.db.schema import (
    cases,
    mailbox_entries,
    messages,
    organisations,
    teams,
    thread_mailboxes,
)


@dataclass(frozen=True)
class CardRow:
    team_id: str
    names: dict[str, str]
    org_id: str
    org_names: dict[str, str]
    citizens_may_write: bool


_CARDS = select(
    teams.c.id,
    teams.c.names,
    teams.c.org_id,
    organisations.c.names.label("org_names"),
    organisations.c.citizens_may_write,
).select_from(teams.join(organisations, organisations.c.id == teams.c.org_id))


def _card(row: Any) -> CardRow:
    return CardRow(
        team_id=row.id,
        names=parse_canonical(row.names.encode("utf-8")),
        org_id=row.org_id,
        org_names=parse_canonical(row.org_names.encode("utf-8")),
        citizens_may_write=bool(row.citizens_may_write),
    )


async def team_cards(conn: AsyncConnection, team_ids: Collection[str]) -> dict[str, CardRow]:
    """The teams among ``team_ids`` that exist, with their organisation (others are absent)."""
    wanted = sorted(set(team_ids))
    if not wanted:
        return {}
    rows = await conn.execute(_CARDS.where(teams.c.id.in_(wanted)))
    return {r.id: _card(r) for r in rows}


async def org_cards(conn: AsyncConnection, org_id: str) -> list[CardRow]:
    """Every team of the organisation, oldest first."""
    rows = await conn.execute(
        _CARDS.where(teams.c.org_id == org_id).order_by(teams.c.created, teams.c.id)
    )
    return [_card(r) for r in rows]


async def citizens_may_write(conn: AsyncConnection, org_id: str) -> bool | None:
    """The organisation's flag, or None if there is no such organisation."""
    row = (
        await conn.execute(
            select(organisations.c.citizens_may_write).where(organisations.c.id == org_id)
        )
    ).first()
    return None if row is None else bool(row[0])


async def exchanged_with(
    conn: AsyncConnection, account_id: str, mailbox_ids: Collection[str]
) -> set[str]:
    """The mailboxes among ``mailbox_ids`` that ``account_id`` has exchanged mail with: a
    party of one of its threads, the team of one of its cases, the sender of a message in
    its mailbox, or a mailbox holding a message its mailbox holds too (what it wrote).

    Each branch starts from the account's own rows (its thread memberships, cases and
    mailbox entries, all indexed by account or mailbox), so the cost follows the
    account's mail, not the size of a busy team's mailbox.
    """
    wanted = sorted(set(mailbox_ids))
    if not wanted:
        return set()
    mine, party = thread_mailboxes.alias("mine"), thread_mailboxes.alias("party")
    own, other = mailbox_entries.alias("own"), mailbox_entries.alias("other")
    query = union(
        select(party.c.mailbox_id.label("id"))
        .select_from(mine.join(party, party.c.thread_id == mine.c.thread_id))
        .where(mine.c.mailbox_id == account_id, party.c.mailbox_id.in_(wanted)),
        select(cases.c.team_id.label("id")).where(
            cases.c.citizen_id == account_id, cases.c.team_id.in_(wanted)
        ),
        select(messages.c.from_id.label("id"))
        .select_from(own.join(messages, messages.c.pk == own.c.message_pk))
        .where(own.c.mailbox_id == account_id, messages.c.from_id.in_(wanted)),
        select(other.c.mailbox_id.label("id"))
        .select_from(own.join(other, other.c.message_pk == own.c.message_pk))
        .where(own.c.mailbox_id == account_id, other.c.mailbox_id.in_(wanted)),
    )
    return {r[0] for r in await conn.execute(query)}
