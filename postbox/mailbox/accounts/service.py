"""Accounts, their peppered login verifiers and their key bundles wrapped at rest.

What the database holds for an account (PROTOCOL.md §4):

* ``credentials.pass_verifier`` = ``H(key=K_pepper, auth_pk)`` and
  ``credentials.recovery_verifier`` = ``H(key=K_pepper, recovery_auth_pk)``: never the
  public keys themselves, so a copy of the database cannot even test a passphrase guess
  offline without ``pepper.key``;
* ``credentials.salt/ops/mem``: the pass bundle's Argon2id parameters, served by the
  challenge; kept equal to the stored pass bundle's (a bundle ``PUT`` may not change them,
  only a passphrase change may);
* ``bundles.wrapped`` = ``0x01 ‖ nonce(24) ‖ XChaCha20-Poly1305(bundle-wrap.key, nonce,
  cj(bundle), aad = account id (16 raw bytes) ‖ kind)``. The bundle is already encrypted by
  the client; the server wrap keeps even its ciphertext (an offline-guessing target) out of
  a stolen database, and binds a row to its account and kind. The leading byte names the
  wrap format so that a future wrap-key rotation can tell rows apart.

All methods run inside the caller's transaction (``conn``) and never commit.
"""

from __future__ import annotations

import re
from typing import Any, Final

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from postbox.crypto.bundle import FIRST_GEN, Bundle, Kind, check_bundle
from postbox.crypto.encoding import ID_BYTES, NONCE_BYTES, b64d, cj, parse_canonical
from postbox.crypto.errors import CryptoError
from postbox.crypto.login import normalize_login
from postbox.crypto.primitives import (
    H,
    aead_decrypt,
    aead_encrypt,
    check_sign_pk,
    random_bytes,
)
from postbox.mailbox.accounts import store
from postbox.mailbox.accounts.store import AccountRecord, CredentialRecord, LoginRecord
from postbox.mailbox.auth import store as auth_store
from postbox.mailbox.errors import BadRequest, Conflict
from postbox.mailbox.secrets import Secrets

__all__ = [
    "KINDS",
    "STAFF_KINDS",
    "AccountRecord",
    "AccountService",
    "CredentialRecord",
    "LoginRecord",
]

KINDS: Final = ("citizen", "caseworker", "connector", "admin", "operator")
#: kinds that belong to an organisation (their identities are org-certified)
STAFF_KINDS: Final = ("caseworker", "connector", "admin")
WRAP_VERSION: Final = b"\x01"
#: a language tag (``de``, ``pt-BR``): account languages and the keys of org and team names
LANGUAGE_TAG: Final = re.compile(r"[a-z]{2,3}(?:-[A-Za-z0-9]{1,8}){0,3}")
MAX_LANGUAGE_CHARS: Final = 16


