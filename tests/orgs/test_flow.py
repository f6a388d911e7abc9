"""Onboarding end to end on both databases: org, root, admin, caseworker, team, citizen."""

from __future__ import annotations

from support.onboard import (
    Client,
    FakeClock,
    add_citizen,
    add_staff,
    app_client_fixture,  # noqa: F401 (a fixture)
    clock_fixture,  # noqa: F401 (a fixture)
    create_team,
    init_team,
    send,
    setup_org,
)


async def test_onboarding_flow(app_client: Client, clock: FakeClock) -> None:
    now = clock()
    setup = await setup_org(app_client, now)
    cw = await add_staff(app_client, setup, "caseworker", now)
    team = await create_team(app_client, setup)
    key = await init_team(app_client, setup, team, cw, now)
    status, body = await send(app_client, "GET", f"/api/v1/teams/{team}", who=cw)
    assert status == 200, body
    assert body["members"] == [cw.id]
    assert body["key"]["cert"]["kid"] == key.cert["kid"]
    citizen = await add_citizen(app_client, cw, now)
    status, me = await send(app_client, "GET", "/api/v1/me", who=citizen)
    assert status == 200, me
    assert me["kind"] == "citizen"
