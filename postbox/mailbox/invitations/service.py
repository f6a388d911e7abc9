"""Invitations, activation and self-registration (PROTOCOL.md §9).

An invitation is made by the **inviting client**: it draws the 20-byte activation code,
prints it (letter, QR, link) and registers only ``act_auth = H(key=code,
"postbox/v1/act-auth")``. The server keeps not even that: it stores
``H(key=K_pepper, "postbox/server/act-auth" ‖ act_auth)`` (see :func:`stored_authoriser`),
so a copy of the database cannot complete a pending activation (docs/protocol.md §12).

Who may invite whom:

* the operator CLI invites an organisation's admins (the first one in particular);
* an org admin invites caseworkers, connectors and admins of its own organisation;
* a caseworker invites citizens, on behalf of its own organisation.

Activation (``POST /api/v1/activation``) is all or nothing, in one transaction: the
authoriser (looked up by its peppered value, compared in constant time, unused,
unexpired), the certificates (a self-signed identity whose subject is the chosen account
id and whose kind and org are the invitation's — ``org`` null for citizens, whose
certificates never name the authority that invited them; an encryption certificate
signed by it), the account (``ACCOUNTS.create``), the keys (citizens: ``identity`` and
``key`` events in the log; staff: pending until the org root certifies them), the
invitation marked used with the account and the activating client's ``act_mac``, and an
audit entry. Any refusal leaves nothing behind, and the invitation stays usable.

The inviter later fetches ``act_mac`` and the identity (``GET /api/v1/invitations/{id}``),
verifies the MAC with the code it still holds, and marks the identity verified
(``POST …/verified``). Self-registration (where the org allows it) is the same without a
code; such identities stay unverified.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, cast

from sqlalchemy.ext.asyncio import AsyncConnection

from postbox.crypto import activation, certs, shapes
from postbox.crypto.encoding import KEY_BYTES, b64d, b64e
from postbox.crypto.errors import CryptoError, OrgCertificationMissing
from postbox.crypto.primitives import H, check_sign_pk
from postbox.keys.log import KeyLog
from postbox.mailbox.access import Principal
from postbox.mailbox.accounts.service import STAFF_KINDS, AccountService
from postbox.mailbox.audit.service import Audit
from postbox.mailbox.clock import Clock
from postbox.mailbox.db.engine import Database
from postbox.mailbox.errors import BadRequest, Conflict, Forbidden, Gone, NotFound
from postbox.mailbox.http import check_shape, malformed
from postbox.mailbox.invitations import store
from postbox.mailbox.orgs import store as org_store
from postbox.mailbox.orgs.service import (
    OrgFeatureService,
    cert_fresh,
    check_language,
    display_name,
    existing_org,
    invalid,
)
from postbox.mailbox.teams import store as team_store

#: who may invite which kinds of account (the operator CLI invites admins)
MAY_INVITE: Final[dict[str, tuple[str, ...]]] = {
    "admin": ("caseworker", "connector", "admin"),
    "caseworker": ("citizen",),
}
INVITED_KINDS: Final = ("citizen", "caseworker", "connector", "admin")
#: the longest an activation code may stay valid (a letter may take weeks to arrive)
MAX_VALIDITY_MS: Final = 90 * 24 * 3600 * 1000
MAX_LOGIN_BYTES: Final = 320
#: server-side domain label for the peppered authoriser (not a protocol label)
AUTHORISER_LABEL: Final = b"postbox/server/act-auth\x00"


def stored_authoriser(pepper: bytes, act_auth: bytes) -> bytes:
    """What the database holds for an invitation: ``H(key=pepper, label ‖ act_auth)``."""
    return H(AUTHORISER_LABEL + act_auth, key=pepper)


# --- commands ------------------------------------------------------------------------------------
def _key(value: str, what: str) -> bytes:
    try:
        pk = b64d(value, KEY_BYTES)
        check_sign_pk(pk)
    except CryptoError as exc:
        raise malformed(f"{what}: {exc}") from exc
    return pk


def _authoriser(value: str) -> bytes:
    try:
        return b64d(value, KEY_BYTES)
    except CryptoError as exc:
        raise malformed(f"authoriser: {exc}") from exc


@dataclass(frozen=True)
class NewInvitation:
    id: str
    kind: str
    team: str | None
    authoriser: bytes
    expires: int

    @classmethod
    def from_json(cls, body: Any) -> NewInvitation:
        shape = shapes.obj(
            {
                "id": shapes.ID,
                "kind": shapes.enum(*INVITED_KINDS),
                "team": shapes.nullable(shapes.ID),
                "authoriser": shapes.b64(KEY_BYTES),
                "expires": shapes.TIME,
            }
        )
        check_shape(shape, body, "body")
        return cls(
            body["id"], body["kind"], body["team"], _authoriser(body["authoriser"]), body["expires"]
        )


@dataclass(frozen=True)
class Lookup:
    authoriser: bytes

    @classmethod
    def from_json(cls, body: Any) -> Lookup:
        check_shape(shapes.obj({"authoriser": shapes.b64(KEY_BYTES)}), body, "body")
        return cls(_authoriser(body["authoriser"]))


_ACCOUNT_FIELDS: Final[dict[str, shapes.Shape]] = {
    "account": shapes.ID,
    "login": shapes.string(MAX_LOGIN_BYTES),
    "language": shapes.string(40),
    "identity": shapes.free_object,
    "encryption": shapes.free_object,
    "pass_bundle": shapes.free_object,
    "recovery_bundle": shapes.free_object,
    "auth_pk": shapes.b64(KEY_BYTES),
    "recovery_auth_pk": shapes.b64(KEY_BYTES),
}


@dataclass(frozen=True)
class NewAccount:
    """What activation and registration share: the account and its first keys."""

    account: str
    login: str
    language: str
    identity: dict[str, Any]
    encryption: dict[str, Any]
    pass_bundle: dict[str, Any]
    recovery_bundle: dict[str, Any]
    auth_pk: bytes
    recovery_auth_pk: bytes

    @classmethod
    def _of(cls, body: dict[str, Any]) -> NewAccount:
        return cls(
            account=body["account"],
            login=body["login"],
            language=check_language(body["language"]),
            identity=body["identity"],
            encryption=body["encryption"],
            pass_bundle=body["pass_bundle"],
            recovery_bundle=body["recovery_bundle"],
            auth_pk=_key(body["auth_pk"], "auth_pk"),
            recovery_auth_pk=_key(body["recovery_auth_pk"], "recovery_auth_pk"),
        )


@dataclass(frozen=True)
class Activate:
    authoriser: bytes
    act_mac: bytes
    new: NewAccount

    @classmethod
    def from_json(cls, body: Any) -> Activate:
        shape = shapes.obj(
            {
                **_ACCOUNT_FIELDS,
                "authoriser": shapes.b64(KEY_BYTES),
                "act_mac": shapes.b64(activation.MAC_BYTES),
            }
        )
        check_shape(shape, body, "body")
        return cls(
            _authoriser(body["authoriser"]),
            b64d(body["act_mac"], activation.MAC_BYTES),
            NewAccount._of(body),
        )


@dataclass(frozen=True)
class Register:
    org: str
    new: NewAccount

    @classmethod
    def from_json(cls, body: Any) -> Register:
        check_shape(shapes.obj({**_ACCOUNT_FIELDS, "org": shapes.ID}), body, "body")
        return cls(body["org"], NewAccount._of(body))


# --- views ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Invitation:
    """An invitation as its inviter sees it."""

    id: str
    kind: str
    org: str | None
    team: str | None
    created: int
    expires: int
    used: int | None
    account: str | None
    act_mac: bytes | None
    identity: dict[str, Any] | None
    verified: int | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "org": self.org,
            "team": self.team,
            "created": self.created,
            "expires": self.expires,
            "used": self.used,
            "account": self.account,
            "act_mac": None if self.act_mac is None else b64e(self.act_mac),
            "identity": self.identity,
            "verified": self.verified,
        }


@dataclass(frozen=True)
class LookedUp:
    """What the activating client learns before it creates its keys."""

    kind: str
    org: str
    org_names: dict[str, str]
    org_root: dict[str, Any] | None
    team: str | None
    expires: int

    def to_json(self) -> dict[str, Any]:
        root_name = None
        if self.org_root is not None:
            root_name = cast(certs.SignedOrgRoot, self.org_root)["org_root"]["name"]
        return {
            "kind": self.kind,
            "org": self.org,
            "org_name": root_name or display_name(self.org_names),
            "org_names": self.org_names,
            "org_root": self.org_root,
            "team": self.team,
            "expires": self.expires,
        }


@dataclass(frozen=True)
class Activated:
    account: str
    kind: str
    org: str | None

    def to_json(self) -> dict[str, Any]:
        return {"account": self.account, "kind": self.kind, "org": self.org}


# --- certificate checks (pure) -------------------------------------------------------------------
def _mismatch(detail: str) -> BadRequest:
    return BadRequest(detail, code="certificate-mismatch")


def check_new_keys(
    new: NewAccount, *, kind: str, org: str | None, now: int
) -> tuple[certs.Cert, certs.Cert]:
    """The first identity and encryption certificates of a new account of ``kind``.

    Staff identities arrive without ``org_sig`` (the org root certifies them afterwards);
    :func:`certs.verify_identity_cert` checks the self-signature before the org signature,
    so for them :class:`OrgCertificationMissing` means "self-signed, not yet certified".
    Citizens' certificates carry ``org`` null.
    """
    signed = new.identity
    try:
        try:
            identity = certs.verify_identity_cert(signed)
        except OrgCertificationMissing:
            claimed = cast(certs.SignedCert, signed)
            if claimed["cert"]["kind"] not in STAFF_KINDS or claimed["org_sig"] is not None:
                raise
            identity = claimed["cert"]
    except CryptoError as exc:
        raise invalid("identity", exc) from exc
    if signed["org_sig"] is not None:
        raise BadRequest(
            "a new identity is certified by the org root after activation",
            code="invalid-identity",
        )
    if signed["prev"] is not None:
        raise BadRequest("a first identity links to no earlier one", code="invalid-identity")
    if identity["subject"] != new.account:
        raise _mismatch("the identity certificate is for another account id")
    if identity["kind"] != kind:
        raise _mismatch(f"the identity certificate is not a {kind} certificate")
    expected_org = org if kind in STAFF_KINDS else None
    if identity["org"] != expected_org:
        raise _mismatch("the identity certificate names the wrong organisation")
    cert_fresh(identity, now, "identity")
    try:
        enc = certs.verify_encryption_cert(new.encryption, identity)
    except CryptoError as exc:
        raise invalid("encryption", exc) from exc
    cert_fresh(enc, now, "encryption")
    return identity, enc


class InvitationService(OrgFeatureService):
    """``app[INVITATIONS]``: invitations, activation and self-registration."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        keylog: KeyLog,
        accounts: AccountService,
        audit: Audit,
        pepper: bytes,
    ) -> None:
        super().__init__(db, clock, keylog=keylog, accounts=accounts, audit=audit)
        self._pepper = pepper

    # -- inviting --
    def _check_expiry(self, expires: int, now: int) -> None:
        if not now < expires <= now + MAX_VALIDITY_MS:
            raise BadRequest(
                "an invitation expires in the future, at most 90 days ahead",
                code="invalid-expiry",
            )

    async def _insert(
        self,
        conn: AsyncConnection,
        *,
        invitation_id: str,
        org_id: str,
        kind: str,
        team: str | None,
        authoriser: bytes,
        expires: int,
        inviter: str | None,
        now: int,
    ) -> store.InvitationRow:
        self._check_expiry(expires, now)
        stored = stored_authoriser(self._pepper, authoriser)
        if await store.get(conn, invitation_id) is not None or await store.authoriser_exists(
            conn, stored
        ):
            raise Conflict("this invitation exists already", code="invitation-exists")
        await store.insert(
            conn,
            invitation_id=invitation_id,
            org_id=org_id,
            kind=kind,
            team_id=team,
            authoriser=stored,
            inviter_id=inviter,
            created=now,
            expires=expires,
        )
        await self._audit.record(
            conn,
            action="invitation.create",
            actor=inviter,
            subject=invitation_id,
            details={"org": org_id, "kind": kind},
            now=now,
        )
        row = await store.get(conn, invitation_id)
        assert row is not None
        return row

    async def create(self, who: Principal, cmd: NewInvitation) -> Invitation:
        """An invitation by an org admin (staff) or a caseworker (citizens) of its org."""
        if cmd.kind not in MAY_INVITE.get(who.kind, ()) or who.org_id is None:
            raise Forbidden(f"a {who.kind} may not invite a {cmd.kind}", code="may-not-invite")
        now = self._clock()
        async with self._db.write() as conn:
            if cmd.team is not None:
                team = await team_store.get_team(conn, cmd.team)
                if team is None or team.org_id != who.org_id:
                    raise NotFound("no such team", code="team-not-found")
            row = await self._insert(
                conn,
                invitation_id=cmd.id,
                org_id=who.org_id,
                kind=cmd.kind,
                team=cmd.team,
                authoriser=cmd.authoriser,
                expires=cmd.expires,
                inviter=who.account_id,
                now=now,
            )
            return await self._view(conn, row)

    async def create_by_operator(
        self, *, invitation_id: str, org_id: str, authoriser: bytes, expires: int
    ) -> Invitation:
        """An admin invitation made by the operator CLI (the inviting side for the first
        admin of an organisation); its inviter is recorded as NULL."""
        now = self._clock()
        async with self._db.write() as conn:
            await existing_org(conn, org_id)
            row = await self._insert(
                conn,
                invitation_id=invitation_id,
                org_id=org_id,
                kind="admin",
                team=None,
                authoriser=authoriser,
                expires=expires,
                inviter=None,
                now=now,
            )
            return await self._view(conn, row)

    # -- the inviter's view and verification --
    async def _view(self, conn: AsyncConnection, row: store.InvitationRow) -> Invitation:
        identity = None
        if row.account_id is not None:
            rec = await self._directory.current_identity(conn, row.account_id)
            if rec is None:  # staff: still waiting for org certification
                pending = await self._directory.pending_of(conn, row.account_id)
                rec = next((r for r in pending if r.use == "sign"), None)
            identity = None if rec is None else rec.served
        return Invitation(
            row.id,
            row.kind,
            row.org_id,
            row.team_id,
            row.created,
            row.expires,
            row.used,
            row.account_id,
            row.act_mac,
            identity,
            row.verified,
        )

    async def _own(
        self, conn: AsyncConnection, inviter: str | None, invitation_id: str
    ) -> store.InvitationRow:
        row = await store.get(conn, invitation_id)
        if row is None or row.inviter_id != inviter:
            raise NotFound("no such invitation", code="invitation-not-found")
        return row

    async def get(self, who: Principal, invitation_id: str) -> Invitation:
        async with self._db.read() as conn:
            return await self._view(conn, await self._own(conn, who.account_id, invitation_id))

    async def get_by_operator(self, invitation_id: str) -> Invitation:
        async with self._db.read() as conn:
            return await self._view(conn, await self._own(conn, None, invitation_id))

    async def mark_verified(self, who: Principal, invitation_id: str) -> Invitation:
        return await self._mark_verified(who.account_id, invitation_id)

    async def mark_verified_by_operator(self, invitation_id: str) -> Invitation:
        return await self._mark_verified(None, invitation_id)

    async def _mark_verified(self, inviter: str | None, invitation_id: str) -> Invitation:
        """The inviter checked ``act_mac`` with its code: the identity is verified."""
        now = self._clock()
        async with self._db.write() as conn:
            row = await self._own(conn, inviter, invitation_id)
            if row.account_id is None:
                raise Conflict("the invitation has not been activated", code="not-activated")
            if row.verified is None:
                await store.mark_verified(conn, row.id, now)
                await store.mark_identity_verified(conn, row.account_id)
                await self._audit.record(
                    conn,
                    action="invitation.verified",
                    actor=inviter,
                    subject=row.account_id,
                    details={"invitation": row.id},
                    now=now,
                )
            updated = await store.get(conn, row.id)
            assert updated is not None
            return await self._view(conn, updated)

    # -- activating --
    async def _find(
        self, conn: AsyncConnection, authoriser: bytes, now: int
    ) -> store.InvitationRow:
        stored = stored_authoriser(self._pepper, authoriser)
        row = await store.by_authoriser(conn, stored)
        try:
            if row is None:
                raise LookupError
            activation.check_act_auth(row.authoriser, stored)
        except (LookupError, CryptoError):
            raise NotFound(
                "no invitation for this activation code", code="invitation-not-found"
            ) from None
        if row.used is not None:
            raise Gone("this activation code has been used", code="invitation-used")
        if row.expires <= now:
            raise Gone("this activation code has expired", code="invitation-expired")
        return row

    async def lookup(self, cmd: Lookup) -> LookedUp:
        now = self._clock()
        async with self._db.read() as conn:
            row = await self._find(conn, cmd.authoriser, now)
            assert row.org_id is not None
            org = await org_store.get_org(conn, row.org_id)
            assert org is not None
            return LookedUp(row.kind, org.id, org.names, org.root, row.team_id, row.expires)

    async def activate(self, cmd: Activate) -> Activated:
        now = self._clock()
        async with self._db.write() as conn:
            row = await self._find(conn, cmd.authoriser, now)
            check_new_keys(cmd.new, kind=row.kind, org=row.org_id, now=now)
            if not await store.claim(conn, row.id, now):
                # another activation won the race; tell which refusal it is now
                await self._find(conn, cmd.authoriser, now)
                raise Gone("this activation code has been used", code="invitation-used")
            await self._create(conn, cmd.new, kind=row.kind, org=row.org_id, now=now)
            await store.complete(conn, row.id, account_id=cmd.new.account, act_mac=cmd.act_mac)
            await self._audit.record(
                conn,
                action="account.activate",
                actor=cmd.new.account,
                subject=cmd.new.account,
                details={"invitation": row.id, "kind": row.kind, "org": row.org_id},
                now=now,
            )
        return Activated(cmd.new.account, row.kind, row.org_id)

    async def register(self, cmd: Register) -> Activated:
        """Self-registration of a citizen where the organisation allows it (unverified)."""
        now = self._clock()
        check_new_keys(cmd.new, kind="citizen", org=cmd.org, now=now)
        async with self._db.write() as conn:
            org = await org_store.get_org(conn, cmd.org)
            if org is None or not org.self_registration:
                raise NotFound(
                    "self-registration is not available here", code="registration-closed"
                )
            await self._create(conn, cmd.new, kind="citizen", org=org.id, now=now)
            await self._audit.record(
                conn,
                action="account.register",
                actor=cmd.new.account,
                subject=cmd.new.account,
                details={"org": org.id},
                now=now,
            )
        return Activated(cmd.new.account, "citizen", org.id)

    async def _create(
        self, conn: AsyncConnection, new: NewAccount, *, kind: str, org: str | None, now: int
    ) -> None:
        if await org_store.subject_taken(conn, new.account):
            raise Conflict("this account id is already in use", code="account-exists")
        await self._accounts.create(
            conn,
            account_id=new.account,
            kind=kind,
            org_id=org,
            login=new.login,
            identity_verified=False,
            language=new.language,
            auth_pk=new.auth_pk,
            recovery_auth_pk=new.recovery_auth_pk,
            pass_bundle=new.pass_bundle,
            recovery_bundle=new.recovery_bundle,
            now=now,
        )
        if kind in STAFF_KINDS:
            # staff keys wait for the org root's certification (POST /orgs/{org}/certify)
            await self._keylog.register_pending(conn, signed_cert=new.identity, now=now)
            await self._keylog.register_pending(conn, signed_cert=new.encryption, now=now)
        else:
            await self._keylog.append(
                conn, subject=new.account, type="identity", body=new.identity, now=now
            )
            await self._keylog.append(
                conn, subject=new.account, type="key", body=new.encryption, now=now
            )
