"""Zero-knowledge login, sessions, bundles and passphrase change (PROTOCOL.md §4).

One write transaction per call. Where a call must both *record* something and *refuse*
(a failed login counts a failure and writes the audit entry, then answers 401), the
transaction returns the refusal as a value, commits, and only then is it raised; raising
inside would roll the record back.

**Challenge** (``POST /api/v1/auth/challenge``): every name takes the same path — the
account lookup, the fake salt ``H(key=K_fake, name, 16)`` (always computed), one challenge
row, one address count. Known names get their stored salt and parameters, unknown names the
fake salt and the current defaults (ops 3, 64 MiB). The challenge row keeps ``H(challenge)``
and the keyed hash of the name, expires after ``settings.challenge_seconds`` and is consumed
by its first use, successful or not.

**Login**: consume the challenge, look the name up, read the delay state; if the account
(or name) is in its delay, 429 ``login-delayed`` *without* evaluating the proof. Otherwise
every check runs whatever the earlier ones gave — the signature over PROTOCOL.md §2's
layout with the configured origin, ``H(key=K_pepper, auth_pk)`` against the verifier of
the method (a dummy verifier for unknown names, compared in constant time), the challenge
(exists, unused, unexpired, issued for this name) — and any failure is the same 401
``login-failed`` with one message.

The per-address count is the last write before the audit entry in every transaction: over
the limit it raises 429 ``too-many-attempts`` and rolls the whole attempt back, whatever
its outcome (so the answer says nothing about the guess); placed last, its row lock — which
every request from one address shares on PostgreSQL — is held only until the commit.

**Re-keying** (the "real accounts are re-keyed to the current defaults" of §4): the
server only reports. The login response carries one member beyond PROTOCOL.md's four,
``"rekey"``: ``null``, or ``{"ops","mem"}`` (the current defaults) when the account's pass
bundle uses other parameters. A client that sees it still holds the passphrase, so it
re-seals the same ``private_keys`` with a fresh salt at those parameters
(``bundle.rewrap_bundle(..., check_passphrase=False)``) and sends it through the ordinary
passphrase change (``POST /api/v1/me/passphrase``, fresh challenge signed by the current
auth key). Until it does, the challenge for that name shows non-default parameters.

**Passphrase change** (``POST /api/v1/me/passphrase``): a fresh login proof — a challenge
for the account's own login name, signed by the current pass auth key (``method
"pass"``) or by the recovery auth key (``method "recovery"``, after a recovery login); the
body names the signing key as ``signer_pk`` because the server keeps only its peppered
hash — plus the new ``auth_pk`` and the new pass bundle at ``expected_gen + 1``. Bundle
swap, verifier and parameter swap, revocation of every *other* session of the account and
the audit entry commit together. Failed proofs count towards the account's delay.
"""

from __future__ import annotations

import logging
from typing import Final, cast

from sqlalchemy.ext.asyncio import AsyncConnection

from postbox.crypto.bundle import DEFAULT_MEM, DEFAULT_OPS, KINDS, Bundle, Kind
from postbox.crypto.encoding import CHALLENGE_BYTES, b64e
from postbox.crypto.errors import CryptoError
from postbox.crypto.login import fake_salt, verify_login
from postbox.crypto.primitives import (
    H,
    check_sign_pk,
    equal,
    random_bytes,
)
from postbox.mailbox.access import Principal
from postbox.mailbox.accounts.service import (
    AccountRecord,
    AccountService,
    check_new_bundle,
    pass_params,
)
from postbox.mailbox.audit.service import Audit
from postbox.mailbox.auth import store
from postbox.mailbox.auth.commands import (
    BundleUpdate,
    Caller,
    ChallengeAnswer,
    ChallengeRequest,
    Grant,
    LoginProof,
    LoginRequest,
    Me,
    PassphraseChange,
    PassphraseChanged,
    RefreshRequest,
    SessionView,
)
from postbox.mailbox.auth.ratelimit import (
    CHALLENGE_IP,
    LOGIN_DELAY,
    LOGIN_IP,
    WINDOW_MS,
    WINDOW_PREFIXES,
    DelayPolicy,
    DelayState,
    Pseudonyms,
    retry_after_s,
    window_start,
)
from postbox.mailbox.auth.store import ChallengeRecord
from postbox.mailbox.auth.tokens import Tokens, new_refresh_token, refresh_token_hash
from postbox.mailbox.clock import Clock
from postbox.mailbox.db.engine import Database
from postbox.mailbox.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    PostboxError,
    RateLimited,
    Unauthorized,
)
from postbox.mailbox.secrets import Secrets
from postbox.mailbox.settings import Settings

