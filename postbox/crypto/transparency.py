"""The client side of the key-transparency log (PROTOCOL.md §7).

Pure functions over already-fetched responses; no I/O. Four parts:

**Tree heads.** ``sth = {"v","size","root","ts"}`` signed by the log key over
``"postbox/v1/sth" ‖ cj(sth)`` and served as ``{"sth","sig","log_key"}`` where ``log_key``
is the b64 log public key, which must equal the *pinned* one. :func:`verify_tree_head`
checks the signature and the age (not older than 24 h, not more than 5 min in the future,
relative to a caller-given ``now``); :func:`advance` moves the stored head forward
(smaller or older → :class:`StaleTreeHead`; same size, other root → :class:`ForkDetected`;
bigger → an RFC 9162 consistency proof, whose failure is a :class:`ForkDetected`).
:func:`compare_heads` is the recipient's fork check of a message's ``sth``.

**Events and chains.** A leaf is ``cj(event)``; ``event.prev`` is the RFC 9162 *leaf hash*
(``SHA-256(0x00 ‖ leaf)``) of the subject's previous event, ``null`` at ``seq`` 0.
:func:`verify_keys_response` checks ``GET /api/v1/keys/{subject}``: the tree head, each
event's inclusion proof and an unbroken chain from ``seq`` 0 (:class:`BrokenChain`).

**Replay.** :func:`replay` turns a verified chain into the subject's key state. The kind of
chain is fixed by its first event:

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

**Monitoring.** :func:`self_check` compares an owner's chain with the ``{"seq","hash"}``
its bundle remembers and lists key events it did not make; :class:`Auditor` scans the
whole log for duplicate ``(subject, seq)`` and chains that do not link.

Limits: a server can still *withhold* the tail of a subject's chain from one client (the
response proves inclusion, not completeness); owners' self-checks and the auditor, who see
the full log, are what catch that.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, TypedDict, cast

from postbox.crypto import certs, domain, shapes
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
from postbox.crypto.encoding import KEY_BYTES, SIGNATURE_BYTES, b64d, b64e, cj, parse_canonical
from postbox.crypto.errors import (
    BadProof,
    BadSignature,
    BrokenChain,
    CertificateInvalid,
    CertificateRevoked,
    CryptoError,
    ForkDetected,
    IdentityChanged,
    KeyIdMismatch,
    MalformedObject,
    OrgCertificationMissing,
    StaleTreeHead,
)
from postbox.crypto.primitives import check_sign_pk, equal, sign, sign_keypair, verify
from postbox.keys import merkle

HASH_BYTES: Final = merkle.HASH_BYTES
#: clients reject tree heads older than this (PROTOCOL.md §7)
MAX_STH_AGE_MS: Final = 24 * 3600 * 1000
#: ... and heads dated further than this in the future (the ±5 min of message ``created``)
MAX_CLOCK_SKEW_MS: Final = 5 * 60 * 1000
#: a proof path is at most one hash per tree level
MAX_PATH: Final = 64

EventType = Literal[
    "server_key",
    "org_root",
    "identity",
    "key",
    "revoke",
    "member_add",
    "member_remove",
    "admin_key",
]
EVENT_TYPES: Final = (
    "server_key",
    "org_root",
    "identity",
    "key",
    "revoke",
    "member_add",
    "member_remove",
    "admin_key",
)
ChainKind = Literal["account", "team", "org", "server"]
ForkCheck = Literal["consistent", "need_proof", "advance"]


class TreeHead(TypedDict):
    v: int
    size: int
    root: str
    ts: int


class ServedTreeHead(TypedDict):
    sth: TreeHead
    sig: str
    log_key: str


class ChainHead(TypedDict):
    """What a bundle remembers of its own chain: the last seen ``seq`` and its leaf hash."""

    seq: int
    hash: str


class LogEvent(TypedDict):
    v: int
    subject: str
    seq: int
    prev: str | None
    type: EventType
    ts: int
    body: dict[str, Any]


# --- shapes ------------------------------------------------------------------------------
V1 = shapes.const(1)
SIG = shapes.b64(SIGNATURE_BYTES)
HASH = shapes.b64(HASH_BYTES)
TREE_HEAD_SHAPE = shapes.obj({"v": V1, "size": shapes.integer(1), "root": HASH, "ts": shapes.TIME})
SERVED_TREE_HEAD_SHAPE = shapes.obj(
    {"sth": TREE_HEAD_SHAPE, "sig": SIG, "log_key": shapes.b64(KEY_BYTES)}
)
CHAIN_HEAD_SHAPE = shapes.obj({"seq": shapes.COUNT, "hash": HASH})
PATH_SHAPE = shapes.array(HASH, MAX_PATH)
BODY_SHAPES: Final[Mapping[str, shapes.Shape]] = {
    "server_key": certs.SIGNED_SERVER_KEY_SHAPE,
    "org_root": certs.SIGNED_ORG_ROOT_SHAPE,
    "identity": certs.SIGNED_CERT_SHAPE,
    "key": certs.SIGNED_CERT_SHAPE,
    "admin_key": certs.SIGNED_CERT_SHAPE,
    "revoke": certs.SIGNED_REVOCATION_SHAPE,
    "member_add": certs.SIGNED_MEMBERSHIP_SHAPE,
    "member_remove": certs.SIGNED_MEMBERSHIP_SHAPE,
}
_EVENT_FRAME = shapes.obj(
    {
        "v": V1,
        "subject": shapes.ID,
        "seq": shapes.COUNT,
        "prev": shapes.nullable(HASH),
        "type": shapes.enum(*EVENT_TYPES),
        "ts": shapes.TIME,
        "body": shapes.free_object,
    }
)


def EVENT_SHAPE(value: Any, path: str) -> None:
    """A log event: the closed frame, then the body shape its ``type`` names."""
    _EVENT_FRAME(value, path)
    BODY_SHAPES[value["type"]](value["body"], f"{path}.body")


PROOF_ENTRY_SHAPE = shapes.obj(
    {"index": shapes.COUNT, "leaf": shapes.b64(None), "path": PATH_SHAPE}
)
KEYS_RESPONSE_SHAPE = shapes.obj(
    {"sth": TREE_HEAD_SHAPE, "sig": SIG, "events": shapes.array(PROOF_ENTRY_SHAPE)}
)
CONSISTENCY_RESPONSE_SHAPE = shapes.obj(
    {"first": shapes.integer(1), "second": shapes.integer(1), "path": PATH_SHAPE}
)
INCLUSION_RESPONSE_SHAPE = shapes.obj(
    {
        "index": shapes.COUNT,
        "size": shapes.integer(1),
        "leaf": shapes.b64(None),
        "path": PATH_SHAPE,
    }
)


def _wire(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return parse_canonical(bytes(value))
    return value


def _hash(value: bytes, what: str) -> bytes:
    if not isinstance(value, bytes) or len(value) != HASH_BYTES:
        raise MalformedObject(f"{what} must be {HASH_BYTES} bytes")
    return value


def decode_path(path: Any) -> list[bytes]:
    """A proof path from its wire form (a list of b64 hashes)."""
    shapes.check(PATH_SHAPE, path, "path")
    return [b64d(p, HASH_BYTES) for p in path]


# --- tree heads --------------------------------------------------------------------------
def make_tree_head(*, size: int, root: bytes, ts: int) -> TreeHead:
    sth: TreeHead = {"v": 1, "size": size, "root": b64e(_hash(root, "root")), "ts": ts}
    shapes.check(TREE_HEAD_SHAPE, sth, "sth")
    return sth


def sign_tree_head(sth: TreeHead, log_seed: bytes) -> ServedTreeHead:
    """The log's side: the served form ``{"sth","sig","log_key"}``."""
    shapes.check(TREE_HEAD_SHAPE, sth, "sth")
    pk, _ = sign_keypair(log_seed)
    return {"sth": sth, "sig": b64e(sign(log_seed, domain.STH + cj(sth))), "log_key": b64e(pk)}


