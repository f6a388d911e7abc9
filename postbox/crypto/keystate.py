"""Replaying a subject's verified key-transparency chain into its key state (PROTOCOL.md §7).

:func:`replay` turns a verified chain (:func:`postbox.crypto.logevents.verify_keys_response`)
into the subject's key state. The kind of chain is fixed by its first event:

* ``identity`` → an **account**: identity certificates (self-signed; org-certified staff
  against the pinned org root), encryption certificates (``key``, signed by the identity
  current at that point), ``revoke`` (by the current identity or an admin of its org). A
  later identity must be linked to the current one (``prev``/``prev_sig``, checked with
  :func:`postbox.crypto.certs.verify_rotation`) and the current one must not be revoked,
  else :class:`IdentityChanged` — unless the caller explicitly accepted that new identity
  (``accepted_identities``, e.g. after re-verification by activation code) or pinned it.
* ``key`` of ``kind`` team → a **team**: team encryption certificates and memberships,
  signed by admin keys of the team's org (taken from the replayed org chain, ``orgs``).
* ``org_root`` → an **org**: the root (must equal the pinned one), ``admin_key`` events
  (org-certified admin identities), ``server_key`` endorsements by the org root (this is
  where endorsements live: ``body.org`` = the org, ``body.sig`` by its root) and revocations
  of admin keys.
* ``server_key`` → the **server**'s own chain (leaf 0): unendorsed server keys
  (``org``/``sig`` null); their trust comes from the clients' pinned configuration.

"Current" is decided by chain order, never by ``created``: a later ``key`` supersedes every
earlier one (``superseded_at`` = the later event's ``ts``); a ``revoke`` of the newest key
leaves the subject *without* a usable key (older keys stay superseded). Senders encrypt only
to :meth:`SubjectState.current_encryption`. Signatures are checked at a time with
:meth:`SubjectState.identity_valid_at` (created ≤ at < expires, not revoked at ``at``, not
superseded by a later identity before ``at``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal, cast

from postbox.crypto import certs
from postbox.crypto.certs import (
    Cert,
    OrgRoot,
    Revocation,
    ServerKey,
    SignedCert,
    SignedMembership,
    SignedRevocation,
    SignedServerKey,
)
from postbox.crypto.encoding import KEY_BYTES, b64d
from postbox.crypto.errors import (
    BadSignature,
    BrokenChain,
    CertificateInvalid,
    CertificateRevoked,
    IdentityChanged,
    OrgCertificationMissing,
)
from postbox.crypto.logevents import ChainHead, LogEvent, chain_head, check_chain
from postbox.crypto.primitives import equal

ChainKind = Literal["account", "team", "org", "server"]


@dataclass(frozen=True, slots=True)
class KeyEntry:
    """A certificate as logged: the event that added it and when a later one superseded it."""

    cert: Cert
    seq: int
    ts: int
    superseded_at: int | None = None


def _find(entries: Iterable[KeyEntry], kid: str) -> KeyEntry | None:
    for entry in entries:
        if entry.cert["kid"] == kid:
            return entry
    return None


def _valid_at(entry: KeyEntry | None, at: int, revocations: Iterable[Revocation]) -> Cert:
    if entry is None:
        raise CertificateInvalid("key is not in the subject's log chain")
    certs.check_valid_at(entry.cert, at, revocations)
    if entry.superseded_at is not None and at >= entry.superseded_at:
        raise CertificateRevoked("superseded by a newer key")
    return entry.cert


@dataclass(frozen=True, slots=True)
class SubjectState:
    """A subject's key state after replaying its verified chain (see the module docs)."""

    subject: str
    kind: ChainKind
    events: tuple[LogEvent, ...]
    identities: tuple[KeyEntry, ...] = ()
    encryption: tuple[KeyEntry, ...] = ()
    admins: tuple[KeyEntry, ...] = ()
    revocations: tuple[Revocation, ...] = ()
    members: frozenset[str] = frozenset()
    rotation_pending: bool = False
    org: str | None = None
    org_root: OrgRoot | None = None
    server_keys: tuple[ServerKey, ...] = ()

    @property
    def head(self) -> ChainHead:
        return chain_head(self.events)

    def _revoked(self, kid: str) -> Revocation | None:
        for r in self.revocations:
            if r["kid"] == kid:
                return r
        return None

    @property
    def identity(self) -> Cert | None:
        """The current identity certificate, ``None`` if revoked (accounts only)."""
        if not self.identities or self._revoked(self.identities[-1].cert["kid"]):
            return None
        return self.identities[-1].cert

    def current_identity(self) -> Cert:
        cert = self.identity
        if cert is None:
            raise CertificateRevoked("the subject has no current identity")
        return cert

    def current_encryption(self, now: int) -> Cert:
        """The key a sender may encrypt to: the newest ``key`` event, not revoked, valid at
        ``now``. Raises :class:`CertificateRevoked`/:class:`CertificateExpired`, or
        :class:`CertificateInvalid` if the subject never published one."""
        if not self.encryption:
            raise CertificateInvalid("the subject has no encryption key")
        newest = self.encryption[-1].cert
        revoked = self._revoked(newest["kid"])
        if revoked is not None:
            raise CertificateRevoked(f"the newest encryption key is revoked ({revoked['reason']})")
        certs.check_valid_at(newest, now)
        return newest

    def identity_valid_at(self, kid: str, at: int) -> Cert:
        """The identity ``kid`` if it was this subject's identity at ``at`` (e.g. a message's
        ``created``): created, not expired, not revoked, not yet superseded."""
        return _valid_at(_find(self.identities, kid), at, self.revocations)

    def encryption_valid_at(self, kid: str, at: int) -> Cert:
        return _valid_at(_find(self.encryption, kid), at, self.revocations)

    def admin_valid_at(self, kid: str, at: int) -> Cert:
        """An org admin identity (org chains) that was current at ``at``."""
        return _valid_at(_find(self.admins, kid), at, self.revocations)

    @property
    def server_key(self) -> ServerKey | None:
        """The newest server key (server chains) or endorsement (org chains)."""
        return self.server_keys[-1] if self.server_keys else None


