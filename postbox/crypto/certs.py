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
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any, Final, Literal, TypedDict, cast, get_args

from postbox.crypto import crockford, domain, shapes
from postbox.crypto.encoding import (
    DIGEST_BYTES,
    KEY_BYTES,
    SEALED_KEY_BYTES,
    SIGNATURE_BYTES,
    b64d,
    b64e,
    cj,
)
from postbox.crypto.errors import (
    CertificateExpired,
    CertificateInvalid,
    CertificateRevoked,
    DecryptionFailed,
    KeyIdMismatch,
    KeySubstitution,
    MalformedObject,
    OrgCertificationMissing,
)
from postbox.crypto.kid import derive_kid
from postbox.crypto.primitives import (
    H,
    box_keypair,
    check_box_pk,
    check_sign_pk,
    equal,
    seal,
    seal_open,
    sign,
    sign_keypair,
    verify,
)

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


class Revocation(TypedDict):
    v: int
    subject: str
    kid: str
    at: int
    reason: Literal["superseded", "compromised", "left"]


class SignedRevocation(TypedDict):
    revoke: Revocation
    sig: str
    by: str


class TeamWrap(TypedDict):
    v: int
    team: str
    team_kid: str
    member: str
    member_kid: str
    by: str
    sealed: str


class SignedTeamWrap(TypedDict):
    team_wrap: TeamWrap
    sig: str
    by_kid: str


class Membership(TypedDict):
    v: int
    team: str
    member: str
    at: int


class SignedMembership(TypedDict):
    membership: Membership
    sig: str
    by: str


class ServerKey(TypedDict):
    v: int
    log_pk: str
    receipt_pk: str
    created: int


class SignedServerKey(TypedDict):
    server_key: ServerKey
    org: str | None
    sig: str | None


class Procedure(TypedDict):
    v: int
    org: str
    id: str
    version: int
    schema: dict[str, Any]
    labels: dict[str, Any]
    documents: list[dict[str, Any]]


class SignedProcedure(TypedDict):
    procedure: Procedure
    sig: str
    by: str


# --- shapes ------------------------------------------------------------------------------
V1 = shapes.const(1)
SIG = shapes.b64(SIGNATURE_BYTES)
PK = shapes.b64(KEY_BYTES)

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
REVOCATION_SHAPE = shapes.obj(
    {
        "v": V1,
        "subject": shapes.ID,
        "kid": shapes.KID,
        "at": shapes.TIME,
        "reason": shapes.enum("superseded", "compromised", "left"),
    }
)
SIGNED_REVOCATION_SHAPE = shapes.obj({"revoke": REVOCATION_SHAPE, "sig": SIG, "by": shapes.KID})
TEAM_WRAP_SHAPE = shapes.obj(
    {
        "v": V1,
        "team": shapes.ID,
        "team_kid": shapes.KID,
        "member": shapes.ID,
        "member_kid": shapes.KID,
        "by": shapes.ID,
        "sealed": shapes.b64(SEALED_KEY_BYTES),
    }
)
SIGNED_TEAM_WRAP_SHAPE = shapes.obj(
    {"team_wrap": TEAM_WRAP_SHAPE, "sig": SIG, "by_kid": shapes.KID}
)
MEMBERSHIP_SHAPE = shapes.obj({"v": V1, "team": shapes.ID, "member": shapes.ID, "at": shapes.TIME})
SIGNED_MEMBERSHIP_SHAPE = shapes.obj({"membership": MEMBERSHIP_SHAPE, "sig": SIG, "by": shapes.KID})
SERVER_KEY_SHAPE = shapes.obj({"v": V1, "log_pk": PK, "receipt_pk": PK, "created": shapes.TIME})
SIGNED_SERVER_KEY_SHAPE = shapes.obj(
    {
        "server_key": SERVER_KEY_SHAPE,
        "org": shapes.nullable(shapes.ID),
        "sig": shapes.nullable(SIG),
    }
)
DOCUMENT_SHAPE = shapes.obj(
    {"name": shapes.string(100), "required": shapes.enum_bool(), "max_size": shapes.COUNT}
)
PROCEDURE_SHAPE = shapes.obj(
    {
        "v": V1,
        "org": shapes.ID,
        "id": shapes.ID,
        "version": shapes.integer(1),
        "schema": shapes.free_object,
        "labels": shapes.free_object,
        "documents": shapes.array(DOCUMENT_SHAPE, 50),
    }
)
SIGNED_PROCEDURE_SHAPE = shapes.obj({"procedure": PROCEDURE_SHAPE, "sig": SIG, "by": shapes.KID})


def _signed_bytes(label: bytes, obj: Any) -> bytes:
    return label + cj(obj)


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


def cert_pk(cert: Cert) -> bytes:
    return b64d(cert["pk"], KEY_BYTES)


