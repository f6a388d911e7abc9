"""SQL of the notifications feature (never raises HTTP errors).

The ``outbox`` table is the queue (rows written by the send path in the message's
transaction; ``schema.py`` sections "mailbox" and ``[notifications]``). A row's life:

``pending`` → (:func:`claim`) ``sending`` → ``sent`` | back to ``pending`` (retry) | ``dead``;
or at claim time ``skipped`` (no verified address, account disabled) or ``dropped`` (the
message is gone). :func:`claim` takes due rows in one statement — PostgreSQL's ``FOR UPDATE
SKIP LOCKED`` in the sub-select lets several workers claim side by side; SQLite has one
writer, so the same ``UPDATE … WHERE pk IN (SELECT … LIMIT n) RETURNING`` is atomic there.
A ``sending`` row whose ``claimed_until`` passed (its worker crashed) is due again.
Every other write is one multi-row statement per batch.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, bindparam, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from postbox.crypto.encoding import parse_canonical
from postbox.mailbox.db.schema import (
    accounts,
    mailbox_entries,
    messages,
    organisations,
    outbox,
    team_members,
    teams,
)

STATES = ("pending", "sending", "sent", "dead", "skipped", "dropped")


@dataclass(frozen=True, slots=True)
class Claimed:
    pk: int
    account_id: str
    message_pk: int | None
    kind: str
    attempts: int  # attempts before this one
    mail_id: str | None  # None until the first claim assigns one


@dataclass(frozen=True, slots=True)
class Recipient:
    account_id: str
    active: bool
    language: str
    address: str | None  # a verified address, or None


@dataclass(frozen=True, slots=True)
class MessageRef:
    pk: int
    id: str
    from_id: str
    #: the sending mailbox's organisation: its neutral notification name and its names
    notification_name: str | None
    org_names: dict[str, str] | None


@dataclass(frozen=True, slots=True)
class OutboxRow:
    pk: int
    account_id: str
    message_from: str | None
    message_id: str | None
    kind: str
    state: str
    attempts: int
    created: int
    next_attempt: int
    done: int | None
    mail_id: str | None
    last_error: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "pk": self.pk,
            "account": self.account_id,
            "message": None
            if self.message_id is None
            else {"from": self.message_from, "id": self.message_id},
            "kind": self.kind,
            "state": self.state,
            "attempts": self.attempts,
            "created": self.created,
            "next_attempt": self.next_attempt,
            "done": self.done,
            "mail_id": self.mail_id,
            "last_error": self.last_error,
        }


# --- claiming ------------------------------------------------------------------------------------
async def claim(conn: AsyncConnection, *, now: int, until: int, limit: int) -> list[Claimed]:
    """Claim up to ``limit`` due rows (oldest due first) until ``until``."""
    due = or_(
        and_(outbox.c.state == "pending", outbox.c.next_attempt <= now),
        and_(outbox.c.state == "sending", outbox.c.claimed_until <= now),
    )
    pick = (
        select(outbox.c.pk)
        .where(due)
        .order_by(outbox.c.next_attempt, outbox.c.pk)
        .limit(limit)
        .with_for_update(skip_locked=True)  # PostgreSQL; SQLite compiles it to nothing
    )
    rows = await conn.execute(
        update(outbox)
        .where(outbox.c.pk.in_(pick.scalar_subquery()))
        .values(state="sending", claimed_until=until)
        .returning(
            outbox.c.pk,
            outbox.c.account_id,
            outbox.c.message_pk,
            outbox.c.kind,
            outbox.c.attempts,
            outbox.c.mail_id,
        )
    )
    found = [Claimed(r.pk, r.account_id, r.message_pk, r.kind, r.attempts, r.mail_id) for r in rows]
    return sorted(found, key=lambda c: c.pk)


async def set_mail_ids(conn: AsyncConnection, ids: dict[int, str]) -> None:
    """Record each row's Message-ID (commit before the first attempt; never changed)."""
    if not ids:
        return
    await conn.execute(
        update(outbox).where(outbox.c.pk == bindparam("b_pk")).values(mail_id=bindparam("b_id")),
        [{"b_pk": pk, "b_id": mail_id} for pk, mail_id in ids.items()],
    )


