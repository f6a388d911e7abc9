"""Vectors for key bundles: tests/vectors/bundle.json (PROTOCOL.md §4, §10).

Cases (every "random" input is ``H("vector-seed/bundle/<case>/<part>")``):

* pass bundles with passphrases in German (written decomposed, NFD, so that skipping NFKC
  gives another key), Turkish, Arabic (with the presentation-form ligature U+FEFB that
  NFKC maps to two letters), Ukrainian and full-width forms; ops 2 or 3, mem 64 MiB;
* recovery bundles (``recovery_key`` b64, null salt/ops/mem).

Each case names ``account``, ``kind``, ``gen``, ``passphrase`` or ``recovery_key``,
``salt``, ``ops``, ``mem``, ``kek``, ``auth_pk``, ``private_keys`` and ``bundle`` (all
deterministic, the bundle nonce included), plus ``passphrase_nfkc`` as a help.

Each reject case names ``account``, ``kek``, ``min_gen`` and ``bundle``:
``open_bundle(bundle, kek, account, min_gen)`` must raise ``error``.

Run ``python tests/vectors/gen_bundle.py`` to rewrite bundle.json.
"""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path
from typing import Any

from postbox.crypto import recovery
from postbox.crypto.bundle import (
    MIB,
    Bundle,
    PrivateKeys,
    build_private_keys,
    bundle_aad,
    derive_pass_keys,
    open_bundle,
    seal_bundle,
)
from postbox.crypto.encoding import b64d, b64e, cj
from postbox.crypto.errors import CryptoError
from postbox.crypto.primitives import H, aead_encrypt

SEED = b"vector-seed/bundle/"
MEM = 64 * MIB
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def seed(case: str, part: str, n: int = 32) -> bytes:
    return H(SEED + case.encode() + b"/" + part.encode(), n)


def account(case: str) -> str:
    return b64e(seed(case, "account", 16))


def simple_keys(case: str, gen: int) -> PrivateKeys:
    return build_private_keys(
        gen=gen, identity=[seed(case, "identity")], encrypt=[(seed(case, "encrypt"), None)]
    )


def rich_keys(case: str, gen: int) -> PrivateKeys:
    """Two identities, a retired and a current encryption key, two team keys, log, chain."""
    return build_private_keys(
        gen=gen,
        identity=[seed(case, "identity/0"), seed(case, "identity/1")],
        encrypt=[(seed(case, "encrypt/0"), T0 + 86_400_000), (seed(case, "encrypt/1"), None)],
        teams=[
            (b64e(seed(case, "team/0/id", 16)), seed(case, "team/0/sk")),
            (b64e(seed(case, "team/1/id", 16)), seed(case, "team/1/sk")),
        ],
        log={"size": 4711, "root": b64e(seed(case, "log/root")), "ts": T0},
        chain={"seq": 3, "hash": b64e(seed(case, "chain/hash"))},
    )


# (name, passphrase, ops, gen, rich keys?)
PASS_CASES: list[tuple[str, str, int, int, bool]] = [
    (
        "pass-german-nfd",
        unicodedata.normalize("NFD", "Grüße aus Köln: Straße 7, Fuß & Öl"),
        2,
        1,
        False,
    ),
    ("pass-turkish", "Işık İstanbul'da; şeker, ğ ve ı", 3, 2, True),
    ("pass-arabic", "كلمة السر \ufefb تنسى ٢٠٢٦", 2, 1, False),
    ("pass-ukrainian", "Їжак і ґанок: є ще їжа", 2, 5, False),
    ("pass-fullwidth", "ｐａｓｓ\u3000ｗｏｒｔ\u3000ＡＢＣ１２３", 2, 1, False),
]
# (name, gen, rich keys?)
RECOVERY_CASES: list[tuple[str, int, bool]] = [
    ("recovery-basic", 1, False),
    ("recovery-rich", 3, True),
]


def _keys(name: str, gen: int, rich: bool) -> PrivateKeys:
    return rich_keys(name, gen) if rich else simple_keys(name, gen)