_ALLOWED: Final[Mapping[str, frozenset[str]]] = {
    "account": frozenset({"identity", "key", "revoke"}),
    "team": frozenset({"key", "revoke", "member_add", "member_remove"}),
    "org": frozenset({"admin_key", "server_key", "revoke"}),
    "server": frozenset({"server_key"}),
}


@dataclass
class _Builder:
    subject: str
    kind: ChainKind
    org_roots: Mapping[str, OrgRoot]
    orgs: Mapping[str, SubjectState]
    accepted: frozenset[str]
    identities: list[KeyEntry] = field(default_factory=list)
    encryption: list[KeyEntry] = field(default_factory=list)
    admins: list[KeyEntry] = field(default_factory=list)
    revocations: list[Revocation] = field(default_factory=list)
    members: set[str] = field(default_factory=set)
    membership_at: dict[str, int] = field(default_factory=dict)
    rotation_pending: bool = False
    org: str | None = None
    org_root: OrgRoot | None = None
    server_keys: list[ServerKey] = field(default_factory=list)

    def revoked(self, kid: str) -> bool:
        return any(r["kid"] == kid for r in self.revocations)

    def current_identity(self) -> Cert:
        if not self.identities or self.revoked(self.identities[-1].cert["kid"]):
            raise CertificateRevoked("no current identity to sign with")
        return self.identities[-1].cert

    def org_admin(self, kid: str, at: int) -> Cert:
        if self.org is None or self.org not in self.orgs:
            raise OrgCertificationMissing("no verified org chain for the admin signature")
        org = self.orgs[self.org]
        if org.kind != "org" or org.subject != self.org:
            raise OrgCertificationMissing("the org state given is not this org's chain")
        return org.admin_valid_at(kid, at)

    @staticmethod
    def supersede(entries: list[KeyEntry], index: int, ts: int) -> None:
        entries[index] = dataclasses.replace(entries[index], superseded_at=ts)

    # -- per chain kind --
    def first(self, event: LogEvent) -> None:
        body, t = event["body"], event["type"]
        if t == "identity":
            self.kind = "account"
            self.identity(event, first=True)
        elif t == "key":
            if cast(SignedCert, body)["cert"]["kind"] != "team":
                raise BrokenChain("an account chain starts with its identity")
            self.kind = "team"
            self.org = cast(SignedCert, body)["cert"]["org"]
            self.team_key(event)
        elif t == "org_root":
            self.kind = "org"
            self.org_root_event(event)
        elif t == "server_key":
            self.kind = "server"
            self.server_key(event)
        else:
            raise BrokenChain(f"a chain cannot start with {t}")

    def apply(self, event: LogEvent) -> None:
        t = event["type"]
        if t not in _ALLOWED[self.kind]:
            raise CertificateInvalid(f"{t} event in a {self.kind} chain")
        if t == "identity":
            self.identity(event, first=False)
        elif t == "key" and self.kind == "team":
            self.team_key(event)
        elif t == "key":
            self.account_key(event)
        elif t == "revoke":
            self.revoke(event)
        elif t in ("member_add", "member_remove"):
            self.membership(event)
        elif t == "admin_key":
            self.admin_key(event)
        else:
            self.server_key(event)

    def identity(self, event: LogEvent, *, first: bool) -> None:
        signed = cast(SignedCert, event["body"])
        claimed = signed["cert"]
        org_root = None if claimed["org"] is None else self.org_roots.get(claimed["org"])
        cert = certs.verify_identity_cert(signed, org_root)
        if cert["subject"] != self.subject or cert["kind"] == "team":
            raise CertificateInvalid("identity certificate of another subject")
        if not first:
            old = self.identities[-1].cert
            if cert["kid"] not in self.accepted:
                if self.revoked(old["kid"]):
                    raise IdentityChanged("new identity after the old one was revoked")
                try:
                    certs.verify_rotation(signed, old)
                except (CertificateInvalid, BadSignature) as exc:
                    raise IdentityChanged("new identity is not linked to the old one") from exc
                if (cert["kind"], cert["org"]) != (old["kind"], old["org"]):
                    raise CertificateInvalid("a rotation keeps the kind and the org")
            self.supersede(self.identities, len(self.identities) - 1, event["ts"])
        self.org = cert["org"]
        self.identities.append(KeyEntry(cert, event["seq"], event["ts"]))

    def account_key(self, event: LogEvent) -> None:
        cert = certs.verify_encryption_cert(event["body"], self.current_identity())
        if self.encryption:
            self.supersede(self.encryption, len(self.encryption) - 1, event["ts"])
        self.encryption.append(KeyEntry(cert, event["seq"], event["ts"]))

    def team_key(self, event: LogEvent) -> None:
        signed = cast(SignedCert, event["body"])
        claimed = signed["cert"]
        if claimed["subject"] != self.subject or claimed["org"] != self.org:
            raise CertificateInvalid("team certificate of another team or org")
        cert = certs.verify_team_cert(signed, self.org_admin(signed["by"], event["ts"]))
        if self.encryption:
            self.supersede(self.encryption, len(self.encryption) - 1, event["ts"])
        self.encryption.append(KeyEntry(cert, event["seq"], event["ts"]))
        self.rotation_pending = False

    def membership(self, event: LogEvent) -> None:
        signed = cast(SignedMembership, event["body"])
        assert self.org is not None  # a team chain starts with an org's team key
        admin = self.org_admin(signed["by"], event["ts"])
        m = certs.verify_membership(signed, admin, self.org)
        if m["team"] != self.subject:
            raise CertificateInvalid("membership of another team")
        # The signed body does not say "add" or "remove" (the event type does), so a strictly
        # increasing `at` per member is what stops a server replaying one as the other.
        if m["at"] <= self.membership_at.get(m["member"], -1):
            raise CertificateInvalid("membership statement replayed or out of order")
        self.membership_at[m["member"]] = m["at"]
        if event["type"] == "member_add":
            if m["member"] in self.members:
                raise CertificateInvalid("already a member")
            self.members.add(m["member"])
        else:
            if m["member"] not in self.members:
                raise CertificateInvalid("not a member")
            self.members.discard(m["member"])
            self.rotation_pending = True

    def revoke(self, event: LogEvent) -> None:
        signed = cast(SignedRevocation, event["body"])
        rev, by, at = signed["revoke"], signed["by"], event["ts"]
        if self.kind == "org":
            if _find(self.admins, rev["kid"]) is None:
                raise CertificateInvalid("revokes a key that is not an admin key of this org")
            signer = _valid_at(_find(self.admins, by), at, self.revocations)
        else:
            if rev["subject"] != self.subject:
                raise CertificateInvalid("revocation of another subject")
            known = _find(self.identities, rev["kid"]) or _find(self.encryption, rev["kid"])
            if known is None:
                raise CertificateInvalid("revokes a key that is not in the chain")
            if _find(self.identities, by) is not None:
                signer = self.current_identity()  # the subject's own, current identity only
                if signer["kid"] != by:
                    raise CertificateInvalid("revocation signed by a superseded identity")
            else:
                signer = self.org_admin(by, at)
        certs.verify_revocation(signed, signer, self.org)
        if self.revoked(rev["kid"]):
            raise CertificateInvalid("key revoked twice")
        self.revocations.append(rev)

    def admin_key(self, event: LogEvent) -> None:
        signed = cast(SignedCert, event["body"])
        cert = certs.verify_identity_cert(signed, self.org_root)
        if cert["kind"] != "admin" or cert["org"] != self.subject:
            raise CertificateInvalid("admin_key events carry this org's admin identities")
        for i, entry in enumerate(self.admins):
            if entry.cert["subject"] == cert["subject"] and entry.superseded_at is None:
                self.supersede(self.admins, i, event["ts"])
        self.admins.append(KeyEntry(cert, event["seq"], event["ts"]))

    def org_root_event(self, event: LogEvent) -> None:
        root = certs.verify_org_root(event["body"])
        if root["org"] != self.subject:
            raise CertificateInvalid("org root of another org")
        pinned = self.org_roots.get(self.subject)
        if pinned is None:
            raise OrgCertificationMissing("no pinned org root for this org")
        if not equal(b64d(root["pk"], KEY_BYTES), b64d(pinned["pk"], KEY_BYTES)):
            raise IdentityChanged("the logged org root is not the pinned one")
        self.org, self.org_root = self.subject, root

    def server_key(self, event: LogEvent) -> None:
        signed = cast(SignedServerKey, event["body"])
        if self.kind == "org":
            if signed["org"] != self.subject:
                raise CertificateInvalid("endorsement by another org")
            self.server_keys.append(certs.verify_server_key(signed, self.org_root))
        else:
            if signed["org"] is not None:
                raise CertificateInvalid("endorsements belong in the endorsing org's chain")
            self.server_keys.append(certs.verify_server_key(signed))


