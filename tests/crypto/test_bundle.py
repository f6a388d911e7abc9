"""Key bundle: derivation, private_keys, seal/open, re-wrap (PROTOCOL.md §4).

The passphrase rules themselves are tested in test_passphrase.py.

Argon2id at the minimum parameters costs ~0.1 s per call, so derivations are cached in a
module fixture and the rest of the tests seal under raw keys.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from postbox.crypto import bundle as B
from postbox.crypto.encoding import b64d, b64e, cj
from postbox.crypto.errors import (
    DecryptionFailed,
    EncodingError,
    KeyIdMismatch,
    MalformedObject,
    NonCanonical,
    StaleGeneration,
    UnsupportedParameters,
    WeakPassphrase,
)
from postbox.crypto.kid import derive_kid
from postbox.crypto.primitives import H, aead_encrypt, box_keypair, sign_keypair

ACCOUNT = b64e(H(b"test/bundle/account", 16))
OTHER = b64e(H(b"test/bundle/other", 16))
KEK = H(b"test/bundle/kek")
GOOD = "Mein Hund heißt Bello und frisst Äpfel"
GOOD2 = "Ein ganz anderer Satz, 42 Wörter lang"
T0 = 1_767_225_600_000


def s(label: str, n: int = 32) -> bytes:
    return H(b"test/bundle/" + label.encode(), n)


def keys(gen: int = 1, **extra: Any) -> B.PrivateKeys:
    return B.build_private_keys(gen=gen, identity=[s("id")], encrypt=[(s("enc"), None)], **extra)


# --- parameters and derivation ---------------------------------------------------------
def test_defaults_are_the_protocols() -> None:
    assert (B.DEFAULT_OPS, B.DEFAULT_MEM) == (3, 64 * 1024 * 1024)
    assert (B.MIN_OPS, B.MAX_OPS, B.MIN_MEM, B.MAX_MEM) == (2, 10, 64 * B.MIB, 1024 * B.MIB)
    B.check_params(B.DEFAULT_OPS, B.DEFAULT_MEM)


@pytest.mark.parametrize(
    ("ops", "mem"),
    [
        (1, B.MIN_MEM),
        (11, B.MIN_MEM),
        (2, B.MIN_MEM - 1),
        (2, B.MAX_MEM + 1),
        (True, B.MIN_MEM),
        (2.0, B.MIN_MEM),
        ("3", B.MIN_MEM),
        (3, None),
    ],
)
def test_parameters_outside_the_range_are_refused(ops: Any, mem: Any) -> None:
    with pytest.raises(UnsupportedParameters):
        B.check_params(ops, mem)
    with pytest.raises(UnsupportedParameters):  # before any Argon2id work
        B.derive_pass_keys(GOOD, bytes(16), ops, mem)


def test_bounds_are_accepted() -> None:
    B.check_params(B.MIN_OPS, B.MIN_MEM)
    B.check_params(B.MAX_OPS, B.MAX_MEM)


def test_salt_must_be_16_bytes() -> None:
    with pytest.raises(EncodingError):
        B.derive_pass_keys(GOOD, bytes(15), 2, B.MIN_MEM)


def test_lone_surrogate_cannot_be_derived() -> None:
    with pytest.raises(EncodingError):
        B.derive_pass_keys("abc\ud800def", bytes(16), 2, B.MIN_MEM)


@pytest.fixture(scope="module")
def derived() -> dict[str, B.DerivedKeys]:
    salt = s("salt", 16)
    return {
        "fullwidth": B.derive_pass_keys("ｐａｓｓ\u3000ｗｏｒｔ", salt, 2, B.MIN_MEM),
        "ascii": B.derive_pass_keys("pass wort", salt, 2, B.MIN_MEM),
        "nfd": B.derive_pass_keys("Gru\u0308ße", salt, 2, B.MIN_MEM),
        "nfc": B.derive_pass_keys("Grüße", salt, 2, B.MIN_MEM),
        "other salt": B.derive_pass_keys("pass wort", s("salt2", 16), 2, B.MIN_MEM),
        "ops 3": B.derive_pass_keys("pass wort", salt, 3, B.MIN_MEM),
    }


def test_nfkc_makes_equivalent_passphrases_one_key(derived: dict[str, B.DerivedKeys]) -> None:
    assert derived["fullwidth"] == derived["ascii"]
    assert derived["nfd"] == derived["nfc"]
    assert derived["ascii"].kek != derived["nfc"].kek


def test_salt_and_ops_change_everything(derived: dict[str, B.DerivedKeys]) -> None:
    base = derived["ascii"]
    for other in (derived["other salt"], derived["ops 3"]):
        assert other.kek != base.kek
        assert other.auth_pk != base.auth_pk


def test_kek_and_auth_key_split(derived: dict[str, B.DerivedKeys]) -> None:
    k = derived["ascii"]
    assert len(k.kek) == len(k.auth_seed) == len(k.auth_pk) == 32
    assert k.kek != k.auth_seed
    assert sign_keypair(k.auth_seed)[0] == k.auth_pk
    assert B.keys_from_output(k.kek + k.auth_seed) == k


def test_secrets_are_not_in_repr(derived: dict[str, B.DerivedKeys]) -> None:
    k = derived["ascii"]
    text = repr(k)
    assert "kek" not in text
    assert "auth_seed" not in text
    assert repr(k.kek) not in text


# --- private_keys ----------------------------------------------------------------------
def test_build_private_keys_derives_kids_and_getters_return_pairs() -> None:
    team = b64e(s("team", 16))
    pks = B.build_private_keys(
        gen=4,
        identity=[s("id0"), s("id1")],
        encrypt=[(s("enc0"), T0), (s("enc1"), None)],
        teams=[(team, s("team-sk"))],
        log={"size": 10, "root": b64e(s("root")), "ts": T0},
        chain={"seq": 2, "hash": b64e(s("hash"))},
    )
    assert pks["gen"] == 4
    ident = B.current_identity(pks)
    assert ident.seed == s("id1")
    assert ident.pk == sign_keypair(s("id1"))[0]
    assert ident.kid == derive_kid("sign", ident.pk)
    assert [k.seed for k in B.identity_keys(pks)] == [s("id0"), s("id1")]
    enc = B.current_encryption(pks)
    assert enc.sk == s("enc1")
    assert enc.pk == box_keypair(s("enc1"))[0]
    assert enc.kid == derive_kid("encrypt", enc.pk)
    assert [k.retired for k in B.encryption_keys(pks)] == [T0, None]
    [tk] = B.team_keys(pks)
    assert (tk.team, tk.sk, tk.kid) == (team, s("team-sk"), derive_kid("encrypt", tk.pk))
    assert "sk" not in repr(tk).replace("sk=", "")  # secret fields are not shown
    assert repr(s("team-sk")) not in repr(tk)


def _mutated(change: dict[str, Any]) -> dict[str, Any]:
    return dict(keys()) | change


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"identity": []}, MalformedObject),
        ({"encrypt": []}, MalformedObject),
        ({"x": 1}, MalformedObject),
        ({"v": 2}, MalformedObject),
        ({"gen": -1}, MalformedObject),
        ({"gen": 2**32}, MalformedObject),
        ({"log": {"size": 1, "root": b64e(bytes(32))}}, MalformedObject),
        ({"chain": {"seq": 1, "hash": b64e(bytes(31))}}, MalformedObject),
    ],
)
def test_private_keys_shape(change: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        B.check_private_keys(_mutated(change))


def test_private_keys_kid_checks() -> None:
    pks = keys()
    ident, enc = pks["identity"][0], pks["encrypt"][0]
    with pytest.raises(KeyIdMismatch):
        B.check_private_keys(dict(pks) | {"identity": [ident | {"kid": enc["kid"]}]})
    with pytest.raises(KeyIdMismatch):
        B.check_private_keys(dict(pks) | {"encrypt": [enc | {"sk": b64e(s("x"))}]})
    with pytest.raises(MalformedObject, match="duplicate"):
        B.check_private_keys(dict(pks) | {"identity": [ident, ident]})
    with pytest.raises(MalformedObject, match="exactly one current"):
        B.check_private_keys(dict(pks) | {"encrypt": [enc, enc | {"retired": None}]})


def test_with_gen_copies() -> None:
    pks = keys(1)
    assert B.with_gen(pks, 7)["gen"] == 7
    assert pks["gen"] == 1


# --- seal / open -----------------------------------------------------------------------
def test_aad_layout() -> None:
    aad = B.bundle_aad("pass", 258, ACCOUNT)
    assert aad == b"postbox/v1/bundle\x00pass\x00\x00\x00\x01\x02" + b64d(ACCOUNT)


def test_recovery_kind_round_trip_and_nulls() -> None:
    pks = keys(3)
    b = B.seal_bundle(pks, KEK, ACCOUNT, kind="recovery", nonce=s("n", 24))
    assert (b["salt"], b["ops"], b["mem"], b["gen"], b["kind"]) == (None, None, None, 3, "recovery")
    assert B.open_bundle(b, KEK, ACCOUNT) == pks
    assert B.open_bundle(b, KEK, ACCOUNT, min_gen=3) == pks
    with pytest.raises(StaleGeneration):
        B.open_bundle(b, KEK, ACCOUNT, min_gen=4)


def _pass_bundle(pks: B.PrivateKeys | None = None) -> B.Bundle:
    return B.seal_bundle(
        pks or keys(2),
        KEK,
        ACCOUNT,
        kind="pass",
        salt=s("salt", 16),
        ops=2,
        mem=B.MIN_MEM,
        nonce=s("nonce", 24),
    )


def test_seal_is_deterministic_with_a_fixed_nonce() -> None:
    assert _pass_bundle() == _pass_bundle()
    fresh = B.seal_bundle(
        keys(2), KEK, ACCOUNT, kind="pass", salt=s("salt", 16), ops=2, mem=B.MIN_MEM
    )
    assert fresh["nonce"] != _pass_bundle()["nonce"]
    assert B.open_bundle(fresh, KEK, ACCOUNT) == keys(2)


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"gen": 3}, DecryptionFailed),
        ({"kind": "recovery", "salt": None, "ops": None, "mem": None}, DecryptionFailed),
        ({"ops": 1}, UnsupportedParameters),
        ({"mem": 2**40}, UnsupportedParameters),
        ({"salt": None}, MalformedObject),
        ({"ops": None}, MalformedObject),
        ({"extra": 1}, MalformedObject),
        ({"v": 2}, MalformedObject),
        ({"nonce": b64e(bytes(12))}, MalformedObject),
        ({"ct": "!"}, MalformedObject),
    ],
)
def test_open_rejects(change: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        B.open_bundle(dict(_pass_bundle()) | change, KEK, ACCOUNT)


def test_open_rejects_wrong_account_and_key() -> None:
    b = _pass_bundle()
    with pytest.raises(DecryptionFailed):
        B.open_bundle(b, KEK, OTHER)
    with pytest.raises(DecryptionFailed):
        B.open_bundle(b, s("other kek"), ACCOUNT)


def test_every_flipped_byte_of_ct_and_nonce_is_caught() -> None:
    b = _pass_bundle()
    for field in ("ct", "nonce"):
        raw = b64d(b[field])
        for i in range(len(raw)):
            bad = bytearray(raw)
            bad[i] ^= 0x40
            with pytest.raises(DecryptionFailed):
                B.open_bundle(dict(b) | {field: b64e(bytes(bad))}, KEK, ACCOUNT)


def _sealed_plaintext(plaintext: bytes, gen: int = 2) -> dict[str, Any]:
    b = _pass_bundle()
    ct = aead_encrypt(KEK, b64d(b["nonce"]), plaintext, B.bundle_aad("pass", gen, ACCOUNT))
    return dict(b) | {"gen": gen, "ct": b64e(ct)}


def test_plaintext_must_be_canonical_and_match_gen() -> None:
    text = cj(keys(2))
    with pytest.raises(NonCanonical):
        B.open_bundle(_sealed_plaintext(text + b" "), KEK, ACCOUNT)
    with pytest.raises(NonCanonical):
        B.open_bundle(_sealed_plaintext(text.replace(b":", b": ", 1)), KEK, ACCOUNT)
    with pytest.raises(MalformedObject, match="gen"):
        B.open_bundle(_sealed_plaintext(text, gen=5), KEK, ACCOUNT)
    with pytest.raises(MalformedObject):
        B.open_bundle(_sealed_plaintext(cj([1, 2])), KEK, ACCOUNT)


team_ids = st.binary(min_size=16, max_size=16).map(b64e)
secrets = st.binary(min_size=32, max_size=32)


@given(
    gen=st.integers(0, B.MAX_GEN),
    idents=st.lists(secrets, min_size=1, max_size=3, unique=True),
    retired=st.lists(
        st.tuples(secrets, st.integers(0, 2**50)), max_size=3, unique_by=lambda t: t[0]
    ),
    current=secrets,
    teams=st.lists(st.tuples(team_ids, secrets), max_size=3, unique=True),
    kind=st.sampled_from(B.KINDS),
)
@settings(max_examples=40, deadline=None)
def test_round_trip_any_private_keys(
    gen: int,
    idents: list[bytes],
    retired: list[tuple[bytes, int]],
    current: bytes,
    teams: list[tuple[str, bytes]],
    kind: B.Kind,
) -> None:
    if current in {sk for sk, _ in retired}:
        return
    pks = B.build_private_keys(
        gen=gen,
        identity=idents,
        encrypt=[(sk, r) for sk, r in retired] + [(current, None)],
        teams=teams,
    )
    params: dict[str, Any] = (
        {"salt": bytes(16), "ops": 2, "mem": B.MIN_MEM} if kind == "pass" else {}
    )
    b = B.seal_bundle(pks, KEK, ACCOUNT, kind=kind, **params)
    assert B.open_bundle(b, KEK, ACCOUNT, min_gen=gen) == pks


# --- with Argon2id: pass bundles, passphrase change, re-key ------------------------------
def test_pass_bundle_life_cycle() -> None:
    pks = keys(1)
    b, k = B.seal_pass_bundle(pks, GOOD, ACCOUNT, ops=2)
    assert (b["ops"], b["mem"], b["gen"]) == (2, B.MIN_MEM, 1)
    assert B.needs_rekey(b)
    opened, k2 = B.open_pass_bundle(b, GOOD, ACCOUNT, min_gen=1)
    assert opened == pks
    assert k2 == k

    # passphrase change: fresh salt, default parameters, gen + 1 in both places
    nb, npks, nk = B.rewrap_bundle(b, k.kek, ACCOUNT, GOOD2)
    assert (nb["gen"], npks["gen"], nb["ops"], nb["mem"]) == (2, 2, B.DEFAULT_OPS, B.DEFAULT_MEM)
    assert nb["salt"] != b["salt"]
    assert not B.needs_rekey(nb)
    assert nk.auth_pk != k.auth_pk
    assert B.open_bundle(nb, nk.kek, ACCOUNT, min_gen=2) == npks
    assert npks == B.with_gen(pks, 2)
    with pytest.raises(DecryptionFailed):  # the old passphrase no longer opens it
        B.open_pass_bundle(nb, GOOD, ACCOUNT)
    with pytest.raises(StaleGeneration):  # and the old bundle is refused without Argon2id
        B.open_pass_bundle(b, "whatever", ACCOUNT, min_gen=2)


def test_rewrap_from_a_recovery_bundle_takes_the_pass_gen() -> None:
    rec = B.seal_bundle(keys(1), KEK, ACCOUNT, kind="recovery")
    nb, npks, _ = B.rewrap_bundle(rec, KEK, ACCOUNT, GOOD, gen=9, ops=2)
    assert nb["gen"] == npks["gen"] == 9
    assert nb["kind"] == "pass"


def test_rewrap_checks_before_any_work() -> None:
    b = _pass_bundle()
    with pytest.raises(WeakPassphrase):
        B.rewrap_bundle(b, KEK, ACCOUNT, "password")
    with pytest.raises(ValueError, match="higher"):
        B.rewrap_bundle(b, KEK, ACCOUNT, GOOD, gen=2, check_passphrase=False)
    with pytest.raises(WeakPassphrase):
        B.seal_pass_bundle(keys(), "short", ACCOUNT)


def test_open_pass_bundle_needs_a_pass_bundle() -> None:
    rec = B.seal_bundle(keys(1), KEK, ACCOUNT, kind="recovery")
    with pytest.raises(MalformedObject):
        B.open_pass_bundle(rec, GOOD, ACCOUNT)
    assert not B.needs_rekey(rec)
