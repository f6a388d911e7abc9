"""Vectors for key certificates and the other signed key objects: tests/vectors/keycert.json.

``cases`` and ``reject`` hold served key certificates with exactly the fields of
PROTOCOL.md §10 (``signer_pk``, ``cert``, ``sig``, ``by``, ``org_pk``, ``org_sig``, ``prev``,
``prev_sig``; null where none), plus what a verifier needs to run every check of §3:

* ``check``: ``identity`` (self-signed; with ``org_root`` when org-certified; with
  ``prev_cert`` when rotated, checked with the old key ``prev_pk`` over
  ``"postbox/v1/rotate" ‖ cj(cert)``), ``encryption`` (signed by ``signer_cert``, the
  subject's identity) or ``team`` (signed by ``signer_cert``, an org admin's identity);
* ``signer_seed``, ``org_seed``, ``prev_seed``: the Ed25519 seeds, so that every signature
  is rebuilt byte for byte (Ed25519 is deterministic);
* ``org_root``: the served org root ``{"org_root", "sig"}`` whose ``pk`` is ``org_pk``.

``objects`` and ``objects_reject`` hold the other signed objects, each with a ``type``:
``org_root`` (with its ``fingerprint``), ``revocation``, ``team_wrap``, ``membership``,
``server_key`` and ``procedure`` (with its ``form_digest``). Team wraps carry
``crypto_box_seal(team_sk, member_pk)``; a sealed box is randomized, so implementations
*open* it with ``member_sk``. To keep this file byte-stable, the generator seals with a
fixed ephemeral key ``eph_sk`` (``nonce = H(epk ‖ member_pk, 24)``, exactly what
``crypto_box_seal`` computes internally).

Every input comes from ``H("vector-seed/keycert/<label>")``. Run
``python tests/vectors/gen_keycert.py`` to rewrite keycert.json (``generate.py`` does the
same through :func:`build`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

import nacl.bindings

from postbox.crypto import certs, domain
from postbox.crypto.certs import Cert, SignedCert
from postbox.crypto.encoding import ID_BYTES, b64d, b64e, cj
from postbox.crypto.kid import derive_kid
from postbox.crypto.primitives import H, box_keypair, sign, sign_keypair

SEED: Final = b"vector-seed/keycert/"
T0: Final = 1_767_225_600_000  # 2026-01-01T00:00:00Z
DAY: Final = 86_400_000
#: a point of order 8 on Edwards25519 (libsodium's small-order blocklist)
ED25519_ORDER8: Final = bytes.fromhex(
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"
)
#: the neutral element of Edwards25519, y = 1
ED25519_IDENTITY: Final = b"\x01" + bytes(31)
#: a Curve25519 u-coordinate of order 8 (libsodium's low-order blocklist)
X25519_ORDER8: Final = bytes.fromhex(
    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"
)
#: the group order of Edwards25519's prime-order subgroup
L: Final = 2**252 + 27742317777372353535851937790883648493


def seed(label: str) -> bytes:
    return H(SEED + label.encode())


def ident(label: str) -> str:
    return b64e(H(SEED + b"id/" + label.encode(), ID_BYTES))


def dumps(data: Any) -> str:
    return json.dumps(data, indent=1, ensure_ascii=False, sort_keys=True) + "\n"


def deterministic_seal(message: bytes, pk: bytes, eph_sk: bytes) -> bytes:
    """``crypto_box_seal`` with a chosen ephemeral secret key (for byte-stable vectors only)."""
    epk = box_keypair(eph_sk)[0]
    nonce = H(epk + pk, 24)
    return epk + bytes(nacl.bindings.crypto_box(message, nonce, pk, eph_sk))


# --- the parties -------------------------------------------------------------------------
class Party:
    def __init__(self, label: str, kind: certs.Kind, org: str | None, root_seed: bytes | None):
        self.label = label
        self.account = ident(label)
        self.kind: certs.Kind = kind
        self.org = org
        self.seed = seed(label + "/identity")
        self.pk = sign_keypair(self.seed)[0]
        self.root_seed = root_seed
        self.identity: Cert = certs.make_cert(
            subject=self.account, kind=kind, org=org, use="sign", pk=self.pk, created=T0
        )
        self.enc_sk = seed(label + "/encrypt")
        self.enc_pk = box_keypair(self.enc_sk)[0]
        self.encryption: Cert = certs.make_cert(
            subject=self.account,
            kind=kind,
            org=org,
            use="encrypt",
            pk=self.enc_pk,
            created=T0,
            expires=T0 + 730 * DAY,
        )

    def served_identity(self) -> SignedCert:
        signed = certs.sign_cert(self.identity, self.seed)
        if self.root_seed is not None:
            signed = certs.org_certify(signed, self.root_seed)
        return signed


ORG_A: Final = ident("org-a")
ORG_B: Final = ident("org-b")
ROOT_A_SEED: Final = seed("org-a/root")
ROOT_B_SEED: Final = seed("org-b/root")
ROOT_A: Final = certs.make_org_root(
    org=ORG_A, name="Stadt Nürnberg – Ausländerbehörde", root_seed=ROOT_A_SEED, created=T0
)
ROOT_B: Final = certs.make_org_root(
    org=ORG_B, name="Landratsamt Görlitz", root_seed=ROOT_B_SEED, created=T0
)
ROOTS: Final = {ORG_A: (ROOT_A, ROOT_A_SEED), ORG_B: (ROOT_B, ROOT_B_SEED)}


def parties() -> dict[str, Party]:
    return {
        "citizen": Party("citizen", "citizen", None, None),
        "citizen2": Party("citizen2", "citizen", None, None),
        "caseworker": Party("caseworker", "caseworker", ORG_A, ROOT_A_SEED),
        "caseworker2": Party("caseworker2", "caseworker", ORG_A, ROOT_A_SEED),
        "connector": Party("connector", "connector", ORG_A, ROOT_A_SEED),
        "admin": Party("admin", "admin", ORG_A, ROOT_A_SEED),
        "admin_b": Party("admin-b", "admin", ORG_B, ROOT_B_SEED),
    }


TEAM: Final = ident("team")
TEAM_SK: Final = seed("team/encrypt")


def team_cert(team_sk: bytes = TEAM_SK, created: int = T0) -> Cert:
    return certs.make_cert(
        subject=TEAM,
        kind="team",
        org=ORG_A,
        use="encrypt",
        pk=box_keypair(team_sk)[0],
        created=created,
        expires=created + 365 * DAY,
    )


# --- key certificate cases ---------------------------------------------------------------
def keycert_case(
    name: str,
    check: str,
    signed: dict[str, Any] | SignedCert,
    *,
    signer_seed: bytes | None,
    signer_pk: bytes,
    signer_cert: Cert | dict[str, Any] | None = None,
    org: str | None = None,
    org_seed: bytes | None = None,
    prev_seed: bytes | None = None,
    prev_cert: Cert | None = None,
    error: str | None = None,
) -> dict[str, Any]:
    """One served certificate with every input; ``org`` names the pinned root to check with."""
    org_root = ROOTS[org][0] if org is not None else None
    case: dict[str, Any] = {
        "name": name,
        "check": check,
        "cert": signed["cert"],
        "sig": signed["sig"],
        "by": signed["by"],
        "org_sig": signed["org_sig"],
        "prev": signed["prev"],
        "prev_sig": signed["prev_sig"],
        "signer_pk": b64e(signer_pk),
        "signer_seed": None if signer_seed is None else b64e(signer_seed),
        "signer_cert": signer_cert,
        "org_root": org_root,
        "org_pk": None if org_root is None else org_root["org_root"]["pk"],
        "org_seed": None if org_seed is None else b64e(org_seed),
        "prev_pk": None if prev_cert is None else prev_cert["pk"],
        "prev_seed": None if prev_seed is None else b64e(prev_seed),
        "prev_cert": prev_cert,
    }
    if error is not None:
        case["error"] = error
    return case


def _identity_case(name: str, p: Party, **kw: Any) -> dict[str, Any]:
    return keycert_case(
        name,
        "identity",
        p.served_identity(),
        signer_seed=p.seed,
        signer_pk=p.pk,
        org=p.org,
        org_seed=p.root_seed,
        **kw,
    )


def _encryption_case(name: str, p: Party) -> dict[str, Any]:
    return keycert_case(
        name,
        "encryption",
        certs.sign_cert(p.encryption, p.seed),
        signer_seed=p.seed,
        signer_pk=p.pk,
        signer_cert=p.identity,
    )


def rotation(p: Party, label: str) -> tuple[bytes, Cert, SignedCert]:
    """(new seed, new identity, served new identity linked to p's identity)."""
    new_seed = seed(label)
    new = certs.make_cert(
        subject=p.account,
        kind=p.kind,
        org=p.org,
        use="sign",
        pk=sign_keypair(new_seed)[0],
        created=T0 + 90 * DAY,
    )
    signed = certs.sign_cert(new, new_seed)
    if p.root_seed is not None:
        signed = certs.org_certify(signed, p.root_seed)
    return new_seed, new, certs.link_rotation(signed, p.seed)


def keycert_cases(ps: dict[str, Party]) -> list[dict[str, Any]]:
    citizen, caseworker, admin = ps["citizen"], ps["caseworker"], ps["admin"]
    out = [
        _identity_case("citizen identity (self-signed)", citizen),
        _encryption_case("citizen encryption certificate (730 days)", citizen),
        _identity_case("caseworker identity with org_sig", caseworker),
        _encryption_case("caseworker encryption certificate", caseworker),
        _identity_case("connector identity with org_sig", ps["connector"]),
        _identity_case("admin identity with org_sig", admin),
        _identity_case("admin identity of another organisation", ps["admin_b"]),
        keycert_case(
            "team encryption certificate signed by an org admin",
            "team",
            certs.sign_cert(team_cert(), admin.seed),
            signer_seed=admin.seed,
            signer_pk=admin.pk,
            signer_cert=admin.identity,
        ),
    ]
    # an identity that expires, longer than an encryption key may live
    exp_seed = seed("citizen2/identity-expiring")
    expiring = certs.make_cert(
        subject=ps["citizen2"].account,
        kind="citizen",
        org=None,
        use="sign",
        pk=sign_keypair(exp_seed)[0],
        created=T0,
        expires=T0 + 3650 * DAY,
    )
    out.append(
        keycert_case(
            "citizen identity with an expiry",
            "identity",
            certs.sign_cert(expiring, exp_seed),
            signer_seed=exp_seed,
            signer_pk=sign_keypair(exp_seed)[0],
        )
    )
    for p, label in ((citizen, "citizen/identity-2"), (caseworker, "caseworker/identity-2")):
        new_seed, _, linked = rotation(p, label)
        out.append(
            keycert_case(
                f"rotated {p.kind} identity linked to the previous one",
                "identity",
                linked,
                signer_seed=new_seed,
                signer_pk=sign_keypair(new_seed)[0],
                org=p.org,
                org_seed=p.root_seed,
                prev_seed=p.seed,
                prev_cert=p.identity,
            )
        )
    return out


def _flip(text: str, index: int) -> str:
    raw = bytearray(b64d(text))
    raw[index] ^= 0x01
    return b64e(bytes(raw))


def keycert_rejects(ps: dict[str, Party]) -> list[dict[str, Any]]:
    citizen, citizen2, caseworker, admin = (
        ps["citizen"],
        ps["citizen2"],
        ps["caseworker"],
        ps["admin"],
    )
    out: list[dict[str, Any]] = []

    def identity(name: str, error: str, signed: Any, p: Party, **kw: Any) -> None:
        kw.setdefault("org", p.org)
        kw.setdefault("signer_seed", p.seed)
        kw.setdefault("signer_pk", p.pk)
        out.append(keycert_case(name, "identity", signed, error=error, **kw))

    served = citizen.served_identity()
    identity(
        "bad sig (one byte flipped)",
        "BadSignature",
        {**served, "sig": _flip(served["sig"], 10)},
        citizen,
    )
    tampered = {**served, "cert": {**served["cert"], "created": T0 + 1}}
    identity("cert changed after signing", "BadSignature", tampered, citizen)
    sig = b64d(served["sig"])
    s_plus_l = sig[:32] + (int.from_bytes(sig[32:], "little") + L).to_bytes(32, "little")
    identity(
        "sig with S + L (non-canonical S)",
        "BadSignature",
        {**served, "sig": b64e(s_plus_l)},
        citizen,
    )
    other_kid = derive_kid("sign", citizen2.pk)
    identity(
        "kid mismatch",
        "KeyIdMismatch",
        _signed_raw({**citizen.identity, "kid": other_kid}, citizen.seed),
        citizen,
    )
    identity(
        "kid derived for use encrypt",
        "KeyIdMismatch",
        _signed_raw({**citizen.identity, "kid": derive_kid("encrypt", citizen.pk)}, citizen.seed),
        citizen,
    )
    identity(
        "alg does not match use",
        "CertificateInvalid",
        _signed_raw({**citizen.identity, "alg": "x25519-sealbox"}, citizen.seed),
        citizen,
    )
    identity(
        "team signing certificate",
        "CertificateInvalid",
        _signed_raw(
            {**caseworker.identity, "kind": "team", "subject": TEAM}, caseworker.seed, ROOT_A_SEED
        ),
        caseworker,
    )
    identity(
        "caseworker without org",
        "CertificateInvalid",
        _signed_raw({**caseworker.identity, "org": None}, caseworker.seed),
        caseworker,
        org=None,
    )
    identity(
        "not self-signed",
        "CertificateInvalid",
        certs.sign_cert(citizen.identity, citizen2.seed),
        citizen,
        signer_seed=citizen2.seed,
        signer_pk=citizen2.pk,
    )
    identity(
        "missing org_sig",
        "OrgCertificationMissing",
        certs.sign_cert(caseworker.identity, caseworker.seed),
        caseworker,
    )
    identity(
        "org_sig from another organisation's root",
        "OrgCertificationMissing",
        certs.org_certify(certs.sign_cert(caseworker.identity, caseworker.seed), ROOT_B_SEED),
        caseworker,
        org=ORG_B,
        org_seed=ROOT_B_SEED,
    )
    identity(
        "org_sig by another key than the pinned root",
        "BadSignature",
        certs.org_certify(certs.sign_cert(caseworker.identity, caseworker.seed), ROOT_B_SEED),
        caseworker,
        org_seed=ROOT_B_SEED,
    )
    cw = caseworker.served_identity()
    identity(
        "org_sig one byte flipped",
        "BadSignature",
        {**cw, "org_sig": _flip(cast_str(cw["org_sig"]), 40)},
        caseworker,
    )
    for label, pk in (("order 8", ED25519_ORDER8), ("identity point", ED25519_IDENTITY)):
        cert = {**citizen.identity, "pk": b64e(pk), "kid": derive_kid("sign", pk)}
        signed = {
            "cert": cert,
            "sig": served["sig"],
            "by": cert["kid"],
            "org_sig": None,
            "prev": None,
            "prev_sig": None,
        }
        identity(
            f"small-order Ed25519 identity key ({label})",
            "InvalidKey",
            signed,
            citizen,
            signer_seed=None,
            signer_pk=pk,
        )
    identity(
        "unknown member in cert",
        "MalformedObject",
        {**served, "cert": {**served["cert"], "name": "Alice"}},
        citizen,
    )
    identity(
        "sig with base64 padding",
        "MalformedObject",
        {**served, "sig": served["sig"] + "=="},
        citizen,
    )
    identity(
        "prev without prev_sig",
        "CertificateInvalid",
        {**served, "prev": citizen.identity["kid"]},
        citizen,
    )

    # rotations
    new_seed, new, linked = rotation(citizen, "citizen/identity-2")
    new_pk = sign_keypair(new_seed)[0]
    rot = {
        "signer_seed": new_seed,
        "signer_pk": new_pk,
        "prev_seed": citizen.seed,
        "prev_cert": citizen.identity,
    }
    identity(
        "unlinked rotation",
        "CertificateInvalid",
        {**linked, "prev": None, "prev_sig": None},
        citizen,
        **rot,
    )
    identity(
        "rotation linked to another identity",
        "CertificateInvalid",
        linked,
        citizen,
        **{**rot, "prev_seed": citizen2.seed, "prev_cert": citizen2.identity},
    )
    identity(
        "rotation prev_sig by another key",
        "BadSignature",
        {**linked, "prev_sig": b64e(sign(citizen2.seed, domain.ROTATE + cj(new)))},
        citizen,
        **rot,
    )
    identity(
        "rotation prev_sig over the keycert label",
        "BadSignature",
        {**linked, "prev_sig": b64e(sign(citizen.seed, domain.KEYCERT + cj(new)))},
        citizen,
        **rot,
    )

    # encryption certificates
    def encryption(name: str, error: str, signed: Any, signer: Party, subject: Party) -> None:
        out.append(
            keycert_case(
                name,
                "encryption",
                signed,
                signer_seed=signer.seed,
                signer_pk=signer.pk,
                signer_cert=signer.identity,
                error=error,
            )
        )
        del subject

    enc = certs.sign_cert(citizen.encryption, citizen.seed)
    encryption(
        "encryption cert with a bad sig",
        "BadSignature",
        {**enc, "sig": _flip(enc["sig"], 63)},
        citizen,
        citizen,
    )
    encryption(
        "encryption cert signed by another identity",
        "CertificateInvalid",
        certs.sign_cert(citizen.encryption, citizen2.seed),
        citizen2,
        citizen,
    )
    encryption(
        "encryption cert without expiry",
        "CertificateInvalid",
        _signed_raw({**citizen.encryption, "expires": None}, citizen.seed),
        citizen,
        citizen,
    )
    encryption(
        "encryption cert valid for three years",
        "CertificateInvalid",
        _signed_raw({**citizen.encryption, "expires": T0 + 3 * 365 * DAY}, citizen.seed),
        citizen,
        citizen,
    )
    encryption(
        "encryption cert with org_sig",
        "CertificateInvalid",
        {**enc, "org_sig": enc["sig"]},
        citizen,
        citizen,
    )
    low = {
        **citizen.encryption,
        "pk": b64e(X25519_ORDER8),
        "kid": derive_kid("encrypt", X25519_ORDER8),
    }
    encryption(
        "low-order X25519 encryption key",
        "InvalidKey",
        _signed_raw(low, citizen.seed),
        citizen,
        citizen,
    )
    zero = {**citizen.encryption, "pk": b64e(bytes(32)), "kid": derive_kid("encrypt", bytes(32))}
    encryption(
        "all-zero X25519 encryption key",
        "InvalidKey",
        _signed_raw(zero, citizen.seed),
        citizen,
        citizen,
    )

    # team certificates
    def team(name: str, error: str, signed: Any, signer: Party) -> None:
        out.append(
            keycert_case(
                name,
                "team",
                signed,
                signer_seed=signer.seed,
                signer_pk=signer.pk,
                signer_cert=signer.identity,
                error=error,
            )
        )

    team(
        "team cert signed by a caseworker",
        "CertificateInvalid",
        certs.sign_cert(team_cert(), caseworker.seed),
        caseworker,
    )
    team(
        "team cert signed by another organisation's admin",
        "CertificateInvalid",
        certs.sign_cert(team_cert(), ps["admin_b"].seed),
        ps["admin_b"],
    )
    t = certs.sign_cert(team_cert(), admin.seed)
    team("team cert with a bad sig", "BadSignature", {**t, "sig": _flip(t["sig"], 0)}, admin)
    return out


def cast_str(value: str | None) -> str:
    assert value is not None
    return value


def _signed_raw(cert: dict[str, Any], signer_seed: bytes, root_seed: bytes | None = None) -> Any:
    """Sign a certificate body without checking it (for must-reject vectors)."""
    pk = sign_keypair(signer_seed)[0]
    return {
        "cert": cert,
        "sig": b64e(sign(signer_seed, domain.KEYCERT + cj(cert))),
        "by": derive_kid("sign", pk),
        "org_sig": None if root_seed is None else b64e(sign(root_seed, domain.ORGCERT + cj(cert))),
        "prev": None,
        "prev_sig": None,
    }


# --- other signed objects ------------------------------------------------------------------
def procedure() -> dict[str, Any]:
    return {
        "v": 1,
        "org": ORG_A,
        "id": ident("procedure/residence-permit"),
        "version": 2,
        "schema": {
            "type": "object",
            "required": ["name", "income"],
            "properties": {
                "name": {"type": "string", "maxLength": 200},
                "income": {"type": "string", "pattern": "^[0-9]+(,[0-9]{2})?$"},
                "children": {"type": "array", "items": {"type": "string"}},
            },
        },
        "labels": {
            "de": {"name": "Name", "income": "Monatliches Einkommen (€)"},
            "tr": {"name": "Adı", "income": "Aylık gelir (€)"},
            "ar": {"name": "الاسم"},
            "uk": {"name": "Ім'я"},
        },
        "documents": [
            {"name": "Reisepass", "required": True, "max_size": 10_000_000},
            {"name": "Gehaltsnachweise", "required": False, "max_size": 20_000_000},
        ],
    }


def team_wrap_object(
    ps: dict[str, Party], member: Party, by: Party, tc: Cert, team_sk: bytes, label: str
) -> dict[str, Any]:
    eph_sk = seed(label + "/eph")
    wrap = {
        "v": 1,
        "team": tc["subject"],
        "team_kid": tc["kid"],
        "member": member.account,
        "member_kid": member.encryption["kid"],
        "by": by.account,
        "sealed": b64e(deterministic_seal(team_sk, member.enc_pk, eph_sk)),
    }
    signed = {
        "team_wrap": wrap,
        "sig": b64e(sign(by.seed, domain.TEAMWRAP + cj(wrap))),
        "by_kid": derive_kid("sign", by.pk),
    }
    return {
        "type": "team_wrap",
        "team_cert": tc,
        "team_sk": b64e(team_sk),
        "member_cert": member.encryption,
        "member_pk": b64e(member.enc_pk),
        "member_sk": b64e(member.enc_sk),
        "by_cert": by.identity,
        "by_seed": b64e(by.seed),
        "current_members": sorted([ps["caseworker"].account, ps["caseworker2"].account]),
        "eph_sk": b64e(eph_sk),
        "team_wrap": signed,
    }


def objects(ps: dict[str, Party]) -> list[dict[str, Any]]:
    citizen, caseworker, admin = ps["citizen"], ps["caseworker"], ps["admin"]
    out: list[dict[str, Any]] = []
    for name, (root, root_seed) in (("org root A", ROOTS[ORG_A]), ("org root B", ROOTS[ORG_B])):
        out.append(
            {
                "name": name,
                "type": "org_root",
                "org_seed": b64e(root_seed),
                "org_pk": root["org_root"]["pk"],
                "org_root": root,
                "fingerprint": certs.org_fingerprint(root["org_root"]),
            }
        )
    out.append(
        {
            "name": "revocation by the subject (superseded encryption key)",
            "type": "revocation",
            "signer_seed": b64e(citizen.seed),
            "signer_cert": citizen.identity,
            "subject_org": None,
            "revoke": certs.make_revocation(
                subject=citizen.account,
                kid=citizen.encryption["kid"],
                at=T0 + 30 * DAY,
                reason="superseded",
                signer_seed=citizen.seed,
            ),
        }
    )
    out.append(
        {
            "name": "revocation by an org admin (caseworker left)",
            "type": "revocation",
            "signer_seed": b64e(admin.seed),
            "signer_cert": admin.identity,
            "subject_org": ORG_A,
            "revoke": certs.make_revocation(
                subject=caseworker.account,
                kid=caseworker.identity["kid"],
                at=T0 + 60 * DAY,
                reason="left",
                signer_seed=admin.seed,
            ),
        }
    )
    out.append(
        {
            "name": "team wrap to a member",
            **team_wrap_object(ps, ps["caseworker2"], caseworker, team_cert(), TEAM_SK, "wrap"),
        }
    )
    for name, member in (("member_add", ps["caseworker2"]), ("member_remove", caseworker)):
        out.append(
            {
                "name": f"membership ({name})",
                "type": "membership",
                "admin_seed": b64e(admin.seed),
                "admin_cert": admin.identity,
                "team_org": ORG_A,
                "membership": certs.sign_membership(
                    team=TEAM, member=member.account, at=T0 + DAY, admin_seed=admin.seed
                ),
            }
        )
    key = certs.make_server_key(
        log_pk=sign_keypair(seed("server/log"))[0],
        receipt_pk=sign_keypair(seed("server/receipt"))[0],
        created=T0,
    )
    out.append(
        {
            "name": "server key (leaf 0, not endorsed)",
            "type": "server_key",
            "root_seed": None,
            "org_root": None,
            "server_key": {"server_key": key, "org": None, "sig": None},
        }
    )
    out.append(
        {
            "name": "server key endorsed by org root A",
            "type": "server_key",
            "root_seed": b64e(ROOT_A_SEED),
            "org_root": ROOT_A["org_root"],
            "server_key": certs.endorse_server_key(key, org=ORG_A, root_seed=ROOT_A_SEED),
        }
    )
    p = procedure()
    out.append(
        {
            "name": "procedure signed by an org admin",
            "type": "procedure",
            "admin_seed": b64e(admin.seed),
            "admin_cert": admin.identity,
            "procedure": certs.sign_procedure(certs.check_procedure(p), admin.seed),
            "form_digest": b64e(certs.form_digest(certs.check_procedure(p))),
        }
    )
    return out


def objects_reject(ps: dict[str, Party]) -> list[dict[str, Any]]:
    citizen, citizen2, caseworker, admin = (
        ps["citizen"],
        ps["citizen2"],
        ps["caseworker"],
        ps["admin"],
    )
    out: list[dict[str, Any]] = []
    root = ROOT_A
    out.append(
        {
            "name": "org root name changed after signing",
            "type": "org_root",
            "error": "BadSignature",
            "org_root": {**root, "org_root": {**root["org_root"], "name": "Stadt Fürth"}},
        }
    )
    bad_root = {**root["org_root"], "pk": b64e(ED25519_ORDER8)}
    out.append(
        {
            "name": "org root with a small-order key",
            "type": "org_root",
            "error": "InvalidKey",
            "org_root": {"org_root": bad_root, "sig": root["sig"]},
        }
    )
    rev = certs.make_revocation(
        subject=citizen.account,
        kid=citizen.encryption["kid"],
        at=T0,
        reason="compromised",
        signer_seed=citizen2.seed,
    )
    out.append(
        {
            "name": "revocation by another citizen",
            "type": "revocation",
            "error": "CertificateInvalid",
            "signer_seed": b64e(citizen2.seed),
            "signer_cert": citizen2.identity,
            "subject_org": None,
            "revoke": rev,
        }
    )
    rev_b = certs.make_revocation(
        subject=caseworker.account,
        kid=caseworker.identity["kid"],
        at=T0,
        reason="left",
        signer_seed=ps["admin_b"].seed,
    )
    out.append(
        {
            "name": "revocation by another organisation's admin",
            "type": "revocation",
            "error": "CertificateInvalid",
            "signer_seed": b64e(ps["admin_b"].seed),
            "signer_cert": ps["admin_b"].identity,
            "subject_org": ORG_A,
            "revoke": rev_b,
        }
    )
    own = certs.make_revocation(
        subject=citizen.account,
        kid=citizen.encryption["kid"],
        at=T0,
        reason="compromised",
        signer_seed=citizen.seed,
    )
    out.append(
        {
            "name": "revocation with a bad sig",
            "type": "revocation",
            "error": "BadSignature",
            "signer_seed": b64e(citizen.seed),
            "signer_cert": citizen.identity,
            "subject_org": None,
            "revoke": {**own, "sig": _flip(own["sig"], 5)},
        }
    )

    base = team_wrap_object(ps, ps["caseworker2"], caseworker, team_cert(), TEAM_SK, "wrap")
    out.append(
        {
            **base,
            "name": "team wrap by a non-member",
            "error": "CertificateInvalid",
            "current_members": [ps["caseworker2"].account],
        }
    )
    evil = team_wrap_object(
        ps, ps["caseworker2"], caseworker, team_cert(), seed("mallory"), "wrap-evil"
    )
    out.append(
        {
            **evil,
            "name": "team wrap holding a key that is not the certified one",
            "error": "KeySubstitution",
            "team_sk": base["team_sk"],
        }
    )
    out.append(
        {
            **base,
            "name": "team wrap opened with another member's key",
            "error": "KeySubstitution",
            "member_cert": citizen.encryption,
            "member_pk": b64e(citizen.enc_pk),
            "member_sk": b64e(citizen.enc_sk),
        }
    )
    w = base["team_wrap"]
    out.append(
        {
            **base,
            "name": "team wrap with a bad sig",
            "error": "BadSignature",
            "team_wrap": {**w, "sig": _flip(w["sig"], 31)},
        }
    )
    m = certs.sign_membership(team=TEAM, member=citizen.account, at=T0, admin_seed=caseworker.seed)
    out.append(
        {
            "name": "membership signed by a caseworker",
            "type": "membership",
            "error": "CertificateInvalid",
            "admin_seed": b64e(caseworker.seed),
            "admin_cert": caseworker.identity,
            "team_org": ORG_A,
            "membership": m,
        }
    )
    key = certs.make_server_key(
        log_pk=sign_keypair(seed("server/log"))[0],
        receipt_pk=sign_keypair(seed("server/receipt"))[0],
        created=T0,
    )
    out.append(
        {
            "name": "server key endorsed by another organisation",
            "type": "server_key",
            "error": "OrgCertificationMissing",
            "root_seed": b64e(ROOT_B_SEED),
            "org_root": ROOT_A["org_root"],
            "server_key": certs.endorse_server_key(key, org=ORG_B, root_seed=ROOT_B_SEED),
        }
    )
    out.append(
        {
            "name": "server key endorsement by another root key",
            "type": "server_key",
            "error": "BadSignature",
            "root_seed": b64e(ROOT_B_SEED),
            "org_root": ROOT_A["org_root"],
            "server_key": certs.endorse_server_key(key, org=ORG_A, root_seed=ROOT_B_SEED),
        }
    )
    p = procedure()
    numeric = {**p, "schema": {"type": "object", "properties": {"age": {"type": "integer"}}}}
    out.append(
        {
            "name": "procedure schema with a number type",
            "type": "procedure",
            "error": "MalformedObject",
            "admin_seed": b64e(admin.seed),
            "admin_cert": admin.identity,
            "procedure": {
                "procedure": numeric,
                "sig": b64e(sign(admin.seed, domain.PROCEDURE + cj(numeric))),
                "by": admin.identity["kid"],
            },
            "form_digest": None,
        }
    )
    out.append(
        {
            "name": "procedure signed by a caseworker",
            "type": "procedure",
            "error": "CertificateInvalid",
            "admin_seed": b64e(caseworker.seed),
            "admin_cert": caseworker.identity,
            "procedure": certs.sign_procedure(certs.check_procedure(p), caseworker.seed),
            "form_digest": None,
        }
    )
    return out


def build() -> dict[str, Any]:
    ps = parties()
    return {
        "cases": keycert_cases(ps),
        "reject": keycert_rejects(ps),
        "objects": objects(ps),
        "objects_reject": objects_reject(ps),
    }


if __name__ == "__main__":
    Path(__file__).with_name("keycert.json").write_text(dumps(build()), encoding="utf-8")