def replay(
    events: Sequence[LogEvent],
    *,
    org_roots: Mapping[str, OrgRoot] | None = None,
    orgs: Mapping[str, SubjectState] | None = None,
    accepted_identities: Collection[str] = (),
    pinned_identity: str | None = None,
) -> SubjectState:
    """Replay a subject's verified chain (from :func:`verify_keys_response`) into its state.

    ``org_roots`` maps org id → the *pinned* org root (needed for org chains and for
    org-certified identities); ``orgs`` maps org id → that org's replayed chain (needed
    wherever an admin key signed: team keys, memberships, admin revocations).
    ``accepted_identities`` are identity kids the user accepted despite a missing rotation
    link; ``pinned_identity`` is the kid the client pinned for this subject, which must be
    in the chain (:class:`IdentityChanged` otherwise) and counts as accepted.
    """
    check_chain(events)
    accepted = set(accepted_identities)
    if pinned_identity is not None:
        accepted.add(pinned_identity)
    b = _Builder(
        subject=events[0]["subject"],
        kind="account",
        org_roots=org_roots or {},
        orgs=orgs or {},
        accepted=frozenset(accepted),
    )
    b.first(events[0])
    for event in events[1:]:
        b.apply(event)
    if pinned_identity is not None and _find(b.identities, pinned_identity) is None:
        raise IdentityChanged("the pinned identity is not in the subject's chain")
    return SubjectState(
        subject=b.subject,
        kind=b.kind,
        events=tuple(events),
        identities=tuple(b.identities),
        encryption=tuple(b.encryption),
        admins=tuple(b.admins),
        revocations=tuple(b.revocations),
        members=frozenset(b.members),
        rotation_pending=b.rotation_pending,
        org=b.org,
        org_root=b.org_root,
        server_keys=tuple(b.server_keys),
    )
