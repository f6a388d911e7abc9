"""Nothing in clear at rest after a full exchange (both databases).

A citizen applies for a published procedure with form fields and two attachments, the
caseworker reads it, saves the files, answers, and decides with a decision document; the
citizen reads everything. Then every byte the server keeps — the database (SQLite files or
every PostgreSQL table), every file under the data folder (the blob store included) — and
the server's log records are searched for canary strings from the subjects, bodies, form
field values, file names and file contents, and for the passphrases: none may appear.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from support.atrest import assert_nothing_in_clear, stored_bytes
from support.mailworld import MailWorld

SUBJECT = "Kanarie-Betreff-Antrag-7731"
BODY = "Kanarie-Text-Antrag-5514 mit Umlauten äöü"
FORM_SURNAME = "Kanarie-Formfeld-Nachname-4412"
FORM_PERMIT = "KANARIE-PERMIT-99812"
FILE_A = "kanarie-reisepass-3391.pdf"
FILE_B = "kanarie-mietvertrag-8812.pdf"
CONTENT_A = "KANARIE-INHALT-REISEPASS-0671"
CONTENT_B = "KANARIE-INHALT-MIETVERTRAG-2208"
REPLY_SUBJECT = "Kanarie-Betreff-Antwort-1180"
REPLY_BODY = "Kanarie-Text-Antwort-6624"
DECISION_BODY = "Kanarie-Text-Bescheid-3009"
DECISION_FILE = "kanarie-bescheid-2290.pdf"
DECISION_CONTENT = "KANARIE-INHALT-BESCHEID-7415"

CANARIES = [
    SUBJECT,
    BODY,
    FORM_SURNAME,
    FORM_PERMIT,
    FILE_A,
    FILE_B,
    CONTENT_A,
    CONTENT_B,
    REPLY_SUBJECT,
    REPLY_BODY,
    DECISION_BODY,
    DECISION_FILE,
    DECISION_CONTENT,
]

PROCEDURE = {
    "schema": {
        "type": "object",
        "properties": {"surname": {"type": "string"}, "permit": {"type": "string"}},
    },
    "labels": {"de": {"title": "Aufenthaltserlaubnis"}},
    "documents": [{"name": "Reisepass", "required": True, "max_size": 1_000_000}],
}


def files(tmp: Path) -> dict[str, str]:
    """Write the exchange's input files; return their paths by role."""
    out = {}
    for key, name, data in (
        ("procedure", "procedure.json", json.dumps(PROCEDURE)),
        ("body", "body.txt", BODY),
        ("form", "form.json", json.dumps({"surname": FORM_SURNAME, "permit": FORM_PERMIT})),
        ("a", FILE_A, f"%PDF-1.4\n{CONTENT_A}\n" * 40),
        ("b", FILE_B, f"%PDF-1.4\n{CONTENT_B}\n" * 40),
        ("reply", "reply.txt", REPLY_BODY),
        ("decision", "decision.txt", DECISION_BODY),
        ("decision_pdf", DECISION_FILE, f"%PDF-1.4\n{DECISION_CONTENT}\n"),
    ):
        path = tmp / "in" / name
        path.parent.mkdir(exist_ok=True)
        path.write_text(data, "utf-8")
        out[key] = str(path)
    return out


async def test_a_full_exchange_leaves_nothing_in_clear(
    mail_world: MailWorld, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="postbox")
    caplog.set_level(logging.DEBUG, logger="aiohttp")
    w = mail_world
    cw, cz = w.caseworker, w.citizen
    f = files(tmp_path)

    proc = (await w.desk(w.admin, "procedure", "publish", f["procedure"], passphrase=True)).data
    app = (
        await w.desk(
            cz, "send", "--to", w.team, "--subject", SUBJECT, "--body-file", f["body"],
            "--procedure", proc["id"], "--form-file", f["form"], "--attach", f["a"], f["b"],
            passphrase=True,
        )
    ).data  # fmt: skip
    read = (await w.desk(cw, "read", app["ref"], passphrase=True)).data
    assert read["form"]["data"]["surname"] == FORM_SURNAME
    saved = (
        await w.desk(cw, "save-attachments", app["ref"], str(tmp_path / "cw"), passphrase=True)
    ).data
    assert [Path(s["path"]).name for s in saved["saved"]] == [FILE_A, FILE_B]
    await w.desk(
        cw, "reply", app["ref"], "--subject", REPLY_SUBJECT, "--body-file", f["reply"],
        passphrase=True,
    )  # fmt: skip
    decided = (
        await w.desk(
            cw, "decide", app["case"], "--body-file", f["decision"],
            "--attach", f["decision_pdf"], passphrase=True,
        )
    ).data  # fmt: skip
    for m in (await w.desk(cz, "inbox")).data["messages"]:
        await w.desk(cz, "read", m["handle"], passphrase=True)
    got = await w.desk(
        cz, "save-attachments", decided["ref"], str(tmp_path / "cz"), passphrase=True
    )
    assert Path(got.data["saved"][0]["path"]).name == DECISION_FILE
    await w.desk(cz, "receipts", app["ref"], passphrase=True)
    await w.desk(cw, "receipts", decided["ref"], passphrase=True)

    haystacks = await stored_bytes(w.live.settings)
    # the scan sees what it should: the metadata the server needs, and the blobs
    everything = b"".join(haystacks.values())
    assert w.team.encode() in everything and app["id"].encode() in everything
    blob_dir = str(w.live.settings.blobs_dir)
    blobs = [d for where, d in haystacks.items() if where.startswith(blob_dir)]
    assert blobs and sum(len(d) for d in blobs) > 3 * 24 * 40
    assert caplog.records, "no server log records were captured"
    assert_nothing_in_clear([*CANARIES, *w.passphrases], haystacks, caplog.records)
