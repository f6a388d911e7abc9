"""Check tests/vectors/{bundle,recovery,login,activation}.json (PROTOCOL.md §10).

Every case is rebuilt from its inputs (everything here is deterministic, bundle nonces
included) and every reject case raises the named error. Regenerating the files from their
seeds is checked by test_vectors_regenerate.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from postbox.crypto import activation as A
from postbox.crypto import bundle as B
from postbox.crypto import login as L
from postbox.crypto import recovery as R
from postbox.crypto.encoding import CHALLENGE_BYTES, b64d, b64e
from postbox.crypto.errors import CryptoError

VECTORS = Path(__file__).resolve().parents[1] / "vectors"


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((VECTORS / f"{name}.json").read_text("utf-8"))
    return data


BUNDLE = load("bundle")
RECOVERY = load("recovery")
LOGIN = load("login")
ACTIVATION = load("activation")


def names(cases: list[dict[str, Any]]) -> list[str]:
    return [c["name"] for c in cases]


def expect_error(name: str, fn: Any, *args: Any, **kwargs: Any) -> None:
    with pytest.raises(CryptoError) as info:
        fn(*args, **kwargs)
    assert type(info.value).__name__ == name


# --- bundle.json ---------------------------------------------------------------------------
def test_bundle_file_covers_the_required_languages() -> None:
    text = " ".join(c.get("passphrase", "") + c.get("passphrase_nfkc", "") for c in BUNDLE["cases"])
    for ch in "ßüıİşğكїєґｐ\ufefb":
        assert ch in text
    assert {c["kind"] for c in BUNDLE["cases"]} == {"pass", "recovery"}


@pytest.mark.parametrize("case", BUNDLE["cases"], ids=names(BUNDLE["cases"]))
def test_bundle_case(case: dict[str, Any]) -> None:
    account, bundle = case["account"], case["bundle"]
    if case["kind"] == "pass":
        salt = b64d(case["salt"], 16)
        keys = B.derive_pass_keys(case["passphrase"], salt, case["ops"], case["mem"])
        assert (bundle["salt"], bundle["ops"], bundle["mem"]) == (
            case["salt"],
            case["ops"],
            case["mem"],
        )
    else:
        keys = R.recovery_keys(b64d(case["recovery_key"], 20))
        assert case["salt"] is None
        assert (bundle["salt"], bundle["ops"], bundle["mem"]) == (None, None, None)
    assert b64e(keys.kek) == case["kek"]
    assert b64e(keys.auth_pk) == case["auth_pk"]
    assert bundle["gen"] == case["gen"] == case["private_keys"]["gen"]
    assert bundle["kind"] == case["kind"]
    assert B.open_bundle(bundle, keys.kek, account, min_gen=case["gen"]) == case["private_keys"]
    # deterministic: resealing with the same nonce gives the same bundle
    resealed = B.seal_bundle(
        case["private_keys"],
        keys.kek,
        account,
        kind=case["kind"],
        salt=b64d(case["salt"]) if case["salt"] else None,
        ops=case["ops"],
        mem=case["mem"],
        nonce=b64d(bundle["nonce"]),
    )
    assert resealed == bundle


@pytest.mark.parametrize("case", BUNDLE["reject"], ids=names(BUNDLE["reject"]))
def test_bundle_reject(case: dict[str, Any]) -> None:
    expect_error(
        case["error"],
        B.open_bundle,
        case["bundle"],
        b64d(case["kek"]),
        case["account"],
        min_gen=case["min_gen"],
    )


# --- recovery.json -------------------------------------------------------------------------
@pytest.mark.parametrize("case", RECOVERY["cases"], ids=names(RECOVERY["cases"]))
def test_recovery_case(case: dict[str, Any]) -> None:
    rk = b64d(case["recovery_key"], 20)
    assert R.format_recovery_key(rk) == case["text"]
    assert R.checksum(rk) == case["checksum"]
    for typed in [case["text"], *case["accepts"]]:
        assert R.parse_recovery_key(typed) == rk
    keys = R.recovery_keys(rk)
    assert (b64e(keys.kek), b64e(keys.auth_seed), b64e(keys.auth_pk)) == (
        case["kek"],
        case["auth_seed"],
        case["auth_pk"],
    )


@pytest.mark.parametrize("case", RECOVERY["reject"], ids=names(RECOVERY["reject"]))
def test_recovery_reject(case: dict[str, Any]) -> None:
    expect_error(case["error"], R.parse_recovery_key, case["text"])


# --- login.json ----------------------------------------------------------------------------
@pytest.mark.parametrize("case", LOGIN["cases"], ids=names(LOGIN["cases"]))
def test_login_case(case: dict[str, Any]) -> None:
    if case["type"] == "fake_salt":
        assert b64e(L.fake_salt(b64d(case["k_fake"], 32), case["login"])) == case["salt"]
        return
    assert case["type"] == "signature"
    challenge = b64d(case["challenge"], CHALLENGE_BYTES)
    assert L.normalize_login(case["login"]) == case["login_normalized"]
    message = L.login_message(challenge, case["origin"], case["login"], case["method"])
    assert b64e(message) == case["message"]
    seed = b64d(case["auth_seed"], 32)
    sig = L.sign_login(seed, challenge, case["origin"], case["login"], case["method"])
    assert b64e(sig) == case["signature"]
    pk = b64d(case["auth_pk"], 32)
    for login in (case["login"], case["login_normalized"]):
        L.verify_login(pk, sig, challenge, case["origin"], login, case["method"])


@pytest.mark.parametrize("case", LOGIN["reject"], ids=names(LOGIN["reject"]))
def test_login_reject(case: dict[str, Any]) -> None:
    if case["type"] == "origin":
        expect_error(case["error"], L.check_origin, case["origin"])
    elif case["type"] == "login":
        expect_error(case["error"], L.normalize_login, case["login"])
    else:
        assert case["type"] == "verify"
        expect_error(
            case["error"],
            L.verify_login,
            b64d(case["auth_pk"]),
            b64d(case["signature"]),
            b64d(case["challenge"]),
            case["origin"],
            case["login"],
            case["method"],
        )


# --- activation.json -----------------------------------------------------------------------
@pytest.mark.parametrize("case", ACTIVATION["cases"], ids=names(ACTIVATION["cases"]))
def test_activation_case(case: dict[str, Any]) -> None:
    code = b64d(case["code"], 20)
    assert A.format_code(code) == case["text"]
    for typed in [case["text"], *case["accepts"]]:
        assert A.parse_code(typed) == code
    assert b64e(A.act_auth(code)) == case["act_auth"]
    assert b64e(A.act_mac(code, case["identity_cert"])) == case["act_mac"]
    A.verify_act_mac(code, case["identity_cert"], b64d(case["act_mac"]))


@pytest.mark.parametrize("case", ACTIVATION["reject"], ids=names(ACTIVATION["reject"]))
def test_activation_reject(case: dict[str, Any]) -> None:
    if case["type"] == "parse":
        expect_error(case["error"], A.parse_code, case["text"])
    else:
        assert case["type"] == "mac"
        expect_error(
            case["error"],
            A.verify_act_mac,
            b64d(case["code"]),
            case["identity_cert"],
            b64d(case["act_mac"]),
        )
