"""Tests for postbox.crypto.certs: every create/verify pair, every rejection rule of
PROTOCOL.md §3, §7 and §9, flip-one-byte tamper tests of every signature and signed
object, and key validation at import with small-order Ed25519 and low-order X25519 keys
computed here from the curve equations (not copied from a list).

"""

from __future__ import annotations

import contextlib
import copy
import functools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from postbox.crypto import certs, crockford, domain
from postbox.crypto.certs import Cert, OrgRoot, Procedure, Revocation, SignedCert
from postbox.crypto.encoding import ID_BYTES, MAX_SAFE_INTEGER, b64d, b64e, cj, parse_canonical
from postbox.crypto.errors import (
    BadSignature,
    CertificateExpired,
    CertificateInvalid,
    CertificateRevoked,
    CryptoError,
    DecryptionFailed,
    InvalidKey,
    KeyIdMismatch,
    KeySubstitution,
    MalformedObject,
    NonCanonical,
    OrgCertificationMissing,
)
from postbox.crypto.kid import derive_kid
from postbox.crypto.primitives import H, box_keypair, seal, sign, sign_keypair

# what a failing ``with pytest.raises(...)`` raises when nothing was raised
DID_NOT_RAISE = pytest.fail.Exception

T0 = 1_700_000_000_000
DAY = 86_400_000
YEAR = 365 * DAY


# --- deterministic test material ---------------------------------------------------------
def seed(label: str) -> bytes:
    return H(b"test-seed/certs/" + label.encode())


def new_id(label: str) -> str:
    return b64e(H(b"test-id/certs/" + label.encode(), ID_BYTES))


def sign_pk(label: str) -> bytes:
    return sign_keypair(seed(label))[0]


def box_pk(label: str) -> bytes:
    return box_keypair(seed(label))[0]


# --- Edwards25519 / Curve25519 arithmetic, only to build small-order keys -----------------
P = 2**255 - 19
D = -121665 * pow(121666, -1, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)
L = 2**252 + 27742317777372353535851937790883648493
Point = tuple[int, int]
IDENTITY: Point = (0, 1)


def _recover_x(y: int, sign_bit: int) -> int | None:
    x2 = (y * y - 1) * pow(D * y * y + 1, -1, P) % P
    if x2 == 0:
        return None if sign_bit else 0
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P:
        x = x * SQRT_M1 % P
    if (x * x - x2) % P:
        return None
    return P - x if x & 1 != sign_bit else x


def ed_decode(b: bytes) -> Point:
    n = int.from_bytes(b, "little")
    y, s = n & ((1 << 255) - 1), n >> 255
    x = _recover_x(y, s)
    assert x is not None and y < P
    return (x, y)


def ed_encode(pt: Point) -> bytes:
    x, y = pt
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def ed_add(a: Point, b: Point) -> Point:
    (x1, y1), (x2, y2) = a, b
    t = D * x1 * x2 * y1 * y2 % P
    return (
        (x1 * y2 + x2 * y1) * pow(1 + t, -1, P) % P,
        (y1 * y2 + x1 * x2) * pow(1 - t, -1, P) % P,
    )


def ed_mul(k: int, pt: Point) -> Point:
    out = IDENTITY
    while k:
        if k & 1:
            out = ed_add(out, pt)
        pt = ed_add(pt, pt)
        k >>= 1
    return out


# A point of order 8 (libsodium's blocklist names its encoding); checked below.
ORDER8 = ed_decode(
    bytes.fromhex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05")
)
TORSION = [ed_mul(k, ORDER8) for k in range(8)]


def small_order_ed25519() -> list[bytes]:
    """The eight points of order dividing 8, plus their non-canonical encodings."""
    canonical = [ed_encode(pt) for pt in TORSION]
    noncanonical = [
        (P + 0).to_bytes(32, "little"),  # y = p ≡ 0
        (P + 1).to_bytes(32, "little"),  # y = p + 1 ≡ 1 (the identity)
        bytes([1]) + bytes(30) + b"\x80",  # the identity with the sign bit set (x = 0)
        (P - 1 + (1 << 255)).to_bytes(32, "little"),  # (0, -1) with the sign bit set
    ]
    return canonical + noncanonical


def low_order_x25519() -> list[bytes]:
    """u of every point of order dividing 8 (Montgomery from Edwards), -1, and u >= p forms."""
    us = {(1 + y) * pow(1 - y, -1, P) % P for (_, y) in TORSION if y != 1}
    us |= {P - 1, P, P + 1}
    encoded = [u.to_bytes(32, "little") for u in sorted(us)]
    high_bit = [(int.from_bytes(e, "little") | (1 << 255)).to_bytes(32, "little") for e in encoded]
    return encoded + [e for e in high_bit if e not in encoded]


def test_torsion_points_are_what_they_claim() -> None:
    assert ed_mul(8, ORDER8) == IDENTITY and ed_mul(4, ORDER8) != IDENTITY
    assert len({ed_encode(pt) for pt in TORSION}) == 8
    # libsodium's blocklists name these encodings; a typo in the maths would show here.
    assert "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800" in {
        u.hex() for u in low_order_x25519()
    }
    assert bytes(32) in low_order_x25519() and bytes(32) in small_order_ed25519()


# --- the world: two organisations, their roots, people and a team ----------------------
@dataclass(frozen=True)
class Party:
    account: str
    seed: bytes
    identity: SignedCert
    enc_sk: bytes
    encryption: SignedCert

    @property
    def id_cert(self) -> Cert:
        return self.identity["cert"]

    @property
    def enc_cert(self) -> Cert:
        return self.encryption["cert"]

    @property
    def enc_pk(self) -> bytes:
        return certs.cert_pk(self.encryption["cert"])


@dataclass(frozen=True)
class World:
    org_a: str
    org_b: str
    root_a: certs.SignedOrgRoot
    root_b: certs.SignedOrgRoot
    citizen: Party
    citizen2: Party
    caseworker: Party
    caseworker2: Party
    connector: Party
    admin: Party
    admin_b: Party
    team: str
    team_sk: bytes
    team_cert: SignedCert


def make_party(label: str, kind: certs.Kind, org: str | None, root_seed: bytes | None) -> Party:
    account = new_id(label)
    s = seed(label + "/identity")
    identity = certs.sign_cert(
        certs.make_cert(
            subject=account, kind=kind, org=org, use="sign", pk=sign_keypair(s)[0], created=T0
        ),
        s,
    )
    if root_seed is not None:
        identity = certs.org_certify(identity, root_seed)
    enc_sk = seed(label + "/encrypt")
    encryption = certs.sign_cert(
        certs.make_cert(
            subject=account,
            kind=kind,
            org=org,
            use="encrypt",
            pk=box_keypair(enc_sk)[0],
            created=T0,
            expires=T0 + YEAR,
        ),
        s,
    )
    return Party(account, s, identity, enc_sk, encryption)


@functools.cache
def world() -> World:
    org_a, org_b = new_id("org-a"), new_id("org-b")
    root_a = certs.make_org_root(
        org=org_a, name="Stadt Nürnberg – Ausländerbehörde", root_seed=seed("root-a"), created=T0
    )
    root_b = certs.make_org_root(
        org=org_b, name="Landkreis B", root_seed=seed("root-b"), created=T0
    )
    admin = make_party("admin", "admin", org_a, seed("root-a"))
    team = new_id("team")
    team_sk = seed("team/encrypt")
    team_cert = certs.sign_cert(
        certs.make_cert(
            subject=team,
            kind="team",
            org=org_a,
            use="encrypt",
            pk=box_keypair(team_sk)[0],
            created=T0,
            expires=T0 + YEAR,
        ),
        admin.seed,
    )
    return World(
        org_a=org_a,
        org_b=org_b,
        root_a=root_a,
        root_b=root_b,
        citizen=make_party("citizen", "citizen", None, None),
        citizen2=make_party("citizen2", "citizen", None, None),
        caseworker=make_party("caseworker", "caseworker", org_a, seed("root-a")),
        caseworker2=make_party("caseworker2", "caseworker", org_a, seed("root-a")),
        connector=make_party("connector", "connector", org_a, seed("root-a")),
        admin=admin,
        admin_b=make_party("admin-b", "admin", org_b, seed("root-b")),
        team=team,
        team_sk=team_sk,
        team_cert=team_cert,
    )


