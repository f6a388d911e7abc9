"""tests/vectors/keycert.json in Python: every deterministic output rebuilt byte for byte,
every case verified, every sealed team wrap opened, every reject case refused with the
named error. Regenerating the file from its seeds: test_vectors_regenerate.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gen_keycert
import pytest

from postbox.crypto import certs, domain, errors
from postbox.crypto.certs import Cert
from postbox.crypto.encoding import b64d, b64e, cj
from postbox.crypto.kid import derive_kid
from postbox.crypto.primitives import box_keypair, seal_open, sign, sign_keypair

FILE = Path(gen_keycert.__file__).with_name("keycert.json")
V: dict[str, Any] = json.loads(FILE.read_text("utf-8"))
SERVED = ("cert", "sig", "by", "org_sig", "prev", "prev_sig")


def _name(case: dict[str, Any]) -> str:
    return str(case["name"])


def served(case: dict[str, Any]) -> dict[str, Any]:
    return {k: case[k] for k in SERVED}


def verify_keycert(case: dict[str, Any]) -> Cert:
    """Every check a client runs on a served certificate of this kind (PROTOCOL §3)."""
    signed = served(case)
    org_root = None
    if case["org_root"] is not None:
        org_root = certs.verify_org_root(case["org_root"])
        assert org_root["pk"] == case["org_pk"]
    if case["check"] == "identity":
        cert = certs.verify_identity_cert(signed, org_root)
        if case["prev_cert"] is not None:
            certs.verify_rotation(signed, case["prev_cert"])
        return cert
    if case["check"] == "encryption":
        return certs.verify_encryption_cert(signed, case["signer_cert"])
    assert case["check"] == "team"
    return certs.verify_team_cert(signed, case["signer_cert"])


def test_file_layout() -> None:
    assert set(V) == {"cases", "reject", "objects", "objects_reject"}
    fields = {
        "name",
        "check",
        *SERVED,
        "signer_pk",
        "signer_seed",
        "signer_cert",
        "org_root",
        "org_pk",
        "org_seed",
        "prev_pk",
        "prev_seed",
        "prev_cert",
    }
    for case in V["cases"]:
        assert set(case) == fields
    for case in V["reject"]:
        assert set(case) == fields | {"error"}
    names = [c["name"] for k in V for c in V[k]]
    assert len(names) == len(set(names))
    for case in V["reject"] + V["objects_reject"]:
        assert issubclass(getattr(errors, case["error"]), errors.CryptoError)
    # the coverage the brief asks for
    kinds = {(c["check"], c["cert"]["kind"], c["prev"] is not None) for c in V["cases"]}
    assert {
        ("identity", "citizen", False),
        ("encryption", "citizen", False),
        ("identity", "caseworker", False),
        ("identity", "admin", False),
        ("team", "team", False),
        ("identity", "citizen", True),
    } <= kinds
    assert {o["type"] for o in V["objects"]} == {
        "org_root",
        "revocation",
        "team_wrap",
        "membership",
        "server_key",
        "procedure",
    }
    assert {r["error"] for r in V["reject"]} >= {
        "BadSignature",
        "KeyIdMismatch",
        "CertificateInvalid",
        "OrgCertificationMissing",
        "InvalidKey",
        "MalformedObject",
    }


@pytest.mark.parametrize("case", V["cases"], ids=_name)
def test_keycert_case_verifies(case: dict[str, Any]) -> None:
    assert verify_keycert(case) == case["cert"]


@pytest.mark.parametrize("case", V["cases"], ids=_name)
def test_keycert_case_rebuilds(case: dict[str, Any]) -> None:
    cert = case["cert"]
    # the body from its inputs: the kid is derived, the alg follows the use
    rebuilt = certs.make_cert(
        subject=cert["subject"],
        kind=cert["kind"],
        org=cert["org"],
        use=cert["use"],
        pk=b64d(cert["pk"]),
        created=cert["created"],
        expires=cert["expires"],
    )
    assert rebuilt == cert
    signer_seed = b64d(case["signer_seed"])
    assert sign_keypair(signer_seed)[0] == b64d(case["signer_pk"])
    assert case["by"] == derive_kid("sign", b64d(case["signer_pk"]))
    assert b64d(case["sig"]) == sign(signer_seed, b"postbox/v1/keycert" + cj(cert))
    if case["signer_cert"] is not None:
        assert case["signer_cert"]["pk"] == case["signer_pk"]
    signed = certs.sign_cert(rebuilt, signer_seed)
    if case["org_sig"] is not None:
        org_seed = b64d(case["org_seed"])
        assert b64e(sign_keypair(org_seed)[0]) == case["org_pk"]
        signed = certs.org_certify(signed, org_seed)
    else:
        assert case["org_seed"] is None
    if case["prev"] is not None:
        prev_seed = b64d(case["prev_seed"])
        assert b64e(sign_keypair(prev_seed)[0]) == case["prev_pk"] == case["prev_cert"]["pk"]
        assert case["prev"] == derive_kid("sign", b64d(case["prev_pk"]))
        signed = certs.link_rotation(signed, prev_seed)
    assert signed == served(case)


@pytest.mark.parametrize("case", V["reject"], ids=_name)
def test_keycert_reject(case: dict[str, Any]) -> None:
    with pytest.raises(getattr(errors, case["error"])):
        verify_keycert(case)


# --- other signed objects ------------------------------------------------------------------
def check_object(o: dict[str, Any]) -> Any:
    """Verify an object case; returns what the verifier returns."""
    t = o["type"]
    if t == "org_root":
        return certs.verify_org_root(o["org_root"])
    if t == "revocation":
        return certs.verify_revocation(o["revoke"], o["signer_cert"], o["subject_org"])
    if t == "team_wrap":
        return certs.open_team_wrap(
            o["team_wrap"],
            team_cert=o["team_cert"],
            member_pk=b64d(o["member_pk"]),
            member_sk=b64d(o["member_sk"]),
            by_identity=o["by_cert"],
            current_members=o["current_members"],
        )
    if t == "membership":
        return certs.verify_membership(o["membership"], o["admin_cert"], o["team_org"])
    if t == "server_key":
        return certs.verify_server_key(o["server_key"], o["org_root"])
    assert t == "procedure"
    return certs.verify_procedure(o["procedure"], o["admin_cert"])


def rebuild_object(o: dict[str, Any]) -> None:
    t = o["type"]
    if t == "org_root":
        body = o["org_root"]["org_root"]
        again = certs.make_org_root(
            org=body["org"],
            name=body["name"],
            root_seed=b64d(o["org_seed"]),
            created=body["created"],
        )
        assert again == o["org_root"]
        assert o["org_pk"] == body["pk"]
        assert certs.org_fingerprint(body) == o["fingerprint"]
        assert certs.fingerprint(b64d(o["org_pk"])) == o["fingerprint"]
    elif t == "revocation":
        r = o["revoke"]["revoke"]
        again_rev = certs.make_revocation(
            subject=r["subject"],
            kid=r["kid"],
            at=r["at"],
            reason=r["reason"],
            signer_seed=b64d(o["signer_seed"]),
        )
        assert again_rev == o["revoke"]
    elif t == "team_wrap":
        wrap = o["team_wrap"]["team_wrap"]
        by_seed = b64d(o["by_seed"])
        made = certs.make_team_wrap(
            team_cert=o["team_cert"],
            team_sk=b64d(o["team_sk"]),
            member=o["member_cert"]["subject"],
            member_enc=o["member_cert"],
            by=o["by_cert"]["subject"],
            by_seed=by_seed,
        )
        # everything but the randomized sealed box (and the signature over it)
        assert {**made["team_wrap"], "sealed": wrap["sealed"]} == wrap
        assert made["by_kid"] == o["team_wrap"]["by_kid"]
        assert b64d(o["team_wrap"]["sig"]) == sign(by_seed, b"postbox/v1/teamwrap" + cj(wrap))
        # the sealed box opens to the team key; with the fixed ephemeral key it is rebuilt too
        sealed = b64d(wrap["sealed"])
        member_pk = b64d(o["member_pk"])
        assert seal_open(sealed, member_pk, b64d(o["member_sk"])) == b64d(o["team_sk"])
        assert box_keypair(b64d(o["member_sk"]))[0] == member_pk
        eph = b64d(o["eph_sk"])
        assert sealed == gen_keycert.deterministic_seal(b64d(o["team_sk"]), member_pk, eph)
    elif t == "membership":
        m = o["membership"]["membership"]
        again_m = certs.sign_membership(
            team=m["team"], member=m["member"], at=m["at"], admin_seed=b64d(o["admin_seed"])
        )
        assert again_m == o["membership"]
    elif t == "server_key":
        k = o["server_key"]["server_key"]
        key = certs.make_server_key(
            log_pk=b64d(k["log_pk"]), receipt_pk=b64d(k["receipt_pk"]), created=k["created"]
        )
        assert key == k
        if o["root_seed"] is None:
            assert o["server_key"] == {"server_key": key, "org": None, "sig": None}
        else:
            again_k = certs.endorse_server_key(
                key, org=o["server_key"]["org"], root_seed=b64d(o["root_seed"])
            )
            assert again_k == o["server_key"]
    else:
        p = o["procedure"]["procedure"]
        assert certs.sign_procedure(p, b64d(o["admin_seed"])) == o["procedure"]
        assert b64d(o["form_digest"]) == certs.form_digest(p)
        assert len(b64d(o["form_digest"])) == 64


@pytest.mark.parametrize("o", V["objects"], ids=_name)
def test_object_verifies(o: dict[str, Any]) -> None:
    result = check_object(o)
    if o["type"] == "team_wrap":
        assert result == b64d(o["team_sk"])
    elif o["type"] == "org_root":
        assert result == o["org_root"]["org_root"]


@pytest.mark.parametrize("o", V["objects"], ids=_name)
def test_object_rebuilds(o: dict[str, Any]) -> None:
    rebuild_object(o)


@pytest.mark.parametrize("o", V["objects_reject"], ids=_name)
def test_object_reject(o: dict[str, Any]) -> None:
    with pytest.raises(getattr(errors, o["error"])):
        check_object(o)


# --- determinism -----------------------------------------------------------------------------
def test_deterministic_seal_is_a_sealed_box() -> None:
    """The generator's fixed-ephemeral seal opens with libsodium's crypto_box_seal_open."""
    sk = gen_keycert.seed("probe/member")
    pk = box_keypair(sk)[0]
    sealed = gen_keycert.deterministic_seal(b"k" * 32, pk, gen_keycert.seed("probe/eph"))
    assert len(sealed) == 80
    assert seal_open(sealed, pk, sk) == b"k" * 32


def test_reject_vectors_fail_only_for_their_stated_reason() -> None:
    """Sanity of the generator: the rejects that should carry a valid signature do."""
    for case in V["reject"]:
        if case["error"] in {"CertificateInvalid", "KeyIdMismatch"} and case["signer_seed"]:
            sig = sign(b64d(case["signer_seed"]), domain.KEYCERT + cj(case["cert"]))
            assert b64e(sig) == case["sig"], case["name"]
