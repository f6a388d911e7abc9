"""A small world of accounts with real keys, built from fixed seeds, for tests."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from postbox.crypto import certs
from postbox.crypto.certs import Cert, SignedCert
from postbox.crypto.encoding import b64e
from postbox.crypto.primitives import box_keypair, sign_keypair

NOW = 1_767_225_600_000  # 2026-01-01T00:00:00Z
YEAR = 365 * 24 * 3600 * 1000


def seed(label: str, n: int = 32) -> bytes:
    return hashlib.blake2b(label.encode(), digest_size=n).digest()


def ident(label: str) -> str:
    return b64e(seed("id/" + label, 16))


@dataclass
class Party:
    """An account (or team) with its keys and verified certificates."""

    id: str
    kind: certs.Kind
    org: str | None
    sign_seed: bytes | None
    enc_sk: bytes
    enc_pk: bytes
    identity: Cert | None
    identity_signed: SignedCert | None
    enc: Cert
    enc_signed: SignedCert
    keys: dict[str, tuple[bytes, bytes]] = field(default_factory=dict)


@dataclass
class World:
    org: str
    root_seed: bytes
    org_root: certs.OrgRoot
    admin: Party
    citizen: Party
    other_citizen: Party
    caseworker: Party
    team: Party


def _party(label: str, kind: certs.Kind, org: str | None, root_seed: bytes | None) -> Party:
    pid = ident(label)
    s = seed("sign/" + label)
    pk, _ = sign_keypair(s)
    identity = certs.make_cert(subject=pid, kind=kind, org=org, use="sign", pk=pk, created=NOW)
    signed = certs.sign_cert(identity, s)
    if kind in certs.ORG_CERTIFIED_KINDS:
        assert root_seed is not None
        signed = certs.org_certify(signed, root_seed)
    esk = seed("enc/" + label)
    epk, _ = box_keypair(esk)
    enc = certs.make_cert(
        subject=pid, kind=kind, org=org, use="encrypt", pk=epk, created=NOW, expires=NOW + YEAR
    )
    return Party(
        pid,
        kind,
        org,
        s,
        esk,
        epk,
        identity,
        signed,
        enc,
        certs.sign_cert(enc, s),
        {enc["kid"]: (epk, esk)},
    )


def make_world() -> World:
    org = ident("org")
    root_seed = seed("org-root")
    org_root = certs.verify_org_root(
        certs.make_org_root(org=org, name="Stadt Nürnberg", root_seed=root_seed, created=NOW)
    )
    admin = _party("admin", "admin", org, root_seed)
    citizen = _party("citizen", "citizen", None, None)
    other = _party("other-citizen", "citizen", None, None)
    caseworker = _party("caseworker", "caseworker", org, root_seed)
    tid = ident("team")
    tsk = seed("enc/team")
    tpk, _ = box_keypair(tsk)
    tcert = certs.make_cert(
        subject=tid, kind="team", org=org, use="encrypt", pk=tpk, created=NOW, expires=NOW + YEAR
    )
    assert admin.sign_seed is not None
    team = Party(
        tid,
        "team",
        org,
        None,
        tsk,
        tpk,
        None,
        None,
        tcert,
        certs.sign_cert(tcert, admin.sign_seed),
        {tcert["kid"]: (tpk, tsk)},
    )
    return World(org, root_seed, org_root, admin, citizen, other, caseworker, team)