def pass_case(name: str, passphrase: str, ops: int, gen: int, rich: bool) -> dict[str, Any]:
    salt = seed(name, "salt", 16)
    keys = derive_pass_keys(passphrase, salt, ops, MEM)
    pks = _keys(name, gen, rich)
    acc = account(name)
    bundle = seal_bundle(
        pks, keys.kek, acc, kind="pass", salt=salt, ops=ops, mem=MEM, nonce=seed(name, "nonce", 24)
    )
    return {
        "name": name,
        "account": acc,
        "kind": "pass",
        "gen": gen,
        "passphrase": passphrase,
        "passphrase_nfkc": unicodedata.normalize("NFKC", passphrase),
        "salt": b64e(salt),
        "ops": ops,
        "mem": MEM,
        "kek": b64e(keys.kek),
        "auth_pk": b64e(keys.auth_pk),
        "private_keys": pks,
        "bundle": bundle,
    }


def recovery_case(name: str, gen: int, rich: bool) -> dict[str, Any]:
    rk = seed(name, "rk", 20)
    keys = recovery.recovery_keys(rk)
    pks = _keys(name, gen, rich)
    acc = account(name)
    bundle, _ = recovery.seal_recovery_bundle(pks, rk, acc, nonce=seed(name, "nonce", 24))
    return {
        "name": name,
        "account": acc,
        "kind": "recovery",
        "gen": gen,
        "recovery_key": b64e(rk),
        "recovery_key_text": recovery.format_recovery_key(rk),
        "salt": None,
        "ops": None,
        "mem": None,
        "kek": b64e(keys.kek),
        "auth_pk": b64e(keys.auth_pk),
        "private_keys": pks,
        "bundle": bundle,
    }


def _flip_b64(text: str, index: int) -> str:
    raw = bytearray(b64d(text))
    raw[index] ^= 0x01
    return b64e(bytes(raw))


def _raw_bundle(
    plaintext: bytes, kek: bytes, acc: str, kind: str, gen: int, base: Bundle
) -> dict[str, Any]:
    """A bundle whose ct is ``plaintext`` sealed correctly (for plaintext-level rejects)."""
    nonce = b64d(base["nonce"])
    ct = aead_encrypt(kek, nonce, plaintext, bundle_aad(kind, gen, acc))
    return dict(base) | {"kind": kind, "gen": gen, "ct": b64e(ct)}


