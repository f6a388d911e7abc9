"""Vectors for login signatures and fake salts: tests/vectors/login.json (PROTOCOL.md §2, §4).

Cases of ``"type": "signature"`` name ``method``, ``login`` (as typed),
``login_normalized``, ``origin``, ``challenge``, ``auth_seed``, ``auth_pk``, ``message``
(b64 of the signed bytes ``label ‖ challenge ‖ u32(len(origin)) ‖ origin ‖ login``) and
``signature`` (Ed25519 is deterministic, so it is rebuilt exactly). Cases of
``"type": "fake_salt"`` name ``k_fake``, ``login`` and ``salt`` = ``H(key=K_fake,
normalized login, 16)``.

Reject cases: ``"type": "verify"`` (``verify_login`` with ``auth_pk``, ``signature``,
``challenge``, ``origin``, ``login``, ``method`` raises ``BadSignature``), ``"type":
"origin"`` (``origin`` is refused with ``MalformedObject``) and ``"type": "login"``
(``login`` is refused by the normalisation with ``MalformedObject``).

Run ``python tests/vectors/gen_login.py`` to rewrite login.json.
"""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path
from typing import Any

from postbox.crypto import login as lg
from postbox.crypto.encoding import b64d, b64e
from postbox.crypto.errors import CryptoError
from postbox.crypto.primitives import H, sign_keypair

SEED = b"vector-seed/login/"


def seed(case: str, part: str, n: int = 32) -> bytes:
    return H(SEED + case.encode() + b"/" + part.encode(), n)


# (name, method, login as typed, origin)
SIGNATURES: list[tuple[str, lg.Method, str, str]] = [
    ("pass-ascii", "pass", "anna@example.org", "https://postbox.example"),
    (
        "pass-german-nfd-upper-domain",
        "pass",
        unicodedata.normalize("NFD", "Jürgen.Weiß@Straße.Example.DE"),
        "https://postbox.nuernberg.example",
    ),
    ("pass-turkish", "pass", "  İlknur.Şahin@ÖRNEK.COM.TR ", "http://localhost:8080"),
    ("pass-turkish-dotted-capital-i-domain", "pass", "ayşe@İZMİR.example", "https://a.b.example"),
    ("pass-ukrainian-chosen-name", "pass", "Оксана_Ґудзь", "https://xn--mnchen-3ya.example:8443"),
    ("pass-arabic", "pass", "مريم@مثال.كوم", "http://127.0.0.1:8000"),
    ("recovery-ascii", "recovery", "Anna@Example.ORG", "https://postbox.example"),
    ("recovery-ipv6", "recovery", "x@Y.Z", "http://[::1]:8080"),
]
FAKE_SALT_LOGINS = ["anna@example.org", "Anna@EXAMPLE.org", "nobody-here", "Їжак@ПРИКЛАД.укр"]

BAD_ORIGINS = [
    ("trailing slash", "https://postbox.example/"),
    ("path", "https://postbox.example/login"),
    ("upper-case host", "https://Postbox.example"),
    ("upper-case scheme", "HTTPS://postbox.example"),
    ("default https port", "https://postbox.example:443"),
    ("default http port", "http://postbox.example:80"),
    ("port with leading zero", "https://postbox.example:08443"),
    ("port too big", "https://postbox.example:65536"),
    ("empty port", "https://postbox.example:"),
    ("user info", "https://anna@postbox.example"),
    ("query", "https://postbox.example?x=1"),
    ("opaque origin", "null"),
    ("other scheme", "ftp://postbox.example"),
    ("unicode host", "https://münchen.example"),
    ("empty host", "https://"),
    ("label ends with hyphen", "https://postbox-.example"),
    ("trailing dot", "https://postbox.example."),
    ("space", "https://postbox.example "),
]
BAD_LOGINS = [
    ("empty", ""),
    ("only spaces", "   "),
    ("control character", "anna\u0000@example.org"),
    ("line break inside", "anna\n@example.org"),
    ("too long", "a" * 243 + "@example.org"),
]


def signature_case(name: str, method: lg.Method, login: str, origin: str) -> dict[str, Any]:
    challenge = seed(name, "challenge")
    auth_seed = seed(name, "auth")
    pk, _ = sign_keypair(auth_seed)
    return {
        "type": "signature",
        "name": name,
        "method": method,
        "login": login,
        "login_normalized": lg.normalize_login(login),
        "origin": origin,
        "challenge": b64e(challenge),
        "auth_seed": b64e(auth_seed),
        "auth_pk": b64e(pk),
        "message": b64e(lg.login_message(challenge, origin, login, method)),
        "signature": b64e(lg.sign_login(auth_seed, challenge, origin, login, method)),
    }


def fake_salt_case(i: int, login: str) -> dict[str, Any]:
    k_fake = seed("fake-salt", "k_fake")
    return {
        "type": "fake_salt",
        "name": f"fake-salt-{i}",
        "k_fake": b64e(k_fake),
        "login": login,
        "salt": b64e(lg.fake_salt(k_fake, login)),
    }


def _flip(text: str, index: int) -> str:
    raw = bytearray(b64d(text))
    raw[index] ^= 0x80
    return b64e(bytes(raw))


def verify_rejects(base: dict[str, Any], other: dict[str, Any]) -> list[dict[str, Any]]:
    keys = ("auth_pk", "signature", "challenge", "origin", "login", "method")
    fields = {k: base[k] for k in keys}
    items = [
        ("other origin", {"origin": "https://phish.example"}),
        ("other method", {"method": "recovery"}),
        ("other login", {"login": "anna@example.net"}),
        ("login local part case", {"login": "Anna@example.org"}),
        ("other challenge", {"challenge": other["challenge"]}),
        ("other auth key", {"auth_pk": other["auth_pk"]}),
        ("signature R flipped", {"signature": _flip(base["signature"], 0)}),
        ("signature S flipped", {"signature": _flip(base["signature"], 40)}),
    ]
    return [
        {"type": "verify", "name": n, "error": "BadSignature"} | fields | change
        for n, change in items
    ]


def _must_fail(fn: Any, arg: str) -> None:
    try:
        fn(arg)
    except CryptoError:
        return
    raise AssertionError(f"accepted: {arg!r}")


def build() -> dict[str, Any]:
    cases = [signature_case(*s) for s in SIGNATURES]
    cases += [fake_salt_case(i, login) for i, login in enumerate(FAKE_SALT_LOGINS)]
    reject = verify_rejects(cases[0], cases[1])
    for name, origin in BAD_ORIGINS:
        _must_fail(lg.check_origin, origin)
        reject.append(
            {"type": "origin", "name": name, "error": "MalformedObject", "origin": origin}
        )
    for name, login in BAD_LOGINS:
        _must_fail(lg.normalize_login, login)
        reject.append({"type": "login", "name": name, "error": "MalformedObject", "login": login})
    return {"cases": cases, "reject": reject}


def dumps(obj: object) -> str:
    return json.dumps(obj, indent=1, ensure_ascii=False, sort_keys=True) + "\n"


if __name__ == "__main__":
    Path(__file__).with_name("login.json").write_text(dumps(build()), encoding="utf-8")