async def recipients(conn: AsyncConnection, account_ids: Collection[str]) -> dict[str, Recipient]:
    rows = await conn.execute(
        select(
            accounts.c.id,
            accounts.c.status,
            accounts.c.language,
            accounts.c.notification_address,
            accounts.c.notification_verified,
        ).where(accounts.c.id.in_(sorted(set(account_ids))))
    )
    return {
        r.id: Recipient(
            r.id,
            r.status == "active",
            r.language or "de",
            r.notification_address if r.notification_verified else None,
        )
        for r in rows
    }


async def message_refs(
    conn: AsyncConnection, message_pks: Collection[int]
) -> dict[int, MessageRef]:
    """The messages' public ids and the sending mailbox's organisation names."""
    wanted = sorted(set(message_pks))
    if not wanted:
        return {}
    found = (
        await conn.execute(
            select(messages.c.pk, messages.c.id, messages.c.from_id).where(
                messages.c.pk.in_(wanted)
            )
        )
    ).all()
    senders = sorted({r.from_id for r in found})
    org_of: dict[str, str] = {}
    for table in (teams, accounts):
        rows = await conn.execute(
            select(table.c.id, table.c.org_id).where(
                table.c.id.in_(senders), table.c.org_id.is_not(None)
            )
        )
        org_of.update({r.id: r.org_id for r in rows})
    orgs: dict[str, tuple[str, dict[str, str]]] = {}
    if org_of:
        rows = await conn.execute(
            select(
                organisations.c.id, organisations.c.notification_name, organisations.c.names
            ).where(organisations.c.id.in_(sorted(set(org_of.values()))))
        )
        orgs = {r.id: (r.notification_name, parse_canonical(r.names.encode())) for r in rows}
    refs: dict[int, MessageRef] = {}
    for r in found:
        org = orgs.get(org_of.get(r.from_id, ""))
        refs[r.pk] = MessageRef(
            r.pk, r.id, r.from_id, None if org is None else org[0], None if org is None else org[1]
        )
    return refs


async def notified_mailboxes(
    conn: AsyncConnection, pairs: Collection[tuple[int, str]]
) -> dict[tuple[int, str], str]:
    """For (message, account) pairs: the inbox mailbox through which the account got the
    message — its own if it is a recipient, else one of its teams (the first by id)."""
    if not pairs:
        return {}
    message_pks = sorted({m for m, _ in pairs})
    account_ids = sorted({a for _, a in pairs})
    inboxes: dict[int, set[str]] = {}
    rows = await conn.execute(
        select(mailbox_entries.c.message_pk, mailbox_entries.c.mailbox_id).where(
            mailbox_entries.c.message_pk.in_(message_pks), mailbox_entries.c.folder != "sent"
        )
    )
    for r in rows:
        inboxes.setdefault(r.message_pk, set()).add(r.mailbox_id)
    teams_of: dict[str, set[str]] = {}
    rows = await conn.execute(
        select(team_members.c.account_id, team_members.c.team_id).where(
            team_members.c.account_id.in_(account_ids), team_members.c.removed.is_(None)
        )
    )
    for r in rows:
        teams_of.setdefault(r.account_id, set()).add(r.team_id)
    found: dict[tuple[int, str], str] = {}
    for message_pk, account in pairs:
        boxes = inboxes.get(message_pk, set())
        if account in boxes:
            found[(message_pk, account)] = account
            continue
        shared = sorted(boxes & teams_of.get(account, set()))
        if shared:
            found[(message_pk, account)] = shared[0]
    return found


