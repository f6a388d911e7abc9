"""SQL of the send path: set-based reads for a whole batch, multi-row writes.

Every read takes the ids of *all* items of a group-commit batch (``IN`` lists), so a batch
of a hundred sends costs the same handful of queries as a batch of one. Writes are
multi-row ``INSERT``\\ s (SQLAlchemy's "insertmanyvalues": one statement per table on both
backends). Nothing here raises an HTTP error; unknown ids are simply absent from answers.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from postbox.mailbox.db.schema import (
    accounts,
    blobs,
    certificates,
    mailbox_entries,
    message_blobs,
    messages,
    organisations,
    outbox,
    team_members,
    teams,
    thread_mailboxes,
    threads,
)


def _ids(values: Iterable[str]) -> list[str]:
    return sorted(set(values))


# --- reads ---------------------------------------------------------------------------------
def _expanding(name: str) -> Any:
    return bindparam(name, expanding=True)


# The batch's reads are built once: an expanding IN parameter keeps one statement (and one
# compiled form in SQLAlchemy's cache) for lists of any length, so a batch builds no SQL.
#
# ``from_id IN (…) AND id IN (…)`` walks the unique ``(from_id, id)`` index on both backends
# (a row-value ``IN`` would scan the table on SQLite); pairs not asked for are dropped.
_STORED = select(
    messages.c.pk, messages.c.from_id, messages.c.id, messages.c.digest, messages.c.receipt
).where(messages.c.from_id.in_(_expanding("froms")), messages.c.id.in_(_expanding("ids")))
_ACCOUNTS = select(accounts.c.id, accounts.c.kind, accounts.c.org_id, accounts.c.status).where(
    accounts.c.id.in_(_expanding("ids"))
)
_TEAMS = (
    select(
        teams.c.id,
        teams.c.org_id,
        teams.c.key_kid,
        organisations.c.citizens_may_write,
        team_members.c.account_id.label("member"),
    )
    .select_from(
        teams.join(organisations, organisations.c.id == teams.c.org_id).outerjoin(
            team_members,
            and_(team_members.c.team_id == teams.c.id, team_members.c.removed.is_(None)),
        )
    )
    .where(teams.c.id.in_(_expanding("ids")))
)
_CERTS = select(
    certificates.c.kid,
    certificates.c.subject,
    certificates.c.use,
    certificates.c.kind,
    certificates.c.org_id,
    certificates.c.created,
    certificates.c.expires,
    certificates.c.revoked,
    certificates.c.superseded,
    certificates.c.log_index,
).where(certificates.c.subject.in_(_expanding("subjects")), certificates.c.log_index.is_not(None))


@dataclass(frozen=True, slots=True)
class StoredMessage:
    pk: int
    digest: bytes
    receipt: str  # cj of the signed submission receipt


async def stored_messages(
    conn: AsyncConnection, keys: Collection[tuple[str, str]]
) -> dict[tuple[str, str], StoredMessage]:
    """The messages among ``(from, id)`` pairs that exist."""
    if not keys:
        return {}
    params = {"froms": _ids(k[0] for k in keys), "ids": _ids(k[1] for k in keys)}
    wanted = set(keys)
    found: dict[tuple[str, str], StoredMessage] = {}
    for r in await conn.execute(_STORED, params):
        key = (r.from_id, r.id)
        if key in wanted:
            found[key] = StoredMessage(int(r.pk), bytes(r.digest), r.receipt)
    return found


@dataclass(frozen=True, slots=True)
class Box:
    """A mailbox as the send path sees it."""

    id: str
    is_team: bool
    org_id: str | None
    #: account kind (citizen, caseworker, connector, admin, operator) or "team"
    role: str
    active: bool
    #: a team's current key (``teams.key_kid``); accounts: from the directory
    team_kid: str | None = None
    #: the owning organisation lets citizens write to its teams (teams only)
    citizens_may_write: bool = False


async def boxes(
    conn: AsyncConnection, ids: Collection[str]
) -> tuple[dict[str, Box], dict[str, set[str]]]:
    """Accounts and teams among ``ids`` (unknown ids are absent), and each team's current
    members — two queries, the team's organisation flag and members joined in."""
    wanted = _ids(ids)
    found: dict[str, Box] = {}
    members: dict[str, set[str]] = {}
    if not wanted:
        return found, members
    for r in await conn.execute(_ACCOUNTS, {"ids": wanted}):
        found[r.id] = Box(r.id, False, r.org_id, r.kind, r.status == "active")
    rest = [i for i in wanted if i not in found]
    if rest:
        for r in await conn.execute(_TEAMS, {"ids": rest}):
            if r.id not in found:
                found[r.id] = Box(
                    r.id,
                    True,
                    r.org_id,
                    "team",
                    True,
                    team_kid=r.key_kid,
                    citizens_may_write=bool(r.citizens_may_write),
                )
                members[r.id] = set()
            if r.member is not None:
                members[r.id].add(r.member)
    return found, members


@dataclass(frozen=True, slots=True)
class CertState:
    """The newest logged certificate of one subject and use (the directory's "current")."""

    kid: str
    kind: str
    org_id: str | None
    created: int
    expires: int | None
    revoked: int | None
    superseded: int | None

    def identity_current(self) -> bool:
        """As ``Directory.current_identity``: neither revoked nor superseded."""
        return self.revoked is None and self.superseded is None

    def encryption_usable(self, now: int) -> bool:
        """As ``Directory.current_encryption``: ``CertRecord.usable_at(now)``."""
        if self.revoked is not None or now < self.created:
            return False
        if self.expires is not None and now >= self.expires:
            return False
        return self.superseded is None or now < self.superseded


