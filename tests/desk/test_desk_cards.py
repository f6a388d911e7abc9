"""Team names on the desk (both databases): a citizen sees "organisation - Team name (team
id)" where it saw a bare team id (``inbox``, ``read``, ``case list|show``), picks recipients
with ``recipients``, and an org admin opens and closes the organisation to citizens with
``org settings``."""

from __future__ import annotations

import json
from pathlib import Path

from support.mailworld import MailWorld

PROCEDURE = {
    "schema": {
        "type": "object",
        "required": ["surname"],
        "properties": {"surname": {"type": "string"}},
    },
    "labels": {"de": {"title": "Verlängerung"}},
    "documents": [{"name": "Reisepass", "required": False, "max_size": 1_000_000}],
}


def write(path: Path, text: str) -> str:
    path.write_text(text, "utf-8")
    return str(path)


async def test_citizens_see_team_names(mail_world: MailWorld, tmp_path: Path) -> None:
    w = mail_world
    cz, cw = w.citizen, w.caseworker
    label = f"{w.org_name} – Team Aufenthaltstitel"

    # the citizen picks the team from the organisation's cards and writes to it
    picked = (await w.desk(cz, "recipients", w.org)).data
    assert [(t["team"], t["label"]) for t in picked["teams"]] == [(w.team, label)]
    assert picked["teams"][0]["names"] == w.team_names
    text = (await w.desk_text(cz, "recipients")).out  # default: the citizen's organisation
    assert f"{w.team}  {label}" in text
    body = write(tmp_path / "frage.txt", "Wann ist mein Termin?\n")
    sent = (
        await w.desk(
            cz, "send", "--to", w.team, "--subject", "Termin", "--body-file", body, passphrase=True
        )
    ).data
    # the team answers
    answer = write(tmp_path / "antwort.txt", "Am Montag.\n")
    reply = (await w.desk(cw, "reply", sent["ref"], "--body-file", answer, passphrase=True)).data

    # the citizen's inbox names the team (server metadata), the read view too (verified
    # caseworker and organisation, the team's name with its id)
    [row] = (await w.desk(cz, "inbox")).data["messages"]
    assert (row["id"], row["from_label"]) == (reply["id"], label)
    listing = (await w.desk_text(cz, "inbox")).out
    assert "– Team Aufenthaltstitel" in listing and w.team[:22] not in listing
    read = (await w.desk(cz, "read", row["handle"], passphrase=True)).data
    sender = read["sender"]
    assert sender["team_names"] == w.team_names
    assert sender["org_names"] == {"de": w.org_name}
    assert sender["text"] == (
        f"Team Aufenthaltstitel (team {w.team}) of '{w.org_name}', signed by caseworker "
        f"{cw.account} (identity {cw.identity_fingerprint}) (verified)"
    )
    # the caseworker's inbox shows the citizen by id: people have no cards
    [mine] = (await w.desk(cw, "inbox", "--team", w.team)).data["messages"]
    assert mine["from_label"] is None

    # the admin closes the organisation to new citizen mail
    closed = (await w.desk(w.admin, "org", "settings", "--citizens-may-write", "no")).data
    assert closed["citizens_may_write"] is False
    shown = (await w.desk_text(w.caseworker, "org", "settings")).out
    assert "Citizens may write: no" in shown
    refused = await w.desk(cz, "recipients", w.org, expect=1)
    assert json.loads(refused.out)["code"] == "org-not-found"
    # the citizen who wrote still sees the team's name; another gets no list any more
    [row] = (await w.desk(cz, "inbox")).data["messages"]
    assert row["from_label"] == label
    assert (await w.desk(w.citizen2, "recipients", w.org, expect=1)).code == 1
    # only admins change it
    usage = await w.desk(cw, "org", "settings", "--citizens-may-write", "yes", expect=2)
    assert "only org admins" in usage.err
    reopened = (await w.desk(w.admin, "org", "settings", "--citizens-may-write", "yes")).data
    assert reopened["citizens_may_write"] is True


async def test_case_views_name_the_team(mail_world: MailWorld, tmp_path: Path) -> None:
    w = mail_world
    cz = w.citizen
    procedure_file = write(tmp_path / "procedure.json", json.dumps(PROCEDURE))
    procedure = (
        await w.desk(w.admin, "procedure", "publish", procedure_file, passphrase=True)
    ).data["id"]
    form = write(tmp_path / "form.json", json.dumps({"surname": "Yılmaz"}))
    body = write(tmp_path / "antrag.txt", "Bitte verlängern.\n")
    sent = (
        await w.desk(
            cz,
            "send",
            "--to",
            w.team,
            "--subject",
            "Antrag",
            "--body-file",
            body,
            "--procedure",
            procedure,
            "--form-file",
            form,
            passphrase=True,
        )
    ).data
    label = f"{w.org_name} – Team Aufenthaltstitel"
    [case] = (await w.desk(cz, "case", "list")).data["cases"]
    assert (case["case"], case["team"], case["team_label"]) == (sent["case"], w.team, label)
    shown = (await w.desk(cz, "case", "show", sent["case"])).data
    assert shown["team_label"] == label
    text = (await w.desk_text(cz, "case", "show", sent["case"])).out
    assert f"Team:      {label} (team {w.team})" in text
    listed = (await w.desk_text(w.caseworker, "case", "list", "--team", w.team)).out
    assert f"{label} (team {w.team})" in listed
