"""Organisations: creation (operator), the org root, and org certification of staff keys.

Rules:

* An organisation has display names in several languages, a neutral notification name
  (what e-mails say: "Stadt Nürnberg", never the office whose name alone reveals a
  person's situation) and a self-registration flag. The operator creates it
  (``postbox admin org create``).
* Org admins manage their organisation but read nothing: they register the org root once,
  certify staff identities with it, create teams and sign memberships. Everything they
  sign is verified here with the crypto core before it reaches the key log.
* Visibility: an organisation is visible to the accounts that belong to it; to everyone
  else it does not exist (404), like every other object of another org.

Every method runs one transaction; the key log (``app[KEYLOG]``), the accounts
(``app[ACCOUNTS]``) and the audit log (``app[AUDIT]``, always last) join it.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, cast

from sqlalchemy.ext.asyncio import AsyncConnection

from postbox.crypto import certs, shapes
from postbox.crypto.encoding import b64e
from postbox.crypto.errors import CryptoError
from postbox.crypto.primitives import random_bytes
from postbox.keys.directory import Directory
from postbox.keys.log import KeyLog
from postbox.mailbox.access import Principal
from postbox.mailbox.accounts.service import LANGUAGE_TAG, STAFF_KINDS, AccountService
from postbox.mailbox.audit.service import Audit
from postbox.mailbox.clock import Clock
from postbox.mailbox.db.engine import Database
from postbox.mailbox.errors import BadRequest, Conflict, Forbidden, NotFound
from postbox.mailbox.http import check_shape, malformed, one_object
from postbox.mailbox.orgs import store

#: kinds that can be team members (admins manage teams but hold no team key)
MEMBER_KINDS: Final = ("caseworker", "connector")
MAX_NAME_BYTES: Final = 200
MAX_LANGUAGES: Final = 32
#: certificates may be dated this far in the future (client clocks drift)
CLOCK_SKEW_MS: Final = 5 * 60 * 1000


# --- shared rules --------------------------------------------------------------------------------
def new_id() -> str:
    return b64e(random_bytes(16))


def invalid(thing: str, exc: CryptoError) -> BadRequest:
    """A signed object the crypto core refused: code ``invalid-<thing>``, the error name."""
    return BadRequest(f"{thing}: {type(exc).__name__}: {exc}", code=f"invalid-{thing}")


def check_signed(shape: shapes.Shape, value: Any, what: str, thing: str) -> None:
    """The closed shape of a signed object in a body: refused like its signature would be
    (``invalid-<thing>``), not as a ``malformed`` body."""
    try:
        shapes.check(shape, value, what)
    except CryptoError as exc:
        raise invalid(thing, exc) from exc


def check_text(value: Any, what: str, max_bytes: int = MAX_NAME_BYTES) -> str:
    """A display text: non-empty, bounded, no control or line-separator characters.

    Names end up in e-mail headers and on printed letters, so a newline is never allowed.
    """
    if not isinstance(value, str) or not value.strip():
        raise malformed(f"{what}: expected a non-empty string")
    if len(value.encode("utf-8", "surrogatepass")) > max_bytes:
        raise malformed(f"{what}: longer than {max_bytes} bytes")
    for ch in value:
        if unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp"):
            raise malformed(f"{what}: control characters are not allowed")
    return value


def check_language(value: Any, what: str = "language") -> str:
    if not isinstance(value, str) or not LANGUAGE_TAG.fullmatch(value):
        raise malformed(f"{what}: expected a language tag like de or en")
    return value


def check_names(value: Any, what: str = "names") -> dict[str, str]:
    """``{"de": "...", "en": "..."}``: at least one language, each a display text."""
    if not isinstance(value, dict) or not value:
        raise malformed(f"{what}: expected an object of language → name")
    if len(value) > MAX_LANGUAGES:
        raise malformed(f"{what}: more than {MAX_LANGUAGES} languages")
    return {
        check_language(lang, f"{what} key"): check_text(name, f"{what}.{lang}")
        for lang, name in value.items()
    }


def display_name(names: Mapping[str, str], language: str = "de") -> str:
    if language in names:
        return names[language]
    return names[sorted(names)[0]]


def org_not_found() -> NotFound:
    """The one answer for an organisation that does not exist *for the caller*."""
    return NotFound("no such organisation", code="org-not-found")


async def existing_org(conn: AsyncConnection, org_id: str) -> store.OrgRow:
    """The organisation's row, or the 404 of :func:`org_not_found`."""
    org = await store.get_org(conn, org_id)
    if org is None:
        raise org_not_found()
    return org


def require_member(who: Principal, org_id: str) -> None:
    """Another organisation's objects do not exist for the caller."""
    if who.org_id != org_id:
        raise org_not_found()


def require_staff(who: Principal, org_id: str) -> None:
    require_member(who, org_id)
    if who.kind not in STAFF_KINDS:
        raise org_not_found()


