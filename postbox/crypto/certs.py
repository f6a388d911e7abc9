"""Key certificates and the other signed key objects of PROTOCOL.md §3, §7 and §9.

Everything here is create-and-verify over closed v1 objects:

* key certificates (identity: self-signed, org-certified for staff; encryption: signed by
  the subject's identity; team encryption: signed by an org admin's identity),
* identity rotation links (``prev``/``prev_sig``),
* the org root (self-signed) and its fingerprint, the string printed on paper letters,
* revocations, team key wraps, memberships, server-key endorsements and procedures.

Verification functions take the already-verified signer certificate as an argument and
return the verified object; they never fetch anything. Who is allowed to sign what is
checked here; whether the signer's certificate itself is current (log chain, revocations)
is the caller's job via :func:`check_valid_at` and ``postbox.crypto.transparency``.

This module holds the key certificates, the org root and the fingerprints; the statements
(:mod:`postbox.crypto.statements`) and procedures (:mod:`postbox.crypto.procedures`) live in
their own modules and are re-exported here, so ``certs.<name>`` reaches every object above.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final, Literal, TypedDict, cast, get_args

from postbox.crypto import crockford, domain, shapes
from postbox.crypto.encoding import KEY_BYTES, SIGNATURE_BYTES, b64d, b64e
from postbox.crypto.errors import (
    CertificateExpired,
    CertificateInvalid,
    CertificateRevoked,
    KeyIdMismatch,
    MalformedObject,
    OrgCertificationMissing,
)
from postbox.crypto.kid import derive_kid
from postbox.crypto.primitives import H, check_box_pk, check_sign_pk, sign, sign_keypair, verify
from postbox.crypto.procedures import (
    DOCUMENT_SHAPE,
    PROCEDURE_SHAPE,
    SIGNED_PROCEDURE_SHAPE,
    Procedure,
    SignedProcedure,
    check_procedure,
    form_digest,
    sign_procedure,
    verify_procedure,
)
from postbox.crypto.signed import PK, SIG, V1, cert_pk, signed_bytes
from postbox.crypto.statements import (
    MEMBERSHIP_SHAPE,
    REVOCATION_SHAPE,
    SERVER_KEY_SHAPE,
    SIGNED_MEMBERSHIP_SHAPE,
    SIGNED_REVOCATION_SHAPE,
    SIGNED_SERVER_KEY_SHAPE,
    SIGNED_TEAM_WRAP_SHAPE,
    TEAM_WRAP_SHAPE,
    Membership,
    Revocation,
    ServerKey,
    SignedMembership,
    SignedRevocation,
    SignedServerKey,
    SignedTeamWrap,
    TeamWrap,
    endorse_server_key,
    make_revocation,
    make_server_key,
    make_team_wrap,
    open_team_wrap,
    sign_membership,
    verify_membership,
    verify_revocation,
    verify_server_key,
)

__all__ = [
    "ALGS",
    "CERT_SHAPE",
    "DOCUMENT_SHAPE",
    "FINGERPRINT_BYTES",
    "KINDS",
    "MAX_ENCRYPT_VALIDITY_MS",
    "MAX_NAME_BYTES",
    "MEMBERSHIP_SHAPE",
    "ORG_CERTIFIED_KINDS",
    "ORG_ROOT_SHAPE",
    "PK",
    "PROCEDURE_SHAPE",
    "REVOCATION_SHAPE",
    "SERVER_KEY_SHAPE",
    "SIG",
    "SIGNED_CERT_SHAPE",
    "SIGNED_MEMBERSHIP_SHAPE",
    "SIGNED_ORG_ROOT_SHAPE",
    "SIGNED_PROCEDURE_SHAPE",
    "SIGNED_REVOCATION_SHAPE",
    "SIGNED_SERVER_KEY_SHAPE",
    "SIGNED_TEAM_WRAP_SHAPE",
    "TEAM_WRAP_SHAPE",
    "V1",
    "Cert",
    "Kind",
    "Membership",
    "OrgRoot",
    "Procedure",
    "Revocation",
    "ServerKey",
    "SignedCert",
    "SignedMembership",
    "SignedOrgRoot",
    "SignedProcedure",
    "SignedRevocation",
    "SignedServerKey",
    "SignedTeamWrap",
    "TeamWrap",
    "cert_pk",
    "check_cert",
    "check_procedure",
    "check_valid_at",
    "endorse_server_key",
    "fingerprint",
    "form_digest",
    "link_rotation",
    "make_cert",
    "make_org_root",
    "make_revocation",
    "make_server_key",
    "make_team_wrap",
    "open_team_wrap",
    "org_certify",
    "org_fingerprint",
    "sign_cert",
    "sign_membership",
    "sign_procedure",
    "verify_encryption_cert",
    "verify_identity_cert",
    "verify_membership",
    "verify_org_root",
    "verify_procedure",
    "verify_revocation",
    "verify_rotation",
    "verify_server_key",
    "verify_team_cert",
]

Kind = Literal["citizen", "caseworker", "connector", "admin", "team"]
KINDS: Final = get_args(Kind)
#: identity certificates of these kinds must carry the org root's signature
ORG_CERTIFIED_KINDS: Final = ("caseworker", "connector", "admin")
ALGS: Final = {"sign": "ed25519", "encrypt": "x25519-sealbox"}
#: an encryption certificate is valid for at most two years: 731 days, the longest two
#: calendar years can be (clients create them for at most 730 days)
MAX_ENCRYPT_VALIDITY_MS: Final = 731 * 24 * 3600 * 1000
FINGERPRINT_BYTES: Final = 20
MAX_NAME_BYTES: Final = 200


class Cert(TypedDict):
    v: int
    subject: str
    kind: Kind
    org: str | None
    use: Literal["sign", "encrypt"]
    alg: str
    kid: str
    pk: str
    created: int
    expires: int | None


class SignedCert(TypedDict):
    cert: Cert
    sig: str
    by: str
    org_sig: str | None
    prev: str | None
    prev_sig: str | None


class OrgRoot(TypedDict):
    v: int
    org: str
    name: str
    pk: str
    created: int


class SignedOrgRoot(TypedDict):
    org_root: OrgRoot
    sig: str


# --- shapes ------------------------------------------------------------------------------
CERT_SHAPE = shapes.obj(
    {
        "v": V1,
        "subject": shapes.ID,
        "kind": shapes.enum(*KINDS),
        "org": shapes.nullable(shapes.ID),
        "use": shapes.enum("sign", "encrypt"),
        "alg": shapes.enum(*ALGS.values()),
        "kid": shapes.KID,
        "pk": PK,
        "created": shapes.TIME,
        "expires": shapes.nullable(shapes.TIME),
    }
)
SIGNED_CERT_SHAPE = shapes.obj(
    {
        "cert": CERT_SHAPE,
        "sig": SIG,
        "by": shapes.KID,
        "org_sig": shapes.nullable(SIG),
        "prev": shapes.nullable(shapes.KID),
        "prev_sig": shapes.nullable(SIG),
    }
)
ORG_ROOT_SHAPE = shapes.obj(
    {
        "v": V1,
        "org": shapes.ID,
        "name": shapes.string(MAX_NAME_BYTES),
        "pk": PK,
        "created": shapes.TIME,
    }
)
SIGNED_ORG_ROOT_SHAPE = shapes.obj({"org_root": ORG_ROOT_SHAPE, "sig": SIG})


# --- key certificates -----------------------------------------------------------------------
def make_cert(
    *,
    subject: str,
    kind: Kind,
    org: str | None,
    use: Literal["sign", "encrypt"],
    pk: bytes,
    created: int,
    expires: int | None = None,
) -> Cert:
    """Build (and check) a certificate body; the kid is derived, never chosen."""
    if use not in ALGS:
        raise MalformedObject("cert.use: expected sign or encrypt")
    cert: Cert = {
        "v": 1,
        "subject": subject,
        "kind": kind,
        "org": org,
        "use": use,
        "alg": ALGS[use],
        "kid": derive_kid(use, pk),
        "pk": b64e(pk),
        "created": created,
        "expires": expires,
    }
    check_cert(cert)
    return cert


def check_cert(cert: Any) -> Cert:
    """Validate a certificate body against every rule of PROTOCOL.md §3."""
    shapes.check(CERT_SHAPE, cert, "cert")
    c = cast(Cert, cert)
    pk = b64d(c["pk"], KEY_BYTES)
    if c["alg"] != ALGS[c["use"]]:
        raise CertificateInvalid("alg does not match use")
    if derive_kid(c["use"], pk) != c["kid"]:
        raise KeyIdMismatch("kid is not derived from pk")
    if c["kind"] == "team" and c["use"] != "encrypt":
        raise CertificateInvalid("teams have no signing key")
    if c["kind"] != "citizen" and c["org"] is None:
        raise CertificateInvalid(f"a {c['kind']} certificate needs an org")
    if c["use"] == "encrypt":
        if c["expires"] is None:
            raise CertificateInvalid("encryption certificates must expire")
        if not c["created"] < c["expires"] <= c["created"] + MAX_ENCRYPT_VALIDITY_MS:
            raise CertificateInvalid("encryption certificates are valid for at most 2 years")
        check_box_pk(pk)
    else:
        if c["expires"] is not None and c["expires"] <= c["created"]:
            raise CertificateInvalid("expires before it is created")
        check_sign_pk(pk)
    return c


def sign_cert(cert: Cert, signer_seed: bytes) -> SignedCert:
    """Sign a certificate body with an identity key (self, the subject's, or an org admin's)."""
    check_cert(cert)
    signer_pk, _ = sign_keypair(signer_seed)
    return {
        "cert": cert,
        "sig": b64e(sign(signer_seed, signed_bytes(domain.KEYCERT, cert))),
        "by": derive_kid("sign", signer_pk),
        "org_sig": None,
        "prev": None,
        "prev_sig": None,
    }


def org_certify(signed: SignedCert, root_seed: bytes) -> SignedCert:
    """Add the org root's signature (``postbox/v1/orgcert``) to a staff identity certificate."""
    sig = sign(root_seed, signed_bytes(domain.ORGCERT, signed["cert"]))
    return cast(SignedCert, {**signed, "org_sig": b64e(sig)})


