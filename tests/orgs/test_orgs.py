"""Organisations through the real server on both databases: root, certification, visibility."""

from __future__ import annotations

from typing import Any

import pytest
from support.onboard import (
    Client,
    FakeClock,
    Person,
    activate,
    add_citizen,
    add_staff,
    app_client_fixture,  # noqa: F401 (a fixture)
    certify,
    clock_fixture,  # noqa: F401 (a fixture)
    create_org,
    login,
    make_person,
    operator_invite,
    send,
    setup_org,
    table_counts,
)

from postbox.crypto import certs
from postbox.crypto.encoding import b64e
from postbox.crypto.keystate import replay
from postbox.crypto.primitives import random_bytes
from postbox.mailbox.appkeys import DB, KEYLOG
from postbox.mailbox.errors import BadRequest
from postbox.mailbox.orgs.service import NewOrg


async def _chain(client: Client, subject: str) -> list[Any]:
    async with client.app[DB].read() as conn:
        return list(await client.app[KEYLOG].events(conn, subject))


async def _refused(
    client: Client, method: str, path: str, body: Any, who: Person | None, status: int, code: str
) -> None:
    before = await table_counts(client)
    got, problem = await send(client, method, path, body, who=who)
    assert (got, problem["type"]) == (status, f"urn:postbox:problem:{code}"), problem
    assert await table_counts(client) == before


async def _fresh_admin(client: Client, clock: FakeClock) -> tuple[str, Person]:
    """An org whose first admin activated and logged in, before ``org init``."""
    org = await create_org(client)
    code = await operator_invite(client, org, clock())
    admin = make_person("admin", org, now=clock())
    await activate(client, admin, code)
    await login(client, admin)
    return org, admin


async def test_org_init_registers_root_and_admin_key(app_client: Client, clock: FakeClock) -> None:
    setup = await setup_org(app_client, clock())
    status, org = await send(app_client, "GET", f"/api/v1/orgs/{setup.org}", who=setup.admin)
    assert status == 200, org
    assert org["org_root"] == setup.root
    assert org["fingerprint"] == certs.org_fingerprint(setup.root["org_root"])
    assert org["names"]["de"] == "Stadt Nürnberg – Ausländerbehörde"
    assert org["notification_name"] == "Stadt Nürnberg"
    # the org chain: the root, then the admin's org-certified identity as an admin key
    chain = await _chain(app_client, setup.org)
    assert [e["type"] for e in chain] == ["org_root", "admin_key"]
    state = replay(chain, org_roots={setup.org: setup.root["org_root"]})
    assert [a.cert["subject"] for a in state.admins] == [setup.admin.id]
    # and the admin's own chain: its certified identity, then its encryption key
    assert [e["type"] for e in await _chain(app_client, setup.admin.id)] == ["identity", "key"]
    # the root is registered once
    again = certs.make_org_root(
        org=setup.org, name="Stadt Nürnberg", root_seed=random_bytes(32), created=clock()
    )
    await _refused(
        app_client,
        "POST",
        f"/api/v1/orgs/{setup.org}/root",
        {"org_root": again},
        setup.admin,
        409,
        "org-root-exists",
    )


async def test_root_refusals(app_client: Client, clock: FakeClock) -> None:
    org, admin = await _fresh_admin(app_client, clock)
    other_org, other_admin = await _fresh_admin(app_client, clock)
    seed = random_bytes(32)
    root = certs.make_org_root(org=org, name="Stadt Nürnberg", root_seed=seed, created=clock())
    forged = {**root, "sig": b64e(bytes(64))}
    foreign = certs.make_org_root(org=other_org, name="X", root_seed=seed, created=clock())
    path = f"/api/v1/orgs/{org}/root"
    cases: list[tuple[Any, Person | None, int, str]] = [
        ({"org_root": forged}, admin, 400, "invalid-org-root"),
        ({"org_root": foreign}, admin, 400, "invalid-org-root"),
        ({"org_root": {**root, "extra": 1}}, admin, 400, "invalid-org-root"),
        ({"root": root}, admin, 400, "malformed"),
        ({"org_root": root}, other_admin, 404, "org-not-found"),
        ({"org_root": root}, None, 401, "unauthorized"),
    ]
    for body, who, status, code in cases:
        await _refused(app_client, "POST", path, body, who, status, code)
    # certification needs the root first
    await _refused(
        app_client,
        "POST",
        f"/api/v1/orgs/{org}/certify",
        {"identity": certs.org_certify(admin.identity, seed)},
        admin,
        409,
        "org-root-missing",
    )
    status, body = await send(app_client, "POST", path, {"org_root": root}, who=admin)
    assert status == 201, body


