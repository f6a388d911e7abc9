"""Onboarding through the real server: organisations, people with real keys, teams.

Every step goes through the HTTP API of a running test app (or, for the operator's part,
through the same service objects the ``postbox admin`` CLI uses). Keys are fresh random
keys; bundles are sealed under random keks, since the server cannot tell (no Argon2id
needed, so tests stay fast), and login signs with a random auth seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient
from sqlalchemy import func, select

from postbox.crypto import activation, certs
from postbox.crypto.bundle import MIB, build_private_keys, seal_bundle
from postbox.crypto.certs import SignedCert
from postbox.crypto.encoding import b64d, b64e, cj
from postbox.crypto.login import sign_login
from postbox.crypto.primitives import box_keypair, random_bytes, sign_keypair
from postbox.mailbox.app import create_app
from postbox.mailbox.appkeys import DB, INVITATIONS, ORGS, SETTINGS
from postbox.mailbox.db.schema import (
    accounts,
    audit_log,
    bundles,
    certificates,
    credentials,
    invitations,
    log_leaves,
    organisations,
    team_members,
    team_wraps,
    teams,
)
from postbox.mailbox.orgs.service import NewOrg
from postbox.mailbox.settings import Settings

Client = TestClient[web.Request, web.Application]

NOW = 1_767_225_600_000  # 2026-01-01T00:00:00Z
DAY = 24 * 3600 * 1000
YEAR = 365 * DAY


TRACKED = (
    organisations,
    accounts,
    credentials,
    bundles,
    certificates,
    log_leaves,
    teams,
    team_members,
    team_wraps,
    invitations,
    audit_log,
)


class FakeClock:
    """A controllable clock (ms) for ``create_app(settings, clock=...)``."""

    def __init__(self, now: int = NOW) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now

    def advance(self, ms: int) -> None:
        self.now += ms


def new_id() -> str:
    return b64e(random_bytes(16))


@dataclass
class Person:
    """An account-to-be (or account) with its keys, as its client holds them."""

    id: str
    kind: certs.Kind
    org: str | None
    login: str
    sign_seed: bytes = field(repr=False)
    enc_sk: bytes = field(repr=False)
    auth_seed: bytes = field(repr=False)
    recovery_seed: bytes = field(repr=False)
    identity: SignedCert
    enc: SignedCert
    token: str | None = None

    @property
    def headers(self) -> dict[str, str]:
        assert self.token is not None, "log in first"
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def identity_cert(self) -> certs.Cert:
        return self.identity["cert"]

    @property
    def enc_cert(self) -> certs.Cert:
        return self.enc["cert"]


def make_person(
    kind: certs.Kind, org: str | None, *, now: int, account: str | None = None
) -> Person:
    """Fresh keys for a new account; staff identities are not yet org-certified."""
    pid = account or new_id()
    sign_seed, enc_sk = random_bytes(32), random_bytes(32)
    cert_org = None if kind == "citizen" else org
    identity = certs.sign_cert(
        certs.make_cert(
            subject=pid,
            kind=kind,
            org=cert_org,
            use="sign",
            pk=sign_keypair(sign_seed)[0],
            created=now,
        ),
        sign_seed,
    )
    enc = certs.sign_cert(
        certs.make_cert(
            subject=pid,
            kind=kind,
            org=cert_org,
            use="encrypt",
            pk=box_keypair(enc_sk)[0],
            created=now,
            expires=now + YEAR,
        ),
        sign_seed,
    )
    return Person(
        id=pid,
        kind=kind,
        org=org,
        login=f"{kind}-{pid[:8].lower().replace('_', 'x').replace('-', 'y')}@example.org",
        sign_seed=sign_seed,
        enc_sk=enc_sk,
        auth_seed=random_bytes(32),
        recovery_seed=random_bytes(32),
        identity=identity,
        enc=enc,
    )


def account_fields(p: Person) -> dict[str, Any]:
    """The members activation and registration share."""
    keys = build_private_keys(gen=1, identity=[p.sign_seed], encrypt=[(p.enc_sk, None)])
    pass_bundle = seal_bundle(
        keys, random_bytes(32), p.id, kind="pass", salt=random_bytes(16), ops=2, mem=64 * MIB
    )
    recovery_bundle = seal_bundle(keys, random_bytes(32), p.id, kind="recovery")
    return {
        "account": p.id,
        "login": p.login,
        "language": "de",
        "identity": p.identity,
        "encryption": p.enc,
        "pass_bundle": pass_bundle,
        "recovery_bundle": recovery_bundle,
        "auth_pk": b64e(sign_keypair(p.auth_seed)[0]),
        "recovery_auth_pk": b64e(sign_keypair(p.recovery_seed)[0]),
    }


def activation_body(p: Person, code: bytes) -> dict[str, Any]:
    return {
        **account_fields(p),
        "authoriser": b64e(activation.act_auth(code)),
        "act_mac": b64e(activation.act_mac(code, p.identity["cert"])),
    }


async def send(
    client: Client,
    method: str,
    path: str,
    body: Any = None,
    *,
    who: Person | None = None,
) -> tuple[int, Any]:
    """A request with a canonical JSON body; returns (status, parsed JSON or None)."""
    headers = {} if who is None else dict(who.headers)
    data = None
    if body is not None:
        headers["Content-Type"] = "application/json"
        data = cj(body)
    resp = await client.request(method, path, data=data, headers=headers)
    payload = await resp.json() if resp.content_type.endswith("json") else None
    return resp.status, payload


async def login(client: Client, p: Person) -> str:
    origin = client.app[SETTINGS].origin
    status, answer = await send(client, "POST", "/api/v1/auth/challenge", {"login": p.login})
    assert status == 200, answer
    challenge = b64d(answer["challenge"], 32)
    signature = sign_login(p.auth_seed, challenge, origin, p.login, "pass")
    status, grant = await send(
        client,
        "POST",
        "/api/v1/auth/login",
        {
            "login": p.login,
            "challenge": answer["challenge"],
            "auth_pk": b64e(sign_keypair(p.auth_seed)[0]),
            "signature": b64e(signature),
            "method": "pass",
        },
    )
    assert status == 200, grant
    p.token = grant["access_token"]
    return p.token


@dataclass
class OrgSetup:
    """An organisation with its root key and a certified, logged-in admin."""

    org: str
    root_seed: bytes = field(repr=False)
    root: certs.SignedOrgRoot
    admin: Person


async def create_org(client: Client, *, self_registration: bool = False) -> str:
    org = await client.app[ORGS].create(
        NewOrg.of(
            {"de": "Stadt Nürnberg – Ausländerbehörde", "en": "City of Nuremberg"},
            "Stadt Nürnberg",
            self_registration,
        )
    )
    return org.id


async def operator_invite(client: Client, org: str, now: int) -> bytes:
    """The operator's admin invitation (as ``postbox admin org invite-admin`` makes it)."""
    code = activation.generate_code()
    await client.app[INVITATIONS].create_by_operator(
        invitation_id=new_id(), org_id=org, authoriser=activation.act_auth(code), expires=now + DAY
    )
    return code


