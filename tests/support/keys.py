"""Real signed key events for the key-directory and transparency-log tests.

Every account, org and team here has real keys derived from its label (fixed seeds), so
the events are exactly what clients would send. :class:`Org` builds an organisation with
its root and an admin; :class:`Account` a citizen or staff member with identity and
encryption certificates, rotations and revocations.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from postbox.crypto import certs
from postbox.crypto.certs import SignedCert, SignedRevocation
from postbox.crypto.encoding import b64e
from postbox.crypto.logevents import parse_leaf
from postbox.crypto.monitor import audit_leaves
from postbox.crypto.primitives import box_keypair, sign_keypair
from postbox.crypto.transparency import make_tree_head, verify_head_sig
from postbox.keys import merkle
from postbox.keys.merkle import MemoryTree, NodeId
from postbox.mailbox.access import Principal
from postbox.mailbox.appkeys import CLOCK, DB
from postbox.mailbox.db.engine import Database
from postbox.mailbox.db.schema import log_heads, log_leaves, log_nodes, log_state
from postbox.mailbox.orgs import store as org_store
from support import accounts as auth_accounts

NOW = 1_767_225_600_000  # 2026-01-01T00:00:00Z: certificates are created here
DAY = 24 * 3600 * 1000
YEAR = 365 * DAY


def seed(label: str, n: int = 32) -> bytes:
    return hashlib.blake2b(("keys-test/" + label).encode(), digest_size=n).digest()


def ident(label: str) -> str:
    return b64e(seed("id/" + label, 16))


class FakeClock:
    """A clock tests move by hand (integer ms)."""

    def __init__(self, now: int = NOW + DAY) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now

    def advance(self, ms: int) -> None:
        self.now += ms


@dataclass
class Account:
    """An account with real keys. ``sign_seed`` is its current identity key."""

    label: str
    id: str
    kind: certs.Kind
    org: str | None
    sign_seed: bytes
    identity: SignedCert
    root_seed: bytes | None = None
    generation: int = 0
    keys: list[SignedCert] = field(default_factory=list)

    @property
    def kid(self) -> str:
        return self.identity["cert"]["kid"]

    def encryption(self, created: int = NOW, *, expires: int | None = None) -> SignedCert:
        """A new encryption certificate signed by the current identity."""
        self.generation += 1
        pk, _ = box_keypair(seed(f"enc/{self.label}/{self.generation}"))
        cert = certs.make_cert(
            subject=self.id,
            kind=self.kind,
            org=self.org,
            use="encrypt",
            pk=pk,
            created=created,
            expires=expires or created + YEAR,
        )
        signed = certs.sign_cert(cert, self.sign_seed)
        self.keys.append(signed)
        return signed

    def rotate(self, created: int = NOW, *, linked: bool = True) -> SignedCert:
        """A new identity (linked to the current one unless ``linked`` is false); it
        becomes the current identity of this object."""
        self.generation += 1
        new_seed = seed(f"sign/{self.label}/{self.generation}")
        pk, _ = sign_keypair(new_seed)
        cert = certs.make_cert(
            subject=self.id, kind=self.kind, org=self.org, use="sign", pk=pk, created=created
        )
        signed = certs.sign_cert(cert, new_seed)
        if self.root_seed is not None:
            signed = certs.org_certify(signed, self.root_seed)
        if linked:
            signed = certs.link_rotation(signed, self.sign_seed)
        self.sign_seed, self.identity = new_seed, signed
        return signed

    def revoke(
        self,
        kid: str,
        *,
        at: int = NOW + DAY,
        reason: str = "compromised",
        by: bytes | None = None,
    ) -> SignedRevocation:
        return certs.make_revocation(
            subject=self.id, kid=kid, at=at, reason=reason, signer_seed=by or self.sign_seed
        )

    def principal(self) -> Principal:
        return Principal(self.id, self.kind, self.org, "session-" + self.label, "jti")


def _account(
    label: str,
    kind: certs.Kind,
    org_id: str | None,
    root_seed: bytes | None,
    *,
    certified: bool = True,
    created: int = NOW,
) -> Account:
    s = seed(f"sign/{label}/0")
    pk, _ = sign_keypair(s)
    cert = certs.make_cert(
        subject=ident(label), kind=kind, org=org_id, use="sign", pk=pk, created=created
    )
    signed = certs.sign_cert(cert, s)
    if certified and root_seed is not None and kind in certs.ORG_CERTIFIED_KINDS:
        signed = certs.org_certify(signed, root_seed)
    return Account(label, ident(label), kind, org_id, s, signed, root_seed=root_seed)


def account(
    label: str,
    kind: certs.Kind = "citizen",
    *,
    org: Org | None = None,
    certified: bool = True,
    created: int = NOW,
) -> Account:
    """A new account with a self-signed identity (org-certified staff unless
    ``certified`` is false)."""
    if org is None:
        return _account(label, kind, None, None, certified=certified, created=created)
    return _account(label, kind, org.id, org.root_seed, certified=certified, created=created)


@dataclass
class Org:
    """An organisation: its root key (the signed org root) and one admin account."""

    label: str
    id: str
    root_seed: bytes
    root: certs.SignedOrgRoot
    admin: Account

    def team_key(self, team: str, n: int = 0, created: int = NOW) -> SignedCert:
        pk, _ = box_keypair(seed(f"team/{team}/{n}"))
        cert = certs.make_cert(
            subject=team,
            kind="team",
            org=self.id,
            use="encrypt",
            pk=pk,
            created=created,
            expires=created + YEAR,
        )
        return certs.sign_cert(cert, self.admin.sign_seed)

    def membership(self, team: str, member: str, at: int) -> certs.SignedMembership:
        return certs.sign_membership(
            team=team, member=member, at=at, admin_seed=self.admin.sign_seed
        )

    def endorse(self, server_key: certs.ServerKey) -> certs.SignedServerKey:
        return certs.endorse_server_key(server_key, org=self.id, root_seed=self.root_seed)


def org(label: str, created: int = NOW) -> Org:
    org_id = ident("org/" + label)
    root_seed = seed(f"root/{label}")
    root = certs.make_org_root(
        org=org_id, name=f"Org {label}", root_seed=root_seed, created=created
    )
    return Org(
        label, org_id, root_seed, root, _account(f"{label}/admin", "admin", org_id, root_seed)
    )


# --- a stand-in for the auth feature's token verifier (HTTP tests of POST /api/v1/keys) --------
class Sessions:
    """Real sessions for key-chain accounts: each gets an auth account with the same id
    (seeded through AccountService.create) and logs in through the real routes."""

    def __init__(self, client: TestClient[web.Request, web.Application]) -> None:
        self._client = client
        self._tokens: dict[str, str] = {}

    async def token(self, who: Account) -> str:
        if who.id not in self._tokens:
            auth = auth_accounts.make_account(f"{who.label}@keys.test", kind=who.kind, org=who.org,
                                account_id=who.id)  # fmt: skip
            app = self._client.app
            if who.org is not None:  # the account row needs its organisation
                async with app[DB].write() as conn:
                    if await org_store.get_org(conn, who.org) is None:
                        await org_store.insert_org(
                            conn,
                            org_id=who.org,
                            names={"de": who.org},
                            notification_name="Stadt",
                            self_registration=False,
                            created=app[CLOCK](),
                        )
            await auth_accounts.seed(app, auth, now=app[CLOCK]())
            body = await auth_accounts.login(self._client, auth)
            self._tokens[who.id] = body["access_token"]
        return self._tokens[who.id]


# --- checking the whole stored log -----------------------------------------------------------
async def check_stored_log(db: Database, log_pk: bytes) -> MemoryTree:
    """Every invariant of the stored log, from its tables alone.

    No gaps (leaf indices are exactly ``0 … size-1``), no duplicate ``(subject, seq)``,
    every chain linked (the auditor finds nothing), every stored perfect node equal to the
    one a :class:`MemoryTree` rebuilt from the leaves has, and every signed head's root
    equal to that tree's root of its size, with a valid signature, in non-decreasing
    size and time. Returns the rebuilt tree.
    """
    async with db.read() as conn:
        size: int = (await conn.execute(select(log_state.c.size))).scalar_one()
        leaves = (await conn.execute(select(log_leaves).order_by(log_leaves.c.idx))).all()
        nodes = (await conn.execute(select(log_nodes))).all()
        heads = (await conn.execute(select(log_heads).order_by(log_heads.c.id))).all()
    assert [r.idx for r in leaves] == list(range(size)), "gaps or extra leaves"
    assert len({(r.subject, r.seq) for r in leaves}) == size, "duplicate (subject, seq)"
    tree = MemoryTree()
    for r in leaves:
        event = parse_leaf(bytes(r.leaf))
        assert (event["subject"], event["seq"], event["type"], event["ts"]) == (
            r.subject, r.seq, r.type, r.ts,
        )  # fmt: skip
        assert bytes(r.leaf_hash) == merkle.leaf_hash(bytes(r.leaf))
        tree.append(bytes(r.leaf))
    assert audit_leaves(bytes(r.leaf) for r in leaves) == []
    expected_nodes = sum(size >> level for level in range(max(1, size.bit_length())))
    assert len(nodes) == expected_nodes, "missing or extra perfect nodes"
    for n in nodes:
        assert bytes(n.hash) == tree[NodeId(n.level, n.idx)]
    last_size = last_ts = 0
    for h in heads:
        sth = make_tree_head(size=h.size, root=bytes(h.root), ts=h.ts)
        verify_head_sig(sth, b64e(bytes(h.sig)), log_pk)
        assert bytes(h.root) == tree.root(h.size)
        assert h.size >= last_size and h.ts >= last_ts, "tree heads went backwards"
        last_size, last_ts = h.size, h.ts
    return tree
