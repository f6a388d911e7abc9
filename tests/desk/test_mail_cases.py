"""Procedures, applications and cases through the desk (both databases): an admin publishes
a procedure, a citizen applies with a form and two attachments, the caseworker requests
information, moves the status, decides; both sides see the case's history.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from support.mailworld import MailWorld

PROCEDURE = {
    "schema": {
        "type": "object",
        "required": ["surname", "permit_number"],
        "properties": {
            "surname": {"type": "string"},
            "permit_number": {"type": "string", "maxLength": 20},
        },
    },
    "labels": {"de": {"title": "Verlängerung"}, "en": {"title": "Extension"}},
    "documents": [
        {"name": "Reisepass", "required": True, "max_size": 10_000_000},
        {"name": "Foto", "required": False, "max_size": 1_000_000},
    ],
}


def write(path: Path, text: str | bytes) -> str:
    if isinstance(text, str):
        path.write_text(text, "utf-8")
    else:
        path.write_bytes(text)
    return str(path)


async def publish(w: MailWorld, tmp: Path) -> dict[str, Any]:
    path = write(tmp / "procedure.json", json.dumps(PROCEDURE))
    return (await w.desk(w.admin, "procedure", "publish", path, passphrase=True)).data


async def apply(w: MailWorld, tmp: Path, procedure: str) -> dict[str, Any]:
    body = write(tmp / "antrag.txt", "Bitte verlängern.\n")
    form = write(tmp / "form.json", json.dumps({"surname": "Yılmaz", "permit_number": "X1"}))
    a = write(tmp / "pass.pdf", b"%PDF pass")
    b = write(tmp / "foto.png", b"\x89PNG foto")
    sent = await w.desk(
        w.citizen,
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
        "--attach",
        a,
        b,
        passphrase=True,
    )
    return sent.data


async def test_procedures_through_the_desk(mail_world: MailWorld, tmp_path: Path) -> None:
    w = mail_world
    first = await publish(w, tmp_path)
    assert first["version"] == 1 and first["verified"] is True
    assert first["title"] == "Verlängerung" and first["org"] == w.org
    # the same id again is the next version
    again_path = write(tmp_path / "v2.json", json.dumps({**PROCEDURE, "id": first["id"]}))
    second = (await w.desk(w.admin, "procedure", "publish", again_path, passphrase=True)).data
    assert (second["id"], second["version"]) == (first["id"], 2)
    # a citizen lists the team's organisation's procedures, verified against the log
    listed = (await w.desk(w.citizen, "procedure", "list", "--org", w.team)).data
    assert [(p["id"], p["version"]) for p in listed["procedures"]] == [(first["id"], 2)]
    shown = (
        await w.desk(w.citizen, "procedure", "show", first["id"], "--org", w.team, "--version", "1")
    ).data
    assert shown["version"] == 1 and shown["schema"] == PROCEDURE["schema"]
    # only admins publish
    refused = await w.desk(
        w.caseworker, "procedure", "publish", again_path, passphrase=True, expect=2
    )
    assert "admins" in refused.data["detail"]


async def test_application_case_and_decision(mail_world: MailWorld, tmp_path: Path) -> None:
    w = mail_world
    cw, cz = w.caseworker, w.citizen
    procedure = (await publish(w, tmp_path))["id"]
    pattern = (await w.desk(w.admin, "case", "pattern", "ABH-{year}-{seq:6}")).data
    assert pattern == {"org": w.org, "pattern": "ABH-{year}-{seq:6}"}
    assert (await w.desk(w.admin, "case", "pattern")).data["pattern"] == "ABH-{year}-{seq:6}"
    await w.desk(cw, "case", "pattern", "X-{seq:3}", expect=2)  # org admins only

    # -- the application opens a case with a reference number --
    app = await apply(w, tmp_path, procedure)
    assert app["kind"] == "application" and app["case"]
    assert re.fullmatch(r"ABH-20\d\d-000001", app["reference"])
    assert [a["name"] for a in app["attachments"]] == ["pass.pdf", "foto.png"]
    case, reference = app["case"], app["reference"]

    # -- the caseworker sees it: list, show by reference, read with the form --
    listed = (await w.desk(cw, "case", "list", "--team", w.team)).data["cases"]
    assert [(c["case"], c["status"]) for c in listed] == [(case, "submitted")]
    shown = (await w.desk(cw, "case", "show", reference)).data
    assert shown["case"] == case and shown["citizen"] == cz.account
    assert shown["history"][0]["label"] == "signed"
    assert "in_review" in shown["moves"]
    read = (await w.desk(cw, "read", app["ref"], passphrase=True)).data
    assert read["case"] == case and read["kind"] == "application"
    assert read["form"]["data"] == {"surname": "Yılmaz", "permit_number": "X1"}
    assert read["form"]["procedure"] == procedure

    # -- status moves: server metadata, along the table only --
    moved = (await w.desk(cw, "case", "status", case, "in_review")).data
    assert moved["status"] == "in_review"
    back = await w.desk(cw, "case", "status", case, "submitted", expect=1)
    assert back.data["status"] in (400, 409)
    await w.desk(cw, "case", "status", case, "decided", expect=2)  # only by a signed decision
    citizen_try = await w.desk(cz, "case", "status", case, "closed", expect=1)
    assert citizen_try.data["status"] in (403, 404)

    # -- an info request and the citizen's answer move the case --
    ask = write(tmp_path / "ask.txt", "Bitte reichen Sie die Meldebescheinigung nach.\n")
    await w.desk(
        cw, "reply", app["ref"], "--body-file", ask, "--kind", "info_request", passphrase=True
    )
    assert (await w.desk(cz, "case", "show", case)).data["status"] == "info_requested"
    request = (await w.desk(cz, "inbox", "--unread")).data["messages"][0]
    assert request["kind"] == "info_request"
    doc = write(tmp_path / "meldebescheinigung.pdf", b"%PDF melde")
    answer = write(tmp_path / "answer.txt", "Anbei.\n")
    await w.desk(
        cz, "reply", request["handle"], "--body-file", answer, "--attach", doc, passphrase=True
    )
    assert (await w.desk(cw, "case", "show", case)).data["status"] == "in_review"

    # -- the decision: a signed envelope in the case's thread, with its document --
    body = write(tmp_path / "decision.txt", "Ihre Aufenthaltserlaubnis wird verlängert.\n")
    pdf = write(tmp_path / "bescheid.pdf", b"%PDF-1.4 Bescheid")
    no_doc = await w.desk(cw, "decide", case, "--body-file", body, passphrase=True, expect=2)
    assert "--attach" in no_doc.data["detail"]
    not_cw = await w.desk(
        cz, "decide", case, "--body-file", body, "--attach", pdf, passphrase=True, expect=2
    )
    assert "caseworkers" in not_cw.data["detail"]
    decided = (
        await w.desk(cw, "decide", reference, "--body-file", body, "--attach", pdf, passphrase=True)
    ).data
    assert decided["kind"] == "decision" and decided["from"] == w.team
    assert decided["to"] == [cz.account] and decided["case"] == case
    assert decided["thread"] == read["thread"]
    assert decided["reference"] == reference
    final = (await w.desk(cz, "case", "show", case)).data
    assert final["status"] == "decided"
    assert [(h["status"], h["label"]) for h in final["history"]][-1] == ("decided", "signed")
    assert any(h["label"] == "server metadata" for h in final["history"])

    # -- the citizen retrieves the decision --
    got = (await w.desk(cz, "inbox", "--case", case)).data["messages"]
    assert [m["kind"] for m in got] == ["decision", "info_request"]  # newest first
    assert all(m["reference"] == reference for m in got)
    opened = (await w.desk(cz, "read", got[0]["handle"], passphrase=True)).data
    assert opened["subject"] == f"Bescheid {reference}"
    assert opened["sender"]["signer"] == cw.account and opened["sender"]["team"] == w.team
    assert [a["name"] for a in opened["attachments"]] == ["bescheid.pdf"]
    receipts = (await w.desk(cw, "receipts", decided["ref"], passphrase=True)).data
    events = [e["event"] for e in receipts["delivery"]["events"]]
    assert events[0] == "available" and "retrieved" in events
    assert receipts["delivery"]["clock"] is not None
