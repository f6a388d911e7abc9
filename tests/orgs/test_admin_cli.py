"""``postbox admin …`` in-process, against the data folder and database of a running test app."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from support.onboard import (
    Client,
    FakeClock,
    OrgSetup,
    activate,
    app_client_fixture,  # noqa: F401 (a fixture)
    certify,
    create_team,
    login,
    make_person,
    send,
)

from postbox.cli import build_parser, main
from postbox.crypto import activation, certs
from postbox.crypto.primitives import random_bytes
from postbox.mailbox.clock import system_clock
from postbox.mailbox.settings import Settings


@pytest.fixture
def clock() -> FakeClock:
    # the CLI runs on the system clock; the server's must agree for sessions to be "live"
    return FakeClock(system_clock())


class Cli:
    def __init__(self, settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
        self.flags = ["--data-dir", str(settings.data_dir), "--db", settings.database_url]
        self.capsys = capsys

    async def run(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        argv = ["admin", *args, *self.flags]
        code = await asyncio.to_thread(main, argv)
        out, err = self.capsys.readouterr()
        return code, out, err

    async def json(self, *args: str) -> Any:
        code, out, err = await self.run(*args, "--json")
        assert code == 0, (out, err)
        return json.loads(out)


async def test_operator_onboards_an_org_while_the_server_runs(
    app_client: Client,
    clock: FakeClock,
    settings: Settings,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    cli = Cli(settings, capsys)
    org = (
        await cli.json(
            "org",
            "create",
            "--name",
            "de=Stadt Nürnberg – Ausländerbehörde",
            "--name",
            "en=City of Nuremberg",
            "--notification-name",
            "Stadt Nürnberg",
        )
    )["org"]
    listed = await cli.json("org", "list")
    assert [o["org"] for o in listed["orgs"]] == [org]
    assert listed["orgs"][0]["self_registration"] is False

    letter = tmp_path / "admin-letter.html"
    invited = await cli.json("org", "invite-admin", org, "--letter", str(letter))
    assert invited["kind"] == "admin" and invited["fingerprint"] is None
    assert invited["link"] == f"{settings.origin}/activate#{invited['code']}"
    assert stat.S_IMODE(os.stat(letter).st_mode) == 0o600
    html = letter.read_text("utf-8")
    assert invited["code"] in html and "<svg" in html
    # the CLI never overwrites a letter (and creates no invitation when it refuses)
    code, _, err = await cli.run("org", "invite-admin", org, "--letter", str(letter))
    assert code == 1 and "exists" in err

    # the admin activates through the server with the printed code
    admin = make_person("admin", org, now=clock())
    body_code = activation.parse_code(invited["code"])
    await activate(app_client, admin, body_code)
    await login(app_client, admin)

    # a wrong code does not verify, a right one does
    code, _, err = await cli.run(
        "invitation",
        "verify",
        invited["invitation"],
        "--code",
        activation.format_code(activation.generate_code()),
    )
    assert code == 1 and "act-mac-mismatch" in err
    status, me = await send(app_client, "GET", "/api/v1/me", who=admin)
    assert me["identity_verified"] is False
    verified = await cli.json(
        "invitation", "verify", invited["invitation"], "--code", (invited["code"])
    )
    assert verified["verified"] is True and verified["account"] == admin.id
    assert verified["identity_fingerprint"] == certs.fingerprint(certs.cert_pk(admin.identity_cert))
    status, me = await send(app_client, "GET", "/api/v1/me", who=admin)
    assert me["identity_verified"] is True

    # org init through the server; the next admin letter carries the root's fingerprint
    root_seed = random_bytes(32)
    root = certs.make_org_root(org=org, name="Stadt Nürnberg", root_seed=root_seed, created=clock())
    status, body = await send(app_client, "POST", f"/api/v1/orgs/{org}/root", {"org_root": root},
                              who=admin)  # fmt: skip
    assert status == 201, body
    setup = OrgSetup(org, root_seed, root, admin)
    await certify(app_client, setup, admin)
    second_letter = tmp_path / "second.html"
    second = await cli.json("org", "invite-admin", org, "--letter", str(second_letter),
                            "--language", "en", "--days", "3")  # fmt: skip
    fingerprint = certs.org_fingerprint(root["org_root"])
    assert second["fingerprint"] == fingerprint
    assert fingerprint in second_letter.read_text("utf-8")

    team = await create_team(app_client, setup)
    teams = await cli.json("team", "list", org)
    assert [t["team"] for t in teams["teams"]] == [team]
    assert teams["teams"][0]["member_count"] == 0

    # sessions: list (all, or one account's) and revoke; the revoked token stops working
    sessions = (await cli.json("session", "list"))["sessions"]
    assert [s["account"] for s in sessions] == [admin.id]
    mine = (await cli.json("session", "list", "--account", admin.id))["sessions"]
    assert mine == sessions
    assert (await cli.json("session", "list", "--account", team))["sessions"] == []
    revoked = await cli.json("session", "revoke", sessions[0]["id"])
    assert revoked == {"session": sessions[0]["id"], "account": admin.id, "revoked": True}
    status, _ = await send(app_client, "GET", "/api/v1/me", who=admin)
    assert status == 401
    code, _, err = await cli.run("session", "revoke", sessions[0]["id"])
    assert code == 1 and "no-such-session" in err

    # the audit log shows what happened and verifies
    shown = (await cli.json("audit", "show", "--limit", "3"))["entries"]
    assert len(shown) == 3
    assert shown[-1]["action"] == "session-revoked"
    assert shown[-1]["details"]["reason"] == "operator"
    actions = {e["action"] for e in (await cli.json("audit", "show", "--limit", "1000"))["entries"]}
    assert {"org.create", "invitation.create", "account.activate", "invitation.verified",
            "org.root", "org.certify", "team.create", "login"} <= actions  # fmt: skip
    report = await cli.json("audit", "verify")
    assert report["ok"] is True and report["entries"] >= len(actions)
    code, out, _ = await cli.run("audit", "verify")
    assert code == 0 and "audit log verified" in out


async def test_cli_refusals(
    app_client: Client, settings: Settings, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    cli = Cli(settings, capsys)
    code, out, err = await cli.run("org", "invite-admin", "A" * 22, "--json")
    assert code == 1 and json.loads(out)["error"] == "org-not-found"
    code, _, err = await cli.run("org", "create", "--name", "Stadt", "--notification-name", "x")
    assert code == 1 and "LANG=NAME" in err
    code, _, err = await cli.run(
        "org", "create", "--name", "de=Stadt", "--notification-name", "a\nb"
    )
    assert code == 1 and "malformed" in err
    org = (await cli.json("org", "create", "--name", "de=Stadt", "--notification-name", "S",
                          "--self-registration"))["org"]  # fmt: skip
    code, _, err = await cli.run("org", "invite-admin", org, "--days", "0")
    assert code == 1 and "invalid-expiry" in err
    code, _, err = await cli.run("invitation", "verify", "A" * 22, "--code", "nonsense")
    assert code == 1 and "malformed-code" in err
    invited = await cli.json("org", "invite-admin", org)
    code, _, err = await cli.run("invitation", "verify", invited["invitation"], "--code",
                                 invited["code"])  # fmt: skip
    assert code == 1 and "not-activated" in err
    code, out, _ = await cli.run("team", "list", org)
    assert code == 0 and "no teams" in out
    # bad settings: exit status 2
    code = await asyncio.to_thread(main, ["admin", "org", "list", "--port", "0", *cli.flags])
    assert code == 2


@pytest.mark.parametrize("ident", ["-hvjAVrjZuQEZ6Baa6oCGw", "--vjAVrjZuQEZ6Baa6oCGw", "-" * 22])
def test_ids_that_start_with_a_dash_are_ids(ident: str) -> None:
    parser = build_parser()
    assert parser.parse_args(["admin", "session", "revoke", ident]).id == ident
    assert parser.parse_args(["admin", "session", "list", "--account", ident]).account == ident
    args = parser.parse_args(["admin", "invitation", "verify", ident, "--code", "X", "--json"])
    assert (args.id, args.code, args.json) == (ident, "X", True)
    assert parser.parse_args(["admin", "team", "list", ident]).org == ident