def sign_cert(cert: Cert, signer_seed: bytes) -> SignedCert:
    """Sign a certificate body with an identity key (self, the subject's, or an org admin's)."""
    check_cert(cert)
    signer_pk, _ = sign_keypair(signer_seed)
    return {
        "cert": cert,
        "sig": b64e(sign(signer_seed, _signed_bytes(domain.KEYCERT, cert))),
        "by": derive_kid("sign", signer_pk),
        "org_sig": None,
        "prev": None,
        "prev_sig": None,
    }


def org_certify(signed: SignedCert, root_seed: bytes) -> SignedCert:
    """Add the org root's signature (``postbox/v1/orgcert``) to a staff identity certificate."""
    sig = sign(root_seed, _signed_bytes(domain.ORGCERT, signed["cert"]))
    return cast(SignedCert, {**signed, "org_sig": b64e(sig)})


def link_rotation(signed: SignedCert, old_seed: bytes) -> SignedCert:
    """Link a new identity certificate to the one it replaces (``postbox/v1/rotate``)."""
    old_pk, _ = sign_keypair(old_seed)
    sig = sign(old_seed, _signed_bytes(domain.ROTATE, signed["cert"]))
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
        _signed_bytes(domain.ORGCERT, cert),
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
    verify(cert_pk(cert), _signed_bytes(domain.KEYCERT, cert), b64d(s["sig"], SIGNATURE_BYTES))
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
        _signed_bytes(domain.ROTATE, s["cert"]),
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
    verify(cert_pk(identity), _signed_bytes(domain.KEYCERT, cert), b64d(s["sig"], SIGNATURE_BYTES))
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
        _signed_bytes(domain.KEYCERT, cert),
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
    return {"org_root": root, "sig": b64e(sign(root_seed, _signed_bytes(domain.ORGROOT, root)))}


def verify_org_root(signed: Any) -> OrgRoot:
    shapes.check(SIGNED_ORG_ROOT_SHAPE, signed, "signed org root")
    s = cast(SignedOrgRoot, signed)
    root = s["org_root"]
    pk = b64d(root["pk"], KEY_BYTES)
    check_sign_pk(pk)
    verify(pk, _signed_bytes(domain.ORGROOT, root), b64d(s["sig"], SIGNATURE_BYTES))
    return root


def fingerprint(pk: bytes) -> str:
    """Safety code of a public key: ``H(pk, 20)`` as 8 groups of 4 Crockford characters."""
    return crockford.group(crockford.encode(H(pk, FINGERPRINT_BYTES)))


def org_fingerprint(root: OrgRoot) -> str:
    return fingerprint(b64d(root["pk"], KEY_BYTES))


# --- revocations -------------------------------------------------------------------------
def make_revocation(
    *, subject: str, kid: str, at: int, reason: str, signer_seed: bytes
) -> SignedRevocation:
    rev = {"v": 1, "subject": subject, "kid": kid, "at": at, "reason": reason}
    shapes.check(REVOCATION_SHAPE, rev, "revoke")
    signer_pk, _ = sign_keypair(signer_seed)
    return {
        "revoke": cast(Revocation, rev),
        "sig": b64e(sign(signer_seed, _signed_bytes(domain.REVOKE, rev))),
        "by": derive_kid("sign", signer_pk),
    }


def verify_revocation(signed: Any, signer: Cert, subject_org: str | None) -> Revocation:
    """Verify a revocation signed by the subject's identity or by an admin of its org."""
    shapes.check(SIGNED_REVOCATION_SHAPE, signed, "signed revocation")
    s = cast(SignedRevocation, signed)
    rev = s["revoke"]
    if signer["use"] != "sign" or s["by"] != signer["kid"]:
        raise CertificateInvalid("revocation not signed by the given identity")
    is_subject = signer["subject"] == rev["subject"]
    is_admin = signer["kind"] == "admin" and signer["org"] is not None
    is_admin = is_admin and signer["org"] == subject_org
    if not (is_subject or is_admin):
        raise CertificateInvalid("only the subject or an admin of its org may revoke")
    verify(cert_pk(signer), _signed_bytes(domain.REVOKE, rev), b64d(s["sig"], SIGNATURE_BYTES))
    return rev


