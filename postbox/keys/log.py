"""The key-transparency log service (PROTOCOL.md §7): genesis, appends, pending identities.

**Appending** (:meth:`KeyLog.append`) runs inside the *caller's* write transaction, so a
feature that stores something and logs the key event for it commits both or neither. It

1. takes the log lock (PostgreSQL: ``SELECT … FROM log_state WHERE id = 1 FOR UPDATE``;
   SQLite write transactions are already serial), so several server processes and the
   operator CLI append safely;
2. builds the event with the subject's next ``seq`` and ``prev`` and ``ts = max(now,
   previous ts)`` (:func:`postbox.crypto.logevents.next_event`);
3. **refuses** it unless the subject's logged chain plus the new event replays
   (:func:`postbox.crypto.keystate.replay`), with the org roots and org chains taken from
   the log itself: an org's pinned root is the ``org_root`` event at ``seq`` 0 of its
   chain. Refusals are :class:`~postbox.mailbox.errors.BadRequest` /
   :class:`~postbox.mailbox.errors.Conflict` with the codes of :data:`REFUSAL_CODES`;
   nothing is written before every check passed;
4. stores the leaf, the perfect Merkle nodes it completes (:class:`merkle.Frontier`,
   about two rows per leaf) and the new size, and updates the key directory
   (:mod:`postbox.keys.directory`).

Which events a *principal* may publish through ``POST /api/v1/keys`` is decided by
:meth:`KeyLog.publish` (see its docstring); other features (activation, org roots, teams)
call :meth:`KeyLog.append` directly after their own authorisation.

Tree heads and proofs are :mod:`postbox.keys.heads` (``KeyLog.heads``), the key directory
:mod:`postbox.keys.directory` (``KeyLog.directory``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, cast

from sqlalchemy.ext.asyncio import AsyncConnection

from postbox import __version__
from postbox.crypto import certs, shapes
from postbox.crypto.bundle import DEFAULT_MEM, DEFAULT_OPS
from postbox.crypto.certs import OrgRoot, SignedCert
from postbox.crypto.encoding import ID_BYTES, KEY_BYTES, b64d, b64e, cj
from postbox.crypto.errors import (
    BadSignature,
    BrokenChain,
    CertificateExpired,
    CertificateInvalid,
    CertificateRevoked,
    CryptoError,
    IdentityChanged,
    InvalidKey,
    KeyIdMismatch,
    OrgCertificationMissing,
)
from postbox.crypto.keystate import SubjectState, replay
from postbox.crypto.logevents import (
    BODY_SHAPES,
    EVENT_TYPES,
    EventType,
    LogEvent,
    event_hash,
    event_leaf,
    next_event,
    parse_leaf,
)
from postbox.crypto.primitives import H, equal
from postbox.crypto.transparency import MAX_CLOCK_SKEW_MS
from postbox.keys import merkle, store
from postbox.keys.commands import PublishKey
from postbox.keys.directory import Directory
from postbox.keys.heads import TreeHeads
from postbox.mailbox.access import Principal
from postbox.mailbox.accounts.service import AccountService
from postbox.mailbox.audit.service import Audit
from postbox.mailbox.clock import Clock
from postbox.mailbox.db.engine import Database
from postbox.mailbox.errors import BadRequest, Conflict, Forbidden, NotFound, PostboxError
from postbox.mailbox.secrets import Secrets
from postbox.mailbox.settings import Settings

log = logging.getLogger("postbox.keys")

#: a certificate may be dated at most this far after the server's clock (PROTOCOL.md §5 skew)
MAX_FUTURE_MS: Final = MAX_CLOCK_SKEW_MS
#: the kinds of certificate events (they change the key directory)
_CERT_EVENTS: Final = frozenset({"identity", "key", "admin_key"})

#: CryptoError → (problem class, code); the first matching entry wins (subclasses first)
REFUSAL_CODES: Final[tuple[tuple[type[CryptoError], type[PostboxError], str], ...]] = (
    (BrokenChain, Conflict, "broken-chain"),
    (BadSignature, BadRequest, "bad-signature"),
    (KeyIdMismatch, BadRequest, "kid-mismatch"),
    (InvalidKey, BadRequest, "invalid-key"),
    (CertificateExpired, BadRequest, "certificate-expired"),
    (CertificateRevoked, BadRequest, "certificate-revoked"),
    (OrgCertificationMissing, BadRequest, "org-certification-missing"),
    (IdentityChanged, BadRequest, "identity-not-linked"),
    (CertificateInvalid, BadRequest, "invalid-certificate"),
)


def refusal(exc: CryptoError) -> PostboxError:
    """The problem for an event the crypto core refused (the error name in the detail)."""
    detail = f"{type(exc).__name__}: {exc}"
    for kind, problem, code in REFUSAL_CODES:
        if isinstance(exc, kind):
            return problem(detail, code=code)
    return BadRequest(detail, code="invalid-event")


def server_subject(log_pk: bytes) -> str:
    """The subject of the server's own chain (leaf 0): ``b64(H(log_pk, 16))``."""
    return b64e(H(log_pk, ID_BYTES))


