"""Named queries on ``challenges``, ``sessions``, ``refresh_tokens`` and ``rate_limits``.

Challenges are stored as ``H(challenge)`` with the keyed hash of the login name they were
issued for (never the name itself). Every function runs in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, case, delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from postbox.mailbox.db.schema import (
    accounts,
    challenges,
    rate_limits,
    refresh_tokens,
    sessions,
)


@dataclass(frozen=True)
class ChallengeRecord:
    login: str  # keyed hash of the normalised login name
    expires: int


@dataclass(frozen=True)
class SessionRecord:
    id: str
    account_id: str
    method: str
    created: int
    last_seen: int
    expires: int
    revoked: int | None
    client: str


@dataclass(frozen=True)
class SessionState:
    """What a token check needs: the session and its account's status."""

    account_id: str
    revoked: int | None
    expires: int
    account_status: str


@dataclass(frozen=True)
class RefreshRecord:
    session: SessionRecord
    used: int | None


def _insert(conn: AsyncConnection, table: Any) -> Any:
    """INSERT with ON CONFLICT support on both backends."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


# --- challenges -----------------------------------------------------------------------------
async def insert_challenge(
    conn: AsyncConnection, *, digest: bytes, login: str, expires: int
) -> None:
    await conn.execute(
        challenges.insert().values(challenge=digest, login=login, expires=expires, used=False)
    )


async def consume_challenge(conn: AsyncConnection, digest: bytes) -> ChallengeRecord | None:
    """Mark an unused challenge used, atomically; None if unknown or already used."""
    result = await conn.execute(
        update(challenges)
        .where(challenges.c.challenge == digest, challenges.c.used.is_(False))
        .values(used=True)
        .returning(challenges.c.login, challenges.c.expires)
    )
    row = result.first()
    return ChallengeRecord(login=row[0], expires=int(row[1])) if row is not None else None


async def delete_old_challenges(conn: AsyncConnection, *, before: int) -> None:
    await conn.execute(delete(challenges).where(challenges.c.expires < before))


# --- sessions -------------------------------------------------------------------------------
def _live(now: int) -> ColumnElement[bool]:
    """A session that is neither revoked nor expired."""
    return and_(sessions.c.revoked.is_(None), sessions.c.expires > now)


def _session(row: Any) -> SessionRecord:
    return SessionRecord(
        id=row["id"],
        account_id=row["account_id"],
        method=row["method"],
        created=int(row["created"]),
        last_seen=int(row["last_seen"]),
        expires=int(row["expires"]),
        revoked=None if row["revoked"] is None else int(row["revoked"]),
        client=row["client"],
    )


async def insert_session(
    conn: AsyncConnection,
    *,
    session_id: str,
    account_id: str,
    method: str,
    now: int,
    expires: int,
    client: str,
) -> None:
    await conn.execute(
        sessions.insert().values(
            id=session_id,
            account_id=account_id,
            method=method,
            created=now,
            last_seen=now,
            expires=expires,
            revoked=None,
            client=client,
        )
    )


async def session_state(conn: AsyncConnection, session_id: str) -> SessionState | None:
    query = (
        select(sessions.c.account_id, sessions.c.revoked, sessions.c.expires, accounts.c.status)
        .join(accounts, accounts.c.id == sessions.c.account_id)
        .where(sessions.c.id == session_id)
    )
    row = (await conn.execute(query)).first()
    if row is None:
        return None
    return SessionState(
        account_id=row[0],
        revoked=None if row[1] is None else int(row[1]),
        expires=int(row[2]),
        account_status=row[3],
    )


# built once: an expanding IN keeps one statement (and one compiled form) for any batch size
_SESSION_STATES = (
    select(
        sessions.c.id,
        sessions.c.account_id,
        sessions.c.revoked,
        sessions.c.expires,
        accounts.c.status,
    )
    .join(accounts, accounts.c.id == sessions.c.account_id)
    .where(sessions.c.id.in_(bindparam("ids", expanding=True)))
)


async def session_states(
    conn: AsyncConnection, session_ids: Collection[str]
) -> dict[str, SessionState]:
    """:func:`session_state` for many sessions in one query (absent ids are left out)."""
    if not session_ids:
        return {}
    rows = await conn.execute(_SESSION_STATES, {"ids": sorted(set(session_ids))})
    return {
        row[0]: SessionState(
            account_id=row[1],
            revoked=None if row[2] is None else int(row[2]),
            expires=int(row[3]),
            account_status=row[4],
        )
        for row in rows.all()
    }


async def live_sessions(
    conn: AsyncConnection, account_id: str | None, *, now: int
) -> list[SessionRecord]:
    """Live sessions, newest first: an account's, or (``None``, the operator's view) all."""
    query = select(sessions).where(_live(now))
    if account_id is not None:
        query = query.where(sessions.c.account_id == account_id)
    query = query.order_by(sessions.c.created.desc(), sessions.c.id)
    return [_session(r) for r in (await conn.execute(query)).mappings().all()]


async def revoke_session(
    conn: AsyncConnection, *, session_id: str, account_id: str, now: int
) -> bool:
    """Revoke one live session of this account; False if there is none."""
    result = await conn.execute(
        update(sessions)
        .where(sessions.c.id == session_id, sessions.c.account_id == account_id, _live(now))
        .values(revoked=now)
    )
    return result.rowcount == 1


async def revoke_any_session(conn: AsyncConnection, *, session_id: str, now: int) -> str | None:
    """Revoke a live session of any account (the operator); its account, None if none."""
    result = await conn.execute(
        update(sessions)
        .where(sessions.c.id == session_id, _live(now))
        .values(revoked=now)
        .returning(sessions.c.account_id)
    )
    row = result.first()
    return None if row is None else str(row[0])


async def revoke_other_sessions(
    conn: AsyncConnection, *, account_id: str, keep: str, now: int
) -> list[str]:
    """Revoke every unrevoked session of the account except ``keep``; their ids."""
    result = await conn.execute(
        update(sessions)
        .where(
            sessions.c.account_id == account_id,
            sessions.c.id != keep,
            sessions.c.revoked.is_(None),
        )
        .values(revoked=now)
        .returning(sessions.c.id)
    )
    return sorted(row[0] for row in result.all())


async def revoke_all_sessions(conn: AsyncConnection, *, account_id: str, now: int) -> list[str]:
    """Revoke every unrevoked session of the account; their ids."""
    result = await conn.execute(
        update(sessions)
        .where(sessions.c.account_id == account_id, sessions.c.revoked.is_(None))
        .values(revoked=now)
        .returning(sessions.c.id)
    )
    return sorted(row[0] for row in result.all())


async def touch_session(conn: AsyncConnection, *, session_id: str, now: int, expires: int) -> None:
    await conn.execute(
        update(sessions).where(sessions.c.id == session_id).values(last_seen=now, expires=expires)
    )


# --- refresh tokens -------------------------------------------------------------------------
async def insert_refresh_token(
    conn: AsyncConnection, *, digest: bytes, session_id: str, now: int
) -> None:
    await conn.execute(
        refresh_tokens.insert().values(hash=digest, session_id=session_id, created=now, used=None)
    )


async def refresh_token(conn: AsyncConnection, digest: bytes) -> RefreshRecord | None:
    query = (
        select(sessions, refresh_tokens.c.used)
        .join(sessions, sessions.c.id == refresh_tokens.c.session_id)
        .where(refresh_tokens.c.hash == digest)
    )
    row = (await conn.execute(query)).mappings().first()
    if row is None:
        return None
    return RefreshRecord(
        session=_session(row), used=None if row["used"] is None else int(row["used"])
    )


async def use_refresh_token(conn: AsyncConnection, digest: bytes, *, now: int) -> bool:
    """Mark a refresh token used, atomically; False if it already was (a reuse)."""
    result = await conn.execute(
        update(refresh_tokens)
        .where(refresh_tokens.c.hash == digest, refresh_tokens.c.used.is_(None))
        .values(used=now)
    )
    return result.rowcount == 1


async def delete_dead_refresh_tokens(conn: AsyncConnection, *, now: int) -> None:
    """Tokens of revoked or expired sessions can no longer do anything."""
    dead = select(sessions.c.id).where(
        or_(sessions.c.revoked.is_not(None), sessions.c.expires <= now)
    )
    await conn.execute(delete(refresh_tokens).where(refresh_tokens.c.session_id.in_(dead)))


# --- rate limits ----------------------------------------------------------------------------
async def hit_window(conn: AsyncConnection, key: str, *, window: int) -> int:
    """Count one request in the fixed window starting at ``window``; the count so far."""
    stmt = _insert(conn, rate_limits).values(key=key, window=window, count=1)
    stmt = stmt.on_conflict_do_update(
        index_elements=[rate_limits.c.key],
        set_={
            "count": case((rate_limits.c.window == window, rate_limits.c.count + 1), else_=1),
            "window": window,
        },
    ).returning(rate_limits.c.count)
    return int((await conn.execute(stmt)).scalar_one())


async def delay_state(conn: AsyncConnection, key: str) -> tuple[int, int] | None:
    """(failures, next_attempt) kept for a login name without an account."""
    query = select(rate_limits.c.count, rate_limits.c.window).where(rate_limits.c.key == key)
    row = (await conn.execute(query)).first()
    return (int(row[0]), int(row[1])) if row is not None else None


async def set_delay_state(
    conn: AsyncConnection, key: str, *, failures: int, next_attempt: int
) -> None:
    stmt = _insert(conn, rate_limits).values(key=key, window=next_attempt, count=failures)
    stmt = stmt.on_conflict_do_update(
        index_elements=[rate_limits.c.key],
        set_={"count": failures, "window": next_attempt},
    )
    await conn.execute(stmt)


async def delete_old_rate_limits(
    conn: AsyncConnection,
    *,
    window_prefixes: tuple[str, ...],
    windows_before: int,
    delay_prefix: str,
    delays_before: int,
) -> None:
    """Drop finished windows and forgotten delay states."""
    finished = or_(*(rate_limits.c.key.startswith(p) for p in window_prefixes))
    await conn.execute(
        delete(rate_limits).where(
            or_(
                and_(finished, rate_limits.c.window < windows_before),
                and_(
                    rate_limits.c.key.startswith(delay_prefix), rate_limits.c.window < delays_before
                ),
            )
        )
    )
