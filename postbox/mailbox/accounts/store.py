"""Named queries on ``accounts``, ``credentials`` and ``bundles``.

Every function runs inside the caller's transaction and returns plain records; none raises
an HTTP error. Verifiers and wrapped bundles are opaque bytes here: peppering and wrapping
happen in :mod:`postbox.mailbox.accounts.service`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from postbox.mailbox.db.schema import accounts, bundles, credentials


@dataclass(frozen=True)
class AccountRecord:
    id: str
    kind: str  # citizen | caseworker | connector | admin | operator
    org_id: str | None
    login: str | None  # normalised login name
    status: str  # active | disabled
    identity_verified: bool
    language: str
    created: int


@dataclass(frozen=True)
class CredentialRecord:
    account_id: str
    pass_verifier: bytes
    recovery_verifier: bytes
    salt: bytes
    ops: int
    mem: int
    failures: int
    next_attempt: int

    def verifier_for(self, method: str) -> bytes:
        """What a login proof by ``method`` (``pass`` or ``recovery``) is checked against."""
        return self.pass_verifier if method == "pass" else self.recovery_verifier


@dataclass(frozen=True)
class LoginRecord:
    """An account and its credentials, found by login name."""

    account: AccountRecord
    credentials: CredentialRecord


@dataclass(frozen=True)
class WrappedBundle:
    account_id: str
    kind: str
    gen: int
    wrapped: bytes
    updated: int


def _account(row: RowMapping) -> AccountRecord:
    return AccountRecord(
        id=row["id"],
        kind=row["kind"],
        org_id=row["org_id"],
        login=row["login"],
        status=row["status"],
        identity_verified=bool(row["identity_verified"]),
        language=row["language"],
        created=int(row["created"]),
    )


def _credentials(row: RowMapping) -> CredentialRecord:
    return CredentialRecord(
        account_id=row["account_id"],
        pass_verifier=bytes(row["pass_verifier"]),
        recovery_verifier=bytes(row["recovery_verifier"]),
        salt=bytes(row["salt"]),
        ops=int(row["ops"]),
        mem=int(row["mem"]),
        failures=int(row["failures"]),
        next_attempt=int(row["next_attempt"]),
    )


# --- accounts -------------------------------------------------------------------------------
async def insert_account(
    conn: AsyncConnection,
    *,
    account_id: str,
    kind: str,
    org_id: str | None,
    login: str,
    identity_verified: bool,
    language: str,
    now: int,
) -> None:
    await conn.execute(
        accounts.insert().values(
            id=account_id,
            kind=kind,
            org_id=org_id,
            login=login,
            status="active",
            identity_verified=identity_verified,
            language=language,
            created=now,
        )
    )


async def account_by_id(conn: AsyncConnection, account_id: str) -> AccountRecord | None:
    row = (await conn.execute(select(accounts).where(accounts.c.id == account_id))).mappings()
    first = row.first()
    return _account(first) if first is not None else None


async def account_id_for_login(conn: AsyncConnection, login: str) -> str | None:
    result = await conn.execute(select(accounts.c.id).where(accounts.c.login == login))
    return result.scalar_one_or_none()


async def login_record(conn: AsyncConnection, login: str) -> LoginRecord | None:
    """The account with this (normalised) login name and its credentials, in one query."""
    query = (
        select(accounts, credentials)
        .join(credentials, credentials.c.account_id == accounts.c.id)
        .where(accounts.c.login == login)
    )
    row = (await conn.execute(query)).mappings().first()
    if row is None:
        return None
    return LoginRecord(_account(row), _credentials(row))


async def credentials_of(conn: AsyncConnection, account_id: str) -> CredentialRecord | None:
    query = select(credentials).where(credentials.c.account_id == account_id)
    row = (await conn.execute(query)).mappings().first()
    return _credentials(row) if row is not None else None


# --- credentials ----------------------------------------------------------------------------
def _passphrase(
    *, pass_verifier: bytes, salt: bytes, ops: int, mem: int, now: int
) -> dict[str, Any]:
    """The columns a passphrase sets, first or new: its verifier and Argon2id parameters,
    with the login delay state cleared."""
    return {
        "pass_verifier": pass_verifier,
        "salt": salt,
        "ops": ops,
        "mem": mem,
        "failures": 0,
        "next_attempt": 0,
        "updated": now,
    }


async def insert_credentials(
    conn: AsyncConnection,
    *,
    account_id: str,
    pass_verifier: bytes,
    recovery_verifier: bytes,
    salt: bytes,
    ops: int,
    mem: int,
    now: int,
) -> None:
    await conn.execute(
        credentials.insert().values(
            account_id=account_id,
            recovery_verifier=recovery_verifier,
            **_passphrase(pass_verifier=pass_verifier, salt=salt, ops=ops, mem=mem, now=now),
        )
    )


async def set_failures(
    conn: AsyncConnection, account_id: str, *, failures: int, next_attempt: int
) -> None:
    """The per-account delay state (failures since the last success, next allowed time)."""
    await conn.execute(
        update(credentials)
        .where(credentials.c.account_id == account_id)
        .values(failures=failures, next_attempt=next_attempt)
    )


async def set_pass_credentials(
    conn: AsyncConnection,
    account_id: str,
    *,
    pass_verifier: bytes,
    salt: bytes,
    ops: int,
    mem: int,
    now: int,
) -> None:
    """A new passphrase: verifier and parameters replaced, the delay state cleared."""
    await conn.execute(
        update(credentials)
        .where(credentials.c.account_id == account_id)
        .values(**_passphrase(pass_verifier=pass_verifier, salt=salt, ops=ops, mem=mem, now=now))
    )


# --- bundles --------------------------------------------------------------------------------
async def insert_bundle(
    conn: AsyncConnection, *, account_id: str, kind: str, gen: int, wrapped: bytes, now: int
) -> None:
    await conn.execute(
        bundles.insert().values(
            account_id=account_id, kind=kind, gen=gen, wrapped=wrapped, updated=now
        )
    )


async def bundle_of(conn: AsyncConnection, account_id: str, kind: str) -> WrappedBundle | None:
    query = select(bundles).where(bundles.c.account_id == account_id, bundles.c.kind == kind)
    row = (await conn.execute(query)).mappings().first()
    if row is None:
        return None
    return WrappedBundle(
        account_id=row["account_id"],
        kind=row["kind"],
        gen=int(row["gen"]),
        wrapped=bytes(row["wrapped"]),
        updated=int(row["updated"]),
    )


async def swap_bundle(
    conn: AsyncConnection,
    *,
    account_id: str,
    kind: str,
    expected_gen: int,
    gen: int,
    wrapped: bytes,
    now: int,
) -> bool:
    """Compare-and-swap on ``gen``: True when the stored gen was ``expected_gen``."""
    result = await conn.execute(
        update(bundles)
        .where(
            bundles.c.account_id == account_id,
            bundles.c.kind == kind,
            bundles.c.gen == expected_gen,
        )
        .values(gen=gen, wrapped=wrapped, updated=now)
    )
    return result.rowcount == 1


async def disable_account(conn: AsyncConnection, account_id: str) -> bool:
    """Mark the account disabled (its tokens stop working at once); False if unknown."""
    result = await conn.execute(
        update(accounts).where(accounts.c.id == account_id).values(status="disabled")
    )
    return result.rowcount == 1
