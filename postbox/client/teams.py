"""Team mailboxes: the team key, its wraps, members (PROTOCOL.md §3).

Teams have no signing key. A team's X25519 key is made by a member, **certified by an org
admin**, and wrapped to every member's encryption key as a signed team wrap. Memberships are
statements **signed by an org admin**. So most changes need two people: a member (who holds
the team key and makes wraps) and an admin (who signs certificates and memberships but reads
nothing). The hand-over is a :class:`TeamRequest` the member makes and an :class:`Approval`
the admin returns (:meth:`Teams.approve`); the desk passes them as files, tests call the
admin's client directly.

* **init** (first member): :meth:`Teams.request_key` generates the key (kept in the member's
  bundle at once), the admin approves the certificate and the member's membership,
  :meth:`Teams.install_key` wraps the key to the member itself and sends everything.
* **add**: the newcomer's chain is verified and its identity fingerprint compared with the
  one the caller got from the person *before* the current key is wrapped to it.
* **remove**: the admin's membership removes the member; then (rotation) a new key is
  certified and wrapped, together with every older team key this member holds, to the
  remaining members, so that they can still read old mail.

Wraps received are opened with :func:`postbox.crypto.certs.open_team_wrap` against the team
chain replayed from the log (certified key, current members) and the wrapper's verified
identity; the keys go into the bundle.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, Literal, cast

from postbox.client.account import ENCRYPTION_VALIDITY_MS, Account
from postbox.client.errors import KeyAlarm, ProtocolViolation, UsageError
from postbox.client.http import segment
from postbox.client.keyring import Keyring, add_team_key
from postbox.client.keys import (
    KeyDirectory,
    VerifiedSubject,
    cert_fingerprint,
    check_fingerprint,
    verifying,
)
from postbox.client.session import Session
from postbox.crypto import certs, shapes
from postbox.crypto.certs import Cert, SignedCert, SignedMembership, SignedTeamWrap
from postbox.crypto.errors import CertificateInvalid
from postbox.crypto.keystate import SubjectState
from postbox.crypto.primitives import box_keypair, random_bytes

#: how far a request's certificate may be dated from the approving admin's clock
MAX_REQUEST_AGE_MS: Final = 7 * 24 * 3600 * 1000
Op = Literal["add", "remove"]

REQUEST_SHAPE = shapes.obj(
    {
        "v": shapes.const(1),
        "type": shapes.const("postbox-team-request"),
        "team": shapes.ID,
        "org": shapes.ID,
        "by": shapes.ID,
        "cert": shapes.nullable(certs.CERT_SHAPE),
        "member": shapes.nullable(shapes.ID),
        "op": shapes.nullable(shapes.enum("add", "remove")),
    }
)
APPROVAL_SHAPE = shapes.obj(
    {
        "v": shapes.const(1),
        "type": shapes.const("postbox-team-approval"),
        "team": shapes.ID,
        "request": REQUEST_SHAPE,
        "cert": shapes.nullable(certs.SIGNED_CERT_SHAPE),
        "membership": shapes.nullable(certs.SIGNED_MEMBERSHIP_SHAPE),
    }
)


@dataclass(frozen=True)
class TeamRequest:
    """What a member asks an org admin to sign: a team key and/or a membership."""

    team: str
    org: str
    by: str
    cert: Cert | None = None
    member: str | None = None
    op: Op | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "v": 1,
            "type": "postbox-team-request",
            "team": self.team,
            "org": self.org,
            "by": self.by,
            "cert": self.cert,
            "member": self.member,
            "op": self.op,
        }

    @classmethod
    def from_json(cls, value: Any) -> TeamRequest:
        with verifying("team request"):
            shapes.check(REQUEST_SHAPE, value, "team request")
        if (value["member"] is None) != (value["op"] is None):
            raise UsageError("a team request names a member and an operation together")
        return cls(
            value["team"], value["org"], value["by"], value["cert"], value["member"], value["op"]
        )


@dataclass(frozen=True)
class Approval:
    """The admin's answer (with the request it answers): the certified team key and/or the
    signed membership."""

    request: TeamRequest
    cert: SignedCert | None = None
    membership: SignedMembership | None = None

    @property
    def team(self) -> str:
        return self.request.team

    def to_json(self) -> dict[str, Any]:
        return {
            "v": 1,
            "type": "postbox-team-approval",
            "team": self.team,
            "request": self.request.to_json(),
            "cert": self.cert,
            "membership": self.membership,
        }

    @classmethod
    def from_json(cls, value: Any) -> Approval:
        with verifying("team approval"):
            shapes.check(APPROVAL_SHAPE, value, "team approval")
        request = TeamRequest.from_json(value["request"])
        if request.team != value["team"]:
            raise UsageError("the approval and its request name different teams")
        return cls(request, value["cert"], value["membership"])


Approver = Callable[[TeamRequest], Awaitable[Approval]]


def _wrap(
    keyring: Keyring, team_cert: Cert, team_sk: bytes, member: str, member_enc: Cert
) -> SignedTeamWrap:
    """A team key wrapped to ``member``'s encryption key, made and signed by this account."""
    return certs.make_team_wrap(
        team_cert=team_cert,
        team_sk=team_sk,
        member=member,
        member_enc=member_enc,
        by=keyring.account,
        by_seed=keyring.identity.seed,
    )