async def activate(client: Client, p: Person, code: bytes) -> None:
    status, body = await send(client, "POST", "/api/v1/activation", activation_body(p, code))
    assert status == 201, body


async def certify(client: Client, setup: OrgSetup, p: Person) -> None:
    """The org root certifies a staff identity (``postbox-desk org certify``)."""
    p.identity = certs.org_certify(p.identity, setup.root_seed)
    status, body = await send(
        client,
        "POST",
        f"/api/v1/orgs/{setup.org}/certify",
        {"identity": p.identity},
        who=setup.admin,
    )
    assert status == 201, body


async def setup_org(client: Client, now: int, *, self_registration: bool = False) -> OrgSetup:
    """Operator creates the org and invites its admin; the admin activates, logs in,
    registers the org root and has its own identity certified (``org init``)."""
    org = await create_org(client, self_registration=self_registration)
    code = await operator_invite(client, org, now)
    admin = make_person("admin", org, now=now)
    await activate(client, admin, code)
    await login(client, admin)
    root_seed = random_bytes(32)
    root = certs.make_org_root(org=org, name="Stadt Nürnberg", root_seed=root_seed, created=now)
    status, body = await send(
        client, "POST", f"/api/v1/orgs/{org}/root", {"org_root": root}, who=admin
    )
    assert status == 201, body
    setup = OrgSetup(org, root_seed, root, admin)
    await certify(client, setup, admin)
    return setup