log = logging.getLogger("postbox.auth")

SESSION_ID_BYTES: Final = 16
SWEEP_EVERY_MS: Final = 60_000
LOGIN_FAILED: Final = "login failed"  # the one message of every login failure
REAUTH_FAILED: Final = "the login proof did not verify"


# --- the service ----------------------------------------------------------------------------
class AuthService:
    """``app[AUTH]``: challenges, logins, sessions, bundles and passphrase changes."""

    def __init__(
        self,
        *,
        settings: Settings,
        secrets: Secrets,
        db: Database,
        clock: Clock,
        accounts: AccountService,
        audit: Audit,
        tokens: Tokens,
    ) -> None:
        self._db = db
        self._clock = clock
        self._accounts = accounts
        self._audit = audit
        self._tokens = tokens
        self._origin = settings.origin
        self._fake_key = secrets.fake_salt_key
        self._names = Pseudonyms(secrets.pepper)
        # what an unknown name's auth key is compared with (never equal to H(pepper, pk))
        self._no_verifier = H(b"postbox/server/no-account", key=secrets.pepper)
        self._delays = DelayPolicy(settings.login_delay_base_ms, settings.login_delay_cap_ms)
        self._rate = settings.login_rate_per_minute
        self._challenge_ms = settings.challenge_seconds * 1000
        self._session_ms = settings.refresh_token_seconds * 1000
        self._next_sweep = 0

    def __repr__(self) -> str:
        return f"AuthService(origin={self._origin!r})"

    # --- challenge --------------------------------------------------------------------------
    async def challenge(self, req: ChallengeRequest, caller: Caller) -> ChallengeAnswer:
        now = self._clock()
        name = self._names.login(req.login)
        fake = fake_salt(self._fake_key, req.login)
        challenge = random_bytes(CHALLENGE_BYTES)
        async with self._db.write() as conn:
            record = await self._accounts.by_login(conn, req.login)
            await self._sweep(conn, now)
            await store.insert_challenge(
                conn, digest=H(challenge), login=name, expires=now + self._challenge_ms
            )
            await self._count(conn, CHALLENGE_IP, caller.address, now)
        if record is None:
            return ChallengeAnswer(fake, DEFAULT_OPS, DEFAULT_MEM, challenge)
        c = record.credentials
        return ChallengeAnswer(c.salt, c.ops, c.mem, challenge)

    # --- login ------------------------------------------------------------------------------
    async def login(self, req: LoginRequest, caller: Caller) -> Grant:
        now = self._clock()
        async with self._db.write() as conn:
            outcome = await self._login(conn, req, caller, now)
        if isinstance(outcome, PostboxError):
            raise outcome
        return outcome

    async def _login(
        self, conn: AsyncConnection, req: LoginRequest, caller: Caller, now: int
    ) -> Grant | PostboxError:
        name = self._names.login(req.login)
        challenge = await store.consume_challenge(conn, H(req.challenge))
        record = await self._accounts.by_login(conn, req.login)
        # read for every name, so known and unknown names run the same queries
        kept = await store.delay_state(conn, LOGIN_DELAY + name)
        if record is not None:
            c = record.credentials
            state = DelayState(c.failures, c.next_attempt)
            verifier: bytes | None = c.verifier_for(req.method)
        else:
            state = DelayState(*kept) if kept is not None else DelayState()
            verifier = None
        delayed = await self._delayed(conn, state, caller, now)
        if delayed is not None:
            return delayed
        reason = self._proof_problem(
            req.proof, challenge=challenge, name=name, login=req.login, verifier=verifier, now=now
        )
        if reason is None and record is not None and record.account.status != "active":
            reason = "disabled"
        if reason is not None:
            account_id = record.account.id if record is not None else None
            await self._failed(conn, state, caller, now, account_id=account_id, name=name)
            await self._audit.record(
                conn,
                action="login-failed",
                actor=None,
                subject=account_id,
                details={"name": name, "method": req.method, "reason": reason},
                now=now,
            )
            log.info("login failed: %s (account %s)", reason, account_id or "-")
            return Unauthorized(LOGIN_FAILED, code="login-failed")
        assert record is not None  # reason would be "unknown-name"
        account = record.account
        if state.failures or state.next_attempt:
            await self._accounts.set_failures(conn, account.id, failures=0, next_attempt=0)
        session_id = b64e(random_bytes(SESSION_ID_BYTES))
        await store.insert_session(
            conn,
            session_id=session_id,
            account_id=account.id,
            method=req.method,
            now=now,
            expires=now + self._session_ms,
            client=caller.client,
        )
        refresh = await _new_refresh_token(conn, session_id, now)
        await self._count(conn, LOGIN_IP, caller.address, now)
        await self._audit.record(
            conn,
            action="login",
            actor=account.id,
            subject=account.id,
            details={"method": req.method, "session": session_id},
            now=now,
        )
        log.info("login: account %s, session %s (%s)", account.id, session_id, req.method)
        c = record.credentials
        stale = req.method == "pass" and (c.ops, c.mem) != (DEFAULT_OPS, DEFAULT_MEM)
        rekey = (DEFAULT_OPS, DEFAULT_MEM) if stale else None
        return self._grant(account, session_id, refresh, now, rekey=rekey)

    def _proof_problem(
        self,
        proof: LoginProof,
        *,
        challenge: ChallengeRecord | None,
        name: str,
        login: str,
        verifier: bytes | None,
        now: int,
    ) -> str | None:
        """Why a login proof fails (None: it holds). Every check runs every time.

        ``challenge`` is the consumed challenge row of ``proof.challenge`` (None: unknown or
        used), ``name`` the pseudonym of ``login``, ``verifier`` the stored one of the method.
        """
        pk = proof.signer_pk
        try:
            verify_login(pk, proof.signature, proof.challenge, self._origin, login, proof.method)
            signature_ok = True
        except CryptoError:
            signature_ok = False
        key_ok = equal(self._accounts.verifier(pk), verifier or self._no_verifier)
        bound_ok = challenge is not None and equal(
            challenge.login.encode("ascii"), name.encode("ascii")
        )
        fresh_ok = challenge is not None and now <= challenge.expires
        if verifier is None:
            return "unknown-name"
        if challenge is None:
            return "challenge-unknown-or-used"
        if not bound_ok:
            return "challenge-for-another-name"
        if not fresh_ok:
            return "challenge-expired"
        if not signature_ok:
            return "bad-signature"
        if not key_ok:
            return "wrong-key"
        return None

    # --- refresh and logout -----------------------------------------------------------------
    async def refresh(self, req: RefreshRequest, caller: Caller) -> Grant:
        now = self._clock()
        digest = refresh_token_hash(req.token)
        if digest is None:
            raise Unauthorized("the refresh token is not valid", code="invalid-refresh-token")
        async with self._db.write() as conn:
            outcome = await self._refresh(conn, digest, now)
        if isinstance(outcome, PostboxError):
            raise outcome
        return outcome

    async def _refresh(
        self, conn: AsyncConnection, digest: bytes, now: int
    ) -> Grant | PostboxError:
        found = await store.refresh_token(conn, digest)
        if found is None:
            return Unauthorized("the refresh token is not valid", code="invalid-refresh-token")
        session = found.session
        if session.revoked is not None or session.expires <= now:
            return Unauthorized("this session has ended; log in again", code="session-ended")
        if found.used is not None or not await store.use_refresh_token(conn, digest, now=now):
            # A rotated token came back: someone holds a copy. End the whole family.
            await store.revoke_session(
                conn, session_id=session.id, account_id=session.account_id, now=now
            )
            await self._audit.record(
                conn,
                action="session-revoked",
                actor=None,
                subject=session.account_id,
                details={"session": session.id, "reason": "refresh-reuse"},
                now=now,
            )
            log.warning(
                "refresh token reused: session %s of account %s revoked",
                session.id,
                session.account_id,
            )
            return Unauthorized(
                "this refresh token was already used; the session is revoked",
                code="refresh-reused",
            )
        account = await self._accounts.get(conn, session.account_id)
        if account is None or account.status != "active":
            return Unauthorized("this session has ended; log in again", code="session-ended")
        refresh = await _new_refresh_token(conn, session.id, now)
        await store.touch_session(
            conn, session_id=session.id, now=now, expires=now + self._session_ms
        )
        return self._grant(account, session.id, refresh, now)

    def _grant(
        self,
        account: AccountRecord,
        session_id: str,
        refresh: str,
        now: int,
        *,
        rekey: tuple[int, int] | None = None,
    ) -> Grant:
        """A new access token for the session, with the refresh token that goes with it."""
        return Grant(
            account=account.id,
            access_token=self._tokens.issue(
                account_id=account.id,
                kind=account.kind,
                org_id=account.org_id,
                session_id=session_id,
                now=now,
            ),
            refresh_token=refresh,
            expires_in=self._tokens.lifetime_s,
            rekey=rekey,
        )

    async def logout(self, who: Principal) -> None:
        now = self._clock()
        async with self._db.write() as conn:
            if await store.revoke_session(
                conn, session_id=who.session_id, account_id=who.account_id, now=now
            ):
                await self._audit.record(
                    conn,
                    action="session-revoked",
                    actor=who.account_id,
                    subject=who.account_id,
                    details={"session": who.session_id, "reason": "logout"},
                    now=now,
                )

    # --- sessions ---------------------------------------------------------------------------
    async def sessions(self, who: Principal) -> list[SessionView]:
        now = self._clock()
        async with self._db.read() as conn:
            rows = await store.live_sessions(conn, who.account_id, now=now)
        return [SessionView(s, s.id == who.session_id) for s in rows]

    async def revoke_session(self, who: Principal, session_id: str) -> None:
        """Revoke one of the caller's own sessions; another account's id is 404."""
        now = self._clock()
        async with self._db.write() as conn:
            if not await store.revoke_session(
                conn, session_id=session_id, account_id=who.account_id, now=now
            ):
                raise NotFound("no such session", code="no-such-session")
            await self._audit.record(
                conn,
                action="session-revoked",
                actor=who.account_id,
                subject=who.account_id,
                details={"session": session_id, "reason": "user"},
                now=now,
            )

    async def me(self, who: Principal) -> Me:
        async with self._db.read() as conn:
            account = await self._accounts.get(conn, who.account_id)
        if account is None:  # pragma: no cover - the token check found the account
            raise NotFound("no such account")
        return Me(
            account=account.id,
            kind=account.kind,
            org=account.org_id,
            login=account.login,
            identity_verified=account.identity_verified,
            language=account.language,
        )

    # --- bundles ----------------------------------------------------------------------------
    async def bundle(self, who: Principal, kind: str) -> Bundle:
        k = _kind(kind)
        async with self._db.read() as conn:
            bundle = await self._accounts.bundle(conn, who.account_id, k)
        if bundle is None:
            raise NotFound(f"no {k} bundle", code="no-bundle")
        return bundle

    async def put_bundle(self, who: Principal, kind: str, req: BundleUpdate) -> int:
        """Compare-and-swap a bundle; returns the new gen."""
        k = _kind(kind)
        bundle = check_new_bundle(req.bundle, k, req.expected_gen + 1)
        now = self._clock()
        async with self._db.write() as conn:
            if k == "pass":
                await self._same_params(conn, who.account_id, bundle)
            await self._accounts.swap_bundle(
                conn, who.account_id, bundle, expected_gen=req.expected_gen, now=now
            )
            await self._audit.record(
                conn,
                action="bundle-updated",
                actor=who.account_id,
                subject=who.account_id,
                details={"kind": k, "gen": bundle["gen"]},
                now=now,
            )
        return bundle["gen"]

    async def _same_params(self, conn: AsyncConnection, account_id: str, bundle: Bundle) -> None:
        creds = await self._accounts.credentials(conn, account_id)
        if creds is None or (creds.salt, creds.ops, creds.mem) != pass_params(bundle):
            raise BadRequest(
                "a pass bundle update keeps salt, ops and mem; change them with "
                "POST /api/v1/me/passphrase",
                code="bundle-params-changed",
            )

    # --- passphrase change ------------------------------------------------------------------
    async def change_passphrase(
        self, who: Principal, req: PassphraseChange, caller: Caller
    ) -> PassphraseChanged:
        bundle = check_new_bundle(req.bundle, "pass", req.expected_gen + 1)
        try:
            check_sign_pk(req.auth_pk)
        except CryptoError as exc:
            raise BadRequest(f"auth_pk: {type(exc).__name__}", code="invalid-auth-pk") from exc
        now = self._clock()
        async with self._db.write() as conn:
            outcome = await self._change(conn, who, req, bundle, caller, now)
        if isinstance(outcome, PostboxError):
            raise outcome
        return outcome

    async def _change(
        self,
        conn: AsyncConnection,
        who: Principal,
        req: PassphraseChange,
        bundle: Bundle,
        caller: Caller,
        now: int,
    ) -> PassphraseChanged | PostboxError:
        account = await self._accounts.get(conn, who.account_id)
        creds = await self._accounts.credentials(conn, who.account_id)
        if account is None or account.login is None or creds is None:  # pragma: no cover
            return NotFound("no such account")
        name = self._names.login(account.login)
        challenge = await store.consume_challenge(conn, H(req.challenge))
        state = DelayState(creds.failures, creds.next_attempt)
        delayed = await self._delayed(conn, state, caller, now)
        if delayed is not None:
            return delayed
        reason = self._proof_problem(
            req.proof,
            challenge=challenge,
            name=name,
            login=account.login,
            verifier=creds.verifier_for(req.method),
            now=now,
        )
        if reason is not None:
            await self._failed(conn, state, caller, now, account_id=account.id, name=name)
            await self._audit.record(
                conn,
                action="login-failed",
                actor=account.id,
                subject=account.id,
                details={
                    "name": name,
                    "method": req.method,
                    "reason": reason,
                    "during": "passphrase-change",
                },
                now=now,
            )
            log.info("passphrase change refused: %s (account %s)", reason, account.id)
            return Forbidden(REAUTH_FAILED, code="reauth-failed")
        await self._count(conn, LOGIN_IP, caller.address, now)
        current = await self._accounts.current_gen(conn, account.id, "pass")
        if current != req.expected_gen:
            return Conflict(
                f"the stored pass bundle is at gen {current}, not {req.expected_gen}",
                code="gen-conflict",
                extra={"gen": current},
            )
        await self._accounts.swap_bundle(
            conn, account.id, bundle, expected_gen=req.expected_gen, now=now
        )
        salt, ops, mem = pass_params(bundle)
        await self._accounts.set_pass_credentials(
            conn, account.id, auth_pk=req.auth_pk, salt=salt, ops=ops, mem=mem, now=now
        )
        revoked = await store.revoke_other_sessions(
            conn, account_id=account.id, keep=who.session_id, now=now
        )
        await self._audit.record(
            conn,
            action="passphrase-changed",
            actor=account.id,
            subject=account.id,
            details={
                "method": req.method,
                "gen": bundle["gen"],
                "session": who.session_id,
                "revoked_sessions": len(revoked),
            },
            now=now,
        )
        log.info(
            "passphrase changed: account %s (%s), %d other sessions revoked",
            account.id,
            req.method,
            len(revoked),
        )
        return PassphraseChanged(bundle["gen"], len(revoked))

    # --- limits and housekeeping ------------------------------------------------------------
    async def _delayed(
        self, conn: AsyncConnection, state: DelayState, caller: Caller, now: int
    ) -> RateLimited | None:
        """429 ``login-delayed`` while the name is in its delay (the proof is then not even
        evaluated); the attempt still counts against the address."""
        wait = self._delays.wait_ms(state, now)
        if wait <= 0:
            return None
        await self._count(conn, LOGIN_IP, caller.address, now)
        return _delayed(wait)

    async def _failed(
        self,
        conn: AsyncConnection,
        state: DelayState,
        caller: Caller,
        now: int,
        *,
        account_id: str | None,
        name: str,
    ) -> None:
        """A failed proof: the next delay, kept with the account or (unknown names) under
        the name's pseudonym, then the count against the address."""
        failed = self._delays.after_failure(state, now)
        if account_id is not None:
            await self._accounts.set_failures(
                conn, account_id, failures=failed.failures, next_attempt=failed.next_attempt
            )
        else:
            await store.set_delay_state(
                conn, LOGIN_DELAY + name, failures=failed.failures, next_attempt=failed.next_attempt
            )
        await self._count(conn, LOGIN_IP, caller.address, now)

    async def _count(self, conn: AsyncConnection, prefix: str, address: str, now: int) -> None:
        """Count a request against the address's window; 429 over the limit (rolls back)."""
        window = window_start(now)
        count = await store.hit_window(conn, prefix + self._names.address(address), window=window)
        if count > self._rate:
            raise RateLimited(
                retry_after_s(window + WINDOW_MS - now),
                "too many attempts from this address; try again later",
                code="too-many-attempts",
            )

    async def _sweep(self, conn: AsyncConnection, now: int) -> None:
        """At most once a minute per process: drop what can no longer matter."""
        if now < self._next_sweep:
            return
        self._next_sweep = now + SWEEP_EVERY_MS
        await store.delete_old_challenges(conn, before=now)
        await store.delete_old_rate_limits(
            conn,
            window_prefixes=WINDOW_PREFIXES,
            windows_before=window_start(now),
            delay_prefix=LOGIN_DELAY,
            delays_before=self._delays.forgotten_before(now),
        )
        await store.delete_dead_refresh_tokens(conn, now=now)


async def _new_refresh_token(conn: AsyncConnection, session_id: str, now: int) -> str:
    """A fresh refresh token of the session; only its hash is stored."""
    refresh, digest = new_refresh_token()
    await store.insert_refresh_token(conn, digest=digest, session_id=session_id, now=now)
    return refresh


def _delayed(wait_ms: int) -> RateLimited:
    return RateLimited(
        retry_after_s(wait_ms),
        "too many failed logins for this name; try again later",
        code="login-delayed",
    )


def _kind(kind: str) -> Kind:
    if kind not in KINDS:
        raise NotFound("bundles are pass or recovery", code="no-bundle")
    return cast(Kind, kind)
