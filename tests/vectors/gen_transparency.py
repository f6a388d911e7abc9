"""transparency.json: a small key-transparency log and its client checks (PROTOCOL.md §7).

Everything is deterministic (Ed25519 signatures over fixed seeds, SHA-256 trees). The log
holds the server's chain (leaf 0), an org chain (root, admin key, server-key endorsement),
an admin, a caseworker, a team (memberships, a pending rotation) and two citizens (one
rotating its identity with a link and superseding keys, one revoking its only key).
A second, *bad* log holds a duplicate seq, an unlinked identity change and a broken link.

Cases (``check`` says which client function a case exercises):

* ``sth`` — ``verify_sth(served, log_pk, now, last, proof)`` → the head to store;
* ``compare_heads`` — the recipient's fork check → ``"consistent" | "need_proof" | "advance"``;
* ``subject`` — ``verify_keys_response`` + ``replay`` → ``state`` (a summary, see
  :func:`summarize`) and ``valid_at`` checks; org chains come first, later cases replay
  with every earlier org state (``orgs``) and the pinned ``org_roots``;
* ``self_check`` — the owner's check → ``head`` and ``foreign`` events;
* ``audit`` — the auditor over ``leaves`` → ``findings`` and the root check.

Rejects name the expected error.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass
from typing import Any

from postbox.crypto import certs, domain, keystate, logevents, monitor, transparency
from postbox.crypto.certs import Cert, SignedCert
from postbox.crypto.encoding import b64e, cj
from postbox.crypto.errors import CryptoError
from postbox.crypto.keystate import SubjectState
from postbox.crypto.logevents import LogEvent
from postbox.crypto.primitives import box_keypair, sign_keypair
from postbox.crypto.transparency import ServedTreeHead
from postbox.keys.merkle import MemoryTree

NOW = 1_767_225_600_000  # 2026-01-01T00:00:00Z
HOUR = 3600 * 1000
DAY = 24 * HOUR
YEAR = 365 * DAY
VERIFY_AT = NOW + 2 * HOUR  # the client's "now" in the cases


def seed(label: str, n: int = 32) -> bytes:
    return hashlib.blake2b(("vector-seed/transparency/" + label).encode(), digest_size=n).digest()


def ident(label: str) -> str:
    return b64e(seed("id/" + label, 16))


# --- the world ---------------------------------------------------------------------------
@dataclass
class Account:
    id: str
    kind: certs.Kind
    org: str | None
    seeds: list[bytes]  # identity seeds, oldest first
    identities: list[SignedCert]
    keys: list[SignedCert]


def identity(
    label: str, kind: certs.Kind, org: str | None, root_seed: bytes | None, n: int = 0
) -> tuple[bytes, SignedCert]:
    s = seed(f"sign/{label}/{n}")
    pk, _ = sign_keypair(s)
    cert = certs.make_cert(
        subject=ident(label), kind=kind, org=org, use="sign", pk=pk, created=NOW - DAY
    )
    signed = certs.sign_cert(cert, s)
    if kind in certs.ORG_CERTIFIED_KINDS:
        assert root_seed is not None
        signed = certs.org_certify(signed, root_seed)
    return s, signed


def enc_key(
    label: str, subject: str, kind: certs.Kind, org: str | None, signer: bytes, n: int
) -> SignedCert:
    pk, _ = box_keypair(seed(f"enc/{label}/{n}"))
    cert = certs.make_cert(
        subject=subject, kind=kind, org=org, use="encrypt", pk=pk, created=NOW - DAY,
        expires=NOW + YEAR,
    )  # fmt: skip
    return certs.sign_cert(cert, signer)


class Log:
    """An in-memory log: leaves, a Merkle tree and each subject's (index, event) chain."""

    def __init__(self, log_seed: bytes) -> None:
        self.log_seed = log_seed
        self.log_pk, _ = sign_keypair(log_seed)
        self.tree = MemoryTree()
        self.leaves: list[bytes] = []
        self.chains: dict[str, list[tuple[int, LogEvent]]] = {}

    def append(self, event: LogEvent) -> LogEvent:
        leaf = logevents.event_leaf(event)
        index = self.tree.append(leaf)
        self.leaves.append(leaf)
        self.chains.setdefault(event["subject"], []).append((index, event))
        return event

    def add(self, subject: str, type_: logevents.EventType, body: Any) -> LogEvent:
        chain = self.chains.get(subject)
        previous = chain[-1][1] if chain else None
        ts = NOW + len(self.leaves) * 1000
        return self.append(
            logevents.next_event(previous, subject=subject, type=type_, ts=ts, body=body)
        )

    def served(self, ts: int, size: int | None = None) -> ServedTreeHead:
        n = self.tree.size if size is None else size
        sth = transparency.make_tree_head(size=n, root=self.tree.root(n), ts=ts)
        return transparency.sign_tree_head(sth, self.log_seed)

    def keys_response(
        self, subject: str, served: ServedTreeHead, only: list[int] | None = None
    ) -> dict[str, Any]:
        size = served["sth"]["size"]
        chain = [(i, e) for i, e in self.chains[subject] if i < size]
        if only is not None:
            chain = [chain[k] for k in only]
        return {
            "sth": served["sth"],
            "sig": served["sig"],
            "events": [
                {
                    "index": i,
                    "leaf": b64e(self.leaves[i]),
                    "path": [b64e(p) for p in self.tree.inclusion_proof(i, size)],
                }
                for i, _ in chain
            ],
        }


