"""Domain labels, Crockford base32, kids, primitives, and the cross-language error names."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postbox.crypto import crockford, domain, errors, primitives
from postbox.crypto.encoding import b64e
from postbox.crypto.kid import derive_kid, kid_matches

JS_ERRORS = Path(__file__).parents[2] / "postbox/webclient/static/js/crypto/errors.js"
JS_DOMAIN = Path(__file__).parents[2] / "postbox/webclient/static/js/crypto/domain.js"


def test_domain_labels_are_prefix_free_and_complete() -> None:
    labels = domain.ALL
    assert len(set(labels)) == len(labels) == 26
    for a in labels:
        assert a.startswith(b"postbox/v1/")
        assert a.isascii()
        for b in labels:
            assert a == b or not b.startswith(a), (a, b)
    js = set(re.findall(r"L\('([^']+)'\)", JS_DOMAIN.read_text()))
    assert js == {label.decode() for label in labels}


def test_error_names_are_the_same_in_both_languages() -> None:
    py = {
        name
        for name, obj in vars(errors).items()
        if isinstance(obj, type) and issubclass(obj, errors.CryptoError)
    }
    block = JS_ERRORS.read_text().split("const NAMES = [", 1)[1].split("];", 1)[0]
    js = set(re.findall(r"'(\w+)'", block)) | {"CryptoError"}
    assert py == js


@given(st.binary(min_size=5, max_size=5).flatmap(lambda b: st.just(b * 4)))
def test_crockford_round_trip(data: bytes) -> None:
    text = crockford.encode(data)
    assert len(text) == 32
    assert crockford.decode(crockford.group(text).lower()) == data


def test_crockford_reads_lookalikes_and_rejects_u() -> None:
    assert crockford.decode("OIL0-1111") == crockford.decode("0110-1111")
    with pytest.raises(errors.EncodingError):
        crockford.decode("UUUUUUUU")
    with pytest.raises(errors.EncodingError):
        crockford.decode("ABC")


def test_kid_is_derived_and_use_bound() -> None:
    pk = bytes(range(32))
    kid = derive_kid("sign", pk)
    assert len(kid) == 22
    assert kid != derive_kid("encrypt", pk)
    assert kid_matches(kid, "sign", pk)
    assert not kid_matches(kid, "encrypt", pk)
    with pytest.raises(ValueError):
        derive_kid("auth", pk)  # type: ignore[arg-type]


SMALL_ORDER_ED25519 = [
    bytes(32),
    b"\x01" + bytes(31),  # the identity point
    bytes.fromhex("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
    bytes.fromhex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"),
]
LOW_ORDER_X25519 = [
    bytes(32),
    b"\x01" + bytes(31),
    bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
    bytes.fromhex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
    bytes.fromhex("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
]


@pytest.mark.parametrize("pk", SMALL_ORDER_ED25519, ids=lambda b: b.hex()[:8])
def test_small_order_ed25519_keys_are_rejected(pk: bytes) -> None:
    with pytest.raises(errors.InvalidKey):
        primitives.check_sign_pk(pk)


@pytest.mark.parametrize("pk", LOW_ORDER_X25519, ids=lambda b: b.hex()[:8])
def test_low_order_x25519_keys_are_rejected(pk: bytes) -> None:
    with pytest.raises(errors.InvalidKey):
        primitives.check_box_pk(pk)
    with pytest.raises(errors.InvalidKey):
        primitives.seal(b"x", pk)


def test_primitives_round_trip_and_errors() -> None:
    seed = bytes(range(32))
    pk, _ = primitives.sign_keypair(seed)
    primitives.check_sign_pk(pk)
    sig = primitives.sign(seed, b"m")
    primitives.verify(pk, b"m", sig)
    with pytest.raises(errors.BadSignature):
        primitives.verify(pk, b"n", sig)
    with pytest.raises(errors.BadSignature):
        primitives.verify(pk, b"m", sig[:63])
    bpk, bsk = primitives.box_keypair(seed)
    assert primitives.seal_open(primitives.seal(b"x", bpk), bpk, bsk) == b"x"
    with pytest.raises(errors.DecryptionFailed):
        primitives.seal_open(b"\x00" * 49, bpk, bsk)
    key, nonce = bytes(32), bytes(24)
    ct = primitives.aead_encrypt(key, nonce, b"p", b"a")
    assert primitives.aead_decrypt(key, nonce, ct, b"a") == b"p"
    with pytest.raises(errors.DecryptionFailed):
        primitives.aead_decrypt(key, nonce, ct, b"b")
    assert primitives.H(b"x", key=b"k") != primitives.H(b"x")
    assert b64e(primitives.H(b"")) == "DldRwCblQ7Loqy6wYJnaodHl30d3j3eH-qtFzfEv46g"