def require_admin(who: Principal, org_id: str) -> None:
    require_staff(who, org_id)
    if who.kind != "admin":
        raise Forbidden("only an admin of this organisation may do this", code="admin-only")


def cert_fresh(cert: certs.Cert, now: int, thing: str) -> None:
    """Refuse a certificate dated in the future or already expired."""
    if cert["created"] > now + CLOCK_SKEW_MS:
        raise BadRequest(f"{thing}: created in the future", code=f"invalid-{thing}")
    if cert["expires"] is not None and cert["expires"] <= now:
        raise BadRequest(f"{thing}: already expired", code=f"invalid-{thing}")


async def current_admin(
    directory: Directory, conn: AsyncConnection, kid: str, org_id: str, now: int
) -> certs.Cert:
    """The certified, current identity of an admin of ``org_id``, by kid (admin signatures)."""
    rec = await directory.get(conn, kid)
    if (
        rec is None
        or rec.use != "sign"
        or rec.kind != "admin"
        or rec.org_id != org_id
        or not rec.usable_at(now)
    ):
        raise BadRequest(
            "not signed by a certified, current admin key of this organisation",
            code="unknown-admin-key",
        )
    return cast(certs.SignedCert, rec.served)["cert"]


async def current_identity(
    directory: Directory, conn: AsyncConnection, subject: str
) -> certs.Cert | None:
    rec = await directory.current_identity(conn, subject)
    return None if rec is None else cast(certs.SignedCert, rec.served)["cert"]


async def current_encryption(
    directory: Directory, conn: AsyncConnection, subject: str, now: int
) -> certs.Cert | None:
    rec = await directory.current_encryption(conn, subject, now=now)
    return None if rec is None else cast(certs.SignedCert, rec.served)["cert"]


# --- organisations -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Org:
    id: str
    names: dict[str, str]
    notification_name: str
    self_registration: bool
    citizens_may_write: bool
    org_root: dict[str, Any] | None
    fingerprint: str | None
    created: int

    @classmethod
    def of(cls, row: store.OrgRow) -> Org:
        return cls(
            row.id,
            row.names,
            row.notification_name,
            row.self_registration,
            row.citizens_may_write,
            row.root,
            row.root_fingerprint,
            row.created,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "org": self.id,
            "names": self.names,
            "notification_name": self.notification_name,
            "self_registration": self.self_registration,
            "citizens_may_write": self.citizens_may_write,
            "org_root": self.org_root,
            "fingerprint": self.fingerprint,
            "created": self.created,
        }


@dataclass(frozen=True)
class NewOrg:
    names: dict[str, str]
    notification_name: str
    self_registration: bool

    @classmethod
    def of(
        cls, names: Mapping[str, str], notification_name: str, self_registration: bool
    ) -> NewOrg:
        return cls(
            check_names(dict(names)),
            check_text(notification_name, "notification_name"),
            bool(self_registration),
        )


@dataclass(frozen=True)
class OrgChange:
    """``PATCH /orgs/{org}``: the settings to change (today the one flag)."""

    citizens_may_write: bool

    @classmethod
    def from_json(cls, body: Any) -> OrgChange:
        check_shape(shapes.obj({"citizens_may_write": shapes.enum_bool()}), body, "body")
        return cls(body["citizens_may_write"])


@dataclass(frozen=True)
class RegisterRoot:
    org_root: dict[str, Any]

    @classmethod
    def from_json(cls, body: Any) -> RegisterRoot:
        return cls(one_object(body, "org_root"))


@dataclass(frozen=True)
class Certify:
    identity: dict[str, Any]

    @classmethod
    def from_json(cls, body: Any) -> Certify:
        return cls(one_object(body, "identity"))