def _verify_head_sig(sth: TreeHead, sig: str, log_pk: bytes) -> None:
    check_sign_pk(log_pk)
    verify(log_pk, domain.STH + cj(sth), b64d(sig, SIGNATURE_BYTES))


def check_fresh(sth: TreeHead, *, now: int, max_age_ms: int = MAX_STH_AGE_MS) -> None:
    """Reject a head older than ``max_age_ms`` or dated more than 5 min after ``now``."""
    if sth["ts"] < now - max_age_ms:
        raise StaleTreeHead("tree head is older than 24 hours")
    if sth["ts"] > now + MAX_CLOCK_SKEW_MS:
        raise StaleTreeHead("tree head is dated in the future")


def verify_tree_head(
    served: Any, log_pk: bytes, *, now: int, max_age_ms: int = MAX_STH_AGE_MS
) -> TreeHead:
    """Verify ``GET /api/v1/transparency/sth`` under the pinned log key and check its age.

    A ``log_key`` other than the pinned key raises :class:`KeyIdMismatch` (the response
    names another key), a bad signature :class:`BadSignature`.
    """
    s = _wire(served)
    shapes.check(SERVED_TREE_HEAD_SHAPE, s, "served tree head")
    st = cast(ServedTreeHead, s)
    if not equal(b64d(st["log_key"], KEY_BYTES), log_pk):
        raise KeyIdMismatch("tree head from another log key than the pinned one")
    _verify_head_sig(st["sth"], st["sig"], log_pk)
    check_fresh(st["sth"], now=now, max_age_ms=max_age_ms)
    return st["sth"]