def rejects(base_case: dict[str, Any], rec_case: dict[str, Any]) -> list[dict[str, Any]]:
    acc = base_case["account"]
    kek_b64 = base_case["kek"]
    kek = b64d(kek_b64)
    b: Bundle = base_case["bundle"]
    pks: PrivateKeys = base_case["private_keys"]
    gen = b["gen"]
    out: list[dict[str, Any]] = []

    def add(
        name: str,
        error: str,
        bundle: dict[str, Any],
        *,
        account_: str = acc,
        kek_: str = kek_b64,
        min_gen: int | None = None,
    ) -> None:
        out.append(
            {
                "name": name,
                "error": error,
                "account": account_,
                "kek": kek_,
                "min_gen": min_gen,
                "bundle": bundle,
            }
        )

    other_account = b64e(seed("reject", "other-account", 16))
    add("wrong account (aad)", "DecryptionFailed", dict(b), account_=other_account)
    add("gen changed (aad)", "DecryptionFailed", dict(b) | {"gen": gen + 1})
    add("wrong kek", "DecryptionFailed", dict(b), kek_=b64e(seed("reject", "kek")))
    add("tampered ct first byte", "DecryptionFailed", dict(b) | {"ct": _flip_b64(b["ct"], 0)})
    add("tampered tag last byte", "DecryptionFailed", dict(b) | {"ct": _flip_b64(b["ct"], -1)})
    add("tampered nonce", "DecryptionFailed", dict(b) | {"nonce": _flip_b64(b["nonce"], 5)})
    add("ct shorter than a tag", "DecryptionFailed", dict(b) | {"ct": b64e(bytes(15))})
    add(
        "kind changed to recovery (aad)",
        "DecryptionFailed",
        dict(b) | {"kind": "recovery", "salt": None, "ops": None, "mem": None},
    )
    add("stale generation", "StaleGeneration", dict(b), min_gen=gen + 1)
    add("ops 1", "UnsupportedParameters", dict(b) | {"ops": 1})
    add("ops 11", "UnsupportedParameters", dict(b) | {"ops": 11})
    add("mem below 64 MiB", "UnsupportedParameters", dict(b) | {"mem": 64 * MIB - 1024})
    add("mem above 1 GiB", "UnsupportedParameters", dict(b) | {"mem": 1024 * MIB + 1024})
    add("pass bundle with null salt", "MalformedObject", dict(b) | {"salt": None})
    add("salt of 15 bytes", "MalformedObject", dict(b) | {"salt": b64e(bytes(15))})
    add("unknown member", "MalformedObject", dict(b) | {"extra": 1})
    add("missing member", "MalformedObject", {k: v for k, v in b.items() if k != "nonce"})
    add("v 2", "MalformedObject", dict(b) | {"v": 2})
    add("gen beyond u32", "MalformedObject", dict(b) | {"gen": 2**32})
    add("unknown kind", "MalformedObject", dict(b) | {"kind": "backup"})
    add("ct with b64 padding", "MalformedObject", dict(b) | {"ct": b["ct"] + "="})

    # plaintext-level rejects, sealed correctly under the case's kek
    def sealed(name: str, error: str, plaintext: bytes, gen_: int = gen) -> None:
        add(name, error, _raw_bundle(plaintext, kek, acc, "pass", gen_, b))

    text = cj(pks)
    sealed("plaintext not canonical (space)", "NonCanonical", b"{ " + text[1:])
    sealed(
        "plaintext not canonical (unsorted)",
        "NonCanonical",
        b'{"v":1,' + text[1:].replace(b',"v":1', b""),
    )
    sealed("plaintext not JSON", "NonCanonical", b"\xff")
    sealed("private_keys.gen differs from bundle.gen", "MalformedObject", cj(pks), gen + 1)
    wrong_kid = dict(pks) | {
        "identity": [dict(pks["identity"][0]) | {"kid": pks["encrypt"][0]["kid"]}]
    }
    sealed("identity kid not derived from the seed", "KeyIdMismatch", cj(wrong_kid))
    wrong_enc = dict(pks) | {
        "encrypt": [dict(pks["encrypt"][0]) | {"kid": pks["identity"][0]["kid"]}]
    }
    sealed("encrypt kid not derived from the key", "KeyIdMismatch", cj(wrong_enc))
    no_current = dict(pks) | {"encrypt": [dict(pks["encrypt"][0]) | {"retired": T0}]}
    sealed("no current encryption key", "MalformedObject", cj(no_current))
    no_identity = dict(pks) | {"identity": []}
    sealed("no identity key", "MalformedObject", cj(no_identity))
    sealed("private_keys unknown member", "MalformedObject", cj(dict(pks) | {"x": None}))
    sealed("private_keys v 2", "MalformedObject", cj(dict(pks) | {"v": 2}))

    # recovery bundles
    rb: Bundle = rec_case["bundle"]
    out.append(
        {
            "name": "recovery bundle with a salt",
            "error": "MalformedObject",
            "account": rec_case["account"],
            "kek": rec_case["kek"],
            "min_gen": None,
            "bundle": dict(rb) | {"salt": b64e(bytes(16)), "ops": 3, "mem": MEM},
        }
    )
    out.append(
        {
            "name": "recovery bundle opened with the pass kek",
            "error": "DecryptionFailed",
            "account": rec_case["account"],
            "kek": kek_b64,
            "min_gen": None,
            "bundle": dict(rb),
        }
    )
    return out


def _must_fail(r: dict[str, Any]) -> None:
    try:
        open_bundle(r["bundle"], b64d(r["kek"]), r["account"], min_gen=r["min_gen"])
    except CryptoError as exc:
        if type(exc).__name__ != r["error"]:
            raise AssertionError(f"{r['name']}: {type(exc).__name__}, not {r['error']}") from exc
        return
    raise AssertionError(f"{r['name']}: accepted")


def build() -> dict[str, Any]:
    cases = [pass_case(*c) for c in PASS_CASES] + [recovery_case(*c) for c in RECOVERY_CASES]
    reject = rejects(cases[0], cases[len(PASS_CASES)])
    for r in reject:
        _must_fail(r)
    return {"cases": cases, "reject": reject}


def dumps(obj: object) -> str:
    """The vector file format every generator uses."""
    return json.dumps(obj, indent=1, ensure_ascii=False, sort_keys=True) + "\n"


if __name__ == "__main__":
    Path(__file__).with_name("bundle.json").write_text(dumps(build()), encoding="utf-8")
