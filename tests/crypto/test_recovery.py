"""Recovery key: printed form, typo detection, derivation, recovery bundles (PROTOCOL.md §4)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postbox.crypto import bundle as B
from postbox.crypto import crockford, domain
from postbox.crypto import recovery as R
from postbox.crypto.encoding import b64e
from postbox.crypto.errors import BadRecoveryKey, DecryptionFailed, MalformedObject, StaleGeneration
from postbox.crypto.primitives import H, sign_keypair

RK = H(b"test/recovery/rk", 20)
ACCOUNT = b64e(H(b"test/recovery/account", 16))
TEXT = R.format_recovery_key(RK)
SYMBOL = "[0-9A-HJKMNP-TV-Z]{4}"


def keys(gen: int = 1) -> B.PrivateKeys:
    return B.build_private_keys(
        gen=gen, identity=[H(b"test/recovery/id")], encrypt=[(H(b"test/recovery/enc"), None)]
    )


def test_printed_form() -> None:
    assert re.fullmatch(rf"{SYMBOL}(-{SYMBOL}){{8}}", TEXT)
    plain = TEXT.replace("-", "")
    assert crockford.decode(plain[:32]) == RK
    assert plain[32:] == crockford.encode(H(RK)[:5])[:4] == R.checksum(RK)


def test_generate() -> None:
    assert R.generate_recovery_key(rk=RK) == RK
    fresh = R.generate_recovery_key()
    assert len(fresh) == 20
    assert fresh != R.generate_recovery_key()
    with pytest.raises(BadRecoveryKey):
        R.generate_recovery_key(rk=bytes(19))
    with pytest.raises(BadRecoveryKey):
        R.format_recovery_key(bytes(21))


@pytest.mark.parametrize(
    "typed",
    [
        TEXT,
        TEXT.lower(),
        TEXT.replace("-", ""),
        TEXT.replace("-", " "),
        "  " + TEXT.replace("-", "\t") + "\n",
        TEXT.replace("-", "\u2013"),
        TEXT.replace("-", "\u2212"),
        TEXT[:24] + "\r\n" + TEXT[25:],
        "".join(chr(ord(c) + 0xFEE0) for c in TEXT),
        TEXT.replace("0", "o").replace("1", "L"),
    ],
)
def test_forgiving_parse(typed: str) -> None:
    assert R.parse_recovery_key(typed) == RK


def test_every_single_symbol_typo_is_caught() -> None:
    plain = TEXT.replace("-", "")
    for i, ch in enumerate(plain):
        for other in crockford.ALPHABET:
            if other != ch:
                with pytest.raises(BadRecoveryKey):
                    R.parse_recovery_key(plain[:i] + other + plain[i + 1 :])


def test_every_adjacent_swap_is_caught() -> None:
    plain = TEXT.replace("-", "")
    for i in range(len(plain) - 1):
        if plain[i] != plain[i + 1]:
            swapped = plain[:i] + plain[i + 1] + plain[i] + plain[i + 2 :]
            with pytest.raises(BadRecoveryKey):
                R.parse_recovery_key(swapped)


@pytest.mark.parametrize(
    "typed",
    [
        "",
        TEXT[:-5],
        TEXT + "-0",
        "U" + TEXT[1:],
        TEXT.replace("-", "_"),
        "\u0131" + TEXT[1:],  # dotless i upper-cases to I: still refused
        "\u00e0" + TEXT[1:],
    ],
)
def test_malformed_is_refused(typed: str) -> None:
    with pytest.raises(BadRecoveryKey):
        R.parse_recovery_key(typed)


def test_non_text_is_refused() -> None:
    with pytest.raises(BadRecoveryKey):
        R.parse_recovery_key(RK)  # type: ignore[arg-type]


@given(st.binary(min_size=20, max_size=20))
def test_format_parse_round_trip(rk: bytes) -> None:
    assert R.parse_recovery_key(R.format_recovery_key(rk)) == rk


def test_derivation_is_keyed_blake2b_with_the_labels() -> None:
    k = R.recovery_keys(RK)
    assert k.kek == H(domain.RECOVERY_KEK, key=RK)
    assert k.auth_seed == H(domain.RECOVERY_AUTH, key=RK)
    assert k.auth_pk == sign_keypair(k.auth_seed)[0]
    assert k.kek != k.auth_seed
    with pytest.raises(BadRecoveryKey):
        R.recovery_keys(bytes(16))


def test_recovery_bundle_round_trip() -> None:
    pks = keys(3)
    b, k = R.seal_recovery_bundle(pks, RK, ACCOUNT, nonce=bytes(24))
    assert k == R.recovery_keys(RK)
    assert (b["kind"], b["gen"], b["salt"], b["ops"], b["mem"]) == ("recovery", 3, None, None, None)
    assert R.open_recovery_bundle(b, RK, ACCOUNT, min_gen=3) == pks
    with pytest.raises(StaleGeneration):
        R.open_recovery_bundle(b, RK, ACCOUNT, min_gen=4)
    with pytest.raises(DecryptionFailed):
        R.open_recovery_bundle(b, H(b"other", 20), ACCOUNT)


def test_open_recovery_bundle_needs_kind_recovery() -> None:
    k = R.recovery_keys(RK)
    passb = B.seal_bundle(
        keys(1), k.kek, ACCOUNT, kind="pass", salt=bytes(16), ops=2, mem=B.MIN_MEM
    )
    with pytest.raises(MalformedObject):
        R.open_recovery_bundle(passb, RK, ACCOUNT)