@dataclass
class World:
    log: Log
    server: str
    receipt_seed: bytes
    org: str
    root_seed: bytes
    org_root: certs.SignedOrgRoot
    admin: Account
    caseworker: Account
    team: str
    team_keys: list[SignedCert]
    citizen: Account
    citizen2: Account


def make_world() -> World:
    log = Log(seed("log"))
    server = ident("server")
    receipt_seed = seed("receipt")
    receipt_pk, _ = sign_keypair(receipt_seed)
    server_key = certs.make_server_key(log_pk=log.log_pk, receipt_pk=receipt_pk, created=NOW)
    org = ident("org")
    root_seed = seed("org-root")
    org_root = certs.make_org_root(
        org=org, name="Stadt Nürnberg – Ausländerbehörde", root_seed=root_seed, created=NOW - DAY
    )

    def account(label: str, kind: certs.Kind, org_: str | None) -> Account:
        s, signed = identity(label, kind, org_, root_seed)
        return Account(ident(label), kind, org_, [s], [signed], [])

    admin = account("admin", "admin", org)
    caseworker = account("caseworker", "caseworker", org)
    citizen = account("citizen", "citizen", None)
    citizen2 = account("citizen2", "citizen", None)
    team = ident("team")

    def new_key(a: Account, label: str) -> SignedCert:
        k = enc_key(label, a.id, a.kind, a.org, a.seeds[-1], len(a.keys))
        a.keys.append(k)
        return k

    log.add(server, "server_key", {"server_key": server_key, "org": None, "sig": None})  # 0
    log.add(org, "org_root", org_root)  # 1
    log.add(org, "admin_key", admin.identities[0])  # 2
    endorsed = certs.endorse_server_key(server_key, org=org, root_seed=root_seed)
    log.add(org, "server_key", endorsed)  # 3
    log.add(admin.id, "identity", admin.identities[0])  # 4
    log.add(admin.id, "key", new_key(admin, "admin"))  # 5
    log.add(caseworker.id, "identity", caseworker.identities[0])  # 6
    log.add(citizen.id, "identity", citizen.identities[0])  # 7
    log.add(caseworker.id, "key", new_key(caseworker, "caseworker"))  # 8
    team_key = enc_key("team", team, "team", org, admin.seeds[0], 0)
    log.add(team, "key", team_key)  # 9
    add_cw = certs.sign_membership(
        team=team, member=caseworker.id, at=NOW + 10_000, admin_seed=admin.seeds[0]
    )
    log.add(team, "member_add", add_cw)  # 10
    log.add(citizen.id, "key", new_key(citizen, "citizen"))  # 11
    log.add(citizen.id, "key", new_key(citizen, "citizen"))  # 12
    log.add(citizen2.id, "identity", citizen2.identities[0])  # 13
    log.add(citizen2.id, "key", new_key(citizen2, "citizen2"))  # 14
    s2, id2 = identity("citizen", "citizen", None, None, 1)
    id2 = certs.link_rotation(id2, citizen.seeds[0])
    citizen.seeds.append(s2)
    citizen.identities.append(id2)
    log.add(citizen.id, "identity", id2)  # 15
    log.add(citizen.id, "key", new_key(citizen, "citizen"))  # 16
    rev = certs.make_revocation(
        subject=citizen.id, kid=citizen.identities[0]["cert"]["kid"], at=NOW + 16_000,
        reason="superseded", signer_seed=s2,
    )  # fmt: skip
    log.add(citizen.id, "revoke", rev)  # 17
    rev2 = certs.make_revocation(
        subject=citizen2.id, kid=citizen2.keys[0]["cert"]["kid"], at=NOW + 18_000,
        reason="compromised", signer_seed=citizen2.seeds[0],
    )  # fmt: skip
    log.add(citizen2.id, "revoke", rev2)  # 18
    add_admin = certs.sign_membership(
        team=team, member=admin.id, at=NOW + 19_000, admin_seed=admin.seeds[0]
    )
    log.add(team, "member_add", add_admin)  # 19
    rm_admin = certs.sign_membership(
        team=team, member=admin.id, at=NOW + 20_000, admin_seed=admin.seeds[0]
    )
    log.add(team, "member_remove", rm_admin)  # 20
    return World(
        log, server, receipt_seed, org, root_seed, org_root, admin, caseworker, team,
        [team_key], citizen, citizen2,
    )  # fmt: skip