class LogMismatch(RuntimeError):
    """The log in the database was started with other server keys than these secrets."""


@dataclass(frozen=True, slots=True)
class Appended:
    """Where an event landed: its leaf index, its seq in the subject's chain, its leaf hash."""

    index: int
    seq: int
    leaf_hash: bytes


def _cert_org(event_type: str, body: Mapping[str, Any]) -> str | None:
    """The organisation an event's body names (the body's shape is already checked)."""
    if event_type in _CERT_EVENTS:
        return cast(str | None, body["cert"]["org"])
    if event_type == "org_root":
        return cast(str, body["org_root"]["org"])
    if event_type == "server_key":
        return cast(str | None, body["org"])
    return None


async def _insert_cert(
    conn: AsyncConnection, cert: certs.Cert, served: str, *, log_index: int | None
) -> None:
    """The directory row of a certificate: logged at ``log_index``, or (None) pending."""
    await store.insert_cert(
        conn,
        kid=cert["kid"],
        subject=cert["subject"],
        use=cert["use"],
        kind=cert["kind"],
        org_id=cert["org"],
        served=served,
        created=cert["created"],
        expires=cert["expires"],
        log_index=log_index,
    )


class KeyLog:
    """The log and its directory. One per process, at ``app[KEYLOG]``.

    Construct it with the database, the server secrets (the log key signs tree heads),
    the settings and the clock; call :meth:`genesis` once at start (the operator CLI may
    use the same object without the background task).
    """

    def __init__(
        self,
        *,
        db: Database,
        secrets: Secrets,
        settings: Settings,
        clock: Clock,
        accounts: AccountService,
        audit: Audit,
    ) -> None:
        self._db = db
        self._accounts = accounts
        self._audit = audit
        self._settings = settings
        self._clock = clock
        self.directory = Directory()
        self.heads = TreeHeads(db=db, secrets=secrets, settings=settings, clock=clock)
        self.log_pk = secrets.log_pk
        self.receipt_pk = secrets.receipt_pk
        self.server_subject = server_subject(self.log_pk)

    # --- lifecycle ---------------------------------------------------------------------------
    async def genesis(self) -> None:
        """Create leaf 0 (the server's ``server_key`` event) if the log is empty, under the
        log lock, so that several processes starting at once create it exactly once; then
        make sure a tree head exists. Refuses (:class:`LogMismatch`) a log whose leaf 0
        holds other keys than this server's secrets."""
        async with self._db.write() as conn:
            size = await store.lock_log(conn)
            if size == 0:
                now = self._clock()
                key = certs.make_server_key(
                    log_pk=self.log_pk, receipt_pk=self.receipt_pk, created=now
                )
                body = {"server_key": key, "org": None, "sig": None}
                await self.append(
                    conn, subject=self.server_subject, type="server_key", body=body, now=now
                )
            else:
                leaf = await store.leaf_at(conn, 0)
                self._check_leaf0(leaf)
        await self.heads.ensure_head()

    def _check_leaf0(self, leaf: bytes | None) -> None:
        if leaf is None:
            raise LogMismatch("the log has no leaf 0")
        event = parse_leaf(leaf)
        key = event["body"].get("server_key") if event["type"] == "server_key" else None
        if (
            event["subject"] != self.server_subject
            or key is None
            or not equal(b64d(key["log_pk"], KEY_BYTES), self.log_pk)
            or not equal(b64d(key["receipt_pk"], KEY_BYTES), self.receipt_pk)
        ):
            raise LogMismatch(
                "the transparency log in this database was started with other server keys "
                "than the ones in the secrets folder; restore the matching secrets "
                "(log.seed, receipt.seed) together with the database"
            )

    # --- appending ---------------------------------------------------------------------------
    async def append(
        self,
        conn: AsyncConnection,
        *,
        subject: str,
        type: str,
        body: Mapping[str, Any],
        now: int,
        expect_seq: int | None = None,
        expect_prev: bytes | None = None,
    ) -> Appended:
        """Append one event to ``subject``'s chain, inside the caller's write transaction.

        ``body`` is the signed object as served (PROTOCOL.md §7.2: a served certificate for
        ``identity``/``key``/``admin_key``, ``{"org_root","sig"}``, ``{"revoke","sig","by"}``,
        ``{"membership","sig","by"}``, ``{"server_key","org","sig"}``). ``now`` is the
        caller's clock (ms); the event's ``ts`` is ``max(now, previous ts)``.
        ``expect_seq``/``expect_prev`` make the append conditional on the chain head
        (409 ``wrong-seq`` / ``wrong-prev``).

        Raises (nothing written): 400 ``invalid-event`` (shape), ``bad-signature``,
        ``invalid-certificate``, ``identity-not-linked``, ``org-certification-missing``,
        ``certificate-expired``, ``certificate-revoked``, ``kid-mismatch``,
        ``invalid-key``, ``certificate-from-future``; 409 ``broken-chain`` (e.g. an
        account chain not starting with its identity), ``kid-in-use``,
        ``identity-pending``, ``chain-unverifiable``, ``wrong-seq``, ``wrong-prev``.

        Call it as late as possible in the transaction, after the caller's other writes:
        the log lock is global and held until commit, and a transaction that locks other
        rows *after* it can deadlock with one that locked them before.
        """
        if type not in EVENT_TYPES:
            raise BadRequest(f"unknown event type {type!r}", code="invalid-event")
        return await self._append(
            conn,
            subject=subject,
            type=cast(EventType, type),
            body=body,
            now=now,
            expect_seq=expect_seq,
            expect_prev=expect_prev,
            need_chain=False,
        )

    async def _append(
        self,
        conn: AsyncConnection,
        *,
        subject: str,
        type: EventType,
        body: Mapping[str, Any],
        now: int,
        expect_seq: int | None,
        expect_prev: bytes | None,
        need_chain: bool,
    ) -> Appended:
        size = await store.lock_log(conn)
        chain = await self._chain(conn, subject)
        if need_chain and not chain:
            pending = await store.pending_certs(conn, subject=subject, use="sign")
            if pending:
                raise Conflict("the identity waits for org certification", code="identity-pending")
            raise Conflict("this subject has no chain in the log yet", code="no-chain")
        previous = chain[-1] if chain else None
        if expect_seq is not None:
            self._check_expectation(previous, expect_seq, expect_prev)
        try:
            event = next_event(
                previous,
                subject=subject,
                type=type,
                ts=max(now, previous["ts"]) if previous else now,
                body=body,
            )
        except CryptoError as exc:
            raise refusal(exc) from exc
        if type in _CERT_EVENTS:
            self._check_times(cast(SignedCert, event["body"])["cert"], now)
        await self._verify(conn, chain, event)
        known = None
        if type in _CERT_EVENTS:
            known = await self._check_kid(conn, type, cast(SignedCert, event["body"]))
        leaf = event_leaf(event)
        h = merkle.leaf_hash(leaf)
        await store.insert_leaf(
            conn,
            idx=size,
            subject=subject,
            seq=event["seq"],
            type=type,
            leaf=leaf,
            leaf_hash=h,
            ts=event["ts"],
        )
        frontier = merkle.Frontier.load(size, await store.nodes(conn, merkle.root_nodes(size)))
        frontier, created = frontier.append(h)
        await store.insert_nodes(conn, created)
        await store.set_log_size(conn, size + 1)
        # Only a chain that already holds a certificate of the same type has one to supersede.
        supersedes = any(e["type"] == type for e in chain)
        await self._update_directory(conn, event, size, known=known, supersedes=supersedes)
        return Appended(index=size, seq=event["seq"], leaf_hash=h)

    @staticmethod
    def _check_expectation(previous: LogEvent | None, seq: int, prev: bytes | None) -> None:
        want_seq = 0 if previous is None else previous["seq"] + 1
        if seq != want_seq:
            raise Conflict(
                f"the chain's next seq is {want_seq}", code="wrong-seq", extra={"seq": want_seq}
            )
        want_prev = None if previous is None else event_hash(previous)
        if (prev is None) != (want_prev is None) or (
            prev is not None and want_prev is not None and not equal(prev, want_prev)
        ):
            raise Conflict("prev is not the chain's last leaf hash", code="wrong-prev")

    @staticmethod
    def _check_times(cert: certs.Cert, now: int) -> None:
        if cert["created"] > now + MAX_FUTURE_MS:
            raise BadRequest(
                "the certificate is dated in the future", code="certificate-from-future"
            )
        if cert["expires"] is not None and cert["expires"] <= now:
            raise BadRequest("the certificate has expired", code="certificate-expired")

    async def _chain(self, conn: AsyncConnection, subject: str) -> list[LogEvent]:
        return [parse_leaf(r.leaf) for r in await store.subject_leaves(conn, subject)]

    async def _context(
        self, conn: AsyncConnection, events: Sequence[LogEvent]
    ) -> tuple[dict[str, OrgRoot], dict[str, SubjectState]]:
        """The pinned org roots and replayed org chains the replay of ``events`` needs.

        An org's root is the ``org_root`` event at ``seq`` 0 of its chain in this log
        (the org registered it; clients pin it from their configuration or paper).
        """
        subject = events[0]["subject"]
        org_ids = {_cert_org(e["type"], e["body"]) for e in events} - {None}
        roots: dict[str, OrgRoot] = {}
        orgs: dict[str, SubjectState] = {}
        for org in sorted(cast(set[str], org_ids)):
            chain = list(events) if org == subject else await self._chain(conn, org)
            if not chain or chain[0]["type"] != "org_root":
                continue
            try:
                roots[org] = certs.verify_org_root(chain[0]["body"])
            except CryptoError:
                continue  # the replay of this very event reports it
            if org == subject:
                continue
            try:
                orgs[org] = replay(chain, org_roots={org: roots[org]})
            except CryptoError:  # pragma: no cover - logged org chains always replay
                log.error("the logged chain of org %s does not replay", org)
        return roots, orgs

    async def _verify(self, conn: AsyncConnection, chain: list[LogEvent], event: LogEvent) -> None:
        events = [*chain, event]
        roots, orgs = await self._context(conn, events)
        try:
            replay(events, org_roots=roots, orgs=orgs)
        except CryptoError as exc:
            if chain:
                try:
                    replay(chain, org_roots=roots, orgs=orgs)
                except CryptoError as old:
                    # e.g. a backdated revocation of an admin key that signed this chain
                    raise Conflict(
                        f"the subject's logged chain no longer verifies "
                        f"({type(old).__name__}: {old})",
                        code="chain-unverifiable",
                    ) from old
            raise refusal(exc) from exc

    async def _check_kid(
        self, conn: AsyncConnection, type: str, signed: SignedCert
    ) -> store.CertRow | None:
        """Refuse a kid another subject certified or this chain logged; return its row."""
        cert = signed["cert"]
        row = await store.cert_by_kid(conn, cert["kid"])
        if row is None:
            return None
        if row.subject != cert["subject"] or row.use != cert["use"]:
            raise Conflict("this key is certified for another subject", code="kid-in-use")
        if row.log_index is None:
            if type == "admin_key":
                raise Conflict(
                    "the admin identity waits for org certification", code="identity-pending"
                )
            if cj(json.loads(row.served)["cert"]) != cj(cert):
                raise Conflict(  # pragma: no cover - same kid, same subject, other cert
                    "another certificate of this key is waiting", code="kid-in-use"
                )
            return row
        if type == "admin_key" and row.use == "sign":
            return row  # the admin's identity, logged in its account chain
        raise Conflict("this key is already in the log", code="kid-in-use")

    async def _update_directory(
        self,
        conn: AsyncConnection,
        event: LogEvent,
        index: int,
        *,
        known: store.CertRow | None,
        supersedes: bool,
    ) -> None:
        t, body, ts = event["type"], event["body"], event["ts"]
        if t in _CERT_EVENTS:
            signed = cast(SignedCert, body)
            cert = signed["cert"]
            served = cj(signed).decode("utf-8")
            row = known
            if row is None:
                await _insert_cert(conn, cert, served, log_index=index)
            elif row.log_index is None:
                await store.mark_logged(conn, cert["kid"], served=served, log_index=index)
            if t != "admin_key" and supersedes:
                await store.supersede(
                    conn, subject=cert["subject"], use=cert["use"], keep=cert["kid"], at=ts
                )
        elif t == "revoke":
            rev = body["revoke"]
            await store.revoke(conn, subject=rev["subject"], kid=rev["kid"], at=rev["at"])

    # --- pending staff identities -------------------------------------------------------------
    async def register_pending(
        self, conn: AsyncConnection, *, signed_cert: Mapping[str, Any], now: int
    ) -> None:
        """Keep a certificate that cannot be logged yet, in the caller's transaction.

        * a staff identity (``caseworker``/``connector``/``admin``) without ``org_sig``:
          its self-signature is verified; one pending identity per subject;
        * an encryption certificate of a subject whose identity is pending: verified
          against that identity.

        Idempotent for the same certificate. Raises 400 ``invalid-certificate`` (and the
        other crypto codes of :meth:`append`), ``not-staff``, ``already-certified``;
        409 ``kid-in-use``, ``already-pending``, ``identity-not-pending``.
        """
        try:
            shapes.check(certs.SIGNED_CERT_SHAPE, signed_cert, "certificate")
            signed = cast(SignedCert, signed_cert)
            cert = certs.check_cert(signed["cert"])
        except CryptoError as exc:
            raise BadRequest(f"{type(exc).__name__}: {exc}", code="invalid-certificate") from exc
        self._check_times(cert, now)
        served = cj(signed).decode("utf-8")
        existing = await store.cert_by_kid(conn, cert["kid"])
        if existing is not None:
            if existing.log_index is None and existing.served == served:
                return
            raise Conflict("this key is already registered", code="kid-in-use")
        if cert["use"] == "sign":
            await self._check_pending_identity(conn, signed)
        else:
            identities = await store.pending_certs(conn, subject=cert["subject"], use="sign")
            if not identities:
                raise Conflict(
                    "no identity of this subject waits for certification",
                    code="identity-not-pending",
                )
            identity = cast(SignedCert, json.loads(identities[0].served))["cert"]
            try:
                certs.verify_encryption_cert(signed, identity)
            except CryptoError as exc:
                raise refusal(exc) from exc
        await _insert_cert(conn, cert, served, log_index=None)

    async def _check_pending_identity(self, conn: AsyncConnection, signed: SignedCert) -> None:
        cert = signed["cert"]
        if cert["kind"] not in certs.ORG_CERTIFIED_KINDS:
            raise BadRequest("only staff identities wait for org certification", code="not-staff")
        if signed["org_sig"] is not None:
            raise BadRequest("this identity is already org-certified", code="already-certified")
        try:
            certs.verify_identity_cert(signed)
        except OrgCertificationMissing:
            # Expected: verify_identity_cert checks the self-signature first and only then
            # asks for the org signature, which this certificate does not have yet.
            pass
        except CryptoError as exc:
            raise refusal(exc) from exc
        if await store.pending_certs(conn, subject=cert["subject"], use="sign"):
            raise Conflict("another identity of this subject is waiting", code="already-pending")

    async def pending(self, conn: AsyncConnection, org_id: str) -> list[dict[str, Any]]:
        """The served identity certificates of this org's staff waiting for certification,
        oldest first (for ``GET /api/v1/orgs/{org}/pending``)."""
        return [r.served for r in await self.directory.pending(conn, org_id)]

    async def certify(
        self, conn: AsyncConnection, *, org_id: str, signed_identity: Mapping[str, Any], now: int
    ) -> list[Appended]:
        """Log a pending staff identity now that the org root signed it, then the
        encryption certificates that waited with it, in the caller's transaction.

        ``signed_identity`` must be the pending certificate (same ``cert`` and ``sig``)
        with ``org_sig`` added; the org signature is checked against the org root in the
        log. Returns the appended events (identity first). Raises 404 ``not-pending`` (no
        such pending identity *in this org*: other orgs' are not revealed), 400
        ``invalid-certificate``, ``certificate-mismatch``, ``org-certification-missing``
        and every refusal of :meth:`append`.
        """
        try:
            shapes.check(certs.SIGNED_CERT_SHAPE, signed_identity, "certificate")
        except CryptoError as exc:
            raise BadRequest(f"{type(exc).__name__}: {exc}", code="invalid-certificate") from exc
        signed = cast(SignedCert, signed_identity)
        cert = signed["cert"]
        row = await store.cert_by_kid(conn, cert["kid"])
        if row is None or row.log_index is not None or row.use != "sign" or row.org_id != org_id:
            raise NotFound("no identity of this organisation waits for that", code="not-pending")
        stored: dict[str, Any] = json.loads(row.served)
        if cj(stored) != cj({**signed, "org_sig": None}):
            raise BadRequest(
                "not the certificate that waits for certification", code="certificate-mismatch"
            )
        if signed["org_sig"] is None:
            raise BadRequest("org_sig is missing", code="org-certification-missing")
        subject = cert["subject"]
        done = [await self.append(conn, subject=subject, type="identity", body=signed, now=now)]
        for enc in await store.pending_certs(conn, subject=subject, use="encrypt"):
            body = json.loads(enc.served)
            done.append(await self.append(conn, subject=subject, type="key", body=body, now=now))
        return done

    # --- reading chains ----------------------------------------------------------------------
    async def events(self, conn: AsyncConnection, subject: str) -> list[LogEvent]:
        """The subject's logged chain (empty if it has none)."""
        return await self._chain(conn, subject)

    async def subject_state(self, conn: AsyncConnection, subject: str) -> SubjectState | None:
        """The subject's key state, replayed from the log (``None`` without a chain):
        current keys, team members and ``rotation_pending``, org admins…"""
        chain = await self._chain(conn, subject)
        if not chain:
            return None
        roots, orgs = await self._context(conn, chain)
        try:
            return replay(chain, org_roots=roots, orgs=orgs)
        except CryptoError as exc:
            raise Conflict(
                f"the subject's logged chain does not verify ({type(exc).__name__}: {exc})",
                code="chain-unverifiable",
            ) from exc

    # --- POST /api/v1/keys ---------------------------------------------------------------------
    async def publish(self, principal: Principal, cmd: PublishKey) -> Appended:
        """Append an event a client sent, if this principal may (one transaction).

        * **Any account, its own chain** (subject = its account id): ``identity`` (a
          rotation: linked to the current identity by ``prev``/``prev_sig``, same kind and
          org; staff need the org signature), ``key`` (a new encryption certificate signed
          by its current identity), ``revoke`` (of its own keys, by its current identity).
        * **An org admin, its org's chain** (subject = its org id): ``admin_key``
          (org-certified admin identities), ``server_key`` (the org root's endorsement of
          this server's keys), ``revoke`` (of admin keys, by a current admin key).
        * **An org admin, its org's staff**: ``revoke`` in the account chain of an account
          whose current identity belongs to the admin's org.

        Not here: ``org_root`` (``POST /api/v1/orgs/{org}/root``), team keys and
        memberships (the team routes), and anyone's first identity (activation and org
        certification). The chain must exist. Refusals: 403 ``type-not-allowed``,
        ``not-your-subject``; 409 ``no-chain``, ``identity-pending``; the codes of
        :meth:`append`.
        """
        try:
            BODY_SHAPES[cmd.type](cmd.body, "body")
        except CryptoError as exc:
            raise BadRequest(f"{type(exc).__name__}: {exc}", code="invalid-event") from exc
        self._check_publishable(cmd)
        subject = cmd.subject or self._default_subject(cmd)
        now = self._clock()
        async with self._db.write() as conn:
            await self._authorise(conn, principal, cmd.type, subject)
            appended = await self._append(
                conn,
                subject=subject,
                type=cmd.type,
                body=cmd.body,
                now=now,
                expect_seq=cmd.seq,
                expect_prev=cmd.prev,
                need_chain=True,
            )
            details: dict[str, Any] = {"type": cmd.type, "index": appended.index,
                                       "seq": appended.seq}  # fmt: skip
            if cmd.type == "revoke" and subject != principal.account_id:
                revoked = await self.directory.get(conn, cmd.body["revoke"]["kid"])
                if revoked is not None and revoked.use == "sign":
                    # an admin revoked a staff member's identity: the account stops at once
                    sessions = await self._accounts.disable(conn, account_id=subject, now=now)
                    details["disabled"] = True
                    details["sessions_revoked"] = len(sessions)
            # the audit entry goes last: it locks the audit chain until commit
            await self._audit.record(conn, action="key.publish", actor=principal.account_id,
                                     subject=subject, details=details, now=now)  # fmt: skip
            return appended

    @staticmethod
    def _check_publishable(cmd: PublishKey) -> None:
        if cmd.type == "org_root":
            raise Forbidden(
                "register an org root with POST /api/v1/orgs/{org}/root", code="type-not-allowed"
            )
        team_key = cmd.type == "key" and cmd.body["cert"]["kind"] == "team"
        if team_key or cmd.type in ("member_add", "member_remove"):
            raise Forbidden(
                "team keys and memberships go through the team routes", code="type-not-allowed"
            )

    @staticmethod
    def _default_subject(cmd: PublishKey) -> str:
        body = cmd.body
        if cmd.type in ("identity", "key"):
            return cast(str, body["cert"]["subject"])
        if cmd.type == "admin_key":
            org = body["cert"]["org"]
        elif cmd.type == "server_key":
            org = body["org"]
        else:  # revoke
            return cast(str, body["revoke"]["subject"])
        if org is None:
            raise BadRequest(f"a {cmd.type} event needs an org", code="invalid-event")
        return cast(str, org)

    async def _authorise(
        self, conn: AsyncConnection, principal: Principal, type: str, subject: str
    ) -> None:
        if subject == principal.account_id:
            if type not in ("identity", "key", "revoke"):
                raise Forbidden(
                    f"{type} events do not go in an account chain", code="type-not-allowed"
                )
            return
        if principal.kind == "admin" and principal.org_id is not None:
            if subject == principal.org_id:
                if type not in ("admin_key", "server_key", "revoke"):
                    raise Forbidden(
                        f"{type} events do not go in the org chain", code="type-not-allowed"
                    )
                return
            if type == "revoke" and await self.directory.subject_org(conn, subject) == (
                principal.org_id
            ):
                return
        raise Forbidden(
            "you may append only to your own chain (org admins: their org's chain and "
            "revocations of their org's staff)",
            code="not-your-subject",
        )

    # --- GET /api/v1/server ----------------------------------------------------------------------
    def server_info(self) -> dict[str, Any]:
        """What clients pin (``log_pk``, ``receipt_pk``) and need before they log in."""
        return {
            "origin": self._settings.origin,
            "version": __version__,
            "log_pk": b64e(self.log_pk),
            "receipt_pk": b64e(self.receipt_pk),
            "argon2": {"ops": DEFAULT_OPS, "mem": DEFAULT_MEM},
            "limits": {
                "json_bytes": self._settings.max_json_bytes,
                "message_bytes": self._settings.max_message_bytes,
                "blob_bytes": self._settings.max_blob_bytes,
                "part_bytes": self._settings.max_part_bytes,
                "quota_bytes": self._settings.quota_bytes,
            },
        }