def link_rotation(signed: SignedCert, old_seed: bytes) -> SignedCert:
    """Link a new identity certificate to the one it replaces (``postbox/v1/rotate``)."""
    old_pk, _ = sign_keypair(old_seed)
    sig = sign(old_seed, signed_bytes(domain.ROTATE, signed["cert"]))
    return cast(SignedCert, {**signed, "prev": derive_kid("sign", old_pk), "prev_sig": b64e(sig)})


def _check_signed_cert(signed: Any) -> SignedCert:
    shapes.check(SIGNED_CERT_SHAPE, signed, "signed certificate")
    s = cast(SignedCert, signed)
    check_cert(s["cert"])
    return s


def _verify_org_sig(s: SignedCert, org_root: OrgRoot | None) -> None:
    cert = s["cert"]
    if s["org_sig"] is None:
        if cert["kind"] in ORG_CERTIFIED_KINDS:
            raise OrgCertificationMissing(f"a {cert['kind']} identity must be org-certified")
        return
    if org_root is None:
        raise OrgCertificationMissing("no pinned org root to check the org signature with")
    if cert["org"] != org_root["org"]:
        raise OrgCertificationMissing("org signature from another organisation's root")
    verify(
        b64d(org_root["pk"], KEY_BYTES),
        signed_bytes(domain.ORGCERT, cert),
        b64d(s["org_sig"], SIGNATURE_BYTES),
    )


