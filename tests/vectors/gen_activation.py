"""Vectors for activation codes: tests/vectors/activation.json (PROTOCOL.md §9).

Each case names ``code`` (b64 of the 20 bytes), ``text`` (32 Crockford symbols in 8
groups of 4), ``accepts`` (other typed forms of the same code), ``act_auth`` =
``H(key=code, "postbox/v1/act-auth")``, ``identity_cert`` (a certificate body) and
``act_mac`` = ``H(key=H(key=code, "postbox/v1/act-mac"), cj(identity_cert), 32)``.

Reject cases: ``"type": "parse"`` (``text`` fails with ``BadRecoveryKey``) and ``"type":
"mac"`` (``verify_act_mac(code, identity_cert, act_mac)`` raises ``error``).

Run ``python tests/vectors/gen_activation.py`` to rewrite activation.json.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from postbox.crypto import activation, certs
from postbox.crypto.encoding import b64d, b64e
from postbox.crypto.errors import CryptoError
from postbox.crypto.primitives import H, box_keypair, sign_keypair

SEED = b"vector-seed/activation/"
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def seed(case: str, part: str, n: int = 32) -> bytes:
    return H(SEED + case.encode() + b"/" + part.encode(), n)


def identity_cert(case: str) -> certs.Cert:
    pk, _ = sign_keypair(seed(case, "identity"))
    return certs.make_cert(
        subject=b64e(seed(case, "subject", 16)),
        kind="citizen",
        org=None,
        use="sign",
        pk=pk,
        created=T0,
    )


def case(name: str) -> dict[str, Any]:
    code = activation.generate_code(code=seed(name, "code", 20))
    text = activation.format_code(code)
    accepts = [text.lower(), text.replace("-", " "), text.replace("-", ""), text.replace("0", "O")]
    for a in accepts:
        assert activation.parse_code(a) == code
    cert = identity_cert(name)
    return {
        "name": name,
        "code": b64e(code),
        "text": text,
        "accepts": accepts,
        "act_auth": b64e(activation.act_auth(code)),
        "identity_cert": cert,
        "act_mac": b64e(activation.act_mac(code, cert)),
    }


def _must_fail(fn: Any, *args: Any) -> None:
    try:
        fn(*args)
    except CryptoError:
        return
    raise AssertionError(f"accepted: {args!r}")


def rejects(base: dict[str, Any], other: dict[str, Any]) -> list[dict[str, Any]]:
    text: str = base["text"]
    plain = text.replace("-", "")
    out: list[dict[str, Any]] = []
    for name, t in [
        ("one symbol missing", plain[:-1]),
        ("one symbol too many", plain + "0"),
        ("letter U", "U" + plain[1:]),
        ("recovery-key length (with a checksum group)", text + "-0000"),
        ("empty", ""),
    ]:
        _must_fail(activation.parse_code, t)
        out.append({"type": "parse", "name": name, "error": "BadRecoveryKey", "text": t})

    mac = bytearray(b64d(base["act_mac"]))
    mac[31] ^= 1
    enc_pk, _ = box_keypair(seed("reject", "enc"))
    cert = base["identity_cert"]
    enc_cert = certs.make_cert(
        subject=cert["subject"],
        kind="citizen",
        org=None,
        use="encrypt",
        pk=enc_pk,
        created=T0,
        expires=T0 + 365 * 86_400_000,
    )
    items: list[tuple[str, str, str, Any, str]] = [
        ("other code", "BadSignature", other["code"], cert, base["act_mac"]),
        (
            "other certificate",
            "BadSignature",
            base["code"],
            other["identity_cert"],
            base["act_mac"],
        ),
        (
            "created changed",
            "BadSignature",
            base["code"],
            cert | {"created": T0 + 1},
            base["act_mac"],
        ),
        ("mac flipped", "BadSignature", base["code"], cert, b64e(bytes(mac))),
        ("mac truncated", "BadSignature", base["code"], cert, b64e(bytes(mac[:16]))),
        ("encryption certificate", "CertificateInvalid", base["code"], enc_cert, base["act_mac"]),
    ]
    for name, error, code, c, m in items:
        _must_fail(activation.verify_act_mac, b64d(code), c, b64d(m))
        out.append(
            {
                "type": "mac",
                "name": name,
                "error": error,
                "code": code,
                "identity_cert": c,
                "act_mac": m,
            }
        )
    return out


def build() -> dict[str, Any]:
    cases = [case(n) for n in ("code-0", "code-1", "code-2")]
    return {"cases": cases, "reject": rejects(cases[0], cases[1])}


def dumps(obj: object) -> str:
    return json.dumps(obj, indent=1, ensure_ascii=False, sort_keys=True) + "\n"


if __name__ == "__main__":
    Path(__file__).with_name("activation.json").write_text(dumps(build()), encoding="utf-8")