def make_bad_log(world: World) -> tuple[Log, dict[str, str]]:
    """A log with a duplicate seq (x), an unlinked identity change (w), a broken link (u)."""
    log = Log(world.log.log_seed)
    log.append(world.log.chains[world.server][0][1])
    x, w, u = ident("x"), ident("w"), ident("u")
    sx, idx = identity("x", "citizen", None, None)
    e0 = log.add(x, "identity", idx)
    log.add(x, "key", enc_key("x", x, "citizen", None, sx, 0))
    dup = logevents.next_event(
        e0, subject=x, type="key", ts=NOW + 3000, body=enc_key("x", x, "citizen", None, sx, 1)
    )
    log.append(dup)
    _, idw = identity("w", "citizen", None, None)
    log.add(w, "identity", idw)
    _, idw2 = identity("w", "citizen", None, None, 1)
    log.add(w, "identity", idw2)
    su, idu = identity("u", "citizen", None, None)
    log.add(u, "identity", idu)
    bad = logevents.make_event(
        subject=u, seq=1, prev=bytes(32), type="key", ts=NOW + 7000,
        body=enc_key("u", u, "citizen", None, su, 0),
    )  # fmt: skip
    log.append(bad)
    return log, {"x": x, "w": w, "u": u}


# --- summaries (what the vector cases expect) ----------------------------------------------
def _error_name(fn: Any) -> str | None:
    try:
        fn()
    except CryptoError as exc:
        return type(exc).__name__
    return None


def summarize(state: SubjectState, now: int) -> dict[str, Any]:
    """The replayed state in plain JSON; the JS test builds the same summary."""
    current_enc: Cert | None = None
    try:
        current_enc = state.current_encryption(now)
    except CryptoError:
        current_enc = None
    identity_ = state.identity
    return {
        "kind": state.kind,
        "org": state.org,
        "identity": None if identity_ is None else identity_["kid"],
        "identities": [e.cert["kid"] for e in state.identities],
        "encryption": None if current_enc is None else current_enc["kid"],
        "encryption_error": _error_name(lambda: state.current_encryption(now)),
        "encryption_keys": [e.cert["kid"] for e in state.encryption],
        "superseded": {
            e.cert["kid"]: e.superseded_at
            for e in (*state.identities, *state.encryption, *state.admins)
            if e.superseded_at is not None
        },
        "revoked": [r["kid"] for r in state.revocations],
        "admins": [e.cert["kid"] for e in state.admins],
        "members": sorted(state.members),
        "rotation_pending": state.rotation_pending,
        "server_keys": list(state.server_keys),
        "head": state.head,
    }


