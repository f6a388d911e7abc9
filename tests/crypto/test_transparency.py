"""The client side of the transparency log (PROTOCOL.md §7): tree heads, fork checks,
per-subject chains, replay into key state, the owner's self-check and the auditor.

The first half checks every case of tests/vectors/transparency.json; the second half
covers the rules the vectors do not reach, on the generator's world.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import gen_transparency as gen
import pytest

from postbox.crypto import certs, domain, errors, keystate, logevents, monitor, transparency
from postbox.crypto.certs import OrgRoot
from postbox.crypto.encoding import b64d, b64e, cj
from postbox.crypto.keystate import SubjectState
from postbox.crypto.logevents import LogEvent

VECTORS_PATH = Path(__file__).parents[1] / "vectors" / "transparency.json"
VECTORS = json.loads(VECTORS_PATH.read_text("utf-8"))
CASES: list[dict[str, Any]] = VECTORS["cases"]
REJECTS: list[dict[str, Any]] = VECTORS["reject"]


def _path(p: list[str] | None) -> list[bytes] | None:
    return None if p is None else [b64d(x) for x in p]


def _org_roots(case: dict[str, Any]) -> dict[str, OrgRoot]:
    return {r["org"]: r for r in case["org_roots"]}


def _orgs() -> dict[str, SubjectState]:
    """Org states from the org cases of the file (replayed in file order)."""
    out: dict[str, SubjectState] = {}
    for case in CASES:
        if case["check"] == "subject" and case["state"]["kind"] == "org":
            out[case["subject"]] = _subject(case, out)
    return out


def _subject(case: dict[str, Any], orgs: dict[str, SubjectState]) -> SubjectState:
    verified = logevents.verify_keys_response(
        case["response"], case["subject"], b64d(case["log_pk"]), now=case["now"]
    )
    if "indices" in case:
        assert list(verified.indices) == case["indices"]
    return keystate.replay(
        verified.events,
        org_roots=_org_roots(case),
        orgs=orgs,
        accepted_identities=case.get("accepted_identities", ()),
        pinned_identity=case.get("pinned_identity"),
    )


def _run(case: dict[str, Any]) -> Any:
    check = case["check"]
    if check == "sth":
        return transparency.verify_sth(
            case["served"], b64d(case["log_pk"]), now=case["now"], last=case["last"],
            proof=_path(case["proof"]),
        )  # fmt: skip
    if check == "compare_heads":
        return transparency.compare_heads(case["message_sth"], case["own"], _path(case["proof"]))
    if check == "subject":
        all_orgs = _orgs()
        orgs = {o: all_orgs[o] for o in case.get("orgs", all_orgs)}
        return _subject(case, orgs)
    if check == "self_check":
        return monitor.self_check(case["events"], case["remembered"], case["own_kids"])
    if check == "audit":
        auditor = monitor.Auditor()
        auditor.extend(b64d(x) for x in case["leaves"])
        return auditor
    raise AssertionError(check)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_vector_case(case: dict[str, Any]) -> None:
    out = _run(case)
    check = case["check"]
    if check in ("sth", "compare_heads"):
        assert out == case["result"]
    elif check == "subject":
        assert gen.summarize(out, case["now"]) == case["state"]
        for v in case["valid_at"]:
            fn = {
                "identity": out.identity_valid_at,
                "encryption": out.encryption_valid_at,
                "admin": out.admin_valid_at,
            }[v["use"]]
            if v["error"] is None:
                assert fn(v["kid"], v["at"])["kid"] == v["kid"]
            else:
                with pytest.raises(getattr(errors, v["error"])):
                    fn(v["kid"], v["at"])
    elif check == "self_check":
        assert out.head == case["head"]
        assert [{"seq": f.seq, "type": f.type, "kid": f.kid} for f in out.foreign] == case[
            "foreign"
        ]
    else:
        assert [
            {"kind": f.kind, "index": f.index, "subject": f.subject, "seq": f.seq}
            for f in out.findings
        ] == case["findings"]
        assert b64e(out.root()) == case["root"]
        if case["sth"] is not None:
            out.check_head(case["sth"])


@pytest.mark.parametrize("case", REJECTS, ids=[c["name"] for c in REJECTS])
def test_vector_reject(case: dict[str, Any]) -> None:
    with pytest.raises(errors.CryptoError) as info:
        _run(case)
    assert type(info.value).__name__ == case["error"]


def test_vector_signing_and_events_rebuild() -> None:
    """The deterministic outputs: the tree head signature and every event of every chain."""
    first = CASES[0]
    served = transparency.sign_tree_head(first["served"]["sth"], b64d(first["log_seed"]))
    assert served == first["served"]
    assert b64d(first["signed"]) == domain.STH + cj(served["sth"])
    for case in CASES:
        if case["check"] != "subject":
            continue
        previous: LogEvent | None = None
        for entry in case["response"]["events"]:
            event = logevents.parse_leaf(b64d(entry["leaf"]))
            rebuilt = logevents.next_event(
                previous, subject=event["subject"], type=event["type"], ts=event["ts"],
                body=event["body"],
            )  # fmt: skip
            assert logevents.event_leaf(rebuilt) == b64d(entry["leaf"])
            previous = rebuilt


# --- the world of the generator ------------------------------------------------------------------
@pytest.fixture(scope="module")
def world() -> gen.World:
    return gen.make_world()


def _events(world: gen.World, subject: str) -> list[LogEvent]:
    return [e for _, e in world.log.chains[subject]]


def _replay(world: gen.World, subject: str, **kw: Any) -> SubjectState:
    root = certs.verify_org_root(world.org_root)
    org = keystate.replay(_events(world, world.org), org_roots={world.org: root})
    return keystate.replay(
        _events(world, subject), org_roots={world.org: root}, orgs={world.org: org}, **kw
    )


def _served(world: gen.World, ts: int = gen.NOW, size: int | None = None) -> Any:
    return world.log.served(ts, size)


# --- tree heads -------------------------------------------------------------------------------
def test_tree_head_round_trip_and_wire(world: gen.World) -> None:
    served = _served(world)
    pk = world.log.log_pk
    assert transparency.verify_tree_head(served, pk, now=gen.NOW) == served["sth"]
    assert transparency.verify_tree_head(cj(served), pk, now=gen.NOW) == served["sth"]
    with pytest.raises(errors.NonCanonical):
        transparency.verify_tree_head(json.dumps(served).encode(), pk, now=gen.NOW)
    assert served["sth"]["root"] == b64e(world.log.tree.root())


def test_tree_head_age_window(world: gen.World) -> None:
    served = _served(world)
    pk = world.log.log_pk
    transparency.verify_tree_head(served, pk, now=gen.NOW + gen.DAY)
    with pytest.raises(errors.StaleTreeHead):
        transparency.verify_tree_head(served, pk, now=gen.NOW + gen.DAY + 1)
    transparency.verify_tree_head(served, pk, now=gen.NOW - 5 * 60_000)
    with pytest.raises(errors.StaleTreeHead):
        transparency.verify_tree_head(served, pk, now=gen.NOW - 5 * 60_000 - 1)
    transparency.verify_tree_head(served, pk, now=gen.NOW + 10, max_age_ms=10)
    with pytest.raises(errors.StaleTreeHead):
        transparency.verify_tree_head(served, pk, now=gen.NOW + 11, max_age_ms=10)


def test_advance(world: gen.World) -> None:
    tree = world.log.tree
    small = _served(world, gen.NOW, 5)["sth"]
    big = _served(world, gen.NOW + 1)["sth"]
    proof = tree.consistency_proof(5, tree.size)
    assert transparency.advance(None, small) == small
    assert transparency.advance(small, big, proof) == big
    assert transparency.advance(small, small) == small
    with pytest.raises(errors.BadProof):
        transparency.advance(small, big)
    with pytest.raises(errors.ForkDetected):
        transparency.advance(small, big, tree.consistency_proof(6, tree.size))
    with pytest.raises(errors.StaleTreeHead):
        transparency.advance(big, small)
    older_big = _served(world, gen.NOW - 1)["sth"]
    with pytest.raises(errors.StaleTreeHead):
        transparency.advance(big, older_big)


def test_consistency_and_inclusion_responses(world: gen.World) -> None:
    tree = world.log.tree
    resp = {"first": 3, "second": 9, "path": [b64e(p) for p in tree.consistency_proof(3, 9)]}
    assert transparency.consistency_path(resp, 3, 9) == tree.consistency_proof(3, 9)
    with pytest.raises(errors.BadProof):
        transparency.consistency_path(resp, 3, 10)
    sth = _served(world)["sth"]
    inc = {
        "index": 4, "size": sth["size"], "leaf": b64e(world.log.leaves[4]),
        "path": [b64e(p) for p in tree.inclusion_proof(4)],
    }  # fmt: skip
    assert transparency.verify_inclusion_response(inc, sth) == world.log.leaves[4]
    with pytest.raises(errors.BadProof):
        transparency.verify_inclusion_response({**inc, "index": 5}, sth)
    with pytest.raises(errors.BadProof):
        transparency.verify_inclusion_response({**inc, "size": 4}, sth)


def test_compare_heads_bad_input(world: gen.World) -> None:
    own = _served(world)["sth"]
    with pytest.raises(errors.MalformedObject):
        transparency.compare_heads({"size": 0, "root": own["root"]}, own)
    with pytest.raises(errors.MalformedObject):
        transparency.compare_heads({"size": 3}, own)


# --- events and chains ------------------------------------------------------------------------
def test_event_prev_is_the_rfc9162_leaf_hash(world: gen.World) -> None:
    e0, e1 = _events(world, world.citizen.id)[:2]
    import hashlib

    assert b64d(e1["prev"] or "") == hashlib.sha256(b"\x00" + cj(e0)).digest()
    assert logevents.parse_leaf(logevents.event_leaf(e1)) == e1


def test_event_shapes(world: gen.World) -> None:
    e: Any = copy.deepcopy(_events(world, world.citizen.id)[1])
    e["type"] = "revoke"  # a key certificate is not a revocation body
    with pytest.raises(errors.MalformedObject):
        logevents.parse_leaf(cj(e))
    e["type"] = "rename"
    with pytest.raises(errors.MalformedObject):
        logevents.parse_leaf(cj(e))
    with pytest.raises(errors.NonCanonical):
        logevents.parse_leaf(b'{"v": 1}')


def test_check_chain_time_goes_forward(world: gen.World) -> None:
    events: Any = copy.deepcopy(_events(world, world.citizen.id)[:2])
    events[1]["ts"] = events[0]["ts"] - 1
    with pytest.raises(errors.BrokenChain):
        logevents.check_chain(events)


# --- replay ------------------------------------------------------------------------------------
def test_replay_citizen(world: gen.World) -> None:
    state = _replay(world, world.citizen.id)
    c = world.citizen
    assert state.kind == "account"
    assert state.current_identity() == c.identities[1]["cert"]
    assert state.current_encryption(gen.VERIFY_AT) == c.keys[2]["cert"]
    assert state.head == logevents.chain_head(_events(world, c.id))
    with pytest.raises(errors.CertificateExpired):
        state.current_encryption(gen.NOW + 2 * gen.YEAR)


def test_replay_team_and_org(world: gen.World) -> None:
    team = _replay(world, world.team)
    assert team.kind == "team"
    assert team.members == {world.caseworker.id}
    assert team.rotation_pending
    org = _replay(world, world.org)
    assert org.server_key is not None
    assert org.server_key["receipt_pk"] == org.server_keys[0]["receipt_pk"]
    assert [e.cert["kid"] for e in org.admins] == [world.admin.identities[0]["cert"]["kid"]]


def _extend(world: gen.World, subject: str, type_: Any, body: Any) -> list[LogEvent]:
    events = _events(world, subject)
    return [
        *events,
        logevents.next_event(
            events[-1], subject=subject, type=type_, ts=events[-1]["ts"] + 1, body=body
        ),
    ]


def _replay_events(world: gen.World, events: list[LogEvent], **kw: Any) -> SubjectState:
    root = certs.verify_org_root(world.org_root)
    org = keystate.replay(_events(world, world.org), org_roots={world.org: root})
    return keystate.replay(events, org_roots={world.org: root}, orgs={world.org: org}, **kw)


def test_replay_rejects_events_that_do_not_belong(world: gen.World) -> None:
    c = world.citizen
    # a membership in a citizen's chain
    m = certs.sign_membership(
        team=world.team, member=c.id, at=gen.NOW, admin_seed=world.admin.seeds[0]
    )
    with pytest.raises(errors.CertificateInvalid):
        _replay_events(world, _extend(world, c.id, "member_add", m))
    # another account's certificate in this chain
    with pytest.raises(errors.CertificateInvalid):
        _replay_events(world, _extend(world, c.id, "key", world.citizen2.keys[0]))
    # a key signed by the superseded identity
    old = gen.enc_key("citizen", c.id, "citizen", None, c.seeds[0], 9)
    with pytest.raises(errors.CertificateInvalid):
        _replay_events(world, _extend(world, c.id, "key", old))
    # a membership replayed as its opposite
    add_admin = [e for e in _events(world, world.team) if e["type"] == "member_add"][-1]
    with pytest.raises(errors.CertificateInvalid):
        _replay_events(world, _extend(world, world.team, "member_add", add_admin["body"]))


def test_replay_identity_rules(world: gen.World) -> None:
    c = world.citizen
    # an unlinked third identity
    s3, id3 = gen.identity("citizen", "citizen", None, None, 3)
    events = _extend(world, c.id, "identity", id3)
    with pytest.raises(errors.IdentityChanged):
        _replay_events(world, events)
    state = _replay_events(world, events, accepted_identities=[id3["cert"]["kid"]])
    assert state.current_identity() == id3["cert"]
    # linked, but from an identity that was revoked: not a valid link
    linked_from_revoked = certs.link_rotation(id3, c.seeds[0])
    with pytest.raises(errors.IdentityChanged):
        _replay_events(world, _extend(world, c.id, "identity", linked_from_revoked))
    # the pinned identity must be in the chain
    pinned = c.identities[0]["cert"]["kid"]
    assert _replay_events(world, _events(world, c.id), pinned_identity=pinned).identity
    _ = s3


def test_revoking_the_current_identity_leaves_no_identity(world: gen.World) -> None:
    c2 = world.citizen2
    rev = certs.make_revocation(
        subject=c2.id, kid=c2.identities[0]["cert"]["kid"], at=gen.NOW + 60_000,
        reason="compromised", signer_seed=c2.seeds[0],
    )  # fmt: skip
    state = _replay_events(world, _extend(world, c2.id, "revoke", rev))
    assert state.identity is None
    with pytest.raises(errors.CertificateRevoked):
        state.current_identity()
    # revoking the same key twice, or a key that is not in the chain
    with pytest.raises(errors.CertificateInvalid):
        _replay_events(world, _extend(world, c2.id, "revoke", _events(world, c2.id)[-1]["body"]))
    stranger = certs.make_revocation(
        subject=c2.id, kid=world.citizen.keys[0]["cert"]["kid"], at=gen.NOW,
        reason="compromised", signer_seed=c2.seeds[0],
    )  # fmt: skip
    with pytest.raises(errors.CertificateInvalid):
        _replay_events(world, _extend(world, c2.id, "revoke", stranger))


def test_admin_may_revoke_staff_keys_not_citizen_keys(world: gen.World) -> None:
    cw = world.caseworker
    rev = certs.make_revocation(
        subject=cw.id, kid=cw.keys[0]["cert"]["kid"], at=gen.NOW + 60_000, reason="left",
        signer_seed=world.admin.seeds[0],
    )  # fmt: skip
    state = _replay_events(world, _extend(world, cw.id, "revoke", rev))
    with pytest.raises(errors.CertificateRevoked):
        state.current_encryption(gen.VERIFY_AT)
    c = world.citizen
    rev2 = certs.make_revocation(
        subject=c.id, kid=c.keys[2]["cert"]["kid"], at=gen.NOW + 60_000, reason="compromised",
        signer_seed=world.admin.seeds[0],
    )  # fmt: skip
    with pytest.raises(errors.OrgCertificationMissing):
        _replay_events(world, _extend(world, c.id, "revoke", rev2))


def test_team_key_rotation_clears_pending(world: gen.World) -> None:
    k2 = gen.enc_key("team", world.team, "team", world.org, world.admin.seeds[0], 1)
    state = _replay_events(world, _extend(world, world.team, "key", k2))
    assert not state.rotation_pending
    assert state.current_encryption(gen.VERIFY_AT) == k2["cert"]
    assert state.encryption[0].superseded_at is not None
    # a team key certified by a stranger (not an admin of the org chain)
    bad = gen.enc_key("team", world.team, "team", world.org, world.caseworker.seeds[0], 2)
    with pytest.raises(errors.CertificateInvalid):
        _replay_events(world, _extend(world, world.team, "key", bad))


def test_org_chain_rules(world: gen.World) -> None:
    # a second org root, and a server key endorsed by another org
    with pytest.raises(errors.CertificateInvalid):
        _replay_events(world, _extend(world, world.org, "org_root", world.org_root))
    server_body = _events(world, world.server)[0]["body"]
    with pytest.raises(errors.CertificateInvalid):
        _replay_events(world, _extend(world, world.org, "server_key", server_body))
    # an endorsement in the server's own chain
    endorsed = _events(world, world.org)[2]["body"]
    with pytest.raises(errors.CertificateInvalid):
        _replay_events(world, _extend(world, world.server, "server_key", endorsed))
    # a caseworker identity as an admin key
    with pytest.raises(errors.CertificateInvalid):
        _replay_events(
            world, _extend(world, world.org, "admin_key", world.caseworker.identities[0])
        )


def test_admin_revoked_in_org_chain(world: gen.World) -> None:
    a = world.admin
    rev = certs.make_revocation(
        subject=a.id, kid=a.identities[0]["cert"]["kid"], at=gen.NOW + 10**6, reason="left",
        signer_seed=a.seeds[0],
    )  # fmt: skip
    root = certs.verify_org_root(world.org_root)
    org = keystate.replay(_extend(world, world.org, "revoke", rev), org_roots={world.org: root})
    kid = a.identities[0]["cert"]["kid"]
    assert org.admin_valid_at(kid, gen.NOW)["kid"] == kid
    with pytest.raises(errors.CertificateRevoked):
        org.admin_valid_at(kid, gen.NOW + 10**6)


def test_chain_must_start_right(world: gen.World) -> None:
    key_event = _events(world, world.citizen.id)[1]
    first = logevents.make_event(
        subject=world.citizen.id, seq=0, prev=None, type="key", ts=1, body=key_event["body"]
    )
    with pytest.raises(errors.BrokenChain):
        keystate.replay([first])
    rev = _events(world, world.citizen.id)[-1]
    first = logevents.make_event(
        subject=world.citizen.id, seq=0, prev=None, type="revoke", ts=1, body=rev["body"]
    )
    with pytest.raises(errors.BrokenChain):
        keystate.replay([first])


# --- keys responses -------------------------------------------------------------------------
def test_keys_response_round_trip(world: gen.World) -> None:
    served = _served(world)
    resp = world.log.keys_response(world.citizen.id, served)
    verified = logevents.verify_keys_response(
        cj(resp), world.citizen.id, world.log.log_pk, now=gen.NOW
    )
    assert verified.events == tuple(_events(world, world.citizen.id))
    assert verified.sth == served["sth"]
    assert verified.head == logevents.chain_head(verified.events)
    # a response for an older tree holds the chain as it was then
    older = world.log.keys_response(world.citizen.id, _served(world, size=13))
    v2 = logevents.verify_keys_response(older, world.citizen.id, world.log.log_pk, now=gen.NOW)
    assert len(v2.events) == 3


# --- self-check and auditor -------------------------------------------------------------------
def test_self_check_from_scratch(world: gen.World) -> None:
    events = _events(world, world.citizen.id)
    check = monitor.self_check(events, None, [])
    assert [f.seq for f in check.foreign] == [0, 1, 2, 3, 4, 5]
    assert not check.ok
    own = [x["cert"]["kid"] for x in world.citizen.identities + world.citizen.keys]
    assert monitor.self_check(events, None, own).ok


def test_auditor_head_mismatch(world: gen.World) -> None:
    auditor = monitor.Auditor()
    auditor.extend(world.log.leaves[:5])
    with pytest.raises(ValueError):
        auditor.check_head(_served(world)["sth"])
    auditor.extend(world.log.leaves[5:])
    auditor.check_head(_served(world)["sth"])
    forked = copy.deepcopy(_served(world)["sth"])
    forked["root"] = b64e(bytes(32))
    with pytest.raises(errors.ForkDetected):
        auditor.check_head(forked)
    assert monitor.audit_leaves(world.log.leaves) == []


def test_every_single_byte_flip_of_a_tree_head_is_refused(world: gen.World) -> None:
    body = cj(_served(world))
    pk = world.log.log_pk
    transparency.verify_tree_head(body, pk, now=gen.NOW)
    for i in range(len(body)):
        for mask in (0x01, 0x20):
            b = bytearray(body)
            b[i] ^= mask
            with pytest.raises(errors.CryptoError):
                transparency.verify_tree_head(bytes(b), pk, now=gen.NOW)