async def newest_certs(
    conn: AsyncConnection, subjects: Collection[str]
) -> dict[tuple[str, str], CertState]:
    """``(subject, use)`` → the subject's most recently logged certificate of that use.

    One query over the ``(subject, use)`` index for every subject of the batch; the newest
    per pair is picked here (a subject has a handful of certificates).
    """
    wanted = _ids(subjects)
    if not wanted:
        return {}
    best: dict[tuple[str, str], tuple[int, CertState]] = {}
    for r in await conn.execute(_CERTS, {"subjects": wanted}):
        key = (r.subject, r.use)
        index = int(r.log_index)
        if key not in best or index > best[key][0]:
            state = CertState(
                r.kid, r.kind, r.org_id, r.created, r.expires, r.revoked, r.superseded
            )
            best[key] = (index, state)
    return {k: v[1] for k, v in best.items()}


@dataclass(frozen=True, slots=True)
class BlobState:
    id: str
    owner_id: str
    state: str
    size: int
    hash: bytes | None
    expires: int | None
    used: bool  # already linked to a message


async def blob_states(conn: AsyncConnection, ids: Collection[str]) -> dict[str, BlobState]:
    wanted = _ids(ids)
    if not wanted:
        return {}
    q = (
        select(
            blobs.c.id,
            blobs.c.owner_id,
            blobs.c.state,
            blobs.c.size,
            blobs.c.hash,
            blobs.c.expires,
            message_blobs.c.blob_id.label("linked"),
        )
        .select_from(blobs.outerjoin(message_blobs, message_blobs.c.blob_id == blobs.c.id))
        .where(blobs.c.id.in_(wanted))
    )
    return {
        r.id: BlobState(
            r.id,
            r.owner_id,
            r.state,
            int(r.size),
            None if r.hash is None else bytes(r.hash),
            r.expires,
            r.linked is not None,
        )
        for r in await conn.execute(q)
    }


@dataclass
class ThreadState:
    id: str
    org_id: str | None
    parties: set[str]


async def thread_states(conn: AsyncConnection, ids: Collection[str]) -> dict[str, ThreadState]:
    wanted = _ids(ids)
    if not wanted:
        return {}
    q = (
        select(threads.c.id, threads.c.org_id, thread_mailboxes.c.mailbox_id)
        .select_from(
            threads.outerjoin(thread_mailboxes, thread_mailboxes.c.thread_id == threads.c.id)
        )
        .where(threads.c.id.in_(wanted))
    )
    found: dict[str, ThreadState] = {}
    for r in await conn.execute(q):
        t = found.setdefault(r.id, ThreadState(r.id, r.org_id, set()))
        if r.mailbox_id is not None:
            t.parties.add(r.mailbox_id)
    return found


async def wrote_to(
    conn: AsyncConnection, citizens: Collection[str], orgs: Collection[str]
) -> set[tuple[str, str]]:
    """``(citizen, org)`` pairs among the given where the citizen has sent a message that
    belongs to the organisation (one to its teams, or into one of its threads)."""
    if not citizens or not orgs:
        return set()
    q = (
        select(messages.c.from_id, messages.c.org_id)
        .where(messages.c.from_id.in_(_ids(citizens)), messages.c.org_id.in_(_ids(orgs)))
        .distinct()
    )
    return {(r.from_id, r.org_id) for r in await conn.execute(q)}


# --- writes --------------------------------------------------------------------------------
_INSERT_MESSAGES = messages.insert().returning(messages.c.pk, sort_by_parameter_order=True)


async def insert_messages(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Insert message rows; their new primary keys, in the order of ``rows``."""
    result = await conn.execute(_INSERT_MESSAGES, list(rows))
    return [int(pk) for pk in result.scalars().all()]


async def insert_entries(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        await conn.execute(mailbox_entries.insert(), list(rows))


async def link_blobs(
    conn: AsyncConnection, links: Sequence[dict[str, Any]], *, now: int
) -> list[str]:
    """Link blobs to messages: ``blobs.expires = NULL`` and ``message_blobs`` rows.

    The update is conditional (still complete, not yet expired); returns the blobs that
    changed since they were read (deleted, expired meanwhile) — then nothing is linked and
    the caller aborts. A blob linked twice fails on the ``message_blobs`` primary key: a
    blob is used once.
    """
    if not links:
        return []
    ids = [link["blob_id"] for link in links]
    result = await conn.execute(
        update(blobs)
        .where(
            blobs.c.id.in_(ids),
            blobs.c.state == "complete",
            and_(blobs.c.expires.is_not(None), blobs.c.expires > now),
        )
        .values(expires=None)
        .returning(blobs.c.id)
    )
    updated = set(result.scalars().all())
    missing = sorted(set(ids) - updated)
    if missing:
        return missing
    await conn.execute(message_blobs.insert(), list(links))
    return []


async def insert_threads(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        await conn.execute(threads.insert(), list(rows))


async def insert_thread_mailboxes(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        await conn.execute(thread_mailboxes.insert(), list(rows))


async def insert_outbox(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        await conn.execute(outbox.insert(), list(rows))