# --- team key wraps ------------------------------------------------------------------------
def make_team_wrap(
    *,
    team_cert: Cert,
    team_sk: bytes,
    member: str,
    member_enc: Cert,
    by: str,
    by_seed: bytes,
) -> SignedTeamWrap:
    """Wrap a team's secret key to one member's encryption key, signed by a current member."""
    if team_cert["kind"] != "team" or team_cert["use"] != "encrypt":
        raise CertificateInvalid("not a team encryption certificate")
    team_pk, _ = box_keypair(team_sk)
    if not equal(team_pk, cert_pk(team_cert)):
        raise KeySubstitution("team secret key does not match the team certificate")
    if member_enc["subject"] != member or member_enc["use"] != "encrypt":
        raise CertificateInvalid("member certificate does not belong to the member")
    wrap = {
        "v": 1,
        "team": team_cert["subject"],
        "team_kid": team_cert["kid"],
        "member": member,
        "member_kid": member_enc["kid"],
        "by": by,
        "sealed": b64e(seal(team_sk, cert_pk(member_enc))),
    }
    shapes.check(TEAM_WRAP_SHAPE, wrap, "team_wrap")
    by_pk, _ = sign_keypair(by_seed)
    return {
        "team_wrap": cast(TeamWrap, wrap),
        "sig": b64e(sign(by_seed, _signed_bytes(domain.TEAMWRAP, wrap))),
        "by_kid": derive_kid("sign", by_pk),
    }


def open_team_wrap(
    signed: Any,
    *,
    team_cert: Cert,
    member_pk: bytes,
    member_sk: bytes,
    by_identity: Cert,
    current_members: Collection[str],
) -> bytes:
    """Verify a team wrap and return the team's secret key.

    Accepted only if ``by`` is a current member, the signature verifies under that member's
    verified identity, the wrap is for this member's key, and the unwrapped key's public
    half equals the certified team key (else a key-substitution alarm).
    """
    shapes.check(SIGNED_TEAM_WRAP_SHAPE, signed, "signed team wrap")
    s = cast(SignedTeamWrap, signed)
    wrap = s["team_wrap"]
    if wrap["by"] not in current_members:
        raise CertificateInvalid("team wrap made by someone who is not a current member")
    if by_identity["subject"] != wrap["by"] or by_identity["use"] != "sign":
        raise CertificateInvalid("team wrap signer certificate is not the wrapper's identity")
    if s["by_kid"] != by_identity["kid"]:
        raise CertificateInvalid("team wrap signed by another key")
    verify(
        cert_pk(by_identity),
        _signed_bytes(domain.TEAMWRAP, wrap),
        b64d(s["sig"], SIGNATURE_BYTES),
    )
    if wrap["team"] != team_cert["subject"] or wrap["team_kid"] != team_cert["kid"]:
        raise KeySubstitution("team wrap is for another team key")
    if wrap["member_kid"] != derive_kid("encrypt", member_pk):
        raise KeySubstitution("team wrap is sealed to another member key")
    try:
        team_sk = seal_open(b64d(wrap["sealed"], SEALED_KEY_BYTES), member_pk, member_sk)
    except DecryptionFailed:
        raise
    if len(team_sk) != KEY_BYTES:
        raise MalformedObject("team wrap does not hold a 32-byte key")
    team_pk, _ = box_keypair(team_sk)
    if not equal(team_pk, cert_pk(team_cert)):
        raise KeySubstitution("unwrapped team key is not the certified team key")
    return team_sk


# --- memberships (member_add / member_remove bodies) ----------------------------------------
def sign_membership(*, team: str, member: str, at: int, admin_seed: bytes) -> SignedMembership:
    m = {"v": 1, "team": team, "member": member, "at": at}
    shapes.check(MEMBERSHIP_SHAPE, m, "membership")
    pk, _ = sign_keypair(admin_seed)
    return {
        "membership": cast(Membership, m),
        "sig": b64e(sign(admin_seed, _signed_bytes(domain.MEMBER, m))),
        "by": derive_kid("sign", pk),
    }


def verify_membership(signed: Any, admin_identity: Cert, team_org: str) -> Membership:
    shapes.check(SIGNED_MEMBERSHIP_SHAPE, signed, "signed membership")
    s = cast(SignedMembership, signed)
    if (
        admin_identity["kind"] != "admin"
        or admin_identity["use"] != "sign"
        or admin_identity["org"] != team_org
    ):
        raise CertificateInvalid("memberships are signed by an admin of the team's org")
    if s["by"] != admin_identity["kid"]:
        raise CertificateInvalid("membership signed by another key")
    verify(
        cert_pk(admin_identity),
        _signed_bytes(domain.MEMBER, s["membership"]),
        b64d(s["sig"], SIGNATURE_BYTES),
    )
    return s["membership"]


# --- server key endorsement ----------------------------------------------------------------
def make_server_key(*, log_pk: bytes, receipt_pk: bytes, created: int) -> ServerKey:
    sk: ServerKey = {"v": 1, "log_pk": b64e(log_pk), "receipt_pk": b64e(receipt_pk),
                     "created": created}  # fmt: skip
    shapes.check(SERVER_KEY_SHAPE, sk, "server_key")
    check_sign_pk(log_pk)
    check_sign_pk(receipt_pk)
    return sk


