"""Onboarding end to end, as PROTOCOL.md and the issue order it, through the real server.

The operator CLI (in-process, on the same database and secrets) creates an organisation and
invites its admin; everything after that goes through ``postbox-desk`` (in-process, over
HTTP to a live server on loopback) with passphrases through pipes: the admin activates and
runs ``org init``, creates a team and invites a caseworker; the caseworker activates; the
admin checks the activation code and certifies; the caseworker creates the team key (the
admin approves it); the caseworker invites a citizen who activates and logs in; a second
caseworker is added and removed again (the key rotates); keys verify throughout; a server
made to serve a swapped key is caught.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from support.atrest import assert_nothing_in_clear, secrets_in, stored_bytes
from support.client import PASSPHRASE, DeskResult, Live, Tampering, desk, live_server

from postbox import cli as server_cli
from postbox.client import Client
from postbox.crypto.encoding import b64d, b64e

ADMIN_ROOT_PASSPHRASE = "Wurzel-Schlüssel-Tresor-91-Kompass"


def operator(live: Live, *args: str) -> dict[str, Any]:
    """``postbox admin … --json`` against the live server's database and secrets."""
    s = live.settings
    argv = [
        "admin",
        *args,
        "--json",
        "--data-dir",
        str(s.data_dir),
        "--db",
        s.database_url,
        "--public-origin",
        s.origin,
    ]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = server_cli.main(argv)
    assert code == 0, out.getvalue()
    value = json.loads(out.getvalue().strip().splitlines()[-1])
    assert isinstance(value, dict)
    return value


def file_mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def read_text(path: Path) -> str:
    return path.read_text("utf-8")


class World:
    """The desk users of one test: each has its own state folder (its own machine)."""

    def __init__(self, live: Live, tmp: Path) -> None:
        self.live = live
        self.tmp = tmp
        self.outputs: list[str] = []  # everything the desk printed, for the canary scan

    def state(self, who: str) -> str:
        return str(self.tmp / f"desk-{who}")

    async def run(
        self,
        who: str,
        *args: str,
        passphrase: bool = False,
        root: bool = False,
        expect: int = 0,
    ) -> DeskResult:
        result = await desk(
            *args,
            "--server",
            self.live.url,
            "--state-dir",
            self.state(who),
            passphrases=[PASSPHRASE] if passphrase else [],
            root_passphrases=[ADMIN_ROOT_PASSPHRASE] if root else [],
        )
        assert result.code == expect, (result.code, result.out, result.err)
        self.outputs.append(result.out)
        return result


OPERATOR_OUTPUTS: list[dict[str, Any]] = []


async def _operator(live: Live, *args: str) -> dict[str, Any]:
    result = await asyncio.to_thread(operator, live, *args)
    OPERATOR_OUTPUTS.append(result)
    return result


def _secrets_printed(w: World) -> list[str]:
    found: list[str] = []
    for out in w.outputs:
        for line in out.splitlines():
            if line.startswith("{"):
                found.extend(secrets_in(json.loads(line)))
    for result in OPERATOR_OUTPUTS:
        found.extend(secrets_in(result))
    return found