def verify_identity_cert(signed: Any, org_root: OrgRoot | None = None) -> Cert:
    """Verify a self-signed identity certificate (and its org certification when required).

    ``org_root`` is the verified, pinned org root of ``cert.org``; it is required for
    caseworkers, connectors and admins, and used for any certificate carrying ``org_sig``.
    """
    s = _check_signed_cert(signed)
    cert = s["cert"]
    if cert["use"] != "sign":
        raise CertificateInvalid("not an identity certificate")
    if s["by"] != cert["kid"]:
        raise CertificateInvalid("an identity certificate must be self-signed")
    if (s["prev"] is None) != (s["prev_sig"] is None):
        raise CertificateInvalid("prev and prev_sig go together")
    verify(cert_pk(cert), signed_bytes(domain.KEYCERT, cert), b64d(s["sig"], SIGNATURE_BYTES))
    _verify_org_sig(s, org_root)
    return cert


def verify_rotation(signed: Any, old_identity: Cert) -> None:
    """Check that a new identity certificate is linked to ``old_identity`` by its old key."""
    s = _check_signed_cert(signed)
    if s["cert"]["use"] != "sign":
        raise CertificateInvalid("only identity certificates are linked by rotation")
    if s["prev"] is None or s["prev_sig"] is None:
        raise CertificateInvalid("identity is not linked to a previous one")
    if s["prev"] != old_identity["kid"] or old_identity["use"] != "sign":
        raise CertificateInvalid("linked to another identity")
    if s["cert"]["subject"] != old_identity["subject"]:
        raise CertificateInvalid("rotation across subjects")
    verify(
        cert_pk(old_identity),
        signed_bytes(domain.ROTATE, s["cert"]),
        b64d(s["prev_sig"], SIGNATURE_BYTES),
    )


