"""Vectors for recovery keys: tests/vectors/recovery.json (PROTOCOL.md §4).

Each case names ``recovery_key`` (b64 of the 20 bytes), ``text`` (the printed form:
8 groups of 4 Crockford symbols and the checksum group, the first 4 symbols of
``H(rk)``), ``checksum``, the derived ``kek`` and ``auth_seed``/``auth_pk``, and
``accepts``: other ways of typing it that must parse to the same key. Each reject case
names ``text``, which must fail to parse with ``BadRecoveryKey``.

Run ``python tests/vectors/gen_recovery.py`` to rewrite recovery.json.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from postbox.crypto import recovery
from postbox.crypto.encoding import b64e
from postbox.crypto.errors import BadRecoveryKey
from postbox.crypto.primitives import H

SEED = b"vector-seed/recovery/"
NAMES = ["rk-0", "rk-1", "rk-2"]


def rk_for(name: str) -> bytes:
    return H(SEED + name.encode(), 20)


def _variants(text: str) -> list[str]:
    plain = text.replace("-", "")
    # full-width letters, digits and hyphen (U+FF01..U+FF5E = ASCII + 0xFEE0), NFKC maps them
    fullwidth = "".join(chr(ord(c) + 0xFEE0) for c in text)
    return [
        text.lower(),
        plain,
        " ".join(text.split("-")),
        text.replace("-", "\u2013"),  # en dash, as in a PDF
        "\n".join([text[:19], text[20:]]),  # a line break where the paper wraps
        text.replace("1", "l").replace("0", "O"),  # l and O typed for 1 and 0
        text.replace("1", "I").replace("0", "o"),
        fullwidth,
    ]


def case(name: str) -> dict[str, Any]:
    rk = rk_for(name)
    keys = recovery.recovery_keys(rk)
    text = recovery.format_recovery_key(rk)
    variants = _variants(text)
    for v in variants:
        assert recovery.parse_recovery_key(v) == rk, v
    return {
        "name": name,
        "recovery_key": b64e(rk),
        "text": text,
        "checksum": recovery.checksum(rk),
        "kek": b64e(keys.kek),
        "auth_seed": b64e(keys.auth_seed),
        "auth_pk": b64e(keys.auth_pk),
        "accepts": variants,
    }


def _swap(text: str, index: int) -> str:
    """Replace the symbol at ``index`` with another valid one."""
    ch = text[index]
    new = "7" if ch != "7" else "8"
    return text[:index] + new + text[index + 1 :]


def rejects(text: str) -> list[dict[str, Any]]:
    plain = text.replace("-", "")
    swapped = plain[:10] + plain[11] + plain[10] + plain[12:]
    assert swapped != plain
    items = [
        ("one key symbol mistyped", _swap(text, 0)),
        ("one key symbol mistyped (last group)", _swap(text, 38)),
        ("checksum symbol mistyped", _swap(text, 43)),
        ("two adjacent symbols swapped", swapped),
        ("checksum group missing", text[:39]),
        ("one symbol missing", plain[:-1]),
        ("one symbol too many", plain + "0"),
        ("letter U is not Crockford", "U" + plain[1:]),
        ("punctuation", text.replace("-", ".")),
        ("dotless i is not read as 1", "\u0131" + plain[1:]),
        ("empty", ""),
    ]
    return [{"name": n, "error": "BadRecoveryKey", "text": t} for n, t in items]


def _must_reject(text: str) -> None:
    try:
        recovery.parse_recovery_key(text)
    except BadRecoveryKey:
        return
    raise AssertionError(f"accepted: {text!r}")


def build() -> dict[str, Any]:
    cases = [case(n) for n in NAMES]
    reject = rejects(cases[0]["text"])
    for r in reject:
        _must_reject(r["text"])
    return {"cases": cases, "reject": reject}


def dumps(obj: object) -> str:
    return json.dumps(obj, indent=1, ensure_ascii=False, sort_keys=True) + "\n"


if __name__ == "__main__":
    Path(__file__).with_name("recovery.json").write_text(dumps(build()), encoding="utf-8")