def advance(last: TreeHead | None, new: TreeHead, proof: Sequence[bytes] | None = None) -> TreeHead:
    """The head to store after verifying ``new`` (already signature- and age-checked).

    ``proof`` is the consistency proof from ``last.size`` to ``new.size``, needed when the
    tree grew. Smaller or older than ``last`` → :class:`StaleTreeHead`; same size with
    another root, or a consistency proof that fails → :class:`ForkDetected`.
    """
    shapes.check(TREE_HEAD_SHAPE, new, "sth")
    if last is None:
        return new
    shapes.check(TREE_HEAD_SHAPE, last, "last sth")
    if new["size"] < last["size"]:
        raise StaleTreeHead("tree head smaller than the last one stored")
    new_root, last_root = b64d(new["root"], HASH_BYTES), b64d(last["root"], HASH_BYTES)
    if new["size"] == last["size"] and not equal(new_root, last_root):
        raise ForkDetected("two tree heads of the same size with different roots")
    if new["ts"] < last["ts"]:
        raise StaleTreeHead("tree head older than the last one stored")
    if new["size"] > last["size"]:
        if proof is None:
            raise BadProof("a consistency proof is needed to advance the tree head")
        try:
            merkle.verify_consistency(last["size"], new["size"], proof, last_root, new_root)
        except BadProof as exc:
            raise ForkDetected("new tree head is not an extension of the stored one") from exc
    return new


def verify_sth(
    served: Any,
    log_pk: bytes,
    *,
    now: int,
    last: TreeHead | None = None,
    proof: Sequence[bytes] | None = None,
    max_age_ms: int = MAX_STH_AGE_MS,
) -> TreeHead:
    """:func:`verify_tree_head` then :func:`advance`: the new head to store."""
    return advance(last, verify_tree_head(served, log_pk, now=now, max_age_ms=max_age_ms), proof)


def consistency_path(response: Any, first: int, second: int) -> list[bytes]:
    """The path of ``…/consistency?first=&second=`` after checking it answers that question."""
    r = _wire(response)
    shapes.check(CONSISTENCY_RESPONSE_SHAPE, r, "consistency response")
    if r["first"] != first or r["second"] != second:
        raise BadProof("consistency proof for other tree sizes")
    return decode_path(r["path"])


def verify_inclusion_response(response: Any, sth: TreeHead) -> bytes:
    """Check ``…/inclusion?index=&size=`` against a verified head; return the leaf bytes."""
    r = _wire(response)
    shapes.check(INCLUSION_RESPONSE_SHAPE, r, "inclusion response")
    if r["size"] != sth["size"]:
        raise BadProof("inclusion proof for another tree size")
    leaf = b64d(r["leaf"])
    merkle.verify_inclusion(
        merkle.leaf_hash(leaf), r["index"], r["size"], decode_path(r["path"]),
        b64d(sth["root"], HASH_BYTES),
    )  # fmt: skip
    return leaf