async def invite(
    client: Client, inviter: Person, kind: str, now: int, *, team: str | None = None
) -> tuple[str, bytes]:
    code = activation.generate_code()
    iid = new_id()
    status, body = await send(
        client,
        "POST",
        "/api/v1/invitations",
        {
            "id": iid,
            "kind": kind,
            "team": team,
            "authoriser": b64e(activation.act_auth(code)),
            "expires": now + DAY,
        },
        who=inviter,
    )
    assert status == 201, body
    return iid, code


async def add_staff(
    client: Client, setup: OrgSetup, kind: certs.Kind, now: int, *, certified: bool = True
) -> Person:
    """An admin invites a staff member, who activates and logs in; the root certifies it."""
    _, code = await invite(client, setup.admin, kind, now)
    p = make_person(kind, setup.org, now=now)
    await activate(client, p, code)
    await login(client, p)
    if certified:
        await certify(client, setup, p)
    return p


async def add_citizen(client: Client, caseworker: Person, now: int) -> Person:
    _, code = await invite(client, caseworker, "citizen", now)
    p = make_person("citizen", caseworker.org, now=now)
    await activate(client, p, code)
    await login(client, p)
    return p


# --- teams ---------------------------------------------------------------------------------------
@dataclass
class TeamKey:
    sk: bytes = field(repr=False)
    signed: SignedCert

    @property
    def cert(self) -> certs.Cert:
        return self.signed["cert"]


def team_key(team: str, org: str, admin: Person, now: int) -> TeamKey:
    """A new team key (made by a member), certified by an admin key."""
    sk = random_bytes(32)
    cert = certs.make_cert(
        subject=team,
        kind="team",
        org=org,
        use="encrypt",
        pk=box_keypair(sk)[0],
        created=now,
        expires=now + YEAR,
    )
    return TeamKey(sk, certs.sign_cert(cert, admin.sign_seed))


def wrap(key: TeamKey, member: Person, by: Person) -> certs.SignedTeamWrap:
    return certs.make_team_wrap(
        team_cert=key.cert,
        team_sk=key.sk,
        member=member.id,
        member_enc=member.enc_cert,
        by=by.id,
        by_seed=by.sign_seed,
    )


def membership(team: str, member: Person, admin: Person, at: int) -> certs.SignedMembership:
    return certs.sign_membership(team=team, member=member.id, at=at, admin_seed=admin.sign_seed)


async def create_team(client: Client, setup: OrgSetup) -> str:
    team = new_id()
    status, body = await send(
        client,
        "POST",
        f"/api/v1/orgs/{setup.org}/teams",
        {"team": team, "names": {"de": "Aufenthaltstitel", "en": "Residence permits"}},
        who=setup.admin,
    )
    assert status == 201, body
    return team


async def init_team(client: Client, setup: OrgSetup, team: str, first: Person, now: int) -> TeamKey:
    """The first member's ``team init``: key certified by the admin, membership, own wrap."""
    key = team_key(team, setup.org, setup.admin, now)
    status, body = await send(
        client,
        "POST",
        f"/api/v1/teams/{team}/key",
        {
            "cert": key.signed,
            "wraps": [wrap(key, first, first)],
            "membership": membership(team, first, setup.admin, now),
        },
        who=first,
    )
    assert status == 201, body
    return key


# --- fixtures ------------------------------------------------------------------------------------
# Test modules import these (fixtures named by ``name=``, so the imported names do not
# collide with the test functions' parameters).
@pytest.fixture(name="clock")
def clock_fixture() -> FakeClock:
    return FakeClock()


@pytest.fixture(name="app_client")
async def app_client_fixture(
    aiohttp_client: AiohttpClient, settings: Settings, clock: FakeClock
) -> Client:
    """The whole server on loopback, with a controllable clock."""
    return await aiohttp_client(create_app(settings, clock=clock))


async def table_counts(client: Client) -> dict[str, int]:
    """Rows per table: "nothing stored" means these do not change."""
    async with client.app[DB].read() as conn:
        return {
            table.name: (await conn.execute(select(func.count()).select_from(table))).scalar_one()
            for table in TRACKED
        }


async def used_invitations(client: Client) -> int:
    async with client.app[DB].read() as conn:
        q = select(func.count()).select_from(invitations).where(invitations.c.used.is_not(None))
        return int((await conn.execute(q)).scalar_one())