@dataclass(frozen=True)
class TeamInfo:
    team: str
    org: str
    names: dict[str, str]
    key: SignedCert | None
    members: list[str]
    rotation_pending: bool

    @classmethod
    def from_json(cls, body: Any) -> TeamInfo:
        try:
            return cls(
                team=body["team"],
                org=body["org"],
                names=dict(body["names"]),
                key=body.get("key"),
                members=[m if isinstance(m, str) else m["account"] for m in body["members"]],
                rotation_pending=bool(body["rotation_pending"]),
            )
        except (KeyError, TypeError) as exc:
            raise ProtocolViolation(f"team answer: {exc}") from exc


class Teams:
    def __init__(self, session: Session, keys: KeyDirectory, account: Account) -> None:
        self.session = session
        self.keys = keys
        self.account = account

    # --- reading --------------------------------------------------------------------------
    async def info(self, team: str) -> TeamInfo:
        """The server's view of a team (not trusted for keys: see :meth:`verified`)."""
        return TeamInfo.from_json(await self.session.call("GET", f"/api/v1/teams/{segment(team)}"))

    async def verified(self, team: str) -> VerifiedSubject:
        """The team's chain from the log: certified keys, members, rotation pending."""
        subject = await self.keys.subject(team)
        if subject.state.kind != "team":
            raise UsageError(f"{team} is not a team")
        return subject

    async def my_wraps(self, team: str) -> list[SignedTeamWrap]:
        body = await self.session.call("GET", f"/api/v1/teams/{segment(team)}/wraps")
        items = body.get("wraps") if isinstance(body, dict) else body
        if not isinstance(items, list):
            raise ProtocolViolation("GET /teams/{team}/wraps: unexpected answer")
        return cast(list[SignedTeamWrap], items)

    async def open_wraps(self, keyring: Keyring, team: str) -> Keyring:
        """Open this account's wraps of the team's keys and keep the keys in the bundle.

        Every wrap is checked: made by a current member (per the log) under that member's
        logged identity, for a certified key of this team, sealed to one of our keys; the
        unwrapped key must be the certified one (else a key-substitution alarm).
        """
        team_state = (await self.verified(team)).state
        certified = {e.cert["kid"]: e.cert for e in team_state.encryption}
        own = {k.kid: k for k in keyring.encryption_keys}
        opened: list[bytes] = []
        for signed in await self.my_wraps(team):
            wrap = signed["team_wrap"]
            if keyring.team_key(team, wrap["team_kid"]) is not None:
                continue
            team_cert = certified.get(wrap["team_kid"])
            member_key = own.get(wrap["member_kid"])
            if team_cert is None:
                raise KeyAlarm(f"{team}: a wrap of a team key that is not in the log")
            if member_key is None or wrap["member"] != keyring.account:
                raise KeyAlarm(f"{team}: a wrap sealed to a key this account does not hold")
            by_identity = await self._identity_of(wrap["by"], signed["by_kid"])
            with verifying(f"team wrap of {team}"):
                sk = certs.open_team_wrap(
                    signed,
                    team_cert=team_cert,
                    member_pk=member_key.pk,
                    member_sk=member_key.sk,
                    by_identity=by_identity,
                    current_members=team_state.members,
                )
            opened.append(sk)
        if not opened:
            return keyring

        def change(p: Any) -> Any:
            for sk in opened:
                p = add_team_key(p, team, sk)
            return p

        return await self.account.update_keys(keyring, change)

    async def _identity_of(self, account: str, kid: str) -> Cert:
        """The identity certificate ``kid`` of ``account`` as logged (current or older)."""
        state = (await self.keys.subject(account)).state
        for entry in state.identities:
            if entry.cert["kid"] == kid:
                return entry.cert
        raise KeyAlarm(f"{account}: signed by a key that is not in the signer's log chain")

    # --- member side ------------------------------------------------------------------------
    async def request_key(
        self, keyring: Keyring, team: str, *, op_self: bool | None = None
    ) -> tuple[Keyring, TeamRequest]:
        """Make a new team key (kept in the bundle at once) and the request to certify it.

        For a team without members the request also asks for this account's membership.
        """
        info = await self.info(team)
        me = keyring.account
        first = not info.members if op_self is None else op_self
        if not first and me not in info.members:
            raise UsageError("only current members make a new key for a team")
        sk = random_bytes(32)
        pk, _ = box_keypair(sk)
        now = self.session.clock()
        with verifying("team certificate"):
            cert = certs.make_cert(
                subject=team,
                kind="team",
                org=info.org,
                use="encrypt",
                pk=pk,
                created=now,
                expires=now + ENCRYPTION_VALIDITY_MS,
            )
        keyring = await self.account.update_keys(keyring, lambda p: add_team_key(p, team, sk))
        request = TeamRequest(
            team=team,
            org=info.org,
            by=me,
            cert=cert,
            member=me if first else None,
            op="add" if first else None,
        )
        return keyring, request

    def member_request(self, keyring: Keyring, info: TeamInfo, member: str, op: Op) -> TeamRequest:
        """Ask an admin for a membership statement (and, for a removal, a new team key)."""
        return TeamRequest(team=info.team, org=info.org, by=keyring.account, member=member, op=op)

    async def _check_approval(
        self, approval: Approval, request: TeamRequest
    ) -> tuple[SignedCert | None, SignedMembership | None]:
        """Verify the admin's signatures against the org chain and the request."""
        if approval.request != request:
            raise UsageError("the approval answers another request")
        org_state = await self.keys.org(request.org)
        now = self.session.clock()
        if request.cert is not None:
            if approval.cert is None or approval.cert["cert"] != request.cert:
                raise UsageError("the approval does not certify the requested team key")
            admin = self._admin(org_state, approval.cert["by"], now)
            with verifying("team certificate"):
                certs.verify_team_cert(approval.cert, admin)
        if request.member is not None:
            m = approval.membership
            if m is None or (m["membership"]["team"], m["membership"]["member"]) != (
                request.team,
                request.member,
            ):
                raise UsageError("the approval does not carry the requested membership")
            admin = self._admin(org_state, m["by"], now)
            with verifying("membership"):
                certs.verify_membership(m, admin, request.org)
        return approval.cert, approval.membership

    @staticmethod
    def _admin(org_state: SubjectState, kid: str, now: int) -> Cert:
        with verifying("org admin key"):
            return org_state.admin_valid_at(kid, now)

    async def install_key(
        self,
        keyring: Keyring,
        request: TeamRequest,
        approval: Approval,
        *,
        old_keys: bool = True,
    ) -> TeamInfo:
        """Send an approved team key with wraps to every current member.

        The first member also sends its membership. On a rotation (``old_keys``) every older
        key of this team that this account holds is wrapped to the remaining members too.
        """
        cert, membership = await self._check_approval(approval, request)
        if cert is None:
            raise UsageError("this approval certifies no team key")
        team = request.team
        new = keyring.team_key(team, cert["cert"]["kid"])
        if new is None:
            raise UsageError("this account does not hold the certified team key")
        first = request.op == "add" and request.member == keyring.account
        info = await self.info(team)
        members = [keyring.account] if first else list(info.members)
        if keyring.account not in members:
            raise UsageError("only current members install a team key")
        keys = [new] + (
            [k for k in keyring.team_keys(team) if k.kid != new.kid] if old_keys else []
        )
        wraps = []
        for member in members:
            enc = await self._member_encryption(member)
            for key in keys:
                team_cert = (
                    cert["cert"] if key.kid == new.kid else await self._team_cert(team, key.kid)
                )
                if team_cert is None:
                    continue  # a key that never made it into the log: nothing to share
                with verifying("team wrap"):
                    wraps.append(_wrap(keyring, team_cert, key.sk, member, enc))
        body = await self.session.call(
            "POST",
            f"/api/v1/teams/{segment(team)}/key",
            {"cert": cert, "wraps": wraps, "membership": membership if first else None},
        )
        return TeamInfo.from_json(body)

    async def _team_cert(self, team: str, kid: str) -> Cert | None:
        state = (await self.verified(team)).state
        for entry in state.encryption:
            if entry.cert["kid"] == kid:
                return entry.cert
        return None

    async def _member_encryption(self, member: str) -> Cert:
        subject = await self.keys.subject(member)
        with verifying(f"encryption key of {member}"):
            return subject.state.current_encryption(self.session.clock())

    async def init(
        self, keyring: Keyring, team: str, approver: Approver
    ) -> tuple[Keyring, TeamInfo]:
        """The first member's whole flow: new key, admin approval, install."""
        keyring, request = await self.request_key(keyring, team)
        approval = await approver(request)
        return keyring, await self.install_key(keyring, request, approval)

    async def add_member(
        self,
        keyring: Keyring,
        team: str,
        member: str,
        *,
        fingerprint: str,
        approval: Approval,
    ) -> TeamInfo:
        """Wrap the current team key to ``member`` after checking its fingerprint."""
        info = await self.info(team)
        request = self.member_request(keyring, info, member, "add")
        _, membership = await self._check_approval(approval, request)
        assert membership is not None
        team_state = (await self.verified(team)).state
        if team_state.rotation_pending:
            raise UsageError("rotate the team key first (a member was removed)")
        with verifying("team key"):
            team_cert = team_state.current_encryption(self.session.clock())
        key = keyring.team_key(team, team_cert["kid"])
        if key is None:
            keyring = await self.open_wraps(keyring, team)
            key = keyring.team_key(team, team_cert["kid"])
        if key is None:
            raise UsageError("this account does not hold the team's current key")
        newcomer = await self.keys.subject(member)
        identity = newcomer.state.identity
        if identity is None:
            raise UsageError(f"{member} has no current identity")
        check_fingerprint(fingerprint, cert_fingerprint(identity), f"the identity of {member}")
        self.keys.mark_verified(member, identity["kid"])
        with verifying(f"encryption key of {member}"):
            enc = newcomer.state.current_encryption(self.session.clock())
            wrap = _wrap(keyring, team_cert, key.sk, member, enc)
        body = await self.session.call(
            "POST",
            f"/api/v1/teams/{segment(team)}/members",
            {"member": member, "membership": membership, "wrap": wrap},
        )
        return TeamInfo.from_json(body)

    async def request_removal(
        self, keyring: Keyring, team: str, member: str
    ) -> tuple[Keyring, TeamRequest]:
        """A member's request to remove ``member`` and certify the next team key at once."""
        keyring = await self.open_wraps(keyring, team)
        keyring, request = await self.request_key(keyring, team, op_self=False)
        return keyring, TeamRequest(
            team=team, org=request.org, by=request.by, cert=request.cert, member=member, op="remove"
        )

    async def remove_and_rotate(self, keyring: Keyring, approval: Approval) -> TeamInfo:
        """Remove the member the approval names, then install the approved new key."""
        request = approval.request
        if request.op != "remove" or request.member is None or request.cert is None:
            raise UsageError("this approval is not a removal with a new team key")
        await self._check_approval(approval, request)
        await self.remove_member(request.team, request.member, approval)
        return await self.install_key(keyring, request, approval)

    async def remove_member(self, team: str, member: str, approval: Approval) -> TeamInfo:
        """Send the admin's removal (by an admin or a member); the team then needs a rotation."""
        if approval.membership is None or approval.membership["membership"]["member"] != member:
            raise UsageError("the approval does not remove this member")
        if approval.request.op != "remove":
            raise UsageError("the approval is not a removal")
        body = await self.session.call(
            "DELETE",
            f"/api/v1/teams/{segment(team)}/members/{segment(member)}",
            {"membership": approval.membership},
        )
        return TeamInfo.from_json(body)

    async def rotate(
        self, keyring: Keyring, team: str, approver: Approver
    ) -> tuple[Keyring, TeamInfo]:
        """A new key for the remaining members (after a removal), with the old keys."""
        keyring = await self.open_wraps(keyring, team)
        keyring, request = await self.request_key(keyring, team, op_self=False)
        approval = await approver(request)
        return keyring, await self.install_key(keyring, request, approval)

    # --- admin side ------------------------------------------------------------------------
    async def approve(self, admin: Keyring, request: TeamRequest) -> Approval:
        """Sign what a member asked for, after checking it (org admins only).

        The team must be this admin's org's; a certificate must be a fresh ``kind: team``
        encryption certificate of that team; a member to add must have an identity the org
        root certified. The membership's ``at`` is this admin's clock.
        """
        st = self.session.state
        if st.kind != "admin" or st.org != request.org:
            raise UsageError("only an admin of the team's organisation approves team requests")
        info = await self.info(request.team)
        if info.org != request.org:
            raise UsageError("the team belongs to another organisation")
        org_state = await self.keys.org(request.org)
        now = self.session.clock()
        mine = self._admin(org_state, admin.identity.kid, now)
        cert = None
        if request.cert is not None:
            c = request.cert
            with verifying("requested team certificate"):
                certs.check_cert(c)
                if (c["subject"], c["org"], c["kind"], c["use"]) != (
                    request.team,
                    request.org,
                    "team",
                    "encrypt",
                ):
                    raise CertificateInvalid("not a certificate of this team")
            if abs(c["created"] - now) > MAX_REQUEST_AGE_MS:
                raise UsageError("the requested certificate is too old or dated in the future")
            if request.member is None and request.by not in info.members:
                raise UsageError("only a current member may ask for a new team key")
            cert = certs.sign_cert(c, admin.identity.seed)
        membership = None
        if request.member is not None:
            if request.op == "add":
                member = await self.keys.subject(request.member)
                identity = member.state.identity
                if identity is None or identity["org"] != request.org:
                    raise UsageError("the new member has no identity certified by this org")
                if identity["kind"] not in ("caseworker", "connector"):
                    raise UsageError("only caseworkers and connectors are team members")
            elif request.member not in info.members:
                raise UsageError("that account is not a member of this team")
            membership = certs.sign_membership(
                team=request.team, member=request.member, at=now, admin_seed=admin.identity.seed
            )
        with verifying("own signatures"):
            if cert is not None:
                certs.verify_team_cert(cert, mine)
            if membership is not None:
                certs.verify_membership(membership, mine, request.org)
        return Approval(request=request, cert=cert, membership=membership)