# --- finishing -----------------------------------------------------------------------------------
async def finish(
    conn: AsyncConnection, pks: Sequence[int], *, state: str, now: int, reason: str | None
) -> None:
    """Close rows at claim time (``skipped``, ``dropped``) or after sending (``sent``).

    ``sent`` is unconditional: the mail left, whoever holds the claim now."""
    if not pks:
        return
    await conn.execute(
        update(outbox)
        .where(outbox.c.pk.in_(list(pks)))
        .values(
            state=state,
            done=now,
            claimed_until=None,
            last_error=reason,
            attempts=outbox.c.attempts + (1 if state == "sent" else 0),
        )
    )


@dataclass(frozen=True, slots=True)
class Failure:
    pk: int
    lease: int  # the claim's claimed_until: only the claim's holder may change the row
    attempts: int  # including this one
    dead: bool
    next_attempt: int
    error: str


async def record_failures(conn: AsyncConnection, failures: Sequence[Failure], now: int) -> None:
    """Back to ``pending`` (with the next attempt) or ``dead``, if the claim is still ours."""
    if not failures:
        return
    await conn.execute(
        update(outbox)
        .where(
            outbox.c.pk == bindparam("b_pk"),
            outbox.c.state == "sending",
            outbox.c.claimed_until == bindparam("b_lease"),
        )
        .values(
            state=bindparam("b_state"),
            attempts=bindparam("b_attempts"),
            next_attempt=bindparam("b_next"),
            done=bindparam("b_done"),
            claimed_until=None,
            last_error=bindparam("b_error"),
        ),
        [
            {
                "b_pk": f.pk,
                "b_lease": f.lease,
                "b_state": "dead" if f.dead else "pending",
                "b_attempts": f.attempts,
                "b_next": f.next_attempt,
                "b_done": now if f.dead else None,
                "b_error": f.error[:200],
            }
            for f in failures
        ],
    )


# --- the operator's view -------------------------------------------------------------------------
async def listing(conn: AsyncConnection, state: str | None, limit: int) -> list[OutboxRow]:
    """Rows (one state, or all), oldest first."""
    q = (
        select(
            outbox.c.pk,
            outbox.c.account_id,
            messages.c.from_id,
            messages.c.id,
            outbox.c.kind,
            outbox.c.state,
            outbox.c.attempts,
            outbox.c.created,
            outbox.c.next_attempt,
            outbox.c.done,
            outbox.c.mail_id,
            outbox.c.last_error,
        )
        .select_from(outbox.outerjoin(messages, messages.c.pk == outbox.c.message_pk))
        .order_by(outbox.c.pk)
        .limit(limit)
    )
    if state is not None:
        q = q.where(outbox.c.state == state)
    return [
        OutboxRow(
            r.pk,
            r.account_id,
            r.from_id,
            r.id,
            r.kind,
            r.state,
            r.attempts,
            r.created,
            r.next_attempt,
            r.done,
            r.mail_id,
            r.last_error,
        )
        for r in await conn.execute(q)
    ]


async def counts(conn: AsyncConnection) -> dict[str, int]:
    rows = await conn.execute(
        select(outbox.c.state, func.count()).group_by(outbox.c.state).order_by(outbox.c.state)
    )
    return {r[0]: int(r[1]) for r in rows}


async def revive_dead(conn: AsyncConnection, pks: Sequence[int] | None, *, now: int) -> list[int]:
    """Dead rows (all, or those of ``pks``) back to ``pending``, due now, attempts reset;
    their Message-IDs stay. Returns the revived pks."""
    q = (
        update(outbox)
        .where(outbox.c.state == "dead")
        .values(state="pending", attempts=0, next_attempt=now, done=None, claimed_until=None)
        .returning(outbox.c.pk)
    )
    if pks is not None:
        q = q.where(outbox.c.pk.in_(list(pks)))
    return sorted(r[0] for r in await conn.execute(q))


async def set_address(
    conn: AsyncConnection, account_id: str, address: str | None, *, verified: bool
) -> bool:
    result = await conn.execute(
        update(accounts)
        .where(accounts.c.id == account_id)
        .values(notification_address=address, notification_verified=verified)
    )
    return bool(result.rowcount)