class AccountService:
    """``app[ACCOUNTS]``: create and read accounts, wrap and swap their bundles."""

    def __init__(self, secrets: Secrets) -> None:
        self._pepper = secrets.pepper
        self._wrap_key = secrets.bundle_wrap_key

    def __repr__(self) -> str:
        return "AccountService()"

    # --- peppering and wrapping -------------------------------------------------------------
    def verifier(self, auth_pk: bytes) -> bytes:
        """``H(key=K_pepper, auth_pk)``: what the database keeps of an auth key."""
        return H(auth_pk, key=self._pepper)

    def wrap(self, account_id: str, kind: str, bundle: Bundle) -> bytes:
        nonce = random_bytes(NONCE_BYTES)
        aad = _wrap_aad(account_id, kind)
        return WRAP_VERSION + nonce + aead_encrypt(self._wrap_key, nonce, cj(bundle), aad)

    def unwrap(self, account_id: str, kind: str, gen: int, wrapped: bytes) -> Bundle:
        """The client's bundle from a stored row; a row that does not open is a server fault."""
        if wrapped[:1] != WRAP_VERSION:
            raise RuntimeError(f"bundle of {account_id}/{kind}: unknown wrap format")
        nonce, ct = wrapped[1 : 1 + NONCE_BYTES], wrapped[1 + NONCE_BYTES :]
        try:
            plain = aead_decrypt(self._wrap_key, nonce, ct, _wrap_aad(account_id, kind))
            bundle = check_bundle(parse_canonical(plain))
        except CryptoError as exc:
            raise RuntimeError(
                f"bundle of {account_id}/{kind} does not unwrap ({type(exc).__name__}): "
                "is secrets/bundle-wrap.key the one this database was written with?"
            ) from exc
        if bundle["gen"] != gen or bundle["kind"] != kind:
            raise RuntimeError(f"bundle of {account_id}/{kind}: row and bundle disagree")
        return bundle

    # --- accounts ---------------------------------------------------------------------------
    async def create(
        self,
        conn: AsyncConnection,
        *,
        account_id: str,
        kind: str,
        org_id: str | None,
        login: str,
        identity_verified: bool,
        language: str,
        auth_pk: bytes,
        recovery_auth_pk: bytes,
        pass_bundle: dict[str, Any],
        recovery_bundle: dict[str, Any],
        now: int,
    ) -> None:
        """Store a new, active account with its verifiers and both bundles (gen 1).

        Raises BadRequest (``invalid-account``, ``invalid-login``, ``invalid-bundle``,
        ``invalid-auth-pk``) for bad input and Conflict (``login-taken``,
        ``account-exists``). Records nothing in the audit log: the caller does, last in
        its transaction.
        """
        try:
            b64d(account_id, ID_BYTES)
        except CryptoError as exc:
            raise BadRequest(f"account: {type(exc).__name__}", code="invalid-account") from exc
        if kind not in KINDS:
            raise BadRequest(f"unknown account kind {kind!r}", code="invalid-account")
        if kind in STAFF_KINDS and org_id is None:
            raise BadRequest(f"a {kind} account belongs to an organisation", code="invalid-account")
        if (
            not isinstance(language, str)
            or len(language) > MAX_LANGUAGE_CHARS
            or not LANGUAGE_TAG.fullmatch(language)
        ):
            raise BadRequest(
                "language: expected a language tag like de or pt-BR", code="invalid-account"
            )
        try:
            name = normalize_login(login)
        except CryptoError as exc:
            raise BadRequest(f"login: {type(exc).__name__}: {exc}", code="invalid-login") from exc
        for what, pk in (("auth_pk", auth_pk), ("recovery_auth_pk", recovery_auth_pk)):
            try:
                check_sign_pk(pk)
            except CryptoError as exc:
                raise BadRequest(f"{what}: {type(exc).__name__}", code="invalid-auth-pk") from exc
        pb = check_new_bundle(pass_bundle, "pass", FIRST_GEN)
        rb = check_new_bundle(recovery_bundle, "recovery", FIRST_GEN)
        await self._check_free(conn, account_id, name)
        try:
            # A savepoint: on PostgreSQL a concurrent activation with the same name blocks on
            # the unique index and then fails here; that is a Conflict, not a broken
            # transaction (SQLite writers are serial, so the check above already saw it).
            async with conn.begin_nested():
                await store.insert_account(
                    conn,
                    account_id=account_id,
                    kind=kind,
                    org_id=org_id,
                    login=name,
                    identity_verified=identity_verified,
                    language=language,
                    now=now,
                )
        except IntegrityError:
            await self._check_free(conn, account_id, name)
            raise
        await self._store_secrets(conn, account_id, auth_pk, recovery_auth_pk, pb, rb, now)

    async def _check_free(self, conn: AsyncConnection, account_id: str, login: str) -> None:
        if await store.account_by_id(conn, account_id) is not None:
            raise Conflict("this account id is taken", code="account-exists")
        if await store.account_id_for_login(conn, login) is not None:
            raise Conflict("this login name is taken", code="login-taken")

    async def _store_secrets(
        self,
        conn: AsyncConnection,
        account_id: str,
        auth_pk: bytes,
        recovery_auth_pk: bytes,
        pb: Bundle,
        rb: Bundle,
        now: int,
    ) -> None:
        """Peppered verifiers, the pass parameters and both wrapped bundles."""
        salt, ops, mem = pass_params(pb)
        await store.insert_credentials(
            conn,
            account_id=account_id,
            pass_verifier=self.verifier(auth_pk),
            recovery_verifier=self.verifier(recovery_auth_pk),
            salt=salt,
            ops=ops,
            mem=mem,
            now=now,
        )
        for b in (pb, rb):
            await store.insert_bundle(
                conn,
                account_id=account_id,
                kind=b["kind"],
                gen=b["gen"],
                wrapped=self.wrap(account_id, b["kind"], b),
                now=now,
            )

    async def get(self, conn: AsyncConnection, account_id: str) -> AccountRecord | None:
        return await store.account_by_id(conn, account_id)

    async def disable(self, conn: AsyncConnection, *, account_id: str, now: int) -> list[str]:
        """Disable the account and revoke all its sessions at once (in the caller's
        transaction); the revoked session ids. Used when an org admin revokes a staff
        member's identity: a leaver must not keep working through an open session."""
        if not await store.disable_account(conn, account_id):
            return []
        return await auth_store.revoke_all_sessions(conn, account_id=account_id, now=now)

    async def by_login(self, conn: AsyncConnection, login: str) -> LoginRecord | None:
        """Account and credentials by an already normalised login name."""
        return await store.login_record(conn, login)

    async def credentials(self, conn: AsyncConnection, account_id: str) -> CredentialRecord | None:
        return await store.credentials_of(conn, account_id)

    async def set_failures(
        self, conn: AsyncConnection, account_id: str, *, failures: int, next_attempt: int
    ) -> None:
        """The per-account login delay state (see :mod:`postbox.mailbox.auth.ratelimit`)."""
        await store.set_failures(conn, account_id, failures=failures, next_attempt=next_attempt)

    async def set_pass_credentials(
        self,
        conn: AsyncConnection,
        account_id: str,
        *,
        auth_pk: bytes,
        salt: bytes,
        ops: int,
        mem: int,
        now: int,
    ) -> None:
        """A new pass auth key and Argon2id parameters; clears the delay state."""
        await store.set_pass_credentials(
            conn,
            account_id,
            pass_verifier=self.verifier(auth_pk),
            salt=salt,
            ops=ops,
            mem=mem,
            now=now,
        )

    # --- bundles ----------------------------------------------------------------------------
    async def bundle(self, conn: AsyncConnection, account_id: str, kind: Kind) -> Bundle | None:
        row = await store.bundle_of(conn, account_id, kind)
        if row is None:
            return None
        return self.unwrap(account_id, kind, row.gen, row.wrapped)

    async def current_gen(self, conn: AsyncConnection, account_id: str, kind: Kind) -> int | None:
        row = await store.bundle_of(conn, account_id, kind)
        return row.gen if row is not None else None

    async def swap_bundle(
        self,
        conn: AsyncConnection,
        account_id: str,
        bundle: Bundle,
        *,
        expected_gen: int,
        now: int,
    ) -> None:
        """Replace a checked bundle by compare-and-swap on ``gen``.

        ``bundle["gen"]`` must already be ``expected_gen + 1`` (see :func:`check_new_bundle`).
        Conflict ``gen-conflict`` with ``{"gen": current}`` when the stored gen differs.
        """
        kind = bundle["kind"]
        swapped = await store.swap_bundle(
            conn,
            account_id=account_id,
            kind=kind,
            expected_gen=expected_gen,
            gen=bundle["gen"],
            wrapped=self.wrap(account_id, kind, bundle),
            now=now,
        )
        if not swapped:
            current = await self.current_gen(conn, account_id, kind)
            raise Conflict(
                f"the stored {kind} bundle is at gen {current}, not {expected_gen}",
                code="gen-conflict",
                extra={"gen": current},
            )


def _wrap_aad(account_id: str, kind: str) -> bytes:
    return b64d(account_id, ID_BYTES) + kind.encode("ascii")


def check_new_bundle(value: Any, kind: str, gen: int) -> Bundle:
    """A bundle a client uploads: valid shape (``check_bundle``), this kind, this gen."""
    try:
        bundle = check_bundle(value)
    except CryptoError as exc:
        raise BadRequest(f"{type(exc).__name__}: {exc}", code="invalid-bundle") from exc
    if bundle["kind"] != kind:
        raise BadRequest(f"expected a {kind} bundle", code="invalid-bundle")
    if bundle["gen"] != gen:
        raise BadRequest(f"the new {kind} bundle must have gen {gen}", code="invalid-bundle")
    return bundle


def pass_params(bundle: Bundle) -> tuple[bytes, int, int]:
    """Salt, ops and mem of a checked pass bundle."""
    salt, ops, mem = bundle["salt"], bundle["ops"], bundle["mem"]
    if salt is None or ops is None or mem is None:  # pragma: no cover - check_bundle
        raise BadRequest("a pass bundle needs salt, ops and mem", code="invalid-bundle")
    return b64d(salt), ops, mem