def compare_heads(
    message_sth: Mapping[str, Any], own: TreeHead, proof: Sequence[bytes] | None = None
) -> ForkCheck:
    """The recipient's fork check of a message's ``sth`` (n, root) against its own verified
    head (m, root_m), PROTOCOL.md §7.

    * n > m: returns ``"advance"`` — first advance to a verified head of size ≥ n, then
      call again;
    * n = m: equal roots → ``"consistent"``, else :class:`ForkDetected`;
    * n < m: without ``proof`` returns ``"need_proof"`` (fetch ``consistency?first=n&second=m``),
      with it ``"consistent"`` or :class:`ForkDetected`.
    """
    ref = {"size": message_sth.get("size"), "root": message_sth.get("root")}
    shapes.check(shapes.obj({"size": shapes.integer(1), "root": HASH}), ref, "message sth")
    shapes.check(TREE_HEAD_SHAPE, own, "own sth")
    n, m = cast(int, ref["size"]), own["size"]
    root_n, root_m = b64d(ref["root"], HASH_BYTES), b64d(own["root"], HASH_BYTES)
    if n > m:
        return "advance"
    if n == m:
        if not equal(root_n, root_m):
            raise ForkDetected("the sender saw another tree of the same size")
        return "consistent"
    if proof is None:
        return "need_proof"
    try:
        merkle.verify_consistency(n, m, proof, root_n, root_m)
    except BadProof as exc:
        raise ForkDetected("the sender's tree head is not a prefix of ours") from exc
    return "consistent"


# --- events ------------------------------------------------------------------------------
def make_event(
    *,
    subject: str,
    seq: int,
    prev: bytes | None,
    type: EventType,
    ts: int,
    body: Mapping[str, Any],
) -> LogEvent:
    event = {
        "v": 1,
        "subject": subject,
        "seq": seq,
        "prev": None if prev is None else b64e(_hash(prev, "prev")),
        "type": type,
        "ts": ts,
        "body": dict(body),
    }
    shapes.check(EVENT_SHAPE, event, "event")
    return cast(LogEvent, event)


def next_event(
    previous: LogEvent | None,
    *,
    subject: str,
    type: EventType,
    ts: int,
    body: Mapping[str, Any],
) -> LogEvent:
    """The event after ``previous`` in a subject's chain (seq and prev filled in)."""
    if previous is None:
        return make_event(subject=subject, seq=0, prev=None, type=type, ts=ts, body=body)
    if previous["subject"] != subject:
        raise BrokenChain("previous event of another subject")
    return make_event(
        subject=subject, seq=previous["seq"] + 1, prev=event_hash(previous), type=type,
        ts=ts, body=body,
    )  # fmt: skip


def event_leaf(event: LogEvent) -> bytes:
    """The leaf bytes of an event: ``cj(event)``."""
    return cj(event)


def event_hash(event: LogEvent) -> bytes:
    """The RFC 9162 leaf hash ``SHA-256(0x00 ‖ cj(event))``, what the next ``prev`` holds."""
    return merkle.leaf_hash(cj(event))


def parse_leaf(leaf: bytes) -> LogEvent:
    """An event from its leaf bytes (canonical JSON, closed shape)."""
    event = parse_canonical(leaf)
    shapes.check(EVENT_SHAPE, event, "event")
    return cast(LogEvent, event)


def check_chain(events: Sequence[LogEvent], subject: str | None = None) -> None:
    """An unbroken chain from ``seq`` 0: one subject, consecutive seqs, each ``prev`` the
    leaf hash of the event before, times non-decreasing. Raises :class:`BrokenChain`."""
    if not events:
        raise BrokenChain("empty chain")
    want = events[0]["subject"] if subject is None else subject
    prev_hash: bytes | None = None
    prev_ts = 0
    for i, event in enumerate(events):
        if event["subject"] != want:
            raise BrokenChain(f"event {i} is about another subject")
        if event["seq"] != i:
            raise BrokenChain(f"expected seq {i}, got {event['seq']}")
        if prev_hash is None:
            if event["prev"] is not None:
                raise BrokenChain("seq 0 has a prev")
        elif event["prev"] is None or not equal(b64d(event["prev"], HASH_BYTES), prev_hash):
            raise BrokenChain(f"seq {i} does not link to seq {i - 1}")
        if event["ts"] < prev_ts:
            raise BrokenChain(f"seq {i} is older than seq {i - 1}")
        prev_hash, prev_ts = event_hash(event), event["ts"]


