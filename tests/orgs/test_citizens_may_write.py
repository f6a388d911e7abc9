"""An organisation's ``citizens_may_write`` (both databases): set by its admins through
``PATCH /api/v1/orgs/{org}`` or by the operator (``postbox admin org update``), audited,
and what the send path does with it."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from openapi.live import post_message, seal, tree_head
from support.onboard import (
    Client,
    FakeClock,
    add_citizen,
    add_staff,
    app_client_fixture,  # noqa: F401 (a fixture)
    create_team,
    init_team,
    new_id,
    send,
    setup_org,
    table_counts,
)

from postbox.cli import main
from postbox.mailbox.appkeys import AUDIT, DB
from postbox.mailbox.audit.service import AuditEntry
from postbox.mailbox.clock import system_clock
from postbox.mailbox.settings import Settings

PROBLEM = "urn:postbox:problem:"


@pytest.fixture
def clock() -> FakeClock:
    # the operator CLI runs on the system clock; the server's must not run behind it
    return FakeClock(system_clock())


def _same(problem: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in problem.items() if k not in ("instance", "request_id")}


async def _audit(client: Client, action: str) -> list[AuditEntry]:
    async with client.app[DB].read() as conn:
        entries = await client.app[AUDIT].entries(conn, limit=1000)
    return [e for e in entries if e.action == action]


async def test_admins_close_and_open_their_organisation(
    app_client: Client, clock: FakeClock
) -> None:
    now = clock()
    setup = await setup_org(app_client, now)
    cw = await add_staff(app_client, setup, "caseworker", now)
    team = await create_team(app_client, setup)
    key = await init_team(app_client, setup, team, cw, now)
    citizen = await add_citizen(app_client, cw, now)
    path = f"/api/v1/orgs/{setup.org}"

    status, org = await send(app_client, "GET", path, who=citizen)
    assert status == 200 and org["citizens_may_write"] is True, org
    status, org = await send(
        app_client, "PATCH", path, {"citizens_may_write": False}, who=setup.admin
    )
    assert status == 200 and org["citizens_may_write"] is False, org
    status, org = await send(app_client, "GET", path, who=cw)
    assert org["citizens_may_write"] is False
    [entry] = await _audit(app_client, "org.update")
    assert (entry.actor, entry.subject) == (setup.admin.id, setup.org)
    assert entry.details == {"citizens_may_write": False, "before": {"citizens_may_write": True}}

    # the send path reads the same flag: a new message from a citizen is refused, with the
    # answer for a mailbox that does not exist
    sth = await tree_head(app_client)
    keys = {team: key.cert, citizen.id: citizen.enc_cert}
    status, refused = await post_message(
        app_client, citizen, seal(citizen, [team], keys, now=now, sth=sth).body
    )
    assert (status, refused["type"]) == (404, PROBLEM + "unknown-recipient"), refused

    status, org = await send(
        app_client, "PATCH", path, {"citizens_may_write": True}, who=setup.admin
    )
    assert status == 200 and org["citizens_may_write"] is True
    status, receipt = await post_message(
        app_client, citizen, seal(citizen, [team], keys, now=now, sth=sth).body
    )
    assert status == 201, receipt
    assert len(await _audit(app_client, "org.update")) == 2


async def test_only_the_organisations_admins_change_it(
    app_client: Client, clock: FakeClock
) -> None:
    now = clock()
    setup, other = await setup_org(app_client, now), await setup_org(app_client, now)
    cw = await add_staff(app_client, setup, "caseworker", now)
    citizen = await add_citizen(app_client, cw, now)
    path = f"/api/v1/orgs/{setup.org}"
    before = await table_counts(app_client)

    status, body = await send(app_client, "PATCH", path, {"citizens_may_write": False}, who=cw)
    assert (status, body["type"]) == (403, PROBLEM + "admin-only"), body
    # another organisation's admin, and a citizen: the organisation does not exist for them
    _, unknown = await send(
        app_client,
        "PATCH",
        f"/api/v1/orgs/{new_id()}",
        {"citizens_may_write": False},
        who=other.admin,
    )
    assert unknown["type"] == PROBLEM + "org-not-found"
    for who in (other.admin, citizen):
        status, body = await send(app_client, "PATCH", path, {"citizens_may_write": False}, who=who)
        assert status == 404 and _same(body) == _same(unknown), body
    bad: Any
    for bad in ({}, {"citizens_may_write": "no"}, {"citizens_may_write": False, "x": 1}, []):
        status, body = await send(app_client, "PATCH", path, bad, who=setup.admin)
        assert (status, body["type"]) == (400, PROBLEM + "malformed"), (bad, body)
    status, body = await send(app_client, "PATCH", path, None, who=setup.admin)
    assert status == 415, body
    assert await table_counts(app_client) == before
    status, org = await send(app_client, "GET", path, who=cw)
    assert org["citizens_may_write"] is True


async def test_the_operator_changes_it(
    app_client: Client, clock: FakeClock, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    setup = await setup_org(app_client, clock())
    flags = ["--data-dir", str(settings.data_dir), "--db", settings.database_url]

    async def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = await asyncio.to_thread(main, ["admin", "org", *args, *flags])
        out, err = capsys.readouterr()
        return code, out, err

    code, out, err = await run("update", setup.org, "--citizens-may-write", "no", "--json")
    assert code == 0, err
    assert json.loads(out)["citizens_may_write"] is False
    status, org = await send(app_client, "GET", f"/api/v1/orgs/{setup.org}", who=setup.admin)
    assert status == 200 and org["citizens_may_write"] is False
    [entry] = await _audit(app_client, "org.update")
    assert entry.actor is None and entry.subject == setup.org
    code, out, _ = await run("list")
    assert code == 0 and "citizens-may-write=no" in out
    code, out, _ = await run("update", setup.org, "--citizens-may-write", "yes")
    assert code == 0 and "citizens may write" in out
    code, _, err = await run("update", new_id(), "--citizens-may-write", "yes")
    assert code == 1 and "org-not-found" in err