def root(which: str = "a") -> OrgRoot:
    w = world()
    return (w.root_a if which == "a" else w.root_b)["org_root"]


def mutable(obj: Any) -> dict[str, Any]:
    return cast(dict[str, Any], copy.deepcopy(obj))


def flip_b64(text: str, index: int, bit: int = 0) -> str:
    raw = bytearray(b64d(text))
    raw[index] ^= 1 << bit
    return b64e(bytes(raw))


def mutations(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every one-change variant of a JSON value: each byte of each b64 member flipped,
    integers ±1, booleans negated, other strings extended, nulls replaced."""
    if isinstance(value, dict):
        for k in value:
            for p, v in mutations(value[k], f"{path}.{k}"):
                out = dict(value)
                out[k] = v
                yield p, out
    elif isinstance(value, list):
        for i, item in enumerate(value):
            for p, v in mutations(item, f"{path}[{i}]"):
                yield p, [*value[:i], v, *value[i + 1 :]]
    elif isinstance(value, bool):
        yield path, not value
    elif isinstance(value, int):
        yield path, value + 1
        if value > 0:
            yield path, value - 1
    elif value is None:
        yield path, 1
    elif isinstance(value, str):
        try:
            raw = b64d(value)
        except CryptoError:
            raw = b""
        if raw:
            for i in range(len(raw)):
                yield f"{path}#{i}", flip_b64(value, i)
        else:
            yield path, value + "x"


def assert_every_mutation_rejected(signed: Any, check: Callable[[Any], object]) -> int:
    check(copy.deepcopy(signed))  # the original is accepted
    count = 0
    for path, variant in mutations(signed):
        try:
            check(variant)
        except CryptoError:
            count += 1
        else:
            pytest.fail(f"accepted a change at {path}")
    return count


# === make_cert / check_cert ================================================================
def test_make_cert_derives_kid_and_alg() -> None:
    pk = sign_pk("x")
    cert = certs.make_cert(
        subject=new_id("x"), kind="citizen", org=None, use="sign", pk=pk, created=T0
    )
    assert cert == {
        "v": 1,
        "subject": new_id("x"),
        "kind": "citizen",
        "org": None,
        "use": "sign",
        "alg": "ed25519",
        "kid": derive_kid("sign", pk),
        "pk": b64e(pk),
        "created": T0,
        "expires": None,
    }
    assert certs.cert_pk(cert) == pk
    enc = certs.make_cert(
        subject=new_id("x"),
        kind="citizen",
        org=None,
        use="encrypt",
        pk=box_pk("x"),
        created=T0,
        expires=T0 + 1,
    )
    assert enc["alg"] == "x25519-sealbox" and enc["kid"] == derive_kid("encrypt", box_pk("x"))
    assert certs.check_cert(enc) is enc


def _cert(**changes: Any) -> dict[str, Any]:
    """A valid caseworker identity certificate body with some members changed."""
    cert = mutable(world().caseworker.id_cert)
    cert.update(changes)
    return cert


def _enc(**changes: Any) -> dict[str, Any]:
    cert = mutable(world().caseworker.enc_cert)
    cert.update(changes)
    return cert


@pytest.mark.parametrize(
    ("cert", "error"),
    [
        (_cert(alg="x25519-sealbox"), CertificateInvalid),
        (_enc(alg="ed25519"), CertificateInvalid),
        (_cert(kid=derive_kid("sign", sign_pk("other"))), KeyIdMismatch),
        (
            _cert(kid=derive_kid("encrypt", certs.cert_pk(world().caseworker.id_cert))),
            KeyIdMismatch,
        ),
        (_enc(kid=derive_kid("sign", world().caseworker.enc_pk)), KeyIdMismatch),
        (_cert(kind="team"), CertificateInvalid),  # teams have no signing key
        (_cert(org=None), CertificateInvalid),
        (_cert(kind="connector", org=None), CertificateInvalid),
        (_cert(kind="admin", org=None), CertificateInvalid),
        (_enc(kind="team", org=None), CertificateInvalid),
        (_enc(expires=None), CertificateInvalid),
        (_enc(expires=T0), CertificateInvalid),
        (_enc(expires=T0 - 1), CertificateInvalid),
        (_enc(expires=T0 + certs.MAX_ENCRYPT_VALIDITY_MS + 1), CertificateInvalid),
        (_enc(expires=T0 + 3 * YEAR), CertificateInvalid),
        (_cert(expires=T0), CertificateInvalid),
        (_cert(expires=T0 - 1), CertificateInvalid),
        (_cert(v=2), MalformedObject),
        (_cert(v=True), MalformedObject),
        (_cert(v="1"), MalformedObject),
        (_cert(kind="citizen "), MalformedObject),
        (_cert(use="verify"), MalformedObject),
        (_cert(alg="rsa"), MalformedObject),
        (_cert(created=-1), MalformedObject),
        (_cert(created=1.5), MalformedObject),
        (_cert(created=True), MalformedObject),
        (_cert(created=MAX_SAFE_INTEGER + 1), MalformedObject),
        (_cert(created="1700000000000"), MalformedObject),
        (_cert(expires=1.0e13), MalformedObject),
        (_cert(subject="A" * 21), MalformedObject),
        (_cert(subject=b64e(bytes(17))), MalformedObject),
        (_cert(org="not an id"), MalformedObject),
        (_cert(pk=b64e(bytes(31))), MalformedObject),
        (_cert(pk=world().caseworker.id_cert["pk"] + "="), MalformedObject),
        (_cert(kid=world().caseworker.id_cert["kid"][:-1] + "B"), MalformedObject),  # trailing bits
        (_cert(extra=1), MalformedObject),
        ({k: v for k, v in _cert().items() if k != "expires"}, MalformedObject),
        ([], MalformedObject),
        (None, MalformedObject),
    ],
)
def test_check_cert_rejects(cert: Any, error: type[CryptoError]) -> None:
    with pytest.raises(error):
        certs.check_cert(cert)


def test_encryption_validity_bounds() -> None:
    assert certs.check_cert(_enc(expires=T0 + 1))
    assert certs.check_cert(_enc(expires=T0 + 2 * 365 * DAY))
    assert certs.check_cert(_enc(expires=T0 + 731 * DAY))  # two years across a leap day
    assert certs.check_cert(_cert(expires=T0 + 1))  # identities may expire, any time later


def test_encryption_validity_of_732_days_is_more_than_two_years() -> None:
    with pytest.raises(CertificateInvalid):
        certs.check_cert(_enc(expires=T0 + 732 * DAY))


def test_make_cert_unknown_use_is_a_crypto_error() -> None:
    with pytest.raises(MalformedObject):
        certs.make_cert(
            subject=new_id("x"),
            kind="citizen",
            org=None,
            use=cast(Any, "verify"),
            pk=sign_pk("x"),
            created=T0,
        )


@pytest.mark.parametrize("pk", small_order_ed25519(), ids=lambda b: b.hex()[:8] + b.hex()[-2:])
def test_small_order_ed25519_identity_keys_are_rejected_at_import(pk: bytes) -> None:
    cert = _cert(pk=b64e(pk), kid=derive_kid("sign", pk))
    with pytest.raises(InvalidKey):
        certs.check_cert(cert)
    with pytest.raises(InvalidKey):
        certs.make_cert(
            subject=new_id("x"), kind="citizen", org=None, use="sign", pk=pk, created=T0
        )
    signed = {
        "cert": cert,
        "sig": b64e(bytes(64)),
        "by": cert["kid"],
        "org_sig": None,
        "prev": None,
        "prev_sig": None,
    }
    with pytest.raises(InvalidKey):
        certs.verify_identity_cert(signed, root())


def test_mixed_order_ed25519_key_is_rejected() -> None:
    """A valid key plus a torsion point is on the curve but outside the main subgroup."""
    good = ed_decode(sign_pk("x"))
    for t in TORSION[1:]:
        pk = ed_encode(ed_add(good, t))
        with pytest.raises(InvalidKey):
            certs.check_cert(_cert(pk=b64e(pk), kid=derive_kid("sign", pk)))


def test_ed25519_key_off_the_curve_is_rejected() -> None:
    y = 2
    while _recover_x(y, 0) is not None:
        y += 1
    pk = y.to_bytes(32, "little")
    with pytest.raises(InvalidKey):
        certs.check_cert(_cert(pk=b64e(pk), kid=derive_kid("sign", pk)))


@pytest.mark.parametrize("pk", low_order_x25519(), ids=lambda b: b.hex()[:8] + b.hex()[-2:])
def test_low_order_x25519_encryption_keys_are_rejected_at_import(pk: bytes) -> None:
    cert = _enc(pk=b64e(pk), kid=derive_kid("encrypt", pk))
    with pytest.raises(InvalidKey):
        certs.check_cert(cert)
    w = world()
    signed = certs.sign_cert(w.caseworker.enc_cert, w.caseworker.seed)
    signed = cast(SignedCert, {**signed, "cert": cert})
    with pytest.raises(InvalidKey):
        certs.verify_encryption_cert(signed, w.caseworker.id_cert)


def test_signature_with_s_plus_l_is_rejected() -> None:
    """Ed25519 malleability: S ≥ L must not verify (PROTOCOL §3)."""
    signed = mutable(world().citizen.identity)
    sig = b64d(signed["sig"])
    s = int.from_bytes(sig[32:], "little")
    assert s < L
    signed["sig"] = b64e(sig[:32] + (s + L).to_bytes(32, "little"))
    with pytest.raises(BadSignature):
        certs.verify_identity_cert(signed)


# === identity certificates =================================================================
def test_identity_round_trips() -> None:
    w = world()
    assert certs.verify_identity_cert(w.citizen.identity) == w.citizen.id_cert
    for party in (w.caseworker, w.connector, w.admin):
        assert certs.verify_identity_cert(party.identity, root("a")) == party.id_cert
        assert party.identity["org_sig"] is not None
    assert certs.verify_identity_cert(w.admin_b.identity, root("b")) == w.admin_b.id_cert
    assert w.citizen.identity["by"] == w.citizen.id_cert["kid"]


def test_sign_cert_sets_every_member() -> None:
    w = world()
    s = w.citizen.identity
    assert set(s) == {"cert", "sig", "by", "org_sig", "prev", "prev_sig"}
    assert (s["org_sig"], s["prev"], s["prev_sig"]) == (None, None, None)
    pk = certs.cert_pk(s["cert"])
    sig = b64d(s["sig"])
    assert sig == sign(w.citizen.seed, b"postbox/v1/keycert" + cj(s["cert"]))
    cw = w.caseworker.identity
    assert b64d(cw["org_sig"] or "") == sign(seed("root-a"), b"postbox/v1/orgcert" + cj(cw["cert"]))
    assert derive_kid("sign", pk) == s["by"]


def test_sign_cert_checks_the_body() -> None:
    with pytest.raises(KeyIdMismatch):
        certs.sign_cert(cast(Cert, _cert(kid=new_id("k"))), seed("x"))


def test_identity_rejects_an_encryption_certificate() -> None:
    with pytest.raises(CertificateInvalid):
        certs.verify_identity_cert(world().citizen.encryption)


def test_identity_must_be_self_signed() -> None:
    w = world()
    other = certs.sign_cert(w.citizen.id_cert, w.citizen2.seed)
    with pytest.raises(CertificateInvalid):
        certs.verify_identity_cert(other)
    # claiming to be self-signed while signed by another key is a bad signature
    forged = {**other, "by": w.citizen.id_cert["kid"]}
    with pytest.raises(BadSignature):
        certs.verify_identity_cert(forged)


@pytest.mark.parametrize("half", ["prev", "prev_sig"])
def test_prev_and_prev_sig_go_together(half: str) -> None:
    signed = mutable(rotated()[1])
    signed[half] = None
    with pytest.raises(CertificateInvalid):
        certs.verify_identity_cert(signed)


@pytest.mark.parametrize("party", ["caseworker", "connector", "admin"])
def test_staff_identity_needs_org_sig(party: str) -> None:
    p: Party = getattr(world(), party)
    signed = {**p.identity, "org_sig": None}
    with pytest.raises(OrgCertificationMissing):
        certs.verify_identity_cert(signed, root("a"))
    with pytest.raises(OrgCertificationMissing):
        certs.verify_identity_cert(p.identity)  # no pinned root


def test_org_sig_from_another_orgs_root_is_rejected() -> None:
    w = world()
    cw = certs.sign_cert(w.caseworker.id_cert, w.caseworker.seed)
    by_b = certs.org_certify(cw, seed("root-b"))
    with pytest.raises(OrgCertificationMissing):  # B's genuine root, but cert.org is A
        certs.verify_identity_cert(by_b, root("b"))
    with pytest.raises(BadSignature):  # A's root does not verify B's signature
        certs.verify_identity_cert(by_b, root("a"))
    # an org root claiming org A but with another key (a forged or unpinned root)
    fake = certs.make_org_root(org=w.org_a, name="A", root_seed=seed("fake"), created=T0)
    with pytest.raises(BadSignature):
        certs.verify_identity_cert(w.caseworker.identity, fake["org_root"])


def test_citizen_with_org_sig_needs_a_root() -> None:
    w = world()
    signed = certs.org_certify(w.citizen.identity, seed("root-a"))
    with pytest.raises(OrgCertificationMissing):
        certs.verify_identity_cert(signed)
    with pytest.raises(OrgCertificationMissing):  # citizen org is null, never a root's org
        certs.verify_identity_cert(signed, root("a"))


def test_org_sig_is_domain_separated() -> None:
    w = world()
    cw = w.caseworker.identity
    keycert_label = sign(seed("root-a"), domain.KEYCERT + cj(cw["cert"]))
    with pytest.raises(BadSignature):
        certs.verify_identity_cert({**cw, "org_sig": b64e(keycert_label)}, root("a"))
    with pytest.raises(BadSignature):  # the self signature is not an org signature
        certs.verify_identity_cert({**cw, "org_sig": cw["sig"]}, root("a"))


@pytest.mark.parametrize("member", ["sig", "org_sig"])
def test_identity_every_signature_byte_flip_is_rejected(member: str) -> None:
    cw = mutable(world().caseworker.identity)
    for i in range(64):
        for bit in (0, 7):
            tampered = {**cw, member: flip_b64(cw[member], i, bit)}
            with pytest.raises(BadSignature):
                certs.verify_identity_cert(tampered, root("a"))


def test_identity_every_change_is_rejected() -> None:
    w = world()
    n = assert_every_mutation_rejected(
        w.caseworker.identity, lambda s: certs.verify_identity_cert(s, root("a"))
    )
    assert n > 64 + 64 + 32 + 16 * 3
    assert_every_mutation_rejected(w.citizen.identity, certs.verify_identity_cert)


@pytest.mark.parametrize(
    "signed",
    [
        {"cert": {}, "sig": "", "by": "", "org_sig": None, "prev": None, "prev_sig": None},
        {**world().citizen.identity, "extra": None},
        {k: v for k, v in world().citizen.identity.items() if k != "prev_sig"},
        {**world().citizen.identity, "sig": b64e(bytes(63))},
        {**world().citizen.identity, "by": None},
        {**world().citizen.identity, "org_sig": ""},
        "cert",
    ],
)
def test_signed_cert_shape(signed: Any) -> None:
    with pytest.raises(MalformedObject):
        certs.verify_identity_cert(signed)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    subject=st.binary(min_size=ID_BYTES, max_size=ID_BYTES),
    key_seed=st.binary(min_size=32, max_size=32),
    created=st.integers(0, MAX_SAFE_INTEGER // 2),
    life=st.none() | st.integers(1, MAX_SAFE_INTEGER // 2),
    flip=st.integers(0, 63),
)
def test_identity_round_trip_property(
    subject: bytes, key_seed: bytes, created: int, life: int | None, flip: int
) -> None:
    cert = certs.make_cert(
        subject=b64e(subject),
        kind="citizen",
        org=None,
        use="sign",
        pk=sign_keypair(key_seed)[0],
        created=created,
        expires=None if life is None else created + life,
    )
    signed = certs.sign_cert(cert, key_seed)
    assert certs.verify_identity_cert(signed) == cert
    assert certs.verify_identity_cert(cast(Any, cj_round_trip(signed))) == cert
    with pytest.raises(BadSignature):
        certs.verify_identity_cert({**signed, "sig": flip_b64(signed["sig"], flip)})


def cj_round_trip(value: Any) -> Any:
    return parse_canonical(cj(value))


# === rotation ==============================================================================
@functools.cache
def rotated() -> tuple[Cert, SignedCert, bytes]:
    """(old identity, new signed identity linked to it, new seed) of the citizen."""
    w = world()
    new_seed = seed("citizen/identity-2")
    new = certs.make_cert(
        subject=w.citizen.account,
        kind="citizen",
        org=None,
        use="sign",
        pk=sign_keypair(new_seed)[0],
        created=T0 + DAY,
    )
    linked = certs.link_rotation(certs.sign_cert(new, new_seed), w.citizen.seed)
    return w.citizen.id_cert, linked, new_seed


def test_rotation_round_trip() -> None:
    old, linked, _ = rotated()
    assert linked["prev"] == old["kid"]
    assert b64d(linked["prev_sig"] or "") == sign(
        world().citizen.seed, b"postbox/v1/rotate" + cj(linked["cert"])
    )
    assert certs.verify_identity_cert(linked) == linked["cert"]
    certs.verify_rotation(linked, old)


def test_rotation_of_an_org_certified_identity() -> None:
    w = world()
    new_seed = seed("caseworker/identity-2")
    new = certs.make_cert(
        subject=w.caseworker.account,
        kind="caseworker",
        org=w.org_a,
        use="sign",
        pk=sign_keypair(new_seed)[0],
        created=T0 + DAY,
    )
    signed = certs.org_certify(certs.sign_cert(new, new_seed), seed("root-a"))
    linked = certs.link_rotation(signed, w.caseworker.seed)
    assert certs.verify_identity_cert(linked, root("a")) == new
    certs.verify_rotation(linked, w.caseworker.id_cert)
    # the order of certification and linking does not matter: both sign the body
    other_order = certs.org_certify(
        certs.link_rotation(certs.sign_cert(new, new_seed), w.caseworker.seed), seed("root-a")
    )
    assert other_order == linked


def test_unlinked_rotation_is_rejected() -> None:
    old, linked, _ = rotated()
    unlinked = {**linked, "prev": None, "prev_sig": None}
    assert certs.verify_identity_cert(unlinked)  # a fine certificate, just not linked
    with pytest.raises(CertificateInvalid):
        certs.verify_rotation(unlinked, old)


def test_rotation_linked_to_another_identity_is_rejected() -> None:
    _, linked, _ = rotated()
    with pytest.raises(CertificateInvalid):
        certs.verify_rotation(linked, world().citizen2.id_cert)
    with pytest.raises(CertificateInvalid):
        certs.verify_rotation(linked, world().citizen.enc_cert)


def test_rotation_across_subjects_is_rejected() -> None:
    w = world()
    # citizen2 "rotates" into a certificate of the citizen's account
    new_seed = seed("evil")
    new = certs.make_cert(
        subject=w.citizen.account,
        kind="citizen",
        org=None,
        use="sign",
        pk=sign_keypair(new_seed)[0],
        created=T0,
    )
    linked = certs.link_rotation(certs.sign_cert(new, new_seed), w.citizen2.seed)
    with pytest.raises(CertificateInvalid):
        certs.verify_rotation(linked, w.citizen2.id_cert)


def test_rotation_signature_checks() -> None:
    old, linked, new_seed = rotated()
    # prev_sig by another key (the new key links to itself)
    self_linked = certs.link_rotation(certs.sign_cert(linked["cert"], new_seed), new_seed)
    forged = {**self_linked, "prev": old["kid"]}
    with pytest.raises(BadSignature):
        certs.verify_rotation(forged, old)
    # the old key's keycert signature is not a rotation link
    wrong_label = sign(world().citizen.seed, domain.KEYCERT + cj(linked["cert"]))
    with pytest.raises(BadSignature):
        certs.verify_rotation({**linked, "prev_sig": b64e(wrong_label)}, old)
    for i in range(64):
        tampered = {**linked, "prev_sig": flip_b64(cast(str, linked["prev_sig"]), i)}
        with pytest.raises(BadSignature):
            certs.verify_rotation(tampered, old)


def test_rotation_every_change_is_rejected() -> None:
    old, linked, _ = rotated()

    def check(s: Any) -> None:
        certs.verify_identity_cert(s)
        certs.verify_rotation(s, old)

    assert_every_mutation_rejected(linked, check)


def test_rotation_link_on_an_encryption_cert_is_rejected() -> None:
    w = world()
    linked = certs.link_rotation(w.citizen.encryption, w.citizen.seed)
    with pytest.raises(CertificateInvalid):
        certs.verify_rotation(linked, w.citizen.id_cert)


# === encryption certificates ===============================================================
def test_encryption_round_trips() -> None:
    w = world()
    for p in (w.citizen, w.caseworker, w.connector, w.admin):
        assert certs.verify_encryption_cert(p.encryption, p.id_cert) == p.enc_cert


@pytest.mark.parametrize("member", ["org_sig", "prev", "prev_sig"])
def test_encryption_cert_carries_only_the_identity_signature(member: str) -> None:
    w = world()
    value = w.citizen.identity["sig"] if member != "prev" else w.citizen.id_cert["kid"]
    signed = {**w.citizen.encryption, member: value}
    with pytest.raises(CertificateInvalid):
        certs.verify_encryption_cert(signed, w.citizen.id_cert)


def test_encryption_cert_rejections() -> None:
    w = world()
    c = w.citizen
    with pytest.raises(CertificateInvalid):  # an identity certificate
        certs.verify_encryption_cert(c.identity, c.id_cert)
    with pytest.raises(CertificateInvalid):  # a team certificate
        certs.verify_encryption_cert(w.team_cert, w.admin.id_cert)
    with pytest.raises(CertificateInvalid):  # "identity" is an encryption certificate
        certs.verify_encryption_cert(c.encryption, c.enc_cert)
    with pytest.raises(CertificateInvalid):  # signed by another account's identity
        certs.verify_encryption_cert(
            certs.sign_cert(c.enc_cert, w.citizen2.seed), w.citizen2.id_cert
        )
    with pytest.raises(CertificateInvalid):  # by names another key than the given identity
        certs.verify_encryption_cert(c.encryption, w.citizen2.id_cert)
    forged = {**certs.sign_cert(c.enc_cert, w.citizen2.seed), "by": c.id_cert["kid"]}
    with pytest.raises(BadSignature):
        certs.verify_encryption_cert(forged, c.id_cert)


@pytest.mark.parametrize(
    "change",
    [{"subject": new_id("someone")}, {"kind": "citizen"}, {"org": new_id("org-b")}],
)
def test_encryption_cert_must_agree_with_identity(change: dict[str, Any]) -> None:
    w = world()
    identity = cast(Cert, {**w.caseworker.id_cert, **change})
    with pytest.raises(CertificateInvalid):
        certs.verify_encryption_cert(w.caseworker.encryption, identity)


def test_encryption_every_change_is_rejected() -> None:
    w = world()
    assert_every_mutation_rejected(
        w.citizen.encryption, lambda s: certs.verify_encryption_cert(s, w.citizen.id_cert)
    )


# === team certificates =====================================================================
def test_team_cert_round_trip() -> None:
    w = world()
    assert certs.verify_team_cert(w.team_cert, w.admin.id_cert) == w.team_cert["cert"]
    assert w.team_cert["by"] == w.admin.id_cert["kid"]


def test_team_cert_rejections() -> None:
    w = world()
    body = w.team_cert["cert"]
    with pytest.raises(CertificateInvalid):  # not a team certificate
        certs.verify_team_cert(w.citizen.encryption, w.citizen.id_cert)
    with pytest.raises(CertificateInvalid):  # certified by a caseworker
        certs.verify_team_cert(certs.sign_cert(body, w.caseworker.seed), w.caseworker.id_cert)
    with pytest.raises(CertificateInvalid):  # by an admin's encryption certificate
        certs.verify_team_cert(w.team_cert, w.admin.enc_cert)
    with pytest.raises(CertificateInvalid):  # by another organisation's admin
        certs.verify_team_cert(certs.sign_cert(body, w.admin_b.seed), w.admin_b.id_cert)
    with pytest.raises(CertificateInvalid):  # by names another admin
        certs.verify_team_cert(w.team_cert, {**w.admin.id_cert, "kid": w.admin_b.id_cert["kid"]})
    for member in ("org_sig", "prev_sig"):
        with pytest.raises(CertificateInvalid):
            certs.verify_team_cert({**w.team_cert, member: w.team_cert["sig"]}, w.admin.id_cert)
    with pytest.raises(CertificateInvalid):
        certs.verify_team_cert({**w.team_cert, "prev": body["kid"]}, w.admin.id_cert)


def test_team_signing_cert_cannot_exist() -> None:
    w = world()
    with pytest.raises(CertificateInvalid):
        certs.make_cert(
            subject=w.team, kind="team", org=w.org_a, use="sign", pk=sign_pk("team"), created=T0
        )


def test_team_every_change_is_rejected() -> None:
    w = world()
    assert_every_mutation_rejected(
        w.team_cert, lambda s: certs.verify_team_cert(s, w.admin.id_cert)
    )


# === validity ==============================================================================
def _revocation(cert: Cert, at: int, reason: str = "compromised") -> Revocation:
    return cast(
        Revocation,
        {"v": 1, "subject": cert["subject"], "kid": cert["kid"], "at": at, "reason": reason},
    )


def test_check_valid_at() -> None:
    c = world().citizen.enc_cert
    certs.check_valid_at(c, T0)
    certs.check_valid_at(c, T0 + YEAR - 1)
    with pytest.raises(CertificateExpired):
        certs.check_valid_at(c, T0 - 1)
    with pytest.raises(CertificateExpired):
        certs.check_valid_at(c, T0 + YEAR)
    ident = world().citizen.id_cert
    certs.check_valid_at(ident, MAX_SAFE_INTEGER)  # no expiry
    revs = [_revocation(c, T0 + 10)]
    certs.check_valid_at(c, T0 + 9, revs)
    with pytest.raises(CertificateRevoked):
        certs.check_valid_at(c, T0 + 10, revs)
    other = [
        {**revs[0], "kid": ident["kid"]},
        {**revs[0], "subject": new_id("someone")},
    ]
    certs.check_valid_at(c, T0 + 20, cast(list[Revocation], other))
    with pytest.raises(CertificateRevoked):  # a generator works too
        certs.check_valid_at(c, T0 + 20, (r for r in revs))


@given(
    created=st.integers(0, 10**13),
    life=st.none() | st.integers(1, 10**12),
    at=st.integers(0, 2 * 10**13),
    revoked=st.none() | st.integers(0, 2 * 10**13),
)
def test_check_valid_at_property(
    created: int, life: int | None, at: int, revoked: int | None
) -> None:
    cert = cast(
        Cert,
        {
            **world().citizen.id_cert,
            "created": created,
            "expires": None if life is None else created + life,
        },
    )
    revs = [] if revoked is None else [_revocation(cert, revoked)]
    if at < created or (life is not None and at >= created + life):
        expected: type[Exception] | None = CertificateExpired
    elif revoked is not None and revoked <= at:
        expected = CertificateRevoked
    else:
        expected = None
    if expected is None:
        certs.check_valid_at(cert, at, revs)
    else:
        with pytest.raises(expected):
            certs.check_valid_at(cert, at, revs)


# === org root and fingerprint ==============================================================
FINGERPRINT_RE = re.compile(r"^([0-9A-HJKMNP-TV-Z]{4}-){7}[0-9A-HJKMNP-TV-Z]{4}$")


def test_org_root_round_trip() -> None:
    w = world()
    r = w.root_a
    assert set(r) == {"org_root", "sig"}
    assert r["org_root"] == {
        "v": 1,
        "org": w.org_a,
        "name": "Stadt Nürnberg – Ausländerbehörde",
        "pk": b64e(sign_pk("root-a")),
        "created": T0,
    }
    assert b64d(r["sig"]) == sign(seed("root-a"), b"postbox/v1/orgroot" + cj(r["org_root"]))
    assert certs.verify_org_root(r) == r["org_root"]


def test_fingerprint() -> None:
    pk = sign_pk("root-a")
    fp = certs.fingerprint(pk)
    assert FINGERPRINT_RE.match(fp), fp
    assert crockford.decode(fp) == H(pk, 20)
    assert fp == certs.org_fingerprint(root("a"))
    assert fp != certs.fingerprint(sign_pk("root-b"))
    # a fixed value (checked independently with hashlib + base64.b32encode re-mapped to the
    # Crockford alphabet), so the string printed on letters cannot change unnoticed
    assert certs.fingerprint(bytes(32)) == "088B-X9N1-75WQ-TX5A-AXJF-P8K3-K3R7-YGP4"
    assert len(fp) == 39


@given(st.binary(min_size=32, max_size=32))
def test_fingerprint_property(pk: bytes) -> None:
    fp = certs.fingerprint(pk)
    assert FINGERPRINT_RE.match(fp)
    assert crockford.decode(fp.lower().replace("-", " ")) == H(pk, 20)


def test_org_root_rejections() -> None:
    w = world()
    r = mutable(w.root_a)
    for i in range(64):
        with pytest.raises(BadSignature):
            certs.verify_org_root({**r, "sig": flip_b64(r["sig"], i)})
    assert_every_mutation_rejected(w.root_a, certs.verify_org_root)
    # another root's signature over this body
    other = sign(seed("root-b"), domain.ORGROOT + cj(r["org_root"]))
    with pytest.raises(BadSignature):
        certs.verify_org_root({**r, "sig": b64e(other)})
    for pk in small_order_ed25519():
        bad = {**r, "org_root": {**r["org_root"], "pk": b64e(pk)}}
        with pytest.raises(InvalidKey):
            certs.verify_org_root(bad)
    with pytest.raises(MalformedObject):
        certs.make_org_root(org=w.org_a, name="x" * 201, root_seed=seed("r"), created=T0)
    with pytest.raises(MalformedObject):
        certs.make_org_root(org=w.org_a, name="ä" * 101, root_seed=seed("r"), created=T0)
    assert certs.make_org_root(org=w.org_a, name="ä" * 100, root_seed=seed("r"), created=T0)
    with pytest.raises(MalformedObject):
        certs.make_org_root(org="org", name="x", root_seed=seed("r"), created=T0)
    with pytest.raises(NonCanonical):
        certs.make_org_root(org=w.org_a, name="\ud800", root_seed=seed("r"), created=T0)
    with pytest.raises(MalformedObject):
        certs.verify_org_root({**r, "extra": 1})
    with pytest.raises(MalformedObject):
        certs.verify_org_root({**r, "org_root": {**r["org_root"], "name": 5}})


@settings(max_examples=30, deadline=None)
@given(name=st.text(max_size=60), created=st.integers(0, MAX_SAFE_INTEGER))
def test_org_root_property(name: str, created: int) -> None:
    try:
        cj(name)
    except NonCanonical:
        return  # lone surrogates are not JSON text
    r = certs.make_org_root(org=new_id("o"), name=name, root_seed=seed("prop"), created=created)
    assert certs.verify_org_root(cj_round_trip(r)) == r["org_root"]


# === revocations ===========================================================================
def test_revocation_round_trips() -> None:
    w = world()
    c = w.citizen
    self_rev = certs.make_revocation(
        subject=c.account, kid=c.enc_cert["kid"], at=T0 + 5, reason="superseded", signer_seed=c.seed
    )
    assert self_rev["revoke"] == {
        "v": 1,
        "subject": c.account,
        "kid": c.enc_cert["kid"],
        "at": T0 + 5,
        "reason": "superseded",
    }
    assert self_rev["by"] == c.id_cert["kid"]
    assert b64d(self_rev["sig"]) == sign(c.seed, b"postbox/v1/revoke" + cj(self_rev["revoke"]))
    assert certs.verify_revocation(self_rev, c.id_cert, None) == self_rev["revoke"]
    cw = w.caseworker
    by_admin = certs.make_revocation(
        subject=cw.account,
        kid=cw.id_cert["kid"],
        at=T0 + 5,
        reason="left",
        signer_seed=w.admin.seed,
    )
    assert certs.verify_revocation(by_admin, w.admin.id_cert, w.org_a) == by_admin["revoke"]
    # an admin may revoke a team's key (teams have no identity of their own)
    team_rev = certs.make_revocation(
        subject=w.team,
        kid=w.team_cert["cert"]["kid"],
        at=T0,
        reason="compromised",
        signer_seed=w.admin.seed,
    )
    assert certs.verify_revocation(team_rev, w.admin.id_cert, w.org_a)
    # the subject itself, staff included
    own = certs.make_revocation(
        subject=cw.account, kid=cw.enc_cert["kid"], at=T0, reason="compromised", signer_seed=cw.seed
    )
    assert certs.verify_revocation(own, cw.id_cert, w.org_a)


def test_revocation_signer_rules() -> None:
    w = world()
    c, cw = w.citizen, w.caseworker
    rev = certs.make_revocation(
        subject=c.account,
        kid=c.enc_cert["kid"],
        at=T0,
        reason="compromised",
        signer_seed=w.citizen2.seed,
    )
    with pytest.raises(CertificateInvalid):  # another citizen
        certs.verify_revocation(rev, w.citizen2.id_cert, None)
    staff = certs.make_revocation(
        subject=cw.account, kid=cw.enc_cert["kid"], at=T0, reason="left", signer_seed=w.admin_b.seed
    )
    with pytest.raises(CertificateInvalid):  # an admin of another organisation
        certs.verify_revocation(staff, w.admin_b.id_cert, w.org_a)
    by_colleague = certs.make_revocation(
        subject=cw.account,
        kid=cw.enc_cert["kid"],
        at=T0,
        reason="left",
        signer_seed=w.caseworker2.seed,
    )
    with pytest.raises(CertificateInvalid):  # a caseworker of the same org is no admin
        certs.verify_revocation(by_colleague, w.caseworker2.id_cert, w.org_a)
    citizen_by_admin = certs.make_revocation(
        subject=c.account, kid=c.enc_cert["kid"], at=T0, reason="left", signer_seed=w.admin.seed
    )
    with pytest.raises(CertificateInvalid):  # citizens belong to no org
        certs.verify_revocation(citizen_by_admin, w.admin.id_cert, None)
    own = certs.make_revocation(
        subject=c.account, kid=c.enc_cert["kid"], at=T0, reason="left", signer_seed=c.seed
    )
    with pytest.raises(CertificateInvalid):  # signer given as its encryption certificate
        certs.verify_revocation(own, c.enc_cert, None)
    with pytest.raises(CertificateInvalid):  # by names another key
        certs.verify_revocation(
            own, cast(Cert, {**c.id_cert, "kid": w.citizen2.id_cert["kid"]}), None
        )
    forged = {**rev, "by": c.id_cert["kid"]}  # citizen2 signed, claims to be the citizen
    with pytest.raises(BadSignature):
        certs.verify_revocation(forged, c.id_cert, None)
    assert_every_mutation_rejected(own, lambda s: certs.verify_revocation(s, c.id_cert, None))
    with pytest.raises(MalformedObject):
        certs.make_revocation(
            subject=c.account, kid=c.enc_cert["kid"], at=T0, reason="bored", signer_seed=c.seed
        )


# === team key wraps ========================================================================
def wrap_for(member: Party, by: Party | None = None, **overrides: Any) -> certs.SignedTeamWrap:
    w = world()
    wrapper = by or w.caseworker
    return certs.make_team_wrap(
        team_cert=overrides.get("team_cert", w.team_cert["cert"]),
        team_sk=overrides.get("team_sk", w.team_sk),
        member=member.account,
        member_enc=member.enc_cert,
        by=wrapper.account,
        by_seed=wrapper.seed,
    )


def open_as(member: Party, signed: Any, by: Party | None = None, **overrides: Any) -> bytes:
    w = world()
    wrapper = by or w.caseworker
    return certs.open_team_wrap(
        signed,
        team_cert=overrides.get("team_cert", w.team_cert["cert"]),
        member_pk=overrides.get("member_pk", member.enc_pk),
        member_sk=overrides.get("member_sk", member.enc_sk),
        by_identity=overrides.get("by_identity", wrapper.id_cert),
        current_members=overrides.get(
            "current_members", {w.caseworker.account, w.caseworker2.account}
        ),
    )


def test_team_wrap_round_trip() -> None:
    w = world()
    signed = wrap_for(w.caseworker2)
    wrap = signed["team_wrap"]
    assert set(signed) == {"team_wrap", "sig", "by_kid"}
    assert {k: v for k, v in wrap.items() if k != "sealed"} == {
        "v": 1,
        "team": w.team,
        "team_kid": w.team_cert["cert"]["kid"],
        "member": w.caseworker2.account,
        "member_kid": w.caseworker2.enc_cert["kid"],
        "by": w.caseworker.account,
    }
    assert len(b64d(wrap["sealed"])) == 80
    assert signed["by_kid"] == w.caseworker.id_cert["kid"]
    assert b64d(signed["sig"]) == sign(w.caseworker.seed, b"postbox/v1/teamwrap" + cj(wrap))
    assert open_as(w.caseworker2, signed) == w.team_sk
    for members in (
        [w.caseworker.account],
        frozenset([w.caseworker.account]),
        (w.caseworker.account,),
    ):
        assert open_as(w.caseworker2, signed, current_members=members) == w.team_sk
    # sealed boxes are randomized: two wraps differ, both open
    assert wrap_for(w.caseworker2)["team_wrap"]["sealed"] != wrap["sealed"]


def test_team_wrap_by_non_member_is_rejected() -> None:
    w = world()
    signed = wrap_for(w.caseworker2)
    with pytest.raises(CertificateInvalid):
        open_as(w.caseworker2, signed, current_members={w.caseworker2.account})
    with pytest.raises(CertificateInvalid):
        open_as(w.caseworker2, signed, current_members=[])


def test_team_wrap_signer_checks() -> None:
    w = world()
    signed = wrap_for(w.caseworker2)
    with pytest.raises(CertificateInvalid):  # identity of someone else than wrap.by
        open_as(w.caseworker2, signed, by_identity=w.caseworker2.id_cert)
    with pytest.raises(CertificateInvalid):  # the wrapper's encryption certificate
        open_as(w.caseworker2, signed, by_identity=w.caseworker.enc_cert)
    with pytest.raises(CertificateInvalid):  # by_kid is not the identity's kid
        open_as(w.caseworker2, {**signed, "by_kid": w.caseworker2.id_cert["kid"]})
    # a non-member's key signing in a member's name
    forged = certs.make_team_wrap(
        team_cert=w.team_cert["cert"],
        team_sk=w.team_sk,
        member=w.caseworker2.account,
        member_enc=w.caseworker2.enc_cert,
        by=w.caseworker.account,
        by_seed=w.citizen.seed,
    )
    with pytest.raises(CertificateInvalid):
        open_as(w.caseworker2, forged)
    with pytest.raises(BadSignature):
        open_as(w.caseworker2, {**forged, "by_kid": w.caseworker.id_cert["kid"]})


def test_team_wrap_tampering() -> None:
    w = world()
    signed = wrap_for(w.caseworker2)
    for i in range(64):
        with pytest.raises(BadSignature):
            open_as(w.caseworker2, {**signed, "sig": flip_b64(signed["sig"], i)})
    n = assert_every_mutation_rejected(signed, lambda s: open_as(w.caseworker2, s))
    assert n >= 80 + 64 + 16 * 6


def _resign(wrap: dict[str, Any], by: Party) -> dict[str, Any]:
    return {
        "team_wrap": wrap,
        "sig": b64e(sign(by.seed, domain.TEAMWRAP + cj(wrap))),
        "by_kid": by.id_cert["kid"],
    }


def test_team_wrap_for_another_team_key() -> None:
    w = world()
    signed = wrap_for(w.caseworker2)
    new_sk = seed("team/encrypt-2")
    new_team = certs.make_cert(
        subject=w.team,
        kind="team",
        org=w.org_a,
        use="encrypt",
        pk=box_keypair(new_sk)[0],
        created=T0 + DAY,
        expires=T0 + YEAR,
    )
    with pytest.raises(KeySubstitution):
        open_as(w.caseworker2, signed, team_cert=new_team)
    other_team = {**new_team, "subject": new_id("team-2")}
    with pytest.raises(KeySubstitution):
        open_as(w.caseworker2, signed, team_cert=other_team)
    # after a rotation, the old key is wrapped with the old certificate and still opens
    old = wrap_for(w.caseworker2)
    assert open_as(w.caseworker2, old) == w.team_sk
    new = wrap_for(w.caseworker2, team_cert=new_team, team_sk=new_sk)
    assert open_as(w.caseworker2, new, team_cert=new_team) == new_sk


def test_team_wrap_opened_with_the_wrong_member_key() -> None:
    w = world()
    signed = wrap_for(w.caseworker2)
    c = w.citizen
    with pytest.raises(KeySubstitution):  # sealed to another member key than ours
        open_as(w.caseworker2, signed, member_pk=c.enc_pk, member_sk=c.enc_sk)
    # member_kid names our key, but the box is sealed to another key
    wrap = mutable(signed["team_wrap"])
    wrap["sealed"] = b64e(seal(w.team_sk, c.enc_pk))
    with pytest.raises(DecryptionFailed):
        open_as(w.caseworker2, _resign(wrap, w.caseworker))


def test_unwrapped_key_that_is_not_the_certified_one_is_key_substitution() -> None:
    w = world()
    wrap = mutable(wrap_for(w.caseworker2)["team_wrap"])
    wrap["sealed"] = b64e(seal(seed("mallory"), w.caseworker2.enc_pk))
    with pytest.raises(KeySubstitution):
        open_as(w.caseworker2, _resign(wrap, w.caseworker))


def test_make_team_wrap_checks() -> None:
    w = world()
    with pytest.raises(KeySubstitution):
        wrap_for(w.caseworker2, team_sk=seed("mallory"))
    with pytest.raises(CertificateInvalid):  # member certificate of another account
        certs.make_team_wrap(
            team_cert=w.team_cert["cert"],
            team_sk=w.team_sk,
            member=w.caseworker2.account,
            member_enc=w.caseworker.enc_cert,
            by=w.caseworker.account,
            by_seed=w.caseworker.seed,
        )
    with pytest.raises(CertificateInvalid):  # an identity certificate is no encryption key
        certs.make_team_wrap(
            team_cert=w.team_cert["cert"],
            team_sk=w.team_sk,
            member=w.caseworker2.account,
            member_enc=w.caseworker2.id_cert,
            by=w.caseworker.account,
            by_seed=w.caseworker.seed,
        )
    with pytest.raises(MalformedObject):
        certs.make_team_wrap(
            team_cert=w.team_cert["cert"],
            team_sk=w.team_sk,
            member=w.caseworker2.account,
            member_enc=w.caseworker2.enc_cert,
            by="someone",
            by_seed=w.caseworker.seed,
        )


def test_team_wrap_shape() -> None:
    w = world()
    signed = mutable(wrap_for(w.caseworker2))
    for bad in (
        {**signed, "extra": 1},
        {**signed, "team_wrap": {**signed["team_wrap"], "v": 2}},
        {**signed, "team_wrap": {**signed["team_wrap"], "sealed": b64e(bytes(81))}},
        {k: v for k, v in signed.items() if k != "by_kid"},
    ):
        with pytest.raises(MalformedObject):
            open_as(w.caseworker2, bad)


# === memberships ===========================================================================
def test_membership_round_trip_and_rejections() -> None:
    w = world()
    m = certs.sign_membership(
        team=w.team, member=w.caseworker2.account, at=T0, admin_seed=w.admin.seed
    )
    assert m["membership"] == {"v": 1, "team": w.team, "member": w.caseworker2.account, "at": T0}
    assert m["by"] == w.admin.id_cert["kid"]
    assert b64d(m["sig"]) == sign(w.admin.seed, b"postbox/v1/member" + cj(m["membership"]))
    assert certs.verify_membership(m, w.admin.id_cert, w.org_a) == m["membership"]
    with pytest.raises(CertificateInvalid):  # the team belongs to another org
        certs.verify_membership(m, w.admin.id_cert, w.org_b)
    other = certs.sign_membership(
        team=w.team, member=w.caseworker2.account, at=T0, admin_seed=w.admin_b.seed
    )
    with pytest.raises(CertificateInvalid):
        certs.verify_membership(other, w.admin_b.id_cert, w.org_a)
    by_cw = certs.sign_membership(
        team=w.team, member=w.caseworker2.account, at=T0, admin_seed=w.caseworker.seed
    )
    with pytest.raises(CertificateInvalid):  # a caseworker is no admin
        certs.verify_membership(by_cw, w.caseworker.id_cert, w.org_a)
    with pytest.raises(CertificateInvalid):  # by names another key
        certs.verify_membership(m, cast(Cert, {**w.admin.id_cert, "kid": new_id("k")}), w.org_a)
    with pytest.raises(CertificateInvalid):  # the admin's encryption certificate
        certs.verify_membership(m, w.admin.enc_cert, w.org_a)
    with pytest.raises(BadSignature):
        certs.verify_membership({**by_cw, "by": w.admin.id_cert["kid"]}, w.admin.id_cert, w.org_a)
    assert_every_mutation_rejected(
        m, lambda s: certs.verify_membership(s, w.admin.id_cert, w.org_a)
    )
    with pytest.raises(MalformedObject):
        certs.sign_membership(team=w.team, member="x", at=T0, admin_seed=w.admin.seed)


# === server key ============================================================================
def test_server_key_round_trip_and_rejections() -> None:
    w = world()
    log_pk, receipt_pk = sign_pk("log"), sign_pk("receipt")
    key = certs.make_server_key(log_pk=log_pk, receipt_pk=receipt_pk, created=T0)
    assert key == {"v": 1, "log_pk": b64e(log_pk), "receipt_pk": b64e(receipt_pk), "created": T0}
    leaf0 = {"server_key": key, "org": None, "sig": None}
    assert certs.verify_server_key(leaf0) == key
    with pytest.raises(OrgCertificationMissing):  # an org wants its own endorsement
        certs.verify_server_key(leaf0, root("a"))
    e = certs.endorse_server_key(key, org=w.org_a, root_seed=seed("root-a"))
    assert e["org"] == w.org_a
    assert b64d(e["sig"] or "") == sign(seed("root-a"), b"postbox/v1/serverkey" + cj(key))
    assert certs.verify_server_key(e, root("a")) == key
    assert certs.verify_server_key(e) == key
    with pytest.raises(OrgCertificationMissing):  # endorsed by org A, checked for org B
        certs.verify_server_key(e, root("b"))
    forged = certs.endorse_server_key(key, org=w.org_a, root_seed=seed("root-b"))
    with pytest.raises(BadSignature):
        certs.verify_server_key(forged, root("a"))
    for half in ({"org": None}, {"sig": None}):
        with pytest.raises(CertificateInvalid):
            certs.verify_server_key({**e, **half})
    assert_every_mutation_rejected(e, lambda s: certs.verify_server_key(s, root("a")))
    for pk in small_order_ed25519()[:3]:
        with pytest.raises(InvalidKey):
            certs.make_server_key(log_pk=pk, receipt_pk=receipt_pk, created=T0)
        with pytest.raises(InvalidKey):
            certs.make_server_key(log_pk=log_pk, receipt_pk=pk, created=T0)
        bad = {**leaf0, "server_key": {**key, "receipt_pk": b64e(pk)}}
        with pytest.raises(InvalidKey):
            certs.verify_server_key(bad)
    with pytest.raises(MalformedObject):
        certs.make_server_key(log_pk=log_pk[:31], receipt_pk=receipt_pk, created=T0)


def test_server_key_signature_is_unchecked_without_a_root() -> None:
    """Documents current behaviour: without a pinned root a present signature is not checked
    (the caller must pass the org root whenever ``org`` is set; see the report)."""
    w = world()
    key = certs.make_server_key(log_pk=sign_pk("log"), receipt_pk=sign_pk("receipt"), created=T0)
    e = certs.endorse_server_key(key, org=w.org_a, root_seed=seed("root-a"))
    junk = {**e, "sig": b64e(bytes(64))}
    assert certs.verify_server_key(junk) == key
    with pytest.raises(BadSignature):
        certs.verify_server_key(junk, root("a"))


# === procedures ============================================================================
def procedure(**changes: Any) -> Procedure:
    p: dict[str, Any] = {
        "v": 1,
        "org": world().org_a,
        "id": new_id("procedure"),
        "version": 3,
        "schema": {
            "type": "object",
            "required": ["name", "income"],
            "properties": {
                "name": {"type": "string", "maxLength": 200},
                "income": {"type": "string", "pattern": "^[0-9]+(,[0-9]{2})?$"},
                "number": {"type": ["string", "null"]},
            },
        },
        "labels": {"de": {"name": "Name", "income": "Einkommen (€)"}, "tr": {"name": "Ad"}},
        "documents": [{"name": "Reisepass", "required": True, "max_size": 10_000_000}],
    }
    p.update(changes)
    return cast(Procedure, p)


def test_procedure_round_trip() -> None:
    w = world()
    p = procedure()
    assert certs.check_procedure(p) is p
    s = certs.sign_procedure(p, w.admin.seed)
    assert s["by"] == w.admin.id_cert["kid"]
    assert b64d(s["sig"]) == sign(w.admin.seed, b"postbox/v1/procedure" + cj(p))
    assert certs.verify_procedure(s, w.admin.id_cert) == p
    assert certs.verify_procedure(cj_round_trip(s), w.admin.id_cert) == p


def test_procedure_signer_rules() -> None:
    w = world()
    s = certs.sign_procedure(procedure(), w.admin.seed)
    with pytest.raises(CertificateInvalid):  # admin of another org
        certs.verify_procedure(certs.sign_procedure(procedure(), w.admin_b.seed), w.admin_b.id_cert)
    with pytest.raises(CertificateInvalid):  # a caseworker
        certs.verify_procedure(
            certs.sign_procedure(procedure(), w.caseworker.seed), w.caseworker.id_cert
        )
    with pytest.raises(CertificateInvalid):  # by names another key
        certs.verify_procedure(s, cast(Cert, {**w.admin.id_cert, "kid": new_id("k")}))
    other = certs.sign_procedure(procedure(), w.caseworker.seed)
    with pytest.raises(BadSignature):
        certs.verify_procedure({**other, "by": w.admin.id_cert["kid"]}, w.admin.id_cert)
    for i in range(64):
        with pytest.raises(BadSignature):
            certs.verify_procedure({**s, "sig": flip_b64(s["sig"], i)}, w.admin.id_cert)
    assert_every_mutation_rejected(s, lambda x: certs.verify_procedure(x, w.admin.id_cert))


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "number"},
        {"type": "integer"},
        {"type": ["string", "number"]},
        {"type": "object", "properties": {"age": {"type": "integer"}}},
        {"type": "array", "items": {"type": "number"}},
        {"anyOf": [{"type": "string"}, {"type": "integer"}]},
        {"$defs": {"n": {"type": ["null", "integer"]}}},
    ],
)
def test_procedure_schema_with_number_types_is_rejected(schema: dict[str, Any]) -> None:
    with pytest.raises(MalformedObject):
        certs.check_procedure(procedure(schema=schema))
    with pytest.raises(MalformedObject):
        certs.sign_procedure(procedure(schema=schema), world().admin.seed)


@pytest.mark.parametrize(
    "schema",
    [
        {},
        {"type": "string"},
        {"properties": {"number": {"type": "string"}, "integer": {"type": "boolean"}}},
        {"properties": {"type": {"type": "string"}}},  # a field called "type"
        {"description": "type: number", "type": ["string", "null"]},
    ],
)
def test_procedure_schema_without_numbers_is_accepted(schema: dict[str, Any]) -> None:
    assert certs.check_procedure(procedure(schema=schema))


@pytest.mark.parametrize("schema", [{"enum": [1, 2]}, {"const": 3}])
def test_procedure_schema_with_numeric_enum_is_rejected(schema: dict[str, Any]) -> None:
    with pytest.raises(MalformedObject):
        certs.check_procedure(procedure(schema=schema))


def test_procedure_deep_schema_is_a_crypto_error() -> None:
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(5000):
        node["a"] = {}
        node = node["a"]
    with pytest.raises(NonCanonical):
        certs.check_procedure(procedure(schema=deep))


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"version": 0}, MalformedObject),
        ({"version": True}, MalformedObject),
        ({"v": 2}, MalformedObject),
        ({"org": "x"}, MalformedObject),
        ({"id": "residence-permit"}, MalformedObject),
        ({"schema": []}, MalformedObject),
        ({"labels": "de"}, MalformedObject),
        ({"documents": {}}, MalformedObject),
        ({"documents": [{"name": "x", "required": 1, "max_size": 1}]}, MalformedObject),
        ({"documents": [{"name": "x", "required": True, "max_size": -1}]}, MalformedObject),
        ({"documents": [{"name": "x" * 101, "required": True, "max_size": 1}]}, MalformedObject),
        ({"documents": [{"name": "x", "required": True}]}, MalformedObject),
        ({"documents": [{"name": "x", "required": False, "max_size": 1}] * 51}, MalformedObject),
        ({"extra": 1}, MalformedObject),
        ({"labels": {"de": {"x": 1.5}}}, NonCanonical),
        ({"schema": {"maximum": 1.5}}, NonCanonical),
        ({"labels": {"de": "\udc00"}}, NonCanonical),
        ({"schema": {"x": 2**53}}, NonCanonical),
    ],
)
def test_procedure_shape(changes: dict[str, Any], error: type[CryptoError]) -> None:
    with pytest.raises(error):
        certs.check_procedure(procedure(**changes))


def test_form_digest() -> None:
    p = procedure()
    d = certs.form_digest(p)
    assert len(d) == 64
    assert d == H(b"postbox/v1/form" + cj(p), 64)
    assert d != H(b"postbox/v1/procedure" + cj(p), 64)
    reordered = cast(Procedure, dict(reversed(list(p.items()))))
    assert certs.form_digest(reordered) == d
    assert certs.form_digest(procedure(version=4)) != d
    for _, variant in mutations(p):
        with contextlib.suppress(NonCanonical):
            assert certs.form_digest(variant) != d


json_values = st.recursive(
    st.none() | st.booleans() | st.text(max_size=8) | st.integers(-(2**53) + 1, 2**53 - 1),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=12,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    labels=st.dictionaries(st.sampled_from(["de", "en", "tr", "ar", "uk"]), json_values, max_size=3)
)
def test_procedure_property(labels: dict[str, Any]) -> None:
    try:
        cj(labels)
    except NonCanonical:
        return
    p = procedure(labels=labels)
    s = certs.sign_procedure(p, world().admin.seed)
    assert certs.verify_procedure(cj_round_trip(s), world().admin.id_cert) == p
    assert certs.form_digest(cj_round_trip(p)) == certs.form_digest(p)


# === domain separation between the signed objects ==========================================
def test_signatures_do_not_transfer_between_object_types() -> None:
    """Each signed object uses its own label: a valid signature of one kind never verifies
    as another, even over the same bytes."""
    w = world()
    a = w.admin
    rev = certs.make_revocation(
        subject=w.caseworker.account,
        kid=w.caseworker.id_cert["kid"],
        at=T0,
        reason="left",
        signer_seed=a.seed,
    )
    m = certs.sign_membership(team=w.team, member=w.caseworker.account, at=T0, admin_seed=a.seed)
    p = certs.sign_procedure(procedure(), a.seed)
    # swap signatures across object kinds signed by the same admin key
    with pytest.raises(BadSignature):
        certs.verify_membership({**m, "sig": rev["sig"]}, a.id_cert, w.org_a)
    with pytest.raises(BadSignature):
        certs.verify_procedure({**p, "sig": m["sig"]}, a.id_cert)
    with pytest.raises(BadSignature):
        certs.verify_team_cert({**w.team_cert, "sig": p["sig"]}, a.id_cert)
    # the same body signed under another label
    mem_as_keycert = sign(a.seed, domain.KEYCERT + cj(m["membership"]))
    with pytest.raises(BadSignature):
        certs.verify_membership({**m, "sig": b64e(mem_as_keycert)}, a.id_cert, w.org_a)


@pytest.mark.parametrize(
    "schema",
    [{"const": [1]}, {"default": {"n": 2}}, {"enum": [[1, 2]]}, {"examples": [{"a": [3]}]}],
)
def test_procedure_schema_with_nested_numbers_is_rejected(schema: dict[str, Any]) -> None:
    with pytest.raises(MalformedObject):
        certs.check_procedure(procedure(schema=schema))