def chain_head(events: Sequence[LogEvent]) -> ChainHead:
    """The ``{"seq","hash"}`` a bundle stores for the last event of its own chain."""
    if not events:
        raise BrokenChain("empty chain")
    return {"seq": events[-1]["seq"], "hash": b64e(event_hash(events[-1]))}


@dataclass(frozen=True, slots=True)
class VerifiedChain:
    """A subject's chain proved against a verified tree head."""

    subject: str
    sth: TreeHead
    events: tuple[LogEvent, ...]
    indices: tuple[int, ...]

    @property
    def head(self) -> ChainHead:
        return chain_head(self.events)


def verify_keys_response(
    response: Any,
    subject: str,
    log_pk: bytes,
    *,
    now: int,
    max_age_ms: int = MAX_STH_AGE_MS,
) -> VerifiedChain:
    """Verify ``GET /api/v1/keys/{subject}`` = ``{"sth","sig","events":[{"index","leaf","path"}]}``.

    Checks the tree head (pinned log key, age), every event's inclusion proof
    (:class:`BadProof`) and an unbroken chain of ``subject`` from ``seq`` 0 in increasing
    leaf order (:class:`BrokenChain`). The head is *not* compared with the caller's stored
    head: do that with :func:`compare_heads` (or :func:`advance`) before trusting it.
    """
    r = _wire(response)
    shapes.check(KEYS_RESPONSE_SHAPE, r, "keys response")
    sth = cast(TreeHead, r["sth"])
    _verify_head_sig(sth, r["sig"], log_pk)
    check_fresh(sth, now=now, max_age_ms=max_age_ms)
    root = b64d(sth["root"], HASH_BYTES)
    events: list[LogEvent] = []
    indices: list[int] = []
    for entry in r["events"]:
        leaf = b64d(entry["leaf"])
        merkle.verify_inclusion(
            merkle.leaf_hash(leaf), entry["index"], sth["size"], decode_path(entry["path"]), root
        )
        if indices and entry["index"] <= indices[-1]:
            raise BrokenChain("events are not in log order")
        events.append(parse_leaf(leaf))
        indices.append(entry["index"])
    check_chain(events, subject)
    return VerifiedChain(subject, sth, tuple(events), tuple(indices))


# --- replay --------------------------------------------------------------------------------
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


# --- the owner's self-check --------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ForeignEvent:
    """A key event in the owner's chain that none of the owner's keys made or names."""

    seq: int
    type: EventType
    kid: str


@dataclass(frozen=True, slots=True)
class SelfCheck:
    head: ChainHead
    foreign: tuple[ForeignEvent, ...]

    @property
    def ok(self) -> bool:
        return not self.foreign


def self_check(
    events: Sequence[LogEvent], remembered: ChainHead | None, own_kids: Collection[str]
) -> SelfCheck:
    """The owner's check at login: its chain still contains what the bundle remembers, and
    which later key events it did not create.

    The remembered event must still be at its ``seq`` with the same leaf hash, else
    :class:`ForkDetected` (the log rewrote or hid the owner's history). Reported as foreign
    after it: ``identity``/``key``/``admin_key`` events whose certificate kid is not in
    ``own_kids``, and ``revoke`` events signed by a key not in ``own_kids`` (e.g. an admin).
    Store ``head`` in the bundle afterwards.
    """
    check_chain(events)
    start = 0
    if remembered is not None:
        shapes.check(CHAIN_HEAD_SHAPE, remembered, "chain")
        seq = remembered["seq"]
        if seq >= len(events):
            raise ForkDetected("the log no longer shows events this account has seen")
        if not equal(event_hash(events[seq]), b64d(remembered["hash"], HASH_BYTES)):
            raise ForkDetected("the event this account remembers was replaced")
        start = seq + 1
    own = set(own_kids)
    foreign: list[ForeignEvent] = []
    for event in events[start:]:
        t = event["type"]
        if t in ("identity", "key", "admin_key"):
            kid = cast(SignedCert, event["body"])["cert"]["kid"]
        elif t == "revoke":
            kid = cast(SignedRevocation, event["body"])["by"]
        else:
            continue
        if kid not in own:
            foreign.append(ForeignEvent(event["seq"], t, kid))
    return SelfCheck(chain_head(events), tuple(foreign))