def verify_encryption_cert(signed: Any, identity: Cert) -> Cert:
    """Verify an account's encryption certificate against its verified identity certificate."""
    s = _check_signed_cert(signed)
    cert = s["cert"]
    if cert["use"] != "encrypt" or cert["kind"] == "team":
        raise CertificateInvalid("not an account encryption certificate")
    if s["org_sig"] is not None or s["prev"] is not None or s["prev_sig"] is not None:
        raise CertificateInvalid("encryption certificates carry only the identity signature")
    if identity["use"] != "sign" or s["by"] != identity["kid"]:
        raise CertificateInvalid("not signed by the subject's identity key")
    if (identity["subject"], identity["kind"], identity["org"]) != (
        cert["subject"],
        cert["kind"],
        cert["org"],
    ):
        raise CertificateInvalid("identity and encryption certificates disagree")
    verify(cert_pk(identity), signed_bytes(domain.KEYCERT, cert), b64d(s["sig"], SIGNATURE_BYTES))
    return cert


def verify_team_cert(signed: Any, admin_identity: Cert) -> Cert:
    """Verify a team encryption certificate against a verified org admin identity."""
    s = _check_signed_cert(signed)
    cert = s["cert"]
    if cert["kind"] != "team" or cert["use"] != "encrypt":
        raise CertificateInvalid("not a team encryption certificate")
    if s["org_sig"] is not None or s["prev"] is not None or s["prev_sig"] is not None:
        raise CertificateInvalid("team certificates carry only the admin signature")
    if admin_identity["kind"] != "admin" or admin_identity["use"] != "sign":
        raise CertificateInvalid("team keys are certified by an org admin key")
    if admin_identity["org"] != cert["org"] or s["by"] != admin_identity["kid"]:
        raise CertificateInvalid("certified by another organisation's admin")
    verify(
        cert_pk(admin_identity),
        signed_bytes(domain.KEYCERT, cert),
        b64d(s["sig"], SIGNATURE_BYTES),
    )
    return cert


def check_valid_at(cert: Cert, at: int, revocations: Iterable[Revocation] = ()) -> None:
    """Raise unless ``cert`` was valid at time ``at`` (created, not expired, not revoked)."""
    if at < cert["created"]:
        raise CertificateExpired("used before the certificate was created")
    if cert["expires"] is not None and at >= cert["expires"]:
        raise CertificateExpired("certificate expired")
    for r in revocations:
        if r["subject"] == cert["subject"] and r["kid"] == cert["kid"] and r["at"] <= at:
            raise CertificateRevoked(f"revoked ({r['reason']})")


# --- org root ----------------------------------------------------------------------------
def make_org_root(*, org: str, name: str, root_seed: bytes, created: int) -> SignedOrgRoot:
    pk, _ = sign_keypair(root_seed)
    root: OrgRoot = {"v": 1, "org": org, "name": name, "pk": b64e(pk), "created": created}
    shapes.check(ORG_ROOT_SHAPE, root, "org_root")
    return {"org_root": root, "sig": b64e(sign(root_seed, signed_bytes(domain.ORGROOT, root)))}


def verify_org_root(signed: Any) -> OrgRoot:
    shapes.check(SIGNED_ORG_ROOT_SHAPE, signed, "signed org root")
    s = cast(SignedOrgRoot, signed)
    root = s["org_root"]
    pk = b64d(root["pk"], KEY_BYTES)
    check_sign_pk(pk)
    verify(pk, signed_bytes(domain.ORGROOT, root), b64d(s["sig"], SIGNATURE_BYTES))
    return root


def fingerprint(pk: bytes) -> str:
    """Safety code of a public key: ``H(pk, 20)`` as 8 groups of 4 Crockford characters."""
    return crockford.group(crockford.encode(H(pk, FINGERPRINT_BYTES)))


def org_fingerprint(root: OrgRoot) -> str:
    return fingerprint(b64d(root["pk"], KEY_BYTES))
