"""Python seals a bundle → Node opens it; Node seals → Python opens (PROTOCOL.md §4).

One Node run (tests/js/tools/bundle_cross.mjs) also evaluates, on a corpus built here, the
passphrase rules and strength estimate, login normalisation, origin checks, login
signatures and fake salts, which must agree with Python exactly. The corpus keeps to
characters assigned in both Python's Unicode tables (14.0) and Node's (newer): where the
versions differ, the results may differ too (documented in passphrase.py).
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from support.node import run_tool

from postbox.crypto import bundle as B
from postbox.crypto import login as L
from postbox.crypto import passphrase as P
from postbox.crypto import recovery as R
from postbox.crypto.encoding import b64d, b64e
from postbox.crypto.errors import CryptoError
from postbox.crypto.primitives import H

ACCOUNT = b64e(H(b"test/cross/account", 16))
PASSPHRASE = "Grüße aus Köln, İstanbul und Київ: ｐａｓｓ"
NODE_PASSPHRASE = "كلمة السر \ufefb تنسى — Їжак і ґанок"

ALPHABETS = [
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
    " !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~",
    "äöüßÄÖÜẞéèêçñ",
    "ıİşŞğĞçÇöÖüÜ",
    "абвгґдеєжзиіїйклмнопрстуфхцчшщьюяАБВГҐДЕЄЖЗИІЇЙ",
    "ابتثجحخدذرزسشصضطظعغفقكلمنهوي٠١٢٣٤٥٦٧٨٩\ufefb\ufe8d",
    "ΑΒΓΔΣσςαβγ",
    "ｐａｓｓ１２３ＡＢＣ\u3000ｰ",
    "\u0301\u0308\u0327",  # combining marks
    "日本語漢字",
    "0123456789",
    "password",
]
SPECIAL = [
    "\U0001f600",  # non-BMP
    "\ue000",  # private use
    "\u0378",  # unassigned everywhere
    "\ufdd0",  # noncharacter (Cn)
    "\uffff",  # noncharacter (Cn)
    "\x00",
    "\n",
    "\x7f",
    "\x85",  # C1 control
    "\ud800",  # lone surrogate
]
WORDS = ["password", "P4ssw0rd", "sommer", "qwertz", "şifre", "пароль", "abc", "123456"]


def passphrase_corpus() -> list[str]:
    rng = random.Random(20260101)
    out = ["", "a", "Sommer2024!", "correct horse battery staple", P.generate_passphrase()]
    for _ in range(600):
        parts = []
        for _ in range(rng.randint(1, 6)):
            roll = rng.random()
            if roll < 0.25:
                parts.append(rng.choice(WORDS))
            elif roll < 0.3:
                parts.append(rng.choice(SPECIAL))
            elif roll < 0.4:
                parts.append(rng.choice("abcxyz0123") * rng.randint(2, 5))
            else:
                alphabet = rng.choice(ALPHABETS)
                parts.append("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 10))))
        out.append("".join(parts))
    return out


def login_corpus() -> list[str]:
    rng = random.Random(7)
    names = [
        "Anna@Example.ORG",
        "  x@Y.Z\t",
        "ΟΔΟΣ@ΟΔΟΣ.GR",
        "x@ΟΔΟΣ",
        "ayşe@İZMİR.example",
        "ẞ@ẞ.DE",
        "Ju\u0308rgen@STRASSE.de",
        "a@b@C.D",
        "",
        "a\x00b",
        "ä" * 127,
        "ä" * 128,
    ]
    for _ in range(200):
        alphabet = rng.choice(ALPHABETS[:8])
        local = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 8)))
        domain = "".join(rng.choice(rng.choice(ALPHABETS[:8])) for _ in range(rng.randint(0, 8)))
        names.append(local + ("@" if rng.random() < 0.8 else "") + domain)
    return names


ORIGINS = [
    "https://postbox.example",
    "https://postbox.example/",
    "http://localhost:8080",
    "http://localhost:80",
    "https://xn--mnchen-3ya.example:8443",
    "https://münchen.example",
    "http://[::1]:8080",
    "https://Postbox.example",
    "https://postbox.example:08443",
    "https://postbox.example:65536",
    "null",
]


def outcome(fn: Any, *args: Any) -> dict[str, Any]:
    """``{"ok": result}`` or ``{"error": name}``, the shape bundle_cross.mjs answers with."""
    try:
        return {"ok": fn(*args)}
    except CryptoError as exc:
        return {"error": type(exc).__name__}


@pytest.fixture(scope="module")
def exchange() -> dict[str, Any]:
    pks = B.build_private_keys(
        gen=3,
        identity=[H(b"cross/id0"), H(b"cross/id1")],
        encrypt=[(H(b"cross/enc0"), 1_767_225_600_000), (H(b"cross/enc1"), None)],
        teams=[(b64e(H(b"cross/team", 16)), H(b"cross/team-sk"))],
        log={"size": 12, "root": b64e(H(b"cross/root")), "ts": 1_767_225_600_000},
        chain={"seq": 4, "hash": b64e(H(b"cross/hash"))},
    )
    py_pass, py_keys = B.seal_pass_bundle(pks, PASSPHRASE, ACCOUNT)
    rk = R.generate_recovery_key()
    py_rec, py_rec_keys = R.seal_recovery_bundle(pks, rk, ACCOUNT)
    node_pks = B.with_gen(pks, 7)
    signatures = [
        {
            "auth_seed": b64e(H(f"cross/sig/{i}".encode())),
            "challenge": b64e(H(f"cross/challenge/{i}".encode())),
            "origin": origin,
            "login": login,
            "method": method,
        }
        for i, (origin, login, method) in enumerate(
            [
                ("https://postbox.example", "Anna@Example.ORG", "pass"),
                ("http://localhost:8080", "ayşe@İZMİR.example", "recovery"),
                ("https://postbox.example/", "a@b", "pass"),
                ("https://postbox.example", "", "pass"),
            ]
        )
    ]
    fake = [{"k_fake": b64e(H(b"cross/k_fake")), "login": n} for n in login_corpus()[:30]]
    request = {
        "account": ACCOUNT,
        "py_pass": {"bundle": py_pass, "passphrase": PASSPHRASE},
        "py_recovery": {"bundle": py_rec, "text": R.format_recovery_key(rk).lower()},
        "node_seal": {"private_keys": node_pks, "passphrase": NODE_PASSPHRASE},
        "passphrases": passphrase_corpus(),
        "logins": login_corpus(),
        "origins": ORIGINS,
        "signatures": signatures,
        "fake_salts": fake,
    }
    answer: dict[str, Any] = run_tool("bundle_cross.mjs", payload=request)
    return {
        "request": request,
        "answer": answer,
        "pks": pks,
        "node_pks": node_pks,
        "py_keys": py_keys,
        "py_rec_keys": py_rec_keys,
    }


def test_python_seals_node_opens(exchange: dict[str, Any]) -> None:
    answer = exchange["answer"]
    assert answer["py_pass"]["private_keys"] == exchange["pks"]
    assert answer["py_pass"]["auth_pk"] == b64e(exchange["py_keys"].auth_pk)
    assert answer["py_recovery"]["private_keys"] == exchange["pks"]
    assert answer["py_recovery"]["auth_pk"] == b64e(exchange["py_rec_keys"].auth_pk)


def test_node_seals_python_opens(exchange: dict[str, Any]) -> None:
    answer = exchange["answer"]
    node_pass = answer["node_pass"]["bundle"]
    assert (node_pass["ops"], node_pass["mem"]) == (B.DEFAULT_OPS, B.DEFAULT_MEM)
    opened, keys = B.open_pass_bundle(node_pass, NODE_PASSPHRASE, ACCOUNT, min_gen=7)
    assert opened == exchange["node_pks"]
    assert b64e(keys.auth_pk) == answer["node_pass"]["auth_pk"]
    rk = R.parse_recovery_key(answer["node_recovery"]["text"])
    assert (
        R.open_recovery_bundle(answer["node_recovery"]["bundle"], rk, ACCOUNT)
        == (exchange["node_pks"])
    )
    assert b64e(R.recovery_keys(rk).auth_pk) == answer["node_recovery"]["auth_pk"]
    assert P.passphrase_problem(answer["generated"]) is None


def test_passphrase_rules_agree(exchange: dict[str, Any]) -> None:
    corpus = exchange["request"]["passphrases"]
    node = exchange["answer"]["strength"]
    assert len(node) == len(corpus)
    reasons = set()
    for text, (bits, problem) in zip(corpus, node, strict=True):
        assert [P.passphrase_strength(text), P.passphrase_problem(text)] == [bits, problem], text
        reasons.add(problem)
    assert set(P.REASONS) - {"too_long"} <= reasons  # the corpus exercises every rule


def test_login_rules_agree(exchange: dict[str, Any]) -> None:
    req, answer = exchange["request"], exchange["answer"]
    for name, node in zip(req["logins"], answer["logins"], strict=True):
        assert outcome(L.normalize_login, name) == node, name
    for origin, node in zip(req["origins"], answer["origins"], strict=True):
        assert outcome(L.check_origin, origin) == node, origin
    for sig, node in zip(req["signatures"], answer["signatures"], strict=True):
        args = (b64d(sig["auth_seed"]), b64d(sig["challenge"]), sig["origin"], sig["login"])
        assert outcome(_sign_b64, *args, sig["method"]) == node
    for fake, node in zip(req["fake_salts"], answer["fake_salts"], strict=True):
        assert outcome(_fake_salt_b64, b64d(fake["k_fake"]), fake["login"]) == node


def _sign_b64(seed: bytes, challenge: bytes, origin: str, login: str, method: L.Method) -> str:
    return b64e(L.sign_login(seed, challenge, origin, login, method))


def _fake_salt_b64(k_fake: bytes, login: str) -> str:
    return b64e(L.fake_salt(k_fake, login))


def test_constants_agree(exchange: dict[str, Any]) -> None:
    constants = exchange["answer"]["constants"]
    assert constants["common_words"] == sorted(P.COMMON_WORDS)
    assert constants["numbers"] == [
        B.DEFAULT_OPS,
        B.DEFAULT_MEM,
        B.MIN_OPS,
        B.MAX_OPS,
        B.MIN_MEM,
        B.MAX_MEM,
        P.STRENGTH_THRESHOLD_BITS,
        P.MAX_PASSPHRASE_CHARS,
        P.POOL_LOWER,
        P.POOL_UPPER,
        P.POOL_DIGIT,
        P.POOL_SYMBOL,
        P.POOL_OTHER,
        P.WORD_QUARTER_BITS,
        B.FIRST_GEN,
        B.MAX_GEN,
    ]
    assert constants["reasons"] == list(P.REASONS)
    assert constants["separators"] == sorted(R.SEPARATORS)