async def test_certification_refusals(app_client: Client, clock: FakeClock) -> None:
    setup = await setup_org(app_client, clock())
    other = await setup_org(app_client, clock())
    cw = await add_staff(app_client, setup, "caseworker", clock(), certified=False)
    path = f"/api/v1/orgs/{setup.org}/certify"
    wrong_root = certs.org_certify(cw.identity, random_bytes(32))
    other_cw = await add_staff(app_client, other, "caseworker", clock(), certified=False)
    cases: list[tuple[Any, Person, int, str]] = [
        ({"identity": cw.identity}, setup.admin, 400, "invalid-identity"),
        ({"identity": wrong_root}, setup.admin, 400, "invalid-identity"),
        # a caseworker of this org is not an admin
        ({"identity": certs.org_certify(cw.identity, setup.root_seed)}, cw, 403, "admin-only"),
        # another org's admin does not see this org at all
        (
            {"identity": certs.org_certify(cw.identity, setup.root_seed)},
            other.admin,
            404,
            "org-not-found",
        ),
        # another org's identity certified with this org's root
        (
            {"identity": certs.org_certify(other_cw.identity, setup.root_seed)},
            setup.admin,
            400,
            "invalid-identity",
        ),
    ]
    for body, who, status, code in cases:
        await _refused(app_client, "POST", path, body, who, status, code)
    status, pending = await send(
        app_client, "GET", f"/api/v1/orgs/{setup.org}/pending", who=setup.admin
    )
    assert [c["cert"]["subject"] for c in pending["pending"]] == [cw.id]
    await certify(app_client, setup, cw)
    # certifying twice: nothing waits any more
    await _refused(
        app_client, "POST", path, {"identity": cw.identity}, setup.admin, 404, ("not-pending")
    )


async def test_orgs_exist_only_for_their_members(app_client: Client, clock: FakeClock) -> None:
    setup = await setup_org(app_client, clock())
    other = await setup_org(app_client, clock())
    cw = await add_staff(app_client, setup, "caseworker", clock())
    citizen = await add_citizen(app_client, cw, clock())
    for who in (setup.admin, cw, citizen):
        status, body = await send(app_client, "GET", f"/api/v1/orgs/{setup.org}", who=who)
        assert status == 200, body
    for path in ("", "/pending", "/teams"):
        status, problem = await send(
            app_client, "GET", f"/api/v1/orgs/{setup.org}{path}", who=(other.admin)
        )
        assert (status, problem["type"]) == (404, "urn:postbox:problem:org-not-found")
    for path in ("/pending", "/teams"):
        status, _ = await send(app_client, "GET", f"/api/v1/orgs/{setup.org}{path}", who=citizen)
        assert status == 404
    status, problem = await send(app_client, "GET", f"/api/v1/orgs/{setup.org}/pending", who=cw)
    assert (status, problem["type"]) == (403, "urn:postbox:problem:admin-only")
    status, _ = await send(app_client, "GET", f"/api/v1/orgs/{setup.org}")
    assert status == 401


@pytest.mark.parametrize(
    ("names", "notification"),
    [
        ({}, "Stadt"),
        ({"de": ""}, "Stadt"),
        ({"de": "Stadt"}, "Stadt\r\nBcc: x@example.org"),
        ({"de": "Stadt"}, " "),
        ({"Deutsch": "Stadt"}, "Stadt"),
        ({"de": "x" * 201}, "Stadt"),
    ],
)
def test_org_names_are_checked(names: dict[str, str], notification: str) -> None:
    with pytest.raises(BadRequest) as info:
        NewOrg.of(names, notification, False)
    assert info.value.code == "malformed"
