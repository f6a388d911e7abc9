"""Named queries for invitations (single-use activation authorisers)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from postbox.mailbox.db.schema import accounts, invitations


@dataclass(frozen=True)
class InvitationRow:
    id: str
    org_id: str | None
    kind: str
    team_id: str | None
    authoriser: bytes  # the peppered act_auth, never act_auth itself
    inviter_id: str | None
    created: int
    expires: int
    used: int | None
    account_id: str | None
    act_mac: bytes | None
    verified: int | None


def _row(row: Any) -> InvitationRow:
    return InvitationRow(
        id=row.id,
        org_id=row.org_id,
        kind=row.kind,
        team_id=row.team_id,
        authoriser=bytes(row.authoriser),
        inviter_id=row.inviter_id,
        created=row.created,
        expires=row.expires,
        used=row.used,
        account_id=row.account_id,
        act_mac=None if row.act_mac is None else bytes(row.act_mac),
        verified=row.verified,
    )


async def insert(
    conn: AsyncConnection,
    *,
    invitation_id: str,
    org_id: str,
    kind: str,
    team_id: str | None,
    authoriser: bytes,
    inviter_id: str | None,
    created: int,
    expires: int,
) -> None:
    await conn.execute(
        invitations.insert().values(
            id=invitation_id,
            org_id=org_id,
            kind=kind,
            team_id=team_id,
            authoriser=authoriser,
            inviter_id=inviter_id,
            created=created,
            expires=expires,
        )
    )


async def get(conn: AsyncConnection, invitation_id: str) -> InvitationRow | None:
    row = (await conn.execute(select(invitations).where(invitations.c.id == invitation_id))).first()
    return None if row is None else _row(row)


async def authoriser_exists(conn: AsyncConnection, authoriser: bytes) -> bool:
    row = (
        await conn.execute(select(invitations.c.id).where(invitations.c.authoriser == authoriser))
    ).first()
    return row is not None


async def by_authoriser(conn: AsyncConnection, authoriser: bytes) -> InvitationRow | None:
    """The invitation whose stored (peppered) authoriser is ``authoriser`` (unique index)."""
    row = (
        await conn.execute(select(invitations).where(invitations.c.authoriser == authoriser))
    ).first()
    return None if row is None else _row(row)


async def claim(conn: AsyncConnection, invitation_id: str, now: int) -> bool:
    """Mark an unused, unexpired invitation used; False if another activation was first.

    A conditional UPDATE, so two concurrent activations cannot both claim it: on
    PostgreSQL the second waits for the first's row lock and then finds ``used`` set.
    """
    result = await conn.execute(
        update(invitations)
        .where(
            invitations.c.id == invitation_id,
            invitations.c.used.is_(None),
            invitations.c.expires > now,
        )
        .values(used=now)
    )
    return result.rowcount == 1


async def complete(
    conn: AsyncConnection, invitation_id: str, *, account_id: str, act_mac: bytes | None
) -> None:
    await conn.execute(
        update(invitations)
        .where(invitations.c.id == invitation_id)
        .values(account_id=account_id, act_mac=act_mac)
    )


async def mark_verified(conn: AsyncConnection, invitation_id: str, now: int) -> None:
    await conn.execute(
        update(invitations)
        .where(invitations.c.id == invitation_id, invitations.c.verified.is_(None))
        .values(verified=now)
    )


async def mark_identity_verified(conn: AsyncConnection, account_id: str) -> None:
    """The inviter checked the activation MAC: the account's identity is verified."""
    await conn.execute(
        update(accounts).where(accounts.c.id == account_id).values(identity_verified=True)
    )