async def test_onboarding_through_the_desk(
    db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="postbox")
    OPERATOR_OUTPUTS.clear()
    tampering = Tampering()
    async with live_server(db_url, tmp_path / "var", tampering=tampering) as live:
        w = World(live, tmp_path)

        # -- the operator creates the organisation and invites its admin --
        org = await _operator(
            live,
            "org",
            "create",
            "--name",
            "de=Stadt Nürnberg – Ausländerbehörde",
            "--notification-name",
            "Stadt Nürnberg",
        )
        org_id = org["org"]
        invite = await _operator(live, "org", "invite-admin", org_id)

        # -- the admin activates, and the operator checks the activation code --
        admin = (
            await w.run(
                "admin",
                "activate",
                invite["code"],
                "--login",
                "admin@nuernberg.example",
                passphrase=True,
            )
        ).data
        assert admin["kind"] == "admin" and admin["org"] == org_id
        assert admin["pending_certification"] is True
        assert len(admin["recovery_key"].split("-")) == 9
        verified = await _operator(
            live, "invitation", "verify", invite["invitation"], "--code", invite["code"]
        )
        assert verified["account"] == admin["account"]

        # -- org init: root key file, registered root, the admin's own key certified --
        init = (await w.run("admin", "org", "init", root=True)).data
        root_file = Path(init["root_file"])
        assert file_mode(root_file) == 0o600
        assert PASSPHRASE not in read_text(root_file)
        fingerprint = init["fingerprint"]
        assert init["admin"] == admin["account"]
        assert init["server_endorsed"] is True
        who = (await w.run("admin", "whoami")).data
        assert who["kind"] == "admin"

        # -- a team, and a caseworker invited with the letter --
        team = (await w.run("admin", "team", "create", "--name", "de=Aufenthalt")).data
        team_id = team["team"]
        letter = tmp_path / "letter-cw.html"
        cw_invite = (
            await w.run(
                "admin",
                "invite",
                "--kind",
                "caseworker",
                "--team",
                team_id,
                "--letter",
                str(letter),
            )
        ).data
        page = read_text(letter)
        assert cw_invite["code"] in page and fingerprint in page
        assert file_mode(letter) == 0o600

        caseworker = (
            await w.run(
                "cw",
                "activate",
                cw_invite["code"],
                "--login",
                "k.meier@nuernberg.example",
                "--org-fingerprint",
                fingerprint,
                passphrase=True,
            )
        ).data
        assert caseworker["kind"] == "caseworker"
        assert caseworker["org_fingerprint"] == fingerprint

        # certify refuses an identity nobody verified ...
        refused = await w.run("admin", "org", "certify", caseworker["account"], root=True, expect=2)
        assert "verified" in refused.err
        # ... and accepts it once the activation code matched
        checked = (
            await w.run("admin", "invite", "verify", cw_invite["id"], "--code", cw_invite["code"])
        ).data
        assert checked["account"] == caseworker["account"]
        assert checked["fingerprint"] == caseworker["identity_fingerprint"]
        certified = (await w.run("admin", "org", "certify", caseworker["account"], root=True)).data
        assert certified["kid"] == checked["kid"]

        # the caseworker's keys now verify for anybody, against the pinned org root
        keys = (await w.run("anyone", "keys", "verify", caseworker["account"])).data
        assert keys["chain"] == "account" and keys["org_fingerprint"] == fingerprint
        assert keys["identity_fingerprint"] == caseworker["identity_fingerprint"]
        login = (await w.run("cw", "login", passphrase=True)).data
        assert login["pending_certification"] is False and login["foreign_events"] == []

        # -- team init: the caseworker asks, the admin approves, the caseworker installs --
        request = tmp_path / "team-request.json"
        approval = tmp_path / "team-approval.json"
        await w.run("cw", "team", "init", team_id, "--request-out", str(request), passphrase=True)
        await w.run(
            "admin", "team", "approve", str(request), "--out", str(approval), passphrase=True
        )
        installed = (
            await w.run("cw", "team", "init", team_id, "--approval", str(approval), passphrase=True)
        ).data
        assert installed["members"] == [caseworker["account"]]
        team_keys = (await w.run("anyone", "keys", "verify", team_id)).data
        assert team_keys["chain"] == "team" and team_keys["members"] == [caseworker["account"]]
        opened = (await w.run("cw", "team", "open", team_id, passphrase=True)).data
        assert opened["keys"] == [team_keys["encryption"]]

        # -- the caseworker invites a citizen, who activates and logs in --
        cz_invite = (await w.run("cw", "invite")).data
        assert cz_invite["kind"] == "citizen"
        assert cz_invite["link"].startswith(live.url + "/activate#")
        citizen = (
            await w.run(
                "citizen",
                "activate",
                cz_invite["code"],
                "--login",
                "Ayşe@Example.ORG",
                "--language",
                "tr",
                passphrase=True,
            )
        ).data
        assert citizen["kind"] == "citizen" and citizen["org"] is None
        assert citizen["login"] == "Ayşe@example.org"
        await w.run("citizen", "logout")
        await w.run("citizen", "whoami", expect=1)
        again = (await w.run("citizen", "login", passphrase=True)).data
        assert again["account"] == citizen["account"]
        me = (await w.run("citizen", "whoami")).data
        assert me["language"] == "tr" and me["identity_verified"] is False
        sessions = (await w.run("citizen", "sessions")).data["sessions"]
        assert [s["current"] for s in sessions] == [True]
        await w.run("cw", "invite", "verify", cz_invite["id"], "--code", cz_invite["code"])
        me = (await w.run("citizen", "whoami")).data
        assert me["identity_verified"] is True

        citizen_keys = (await w.run("cw", "keys", "verify", citizen["account"])).data
        assert citizen_keys["identity_fingerprint"] == citizen["identity_fingerprint"]
        await w.run(
            "cw",
            "keys",
            "verify",
            citizen["account"],
            "--fingerprint",
            citizen["identity_fingerprint"],
        )
        wrong = await w.run(
            "cw",
            "keys",
            "verify",
            citizen["account"],
            "--fingerprint",
            caseworker["identity_fingerprint"],
            expect=3,
        )
        assert "SECURITY ALARM" in wrong.err

        # -- a second caseworker joins the team and leaves again (the key rotates) --
        cw2_invite = (await w.run("admin", "invite", "--kind", "caseworker")).data
        cw2 = (
            await w.run(
                "cw2", "activate", cw2_invite["code"], "--login", "l.schulz", passphrase=True
            )
        ).data
        await w.run("admin", "invite", "verify", cw2_invite["id"], "--code", cw2_invite["code"])
        await w.run("admin", "org", "certify", cw2["account"], root=True)
        add_req, add_ok = tmp_path / "add-request.json", tmp_path / "add-approval.json"
        await w.run(
            "cw",
            "team",
            "add",
            team_id,
            cw2["account"],
            "--fingerprint",
            cw2["identity_fingerprint"],
            "--request-out",
            str(add_req),
        )
        # a wrong fingerprint stops the member before anything is signed
        await w.run(
            "cw",
            "team",
            "add",
            team_id,
            cw2["account"],
            "--fingerprint",
            caseworker["identity_fingerprint"],
            expect=3,
        )
        await w.run("admin", "team", "approve", str(add_req), "--out", str(add_ok), passphrase=True)
        added = (
            await w.run(
                "cw",
                "team",
                "add",
                team_id,
                cw2["account"],
                "--fingerprint",
                cw2["identity_fingerprint"],
                "--approval",
                str(add_ok),
                passphrase=True,
            )
        ).data
        assert sorted(added["members"]) == sorted([caseworker["account"], cw2["account"]])
        cw2_keys = (await w.run("cw2", "team", "open", team_id, passphrase=True)).data
        assert cw2_keys["keys"] == opened["keys"]

        rm_req, rm_ok = tmp_path / "rm-request.json", tmp_path / "rm-approval.json"
        await w.run(
            "cw",
            "team",
            "remove",
            team_id,
            cw2["account"],
            "--request-out",
            str(rm_req),
            passphrase=True,
        )
        await w.run("admin", "team", "approve", str(rm_req), "--out", str(rm_ok), passphrase=True)
        removed = (
            await w.run(
                "cw",
                "team",
                "remove",
                team_id,
                cw2["account"],
                "--approval",
                str(rm_ok),
                passphrase=True,
            )
        ).data
        assert removed["members"] == [caseworker["account"]]
        assert removed["rotation_pending"] is False
        shown = (await w.run("cw", "team", "show", team_id)).data
        assert shown["rotation_pending"] is False and shown["key"] != team_keys["encryption"]
        rotated = (await w.run("cw", "team", "open", team_id, passphrase=True)).data
        assert set(rotated["keys"]) == {team_keys["encryption"], shown["key"]}
        listed = (await w.run("admin", "team", "list")).data
        assert [t["team"] for t in listed["teams"]] == [team_id]

        # -- the admin revokes the second caseworker's keys --
        revoked = (await w.run("admin", "org", "revoke", cw2["account"], passphrase=True)).data
        assert len(revoked["revoked"]) == 2
        after = (await w.run("anyone", "keys", "verify", cw2["account"])).data
        assert after["identity"] is None and len(after["revoked"]) == 2
        # revoking a staff identity disables the account: the leaver's sessions end and
        # it cannot log in again (the same answer as any failed login)
        cw2_login = await w.run("cw2", "login", passphrase=True, expect=1)
        assert cw2_login.data["code"] == "login-failed"

        # -- a server made to serve a swapped key is caught --
        target = citizen["account"]

        def swap(path: str, body: Any) -> Any:
            if path != f"/api/v1/keys/{target}":
                return body
            for entry in body["events"]:
                event = json.loads(b64d(entry["leaf"]))
                if event["type"] == "key":
                    cert = event["body"]["cert"]
                    pk = bytearray(b64d(cert["pk"]))
                    pk[0] ^= 1
                    cert["pk"] = b64e(bytes(pk))
                    entry["leaf"] = b64e(json.dumps(event, separators=(",", ":")).encode())
            return body

        tampering.fn = swap
        caught = await w.run("cw", "keys", "verify", target, expect=3)
        assert json.loads(caught.out.splitlines()[-1])["code"] == "BadProof"
        fresh = await w.run("newcomer", "keys", "verify", target, expect=3)
        assert "SECURITY ALARM" in fresh.err
        tampering.fn = None
        await w.run("cw", "keys", "verify", target)

        # -- nothing in clear at rest: passphrases, activation codes and recovery keys
        # appear nowhere in the database, the data folder or the server's logs --
        canaries = [PASSPHRASE, ADMIN_ROOT_PASSPHRASE, *_secrets_printed(w)]
        printed = _secrets_printed(w)
        assert sum(1 for c in printed if len(c.split("-")) == 9) >= 4  # recovery keys
        assert sum(1 for c in printed if len(c.split("-")) == 8) >= 4  # activation codes
        assert_nothing_in_clear(canaries, await stored_bytes(live.settings), caplog.records)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_pins_survive_and_a_changed_server_is_refused(db_url: str, tmp_path: Path) -> None:
    """The desk pins the server at first contact; another server at the same origin (new
    log key) is refused loudly before anything is sent."""
    state = tmp_path / "state"
    async with live_server(db_url, tmp_path / "var1") as live:
        url = live.url
        async with Client(url, state_dir=state) as client:
            await client.connect()
            assert client.session.first_contact
        first = await desk(
            "keys", "verify", "AAAAAAAAAAAAAAAAAAAAAA", "--server", url, "--state-dir", str(state)
        )
        assert first.code == 1 and first.data["status"] == 404
        # explicit pins given on the command line must match the stored ones too
        clash = await desk(
            "keys",
            "verify",
            "AAAAAAAAAAAAAAAAAAAAAA",
            "--server",
            url,
            "--state-dir",
            str(state),
            "--log-key",
            "A" * 43,
            "--receipt-key",
            "A" * 43,
        )
        assert clash.code == 3 and clash.data["code"] == "pin-mismatch"
    port = int(url.rsplit(":", 1)[1])
    from aiohttp.test_utils import TestServer

    from postbox.mailbox.app import create_app
    from postbox.mailbox.settings import Settings

    settings = Settings(
        data_dir=tmp_path / "var2",
        db=f"sqlite+aiosqlite:///{tmp_path / 'other.db'}",
        port=port,
        public_origin=url,
    ).validate()
    server = TestServer(create_app(settings), host="127.0.0.1", port=port)
    await server.start_server()
    try:
        swapped = await desk(
            "keys", "verify", "AAAAAAAAAAAAAAAAAAAAAA", "--server", url, "--state-dir", str(state)
        )
        assert swapped.code == 3
        assert swapped.data["code"] == "pin-mismatch"
        assert "SERVER KEYS CHANGED" in swapped.err
    finally:
        await server.close()