class OrgFeatureService:
    """What the org, team and invitation services share: the database (one transaction per
    call), the clock, and the key log (with its key directory), the accounts and the audit
    log, which join that transaction."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        keylog: KeyLog,
        accounts: AccountService,
        audit: Audit,
    ) -> None:
        self._db = db
        self._clock = clock
        self._keylog = keylog
        self._directory: Directory = keylog.directory
        self._accounts = accounts
        self._audit = audit


class OrgService(OrgFeatureService):
    """``app[ORGS]``: organisations, their root and the org certification of staff keys."""

    async def create(self, cmd: NewOrg, *, actor: str | None = None) -> Org:
        """Create an organisation (the operator CLI; ``actor`` None = the operator)."""
        now = self._clock()
        org_id = new_id()
        async with self._db.write() as conn:
            await store.insert_org(
                conn,
                org_id=org_id,
                names=cmd.names,
                notification_name=cmd.notification_name,
                self_registration=cmd.self_registration,
                created=now,
            )
            await self._audit.record(
                conn,
                action="org.create",
                actor=actor,
                subject=org_id,
                details={"self_registration": cmd.self_registration},
                now=now,
            )
            row = await store.get_org(conn, org_id)
        assert row is not None
        return Org.of(row)

    async def all(self) -> list[Org]:
        """Every organisation (operator only; there is no HTTP route for it)."""
        async with self._db.read() as conn:
            return [Org.of(r) for r in await store.list_orgs(conn)]

    async def find(self, org_id: str) -> Org | None:
        """An organisation by id, without access checks (operator CLI)."""
        async with self._db.read() as conn:
            row = await store.get_org(conn, org_id)
        return None if row is None else Org.of(row)

    async def get(self, who: Principal, org_id: str) -> Org:
        require_member(who, org_id)
        async with self._db.read() as conn:
            return Org.of(await existing_org(conn, org_id))

    async def change(self, who: Principal, org_id: str, cmd: OrgChange) -> Org:
        """Change the organisation's settings (its admins)."""
        require_admin(who, org_id)
        return await self._change(org_id, cmd, actor=who.account_id)

    async def change_by_operator(self, org_id: str, cmd: OrgChange) -> Org:
        """The same change by the operator CLI (no access checks; audited without actor)."""
        return await self._change(org_id, cmd, actor=None)

    async def _change(self, org_id: str, cmd: OrgChange, *, actor: str | None) -> Org:
        now = self._clock()
        async with self._db.write() as conn:
            before = await store.lock_org(conn, org_id)
            if before is None:
                raise org_not_found()
            await store.set_citizens_may_write(conn, org_id, cmd.citizens_may_write)
            # audited even when nothing changed: it records who decided, and when
            await self._audit.record(
                conn,
                action="org.update",
                actor=actor,
                subject=org_id,
                details={
                    "citizens_may_write": cmd.citizens_may_write,
                    "before": {"citizens_may_write": before.citizens_may_write},
                },
                now=now,
            )
            row = await store.get_org(conn, org_id)
        assert row is not None
        return Org.of(row)

    async def register_root(self, who: Principal, org_id: str, cmd: RegisterRoot) -> Org:
        """Register the org's self-signed root, once, and log it as the org chain's start."""
        require_admin(who, org_id)
        try:
            root = certs.verify_org_root(cmd.org_root)
        except CryptoError as exc:
            raise invalid("org-root", exc) from exc
        if root["org"] != org_id:
            raise BadRequest("the org root names another organisation", code="invalid-org-root")
        fingerprint = certs.org_fingerprint(root)
        now = self._clock()
        async with self._db.write() as conn:
            await existing_org(conn, org_id)
            # the root is stored first: the key log pins org roots from the database when it
            # replays the org chain that this event starts
            if not await store.set_root(conn, org_id, root=cmd.org_root, fingerprint=fingerprint):
                raise Conflict("the organisation already has a root key", code="org-root-exists")
            await self._keylog.append(
                conn, subject=org_id, type="org_root", body=cmd.org_root, now=now
            )
            await self._audit.record(
                conn,
                action="org.root",
                actor=who.account_id,
                subject=org_id,
                details={"fingerprint": fingerprint},
                now=now,
            )
            row = await store.get_org(conn, org_id)
        assert row is not None
        return Org.of(row)

    async def pending(self, who: Principal, org_id: str) -> Sequence[dict[str, Any]]:
        """Staff identities of this org that wait for the org root's certification."""
        require_admin(who, org_id)
        async with self._db.read() as conn:
            return await self._keylog.pending(conn, org_id)

    async def certify(self, who: Principal, org_id: str, cmd: Certify) -> dict[str, Any]:
        """Log a staff identity now carrying the org root's signature (and its pending keys).

        An admin identity is also logged in the org chain (``admin_key``): that is what makes
        its signatures on team keys and memberships verifiable.
        """
        require_admin(who, org_id)
        now = self._clock()
        async with self._db.write() as conn:
            org = await existing_org(conn, org_id)
            if org.root is None:
                raise Conflict(
                    "register the org root before certifying keys", code="org-root-missing"
                )
            root = cast(certs.SignedOrgRoot, org.root)["org_root"]
            try:
                cert = certs.verify_identity_cert(cmd.identity, root)
            except CryptoError as exc:
                raise invalid("identity", exc) from exc
            if cert["org"] != org_id or cert["kind"] not in STAFF_KINDS:
                raise BadRequest(
                    "only staff identities of this organisation are certified",
                    code="invalid-identity",
                )
            account = await self._accounts.get(conn, cert["subject"])
            if account is None or account.org_id != org_id or account.kind != cert["kind"]:
                raise NotFound("no such account in this organisation", code="account-not-found")
            await self._keylog.certify(conn, org_id=org_id, signed_identity=cmd.identity, now=now)
            if cert["kind"] == "admin":
                await self._keylog.append(
                    conn, subject=org_id, type="admin_key", body=cmd.identity, now=now
                )
            await self._audit.record(
                conn,
                action="org.certify",
                actor=who.account_id,
                subject=cert["subject"],
                details={"kid": cert["kid"], "kind": cert["kind"]},
                now=now,
            )
        return {"account": cert["subject"], "kid": cert["kid"], "kind": cert["kind"]}