def _valid_at(state: SubjectState, use: str, kid: str, at: int) -> dict[str, Any]:
    fn = {
        "identity": state.identity_valid_at,
        "encryption": state.encryption_valid_at,
        "admin": state.admin_valid_at,
    }[use]
    return {"use": use, "kid": kid, "at": at, "error": _error_name(lambda: fn(kid, at))}


def _kid(signed: SignedCert) -> str:
    return signed["cert"]["kid"]


# --- the file --------------------------------------------------------------------------------
def build() -> dict[str, Any]:
    w = make_world()
    log = w.log
    full = log.served(NOW + HOUR)
    half = log.served(NOW + HOUR // 2, 10)
    log_pk = b64e(log.log_pk)
    org_root = certs.verify_org_root(w.org_root)
    org_roots = {w.org: org_root}
    cases: list[dict[str, Any]] = []
    reject: list[dict[str, Any]] = []

    # tree heads
    cases.append({
        "name": "sth: first head, nothing stored", "check": "sth", "log_pk": log_pk,
        "log_seed": b64e(log.log_seed), "signed": b64e(domain.STH + cj(full["sth"])),
        "now": VERIFY_AT, "served": full, "last": None, "proof": None, "result": full["sth"],
    })  # fmt: skip
    proof = [b64e(p) for p in log.tree.consistency_proof(10, log.tree.size)]
    cases.append({
        "name": "sth: advance from size 10 with a consistency proof", "check": "sth",
        "log_pk": log_pk, "now": VERIFY_AT, "served": full, "last": half["sth"], "proof": proof,
        "result": full["sth"],
    })  # fmt: skip
    resigned = log.served(NOW + HOUR + 5 * 60_000)
    cases.append({
        "name": "sth: same tree re-signed later", "check": "sth", "log_pk": log_pk,
        "now": VERIFY_AT, "served": resigned, "last": full["sth"], "proof": None,
        "result": resigned["sth"],
    })  # fmt: skip
    base = {"check": "sth", "log_pk": log_pk, "now": VERIFY_AT, "proof": None, "last": None}
    other_log = Log(seed("other-log"))
    other_log.tree = log.tree
    forged_kid = copy.deepcopy(other_log.served(NOW + HOUR))
    forged_kid["log_key"] = log_pk
    flipped = copy.deepcopy(full)
    flipped["sth"]["ts"] += 1
    stale_tree = MemoryTree()
    stale_tree.extend(log.leaves[:10])
    stale_tree.append(b"fork")
    forked = transparency.sign_tree_head(
        transparency.make_tree_head(size=11, root=stale_tree.root(), ts=NOW + HOUR), log.log_seed
    )
    stale_rejects: list[tuple[str, str, dict[str, Any]]] = [
        ("sth: older than 24 hours", "StaleTreeHead",
         {"served": log.served(VERIFY_AT - DAY - 1)}),
        ("sth: dated in the future", "StaleTreeHead",
         {"served": log.served(VERIFY_AT + 5 * 60_000 + 1)}),
        ("sth: another log key", "KeyIdMismatch", {"served": other_log.served(NOW + HOUR)}),
        ("sth: signed by another key naming the pinned one", "BadSignature",
         {"served": forged_kid}),
        ("sth: tampered head", "BadSignature", {"served": flipped}),
        ("sth: smaller than the stored head", "StaleTreeHead",
         {"served": half, "last": full["sth"]}),
        ("sth: older than the stored head", "StaleTreeHead",
         {"served": full, "last": resigned["sth"]}),
        ("sth: same size, other root", "ForkDetected",
         {"served": log.served(NOW + HOUR, 11), "last": forked["sth"]}),
        ("sth: consistency proof does not hold", "ForkDetected",
         {"served": full, "last": forked["sth"],
          "proof": [b64e(p) for p in log.tree.consistency_proof(11, log.tree.size)]}),
        ("sth: extra member", "MalformedObject",
         {"served": {**full, "sth": {**full["sth"], "extra": 1}}}),
    ]  # fmt: skip
    for name, error, over in stale_rejects:
        reject.append({"name": name, "error": error, **base, **over})

    # the recipient's fork check
    own = full["sth"]
    n10 = {"size": 10, "root": half["sth"]["root"]}
    fork_cases: list[tuple[str, dict[str, Any], list[str] | None, str]] = [
        ("compare: smaller head, proof needed", n10, None, "need_proof"),
        ("compare: smaller head with proof", n10, proof, "consistent"),
        ("compare: same head", {"size": own["size"], "root": own["root"]}, None, "consistent"),
        ("compare: bigger head, advance first", {"size": own["size"] + 1, "root": own["root"]},
         None, "advance"),
    ]  # fmt: skip
    for name, msg, p, result in fork_cases:
        cases.append({
            "name": name, "check": "compare_heads", "message_sth": msg, "own": own, "proof": p,
            "result": result,
        })  # fmt: skip
    reject.append({
        "name": "compare: same size, other root", "error": "ForkDetected", "check": "compare_heads",
        "message_sth": {"size": own["size"], "root": b64e(bytes(32))}, "own": own, "proof": None,
    })  # fmt: skip
    reject.append({
        "name": "compare: smaller head not a prefix", "error": "ForkDetected",
        "check": "compare_heads", "message_sth": {"size": 11, "root": forked["sth"]["root"]},
        "own": own, "proof": [b64e(p) for p in log.tree.consistency_proof(11, log.tree.size)],
    })  # fmt: skip

    # subjects: verify the keys response, replay, summarize
    orgs: dict[str, SubjectState] = {}
    states: dict[str, SubjectState] = {}
    for label, subject in [
        ("server", w.server), ("org", w.org), ("admin", w.admin.id),
        ("caseworker", w.caseworker.id), ("team", w.team), ("citizen (rotated)", w.citizen.id),
        ("citizen (key revoked)", w.citizen2.id),
    ]:  # fmt: skip
        response = log.keys_response(subject, full)
        verified = logevents.verify_keys_response(response, subject, log.log_pk, now=VERIFY_AT)
        state = keystate.replay(verified.events, org_roots=org_roots, orgs=orgs)
        if state.kind == "org":
            orgs[subject] = state
        states[subject] = state
        cases.append({
            "name": f"subject: {label}", "check": "subject", "log_pk": log_pk, "now": VERIFY_AT,
            "subject": subject, "org_roots": [org_root], "response": response,
            "indices": list(verified.indices), "state": summarize(state, VERIFY_AT),
            "valid_at": [],
        })  # fmt: skip
    c = w.citizen
    rotated_at = NOW + 15 * 1000
    cases[-2]["valid_at"] = [
        _valid_at(states[c.id], "identity", _kid(c.identities[0]), rotated_at - 1),
        _valid_at(states[c.id], "identity", _kid(c.identities[0]), rotated_at),
        _valid_at(states[c.id], "identity", _kid(c.identities[1]), rotated_at),
        _valid_at(states[c.id], "identity", _kid(w.admin.identities[0]), rotated_at),
        _valid_at(states[c.id], "encryption", _kid(c.keys[0]), NOW),
        _valid_at(states[c.id], "encryption", _kid(c.keys[0]), NOW + 12 * 1000),
        _valid_at(states[c.id], "encryption", _kid(c.keys[2]), VERIFY_AT),
        _valid_at(states[c.id], "encryption", _kid(c.keys[2]), NOW + 2 * YEAR),
    ]
    c2 = w.citizen2
    cases[-1]["valid_at"] = [
        _valid_at(states[c2.id], "encryption", _kid(c2.keys[0]), NOW + 18_000 - 1),
        _valid_at(states[c2.id], "encryption", _kid(c2.keys[0]), NOW + 18_000),
    ]
    org_case = next(x for x in cases if x.get("subject") == w.org)
    org_case["valid_at"] = [_valid_at(states[w.org], "admin", _kid(w.admin.identities[0]), NOW)]

    base = {"check": "subject", "log_pk": log_pk, "now": VERIFY_AT, "org_roots": [org_root]}
    resp = log.keys_response(c.id, full)
    tampered_leaf = copy.deepcopy(resp)
    tampered_leaf["events"][1]["leaf"] = b64e(
        log.leaves[tampered_leaf["events"][1]["index"]].replace(b'"ts":', b'"ts":1')
    )
    tampered_path = copy.deepcopy(resp)
    tampered_path["events"][2]["path"][0] = b64e(bytes(32))
    wrong_index = copy.deepcopy(resp)
    wrong_index["events"][0]["index"] += 1
    unsorted = copy.deepcopy(resp)
    unsorted["events"][1], unsorted["events"][2] = unsorted["events"][2], unsorted["events"][1]
    bad_sig = copy.deepcopy(resp)
    bad_sig["sth"]["ts"] += 1
    other_pin = certs.verify_org_root(
        certs.make_org_root(org=w.org, name="Fake", root_seed=seed("fake-root"), created=NOW)
    )
    subject_rejects: list[tuple[str, str, str, dict[str, Any], dict[str, Any]]] = [
        ("chain: an event left out", "BrokenChain", c.id,
         log.keys_response(c.id, full, only=[0, 1, 3, 4, 5]), {}),
        ("chain: not from seq 0", "BrokenChain", c.id,
         log.keys_response(c.id, full, only=[1, 2, 3, 4, 5]), {}),
        ("chain: events out of order", "BrokenChain", c.id, unsorted, {}),
        ("chain: another subject's events", "BrokenChain", c2.id, resp, {}),
        ("chain: empty", "BrokenChain", c.id, {**resp, "events": []}, {}),
        ("proof: tampered leaf", "BadProof", c.id, tampered_leaf, {}),
        ("proof: tampered path", "BadProof", c.id, tampered_path, {}),
        ("proof: wrong index", "BadProof", c.id, wrong_index, {}),
        ("keys response: bad tree head signature", "BadSignature", c.id, bad_sig, {}),
        ("keys response: stale tree head", "StaleTreeHead", c.id,
         log.keys_response(c.id, log.served(VERIFY_AT - DAY - 1)), {}),
        ("replay: org root is not the pinned one", "IdentityChanged", w.org,
         log.keys_response(w.org, full), {"org_roots": [other_pin]}),
        ("replay: no pinned org root", "OrgCertificationMissing", w.org,
         log.keys_response(w.org, full), {"org_roots": []}),
        ("replay: staff identity without its org root", "OrgCertificationMissing",
         w.caseworker.id, log.keys_response(w.caseworker.id, full), {"org_roots": []}),
        ("replay: pinned identity not in the chain", "IdentityChanged", c.id, resp,
         {"pinned_identity": _kid(c2.identities[0])}),
        ("replay: team without its org chain", "OrgCertificationMissing", w.team,
         log.keys_response(w.team, full), {"orgs": []}),
    ]  # fmt: skip
    for name, error, subject, response, over in subject_rejects:
        reject.append({
            "name": name, "error": error, **base, "subject": subject, "response": response,
            "orgs": [w.org], **over,
        })  # fmt: skip

    # the bad log: duplicate seq, unlinked identity change, broken link
    bad, ids = make_bad_log(w)
    bad_full = bad.served(NOW + HOUR)
    bad_base = {**base, "orgs": []}
    reject.append({
        "name": "chain: duplicate seq", "error": "BrokenChain", **bad_base, "subject": ids["x"],
        "response": bad.keys_response(ids["x"], bad_full),
    })  # fmt: skip
    reject.append({
        "name": "chain: prev is not the previous leaf hash", "error": "BrokenChain", **bad_base,
        "subject": ids["u"], "response": bad.keys_response(ids["u"], bad_full),
    })  # fmt: skip
    reject.append({
        "name": "replay: identity changed without a rotation link", "error": "IdentityChanged",
        **bad_base, "subject": ids["w"], "response": bad.keys_response(ids["w"], bad_full),
    })  # fmt: skip
    w_events = [logevents.parse_leaf(bad.leaves[i]) for i, _ in bad.chains[ids["w"]]]
    accepted = keystate.replay(w_events, accepted_identities=[w_events[1]["body"]["cert"]["kid"]])
    cases.append({
        "name": "subject: unlinked identity change the user accepted", "check": "subject",
        "log_pk": log_pk, "now": VERIFY_AT, "subject": ids["w"], "org_roots": [org_root],
        "response": bad.keys_response(ids["w"], bad_full),
        "indices": [i for i, _ in bad.chains[ids["w"]]],
        "accepted_identities": [w_events[1]["body"]["cert"]["kid"]],
        "state": summarize(accepted, VERIFY_AT), "valid_at": [],
    })  # fmt: skip

    # the owner's self-check
    c_events = [e for _, e in log.chains[c.id]]
    own_kids = [_kid(x) for x in c.identities] + [_kid(x) for x in c.keys[:-1]]
    remembered = logevents.chain_head(c_events[:3])
    check = monitor.self_check(c_events, remembered, own_kids)
    cases.append({
        "name": "self-check: a key the owner did not make", "check": "self_check",
        "events": c_events, "remembered": remembered, "own_kids": own_kids,
        "head": check.head,
        "foreign": [{"seq": f.seq, "type": f.type, "kid": f.kid} for f in check.foreign],
    })  # fmt: skip
    all_kids = [*own_kids, _kid(c.keys[-1])]
    cases.append({
        "name": "self-check: nothing foreign since the last login", "check": "self_check",
        "events": c_events, "remembered": remembered, "own_kids": all_kids,
        "head": logevents.chain_head(c_events), "foreign": [],
    })  # fmt: skip
    reject.append({
        "name": "self-check: remembered event replaced", "error": "ForkDetected",
        "check": "self_check", "events": c_events,
        "remembered": {"seq": 2, "hash": b64e(bytes(32))}, "own_kids": all_kids,
    })  # fmt: skip
    reject.append({
        "name": "self-check: chain shorter than remembered", "error": "ForkDetected",
        "check": "self_check", "events": c_events[:2], "remembered": remembered,
        "own_kids": all_kids,
    })  # fmt: skip

    # the auditor
    for name, leaves, head in [
        ("audit: the good log", log.leaves, full["sth"]),
        ("audit: the bad log", bad.leaves, bad_full["sth"]),
        ("audit: a malformed leaf and a leaf 0 that is no server key",
         [log.leaves[1], b"{}", log.leaves[2]], None),
    ]:  # fmt: skip
        auditor = monitor.Auditor()
        findings = auditor.extend(leaves)
        cases.append({
            "name": name, "check": "audit", "leaves": [b64e(x) for x in leaves],
            "findings": [
                {"kind": f.kind, "index": f.index, "subject": f.subject, "seq": f.seq}
                for f in findings
            ],
            "root": b64e(auditor.root()), "sth": head,
        })  # fmt: skip
    for r in reject:
        if r["name"].startswith("replay:"):
            r["rule"] = "replay rules, a project decision: see postbox/crypto/transparency.py"
        elif r["name"] == "sth: dated in the future":
            r["rule"] = "heads dated more than 5 minutes after `now` are refused as stale"
        elif r["error"] == "KeyIdMismatch":
            r["rule"] = "log_key is the b64 log public key and must equal the pinned one"
    return {"cases": cases, "reject": reject}


if __name__ == "__main__":
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    import generate

    Path(__file__).with_name("transparency.json").write_text(generate.build("transparency"))
