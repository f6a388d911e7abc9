"""Signed statements about keys (PROTOCOL.md §3, §7): revocations, team key wraps, team
memberships and the server-key endorsements of org roots.

Like the certificates (:mod:`postbox.crypto.certs`, which re-exports everything here), each
is a closed v1 object with a maker and a verifier; verifiers take the already-verified
signer certificate and never fetch anything.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, Any, Literal, TypedDict, cast

from postbox.crypto import domain, shapes
from postbox.crypto.encoding import KEY_BYTES, SEALED_KEY_BYTES, SIGNATURE_BYTES, b64d, b64e
from postbox.crypto.errors import (
    CertificateInvalid,
    DecryptionFailed,
    KeySubstitution,
    MalformedObject,
    OrgCertificationMissing,
)
from postbox.crypto.kid import derive_kid
from postbox.crypto.primitives import (
    box_keypair,
    check_sign_pk,
    equal,
    seal,
    seal_open,
    sign,
    sign_keypair,
    verify,
)
from postbox.crypto.signed import PK, SIG, V1, cert_pk, signed_bytes

if TYPE_CHECKING:  # only types here: certs re-exports this module
    from postbox.crypto.certs import Cert, OrgRoot


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


# --- shapes ------------------------------------------------------------------------------
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


# --- revocations -------------------------------------------------------------------------
def make_revocation(
    *, subject: str, kid: str, at: int, reason: str, signer_seed: bytes
) -> SignedRevocation:
    rev = {"v": 1, "subject": subject, "kid": kid, "at": at, "reason": reason}
    shapes.check(REVOCATION_SHAPE, rev, "revoke")
    signer_pk, _ = sign_keypair(signer_seed)
    return {
        "revoke": cast(Revocation, rev),
        "sig": b64e(sign(signer_seed, signed_bytes(domain.REVOKE, rev))),
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
    verify(cert_pk(signer), signed_bytes(domain.REVOKE, rev), b64d(s["sig"], SIGNATURE_BYTES))
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
        "sig": b64e(sign(by_seed, signed_bytes(domain.TEAMWRAP, wrap))),
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
        signed_bytes(domain.TEAMWRAP, wrap),
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
        "sig": b64e(sign(admin_seed, signed_bytes(domain.MEMBER, m))),
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
        signed_bytes(domain.MEMBER, s["membership"]),
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
    sig = sign(root_seed, signed_bytes(domain.SERVERKEY, server_key))
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
            signed_bytes(domain.SERVERKEY, key),
            b64d(s["sig"], SIGNATURE_BYTES),
        )
    return key