# --- the auditor ---------------------------------------------------------------------------
FindingKind = Literal["malformed", "first_leaf", "duplicate_seq", "seq_gap", "broken_link", "time"]


@dataclass(frozen=True, slots=True)
class Finding:
    kind: FindingKind
    index: int
    subject: str | None
    seq: int | None
    detail: str


@dataclass
class _Tip:
    next_seq: int
    hash: bytes
    ts: int


class Auditor:
    """Scans the whole log, leaf by leaf, for structural alarms (PROTOCOL.md §7).

    Memory is one entry per subject plus a Merkle frontier; feed leaves in index order
    (``…/leaves?start=&end=`` pages), then compare :meth:`root` with verified tree heads
    (:meth:`check_head`). Findings: a leaf that is not a valid event; leaf 0 not the
    server's ``server_key`` at ``seq`` 0; two events with the same ``(subject, seq)``;
    a ``seq`` gap; a ``prev`` that is not the leaf hash of the subject's previous event;
    a subject's time going backwards. Signatures are checked by :func:`replay` per subject.
    """

    def __init__(self) -> None:
        self._tips: dict[str, _Tip] = {}
        self._frontier = merkle.Frontier.empty()
        self.findings: list[Finding] = []

    @property
    def size(self) -> int:
        return self._frontier.size

    def root(self) -> bytes:
        return self._frontier.root()

    def add(self, leaf: bytes) -> list[Finding]:
        """Audit the next leaf; returns the findings it raised (also kept in ``findings``)."""
        index = self._frontier.size
        h = merkle.leaf_hash(leaf)
        self._frontier, _ = self._frontier.append(h)
        found: list[Finding] = []
        try:
            event = parse_leaf(leaf)
        except CryptoError as exc:
            found.append(Finding("malformed", index, None, None, str(exc)))
            self.findings.extend(found)
            return found
        subject, seq = event["subject"], event["seq"]

        def note(kind: FindingKind, detail: str) -> None:
            found.append(Finding(kind, index, subject, seq, detail))

        if index == 0 and (event["type"] != "server_key" or seq != 0):
            note("first_leaf", "leaf 0 must be the log's server_key event")
        tip = self._tips.get(subject)
        expected = 0 if tip is None else tip.next_seq
        if seq < expected:
            note("duplicate_seq", f"a second event with seq {seq}")
        elif seq > expected:
            note("seq_gap", f"expected seq {expected}")
        else:
            prev = event["prev"]
            if tip is None:
                if prev is not None:
                    note("broken_link", "seq 0 has a prev")
            elif prev is None or not equal(b64d(prev, HASH_BYTES), tip.hash):
                note("broken_link", f"prev is not the leaf hash of seq {seq - 1}")
            if tip is not None and event["ts"] < tip.ts:
                note("time", "older than the subject's previous event")
            self._tips[subject] = _Tip(seq + 1, h, event["ts"])
        self.findings.extend(found)
        return found

    def extend(self, leaves: Iterable[bytes]) -> list[Finding]:
        found: list[Finding] = []
        for leaf in leaves:
            found.extend(self.add(leaf))
        return found

    def check_head(self, sth: TreeHead) -> None:
        """Compare a verified tree head with the leaves audited so far (equal sizes only)."""
        if sth["size"] != self.size:
            raise ValueError("audit up to the head's size first")
        if not equal(self.root(), b64d(sth["root"], HASH_BYTES)):
            raise ForkDetected("the leaves served do not hash to the signed root")


def audit_leaves(leaves: Iterable[bytes]) -> list[Finding]:
    """Audit a whole log from leaf 0 (see :class:`Auditor`)."""
    auditor = Auditor()
    return auditor.extend(leaves)