def endorse_server_key(server_key: ServerKey, *, org: str, root_seed: bytes) -> SignedServerKey:
    """An org root's signature over the server's log and receipt keys (``serverkey``)."""
    shapes.check(SERVER_KEY_SHAPE, server_key, "server_key")
    sig = sign(root_seed, _signed_bytes(domain.SERVERKEY, server_key))
    return {"server_key": server_key, "org": org, "sig": b64e(sig)}


def verify_server_key(signed: Any, org_root: OrgRoot | None = None) -> ServerKey:
    """Check an endorsement; with ``org_root``, require that root's valid signature.

    Leaf 0 of the log carries the server key with ``org`` and ``sig`` null: its trust comes
    from the clients' pinned configuration, later endorsements by each org root.
    """
    shapes.check(SIGNED_SERVER_KEY_SHAPE, signed, "signed server key")
    s = cast(SignedServerKey, signed)
    key = s["server_key"]
    check_sign_pk(b64d(key["log_pk"], KEY_BYTES))
    check_sign_pk(b64d(key["receipt_pk"], KEY_BYTES))
    if (s["org"] is None) != (s["sig"] is None):
        raise CertificateInvalid("org and sig go together")
    if org_root is not None:
        if s["org"] != org_root["org"] or s["sig"] is None:
            raise OrgCertificationMissing("server key not endorsed by this organisation")
        verify(
            b64d(org_root["pk"], KEY_BYTES),
            _signed_bytes(domain.SERVERKEY, key),
            b64d(s["sig"], SIGNATURE_BYTES),
        )
    return key


# --- procedures --------------------------------------------------------------------------
_NUMERIC_TYPES: Final = frozenset({"number", "integer"})
#: schema keywords whose values are (or list) instance values, which may not be numbers
_VALUE_KEYWORDS: Final = frozenset({"const", "default", "enum", "examples"})


def _has_number(value: Any) -> bool:
    """True if ``value`` is, or contains at any depth, a JSON number."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    if isinstance(value, list):
        return any(_has_number(v) for v in value)
    if isinstance(value, dict):
        return any(_has_number(v) for v in value.values())
    return False


def _check_schema_types(node: Any, path: str) -> None:
    """Form data carries no JSON numbers (numbers are strings), so schemas may not ask for any.

    Refused: ``"type": "number"|"integer"`` and numbers as instance values (``const``,
    ``default``, ``enum``, ``examples``). Integer constraints such as ``maxLength`` stay.
    """
    if isinstance(node, dict):
        t = node.get("type")
        types = t if isinstance(t, list) else [t]
        if any(isinstance(x, str) and x in _NUMERIC_TYPES for x in types):
            raise MalformedObject(f"{path}: schemas use no JSON numbers (use strings)")
        for keyword in _VALUE_KEYWORDS & node.keys():
            value = node[keyword]
            if _has_number(value):
                raise MalformedObject(f"{path}.{keyword}: schemas use no JSON numbers")
        for k, v in node.items():
            _check_schema_types(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _check_schema_types(v, f"{path}[{i}]")


def check_procedure(procedure: Any) -> Procedure:
    shapes.check(PROCEDURE_SHAPE, procedure, "procedure")
    p = cast(Procedure, procedure)
    cj(p)  # free-form members must be canonical JSON (this also bounds the depth to 32)
    _check_schema_types(p["schema"], "procedure.schema")
    return p


def sign_procedure(procedure: Procedure, admin_seed: bytes) -> SignedProcedure:
    check_procedure(procedure)
    pk, _ = sign_keypair(admin_seed)
    return {
        "procedure": procedure,
        "sig": b64e(sign(admin_seed, _signed_bytes(domain.PROCEDURE, procedure))),
        "by": derive_kid("sign", pk),
    }


def verify_procedure(signed: Any, admin_identity: Cert) -> Procedure:
    """Verify a procedure definition before rendering it: an admin of its org signed it."""
    shapes.check(SIGNED_PROCEDURE_SHAPE, signed, "signed procedure")
    s = cast(SignedProcedure, signed)
    p = check_procedure(s["procedure"])
    if (
        admin_identity["kind"] != "admin"
        or admin_identity["use"] != "sign"
        or admin_identity["org"] != p["org"]
    ):
        raise CertificateInvalid("procedures are signed by an admin of their org")
    if s["by"] != admin_identity["kid"]:
        raise CertificateInvalid("procedure signed by another key")
    verify(
        cert_pk(admin_identity),
        _signed_bytes(domain.PROCEDURE, p),
        b64d(s["sig"], SIGNATURE_BYTES),
    )
    return p


def form_digest(procedure: Procedure) -> bytes:
    """``H("postbox/v1/form" ‖ cj(procedure), 64)``: binds a submitted form to its definition."""
    return H(domain.FORM + cj(procedure), DIGEST_BYTES)
