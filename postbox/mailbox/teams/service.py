"""Team mailboxes (Funktionspostfächer): members, the team key and its opaque wraps.

A team has no signing key. Its X25519 key is certified by an org admin key (a ``kind:
team`` certificate) and wrapped to each member's encryption key as a signed team wrap
(PROTOCOL.md §3). The server stores wraps opaquely: it checks who made them and for which
keys (the wrap's ``team``/``team_kid``/``member``/``member_kid``/``by`` against the team
certificate, the member's current encryption certificate and the wrapper's current
identity), but it cannot and does not open them.

The flows, each one transaction that also appends the matching key-log events:

* **First member** (``POST /teams/{team}/key`` while the team has no current member): the
  first caseworker generates the team key, has an org admin certify it and sign a
  membership naming the caseworker, and sends ``{"cert", "wraps", "membership"}`` — the
  wrap of the new key to itself, made by itself. The log gets the team ``key`` event, then
  ``member_add``. Why not "admin adds the first member, then the member inits the key":
  a team's log chain must start with its key event (PROTOCOL.md §7, ``keystate``), so a
  membership cannot be logged before the key exists, and storing a signed membership
  until then would need a column the schema does not have. The same request re-creates
  the key of a team whose last member left.
* **Add** (``POST /teams/{team}/members``): a membership signed by an org admin and a wrap
  of the *current* team key for the newcomer made by a current member (after checking
  the newcomer's fingerprint); sent by that member or by an admin. Refused while a
  rotation is pending (the current key is known to a removed member).
* **Remove** (``DELETE /teams/{team}/members/{member}``): a membership signed by an org
  admin; the member's wraps are deleted and the team is ``rotation_pending``.
* **Rotate** (``POST /teams/{team}/key`` by a current member): a new admin-certified key
  with one wrap for every current member, made by current members, optionally with wraps
  of older team keys so that the remaining members can still read old mail.

Visibility: a team exists for staff of its org (caseworkers, connectors, admins); for
everyone else it is 404. Admins manage members but are never members: they hold no team
key and read nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, cast

from sqlalchemy.ext.asyncio import AsyncConnection

from postbox.crypto import certs, domain, shapes
from postbox.crypto.encoding import SIGNATURE_BYTES, b64d, cj
from postbox.crypto.errors import CertificateInvalid, CryptoError
from postbox.crypto.primitives import verify
from postbox.mailbox.access import Principal
from postbox.mailbox.accounts.service import STAFF_KINDS
from postbox.mailbox.errors import BadRequest, Conflict, Forbidden, NotFound
from postbox.mailbox.http import check_shape, one_object
from postbox.mailbox.orgs import store as org_store
from postbox.mailbox.orgs.service import (
    CLOCK_SKEW_MS,
    MEMBER_KINDS,
    OrgFeatureService,
    cert_fresh,
    check_names,
    check_signed,
    current_admin,
    current_encryption,
    current_identity,
    existing_org,
    invalid,
    require_admin,
    require_staff,
)
from postbox.mailbox.teams import store

#: wraps in one key request: every member, plus re-wraps of older keys
MAX_WRAPS: Final = 2000


# --- commands ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NewTeam:
    team: str
    names: dict[str, str]

    @classmethod
    def from_json(cls, body: Any) -> NewTeam:
        check_shape(shapes.obj({"team": shapes.ID, "names": shapes.free_object}), body, "body")
        return cls(body["team"], check_names(body["names"]))


@dataclass(frozen=True)
class SetTeamKey:
    cert: dict[str, Any]
    wraps: tuple[dict[str, Any], ...]
    membership: dict[str, Any] | None

    @classmethod
    def from_json(cls, body: Any) -> SetTeamKey:
        shape = shapes.obj(
            {
                "cert": shapes.free_object,
                "wraps": shapes.array(shapes.free_object, MAX_WRAPS),
                "membership": shapes.nullable(shapes.free_object),
            }
        )
        check_shape(shape, body, "body")
        return cls(body["cert"], tuple(body["wraps"]), body["membership"])


@dataclass(frozen=True)
class AddMember:
    member: str
    membership: dict[str, Any]
    wrap: dict[str, Any]

    @classmethod
    def from_json(cls, body: Any) -> AddMember:
        shape = shapes.obj(
            {"member": shapes.ID, "membership": shapes.free_object, "wrap": shapes.free_object}
        )
        check_shape(shape, body, "body")
        return cls(body["member"], body["membership"], body["wrap"])


@dataclass(frozen=True)
class RemoveMember:
    membership: dict[str, Any]

    @classmethod
    def from_json(cls, body: Any) -> RemoveMember:
        return cls(one_object(body, "membership"))


# --- views ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Team:
    id: str
    org: str
    names: dict[str, str]
    key: dict[str, Any] | None  # the served team certificate
    members: list[str]
    rotation_pending: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "team": self.id,
            "org": self.org,
            "names": self.names,
            "key": self.key,
            "members": self.members,
            "rotation_pending": self.rotation_pending,
        }


@dataclass(frozen=True)
class TeamSummary:
    id: str
    org: str
    names: dict[str, str]
    key_kid: str | None
    member_count: int
    rotation_pending: bool
    created: int

    def to_json(self) -> dict[str, Any]:
        return {
            "team": self.id,
            "org": self.org,
            "names": self.names,
            "key_kid": self.key_kid,
            "member_count": self.member_count,
            "rotation_pending": self.rotation_pending,
            "created": self.created,
        }


def _not_found() -> NotFound:
    return NotFound("no such team", code="team-not-found")


def _verify_wrap_signature(signed: certs.SignedTeamWrap, by_identity: certs.Cert) -> None:
    """The wrapper's signature over ``"postbox/v1/teamwrap" ‖ cj(team_wrap)`` (PROTOCOL.md §2).

    ``certs.open_team_wrap`` checks the same signature but needs the member's secret key;
    the server only verifies who made the wrap, so it checks the signature alone.
    """
    wrapper = signed["team_wrap"]["by"]
    if signed["by_kid"] != by_identity["kid"] or by_identity["subject"] != wrapper:
        raise CertificateInvalid("team wrap signed by another key")
    verify(
        certs.cert_pk(by_identity),
        domain.TEAMWRAP + cj(signed["team_wrap"]),
        b64d(signed["sig"], SIGNATURE_BYTES),
    )


class TeamService(OrgFeatureService):
    """``app[TEAMS]``: team mailboxes, their members and the opaque wraps of their keys."""

    # -- reading --
    async def _visible(
        self, conn: AsyncConnection, who: Principal, team_id: str, *, lock: bool = False
    ) -> store.TeamRow:
        team = await (store.lock_team if lock else store.get_team)(conn, team_id)
        if team is None or who.org_id != team.org_id or who.kind not in STAFF_KINDS:
            raise _not_found()
        return team

    async def _view(self, conn: AsyncConnection, team: store.TeamRow) -> Team:
        key = None
        if team.key_kid is not None:
            rec = await self._directory.get(conn, team.key_kid)
            key = None if rec is None else rec.served
        members = await store.current_members(conn, team.id)
        return Team(team.id, team.org_id, team.names, key, members, team.rotation_pending)

    async def _reread(self, conn: AsyncConnection, team_id: str) -> Team:
        """The team as the change just made in this transaction left it."""
        team = await store.get_team(conn, team_id)
        assert team is not None
        return await self._view(conn, team)

    async def get(self, who: Principal, team_id: str) -> Team:
        async with self._db.read() as conn:
            return await self._view(conn, await self._visible(conn, who, team_id))

    async def of_org(self, who: Principal, org_id: str) -> list[TeamSummary]:
        require_staff(who, org_id)
        return await self.list_of_org(org_id)

    async def list_of_org(self, org_id: str) -> list[TeamSummary]:
        """An org's teams without access checks (operator CLI)."""
        async with self._db.read() as conn:
            counts = await store.member_counts(conn, org_id)
            return [
                TeamSummary(
                    t.id,
                    t.org_id,
                    t.names,
                    t.key_kid,
                    counts.get(t.id, 0),
                    t.rotation_pending,
                    t.created,
                )
                for t in await store.list_teams(conn, org_id)
            ]

    async def my_wraps(self, who: Principal, team_id: str) -> list[dict[str, Any]]:
        """The caller's wraps of every key of this team (current members only)."""
        async with self._db.read() as conn:
            team = await self._visible(conn, who, team_id)
            if who.account_id not in await store.current_members(conn, team.id):
                raise Forbidden("not a member of this team", code="not-a-member")
            return await store.wraps_of(conn, team.id, who.account_id)

    # -- creating --
    async def create(self, who: Principal, org_id: str, cmd: NewTeam) -> Team:
        require_admin(who, org_id)
        now = self._clock()
        async with self._db.write() as conn:
            await existing_org(conn, org_id)
            if await org_store.subject_taken(conn, cmd.team):
                raise Conflict("this id is already in use", code="team-exists")
            await store.insert_team(
                conn, team_id=cmd.team, org_id=org_id, names=cmd.names, created=now
            )
            await self._audit.record(
                conn,
                action="team.create",
                actor=who.account_id,
                subject=cmd.team,
                details={"org": org_id},
                now=now,
            )
            return await self._reread(conn, cmd.team)

    # -- checks shared by the changes --
    async def _membership(
        self, conn: AsyncConnection, team: store.TeamRow, signed: Any, now: int
    ) -> certs.Membership:
        check_signed(certs.SIGNED_MEMBERSHIP_SHAPE, signed, "membership", "membership")
        admin = await current_admin(self._directory, conn, signed["by"], team.org_id, now)
        try:
            m = certs.verify_membership(signed, admin, team.org_id)
        except CryptoError as exc:
            raise invalid("membership", exc) from exc
        if m["team"] != team.id:
            raise BadRequest("membership of another team", code="invalid-membership")
        if m["at"] > now + CLOCK_SKEW_MS:
            raise BadRequest("membership dated in the future", code="invalid-membership")
        return m

    async def _eligible(
        self, conn: AsyncConnection, team: store.TeamRow, account_id: str, now: int
    ) -> None:
        """A future member: a caseworker or connector of the team's org with certified keys."""
        account = await self._accounts.get(conn, account_id)
        if account is None or account.org_id != team.org_id:
            raise NotFound("no such account in this organisation", code="account-not-found")
        if account.kind not in MEMBER_KINDS or account.status != "active":
            raise BadRequest(
                "only active caseworkers and connectors are team members", code="not-eligible"
            )
        if await current_identity(self._directory, conn, account_id) is None:
            raise Conflict(
                "the account's identity is not certified by the org yet", code="not-certified"
            )
        if await current_encryption(self._directory, conn, account_id, now) is None:
            raise Conflict("the account has no current encryption key", code="not-certified")

    async def _wrap(
        self,
        conn: AsyncConnection,
        team: store.TeamRow,
        signed: Any,
        *,
        wrappers: set[str],
        recipients: set[str],
        now: int,
    ) -> certs.SignedTeamWrap:
        """A wrap made by one of ``wrappers`` for one of ``recipients``' current keys."""
        check_signed(certs.SIGNED_TEAM_WRAP_SHAPE, signed, "team wrap", "wrap")
        s = cast(certs.SignedTeamWrap, signed)
        wrap = s["team_wrap"]
        if wrap["team"] != team.id:
            raise BadRequest("wrap for another team", code="invalid-wrap")
        if wrap["by"] not in wrappers:
            raise BadRequest("wrap not made by a current member", code="invalid-wrap")
        if wrap["member"] not in recipients:
            raise BadRequest("wrap for someone who is not a member", code="invalid-wrap")
        by_identity = await current_identity(self._directory, conn, wrap["by"])
        if by_identity is None:
            raise BadRequest("the wrapper has no current identity", code="invalid-wrap")
        try:
            _verify_wrap_signature(s, by_identity)
        except CryptoError as exc:
            raise invalid("wrap", exc) from exc
        member_enc = await current_encryption(self._directory, conn, wrap["member"], now)
        if member_enc is None or member_enc["kid"] != wrap["member_kid"]:
            raise BadRequest(
                "wrap not sealed to the member's current encryption key", code="invalid-wrap"
            )
        return s

    async def _check_team_cert(
        self, conn: AsyncConnection, team: store.TeamRow, signed: Any, now: int
    ) -> certs.Cert:
        check_signed(certs.SIGNED_CERT_SHAPE, signed, "team certificate", "team-key")
        claimed = cast(certs.SignedCert, signed)["cert"]
        if (claimed["subject"], claimed["org"], claimed["kind"]) != (team.id, team.org_id, "team"):
            raise BadRequest("not a certificate of this team", code="invalid-team-key")
        admin = await current_admin(self._directory, conn, signed["by"], team.org_id, now)
        try:
            cert = certs.verify_team_cert(signed, admin)
        except CryptoError as exc:
            raise invalid("team-key", exc) from exc
        cert_fresh(cert, now, "team-key")
        if await self._directory.get(conn, cert["kid"]) is not None:
            raise Conflict("this team key is already registered", code="team-key-exists")
        return cert

    async def _caller_may_manage(
        self, who: Principal, team: store.TeamRow, members: list[str]
    ) -> None:
        if who.kind != "admin" and who.account_id not in members:
            raise Forbidden("only admins and current members manage a team", code="not-a-member")

    # -- changes --
    async def set_key(self, who: Principal, team_id: str, cmd: SetTeamKey) -> Team:
        """The first member's key (with its membership), or a rotation by a current member."""
        now = self._clock()
        async with self._db.write() as conn:
            team = await self._visible(conn, who, team_id, lock=True)
            cert = await self._check_team_cert(conn, team, cmd.cert, now)
            members = await store.current_members(conn, team.id)
            first = not members
            if first:
                if cmd.membership is None:
                    raise BadRequest(
                        "the first member sends its membership with the team key",
                        code="membership-required",
                    )
                m = await self._membership(conn, team, cmd.membership, now)
                if m["member"] != who.account_id:
                    raise Forbidden(
                        "the first member sets the team key itself", code="not-the-member"
                    )
                await self._eligible(conn, team, who.account_id, now)
                recipients = {who.account_id}
            else:
                if cmd.membership is not None:
                    raise BadRequest(
                        "add members with POST /members", code="membership-not-expected"
                    )
                if who.account_id not in members:
                    raise Forbidden("only current members rotate the key", code="not-a-member")
                recipients = set(members)
            older = {
                rec.kid
                for rec in await self._directory.certificates(conn, team.id)
                if rec.use == "encrypt"
            }
            seen: set[tuple[str, str]] = set()
            wraps: list[certs.SignedTeamWrap] = []
            for signed in cmd.wraps:
                s = await self._wrap(
                    conn, team, signed, wrappers=recipients, recipients=recipients, now=now
                )
                key = (s["team_wrap"]["team_kid"], s["team_wrap"]["member"])
                if key[0] != cert["kid"] and key[0] not in older:
                    raise BadRequest("wrap of an unknown team key", code="invalid-wrap")
                if key in seen:
                    raise BadRequest("two wraps of one key for one member", code="invalid-wrap")
                seen.add(key)
                wraps.append(s)
            missing = recipients - {m for kid, m in seen if kid == cert["kid"]}
            if missing:
                raise BadRequest(
                    f"the new key is not wrapped to {len(missing)} current member(s)",
                    code="wraps-incomplete",
                )
            await self._keylog.append(conn, subject=team.id, type="key", body=cmd.cert, now=now)
            if first:
                assert cmd.membership is not None
                await self._keylog.append(
                    conn, subject=team.id, type="member_add", body=cmd.membership, now=now
                )
                await store.add_member(conn, team.id, who.account_id, now)
            for s in wraps:
                await self._put_wrap(conn, team.id, s, now)
            await store.set_key(conn, team.id, cert["kid"])
            await self._audit.record(
                conn,
                action="team.key",
                actor=who.account_id,
                subject=team.id,
                details={"kid": cert["kid"], "first": first, "wraps": len(wraps)},
                now=now,
            )
            return await self._reread(conn, team.id)

    async def add_member(self, who: Principal, team_id: str, cmd: AddMember) -> Team:
        now = self._clock()
        async with self._db.write() as conn:
            team = await self._visible(conn, who, team_id, lock=True)
            members = await store.current_members(conn, team.id)
            await self._caller_may_manage(who, team, members)
            if not members or team.key_kid is None:
                raise Conflict(
                    "the team has no key yet: its first member sends it with its membership",
                    code="team-key-missing",
                )
            if team.rotation_pending:
                raise Conflict("rotate the team key before adding members", code="rotation-pending")
            if cmd.member in members:
                raise Conflict("already a member", code="already-member")
            m = await self._membership(conn, team, cmd.membership, now)
            if m["member"] != cmd.member:
                raise BadRequest("membership of another account", code="invalid-membership")
            await self._eligible(conn, team, cmd.member, now)
            s = await self._wrap(
                conn, team, cmd.wrap, wrappers=set(members), recipients={cmd.member}, now=now
            )
            if s["team_wrap"]["team_kid"] != team.key_kid:
                raise BadRequest("wrap of another than the current key", code="invalid-wrap")
            await self._keylog.append(
                conn, subject=team.id, type="member_add", body=cmd.membership, now=now
            )
            await store.add_member(conn, team.id, cmd.member, now)
            await self._put_wrap(conn, team.id, s, now)
            await self._audit.record(
                conn,
                action="team.member-add",
                actor=who.account_id,
                subject=team.id,
                details={"member": cmd.member},
                now=now,
            )
            return await self._reread(conn, team.id)

    async def remove_member(
        self, who: Principal, team_id: str, member: str, cmd: RemoveMember
    ) -> Team:
        now = self._clock()
        async with self._db.write() as conn:
            team = await self._visible(conn, who, team_id, lock=True)
            members = await store.current_members(conn, team.id)
            await self._caller_may_manage(who, team, members)
            if member not in members:
                raise NotFound("not a member of this team", code="not-a-member")
            m = await self._membership(conn, team, cmd.membership, now)
            if m["member"] != member:
                raise BadRequest("membership of another account", code="invalid-membership")
            await self._keylog.append(
                conn, subject=team.id, type="member_remove", body=cmd.membership, now=now
            )
            await store.remove_member(conn, team.id, member, now)
            await store.delete_member_wraps(conn, team.id, member)
            await store.set_rotation_pending(conn, team.id)
            await self._audit.record(
                conn,
                action="team.member-remove",
                actor=who.account_id,
                subject=team.id,
                details={"member": member},
                now=now,
            )
            return await self._reread(conn, team.id)

    async def _put_wrap(
        self, conn: AsyncConnection, team_id: str, s: certs.SignedTeamWrap, now: int
    ) -> None:
        w = s["team_wrap"]
        await store.put_wrap(
            conn,
            team_id=team_id,
            team_kid=w["team_kid"],
            member_id=w["member"],
            member_kid=w["member_kid"],
            by_id=w["by"],
            wrap=cast(dict[str, Any], s),
            now=now,
        )
