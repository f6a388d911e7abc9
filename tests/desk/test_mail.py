"""The desk's mail commands end to end: ``teams``, ``inbox``, ``read``, ``reply``, ``send``,
``save-attachments``, ``receipts``, through a live server on loopback (both databases), as
the people of :mod:`support.mailworld` (each with its own state folder).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support.client import Tampering
from support.mailworld import MailWorld, open_mail_world

from postbox.crypto.encoding import b64d, b64e


def write(path: Path, text: str | bytes) -> str:
    if isinstance(text, str):
        path.write_text(text, "utf-8")
    else:
        path.write_bytes(text)
    return str(path)


def content(path: str | Path) -> bytes:
    return Path(path).read_bytes()


async def citizen_writes(w: MailWorld, tmp: Path, subject: str = "Frage zur Terminvergabe") -> Any:
    body = write(tmp / "question.txt", "Wann kann ich meinen Pass abholen?\n")
    att = write(tmp / "foto.jpg", b"\xff\xd8\xff\xe0 not really a jpeg")
    sent = await w.desk(
        w.citizen,
        "send",
        "--to",
        w.team,
        "--subject",
        subject,
        "--body-file",
        body,
        "--attach",
        att,
        passphrase=True,
    )
    return sent.data


async def test_send_list_read_reply(mail_world: MailWorld, tmp_path: Path) -> None:
    w = mail_world
    cw, cz = w.caseworker, w.citizen

    # -- the citizen writes to the team; the receipt is verified by the desk --
    sent = await citizen_writes(w, tmp_path)
    assert sent["receipt_verified"] is True and sent["to"] == [w.team]
    assert sent["from"] == cz.account and sent["kind"] == "message"
    assert sent["attachments"][0]["name"] == "foto.jpg"

    own = (await w.desk(cz, "inbox", "--folder", "sent")).data["messages"]
    assert [(m["id"], m["folder"]) for m in own] == [(sent["id"], "sent")]

    # -- the caseworker's mailboxes: own and the team's, with counts --
    teams = (await w.desk(cw, "teams")).data["mailboxes"]
    by_id = {m["mailbox"]: m for m in teams}
    assert set(by_id) == {cw.account, w.team}
    assert by_id[w.team]["names"]["de"] == "Aufenthaltstitel"
    assert by_id[w.team]["unread"].get("inbox") == 1

    # -- the team inbox, by id and by name; metadata only without --open --
    listed = (await w.desk(cw, "inbox", "--team", w.team)).data
    assert listed["mailbox"] == w.team
    [row] = listed["messages"]
    assert row["ref"] == sent["ref"] and row["handle"] == sent["id"][:8]
    assert row["read"] is False and "subject" not in row
    by_name = (await w.desk(cw, "inbox", "--team", "aufenthaltstitel", "--unread")).data
    assert [m["id"] for m in by_name["messages"]] == [sent["id"]]
    opened = (await w.desk(cw, "inbox", "--team", w.team, "--open", passphrase=True)).data
    assert opened["messages"][0]["subject"] == "Frage zur Terminvergabe"
    text_out = (await w.desk_text(cw, "inbox", "--team", w.team)).out
    assert row["handle"] in text_out and "message" in text_out

    # -- read: decrypted, verified, the sender named plainly; marked read; receipt sent --
    read = (await w.desk(cw, "read", row["handle"], passphrase=True)).data
    assert read["subject"] == "Frage zur Terminvergabe"
    assert read["body"] == "Wann kann ich meinen Pass abholen?\n"
    assert read["attachments"][0]["name"] == "foto.jpg"
    s = read["sender"]
    assert s["verified"] is True and s["signer"] == cz.account and s["team"] is None
    assert s["identity_fingerprint"] == cz.identity_fingerprint
    assert s["text"].startswith(f"citizen {cz.account} (identity {cz.identity_fingerprint})")
    assert "(verified)" in s["text"]
    # the caseworker invited the citizen and checked its code: shown as such
    assert s["identity_checked_here"] is True
    assert read["read_receipt"] is not None
    unread = (await w.desk(cw, "inbox", "--team", w.team, "--unread")).data
    assert unread["messages"] == []
    # a colleague reads the same team message (the team key, through its own wrap)
    other = (await w.desk(w.caseworker2, "read", sent["ref"], passphrase=True)).data
    assert other["mailbox"] == w.team and other["digest"] == read["digest"]

    # -- the reply comes from the team, signed by the caseworker, in the same thread --
    reply_body = write(tmp_path / "answer.txt", "Ab Montag, 9 Uhr.\n")
    slip = write(tmp_path / "abholschein.pdf", b"%PDF-1.4 Abholschein\n")
    reply = (
        await w.desk(
            cw,
            "reply",
            row["handle"],
            "--body-file",
            reply_body,
            "--attach",
            slip,
            passphrase=True,
        )
    ).data
    assert reply["from"] == w.team and reply["to"] == [cz.account]
    assert reply["thread"] == read["thread"]

    got = (await w.desk(cz, "inbox")).data["messages"]
    assert [m["id"] for m in got] == [reply["id"]]
    answer = (await w.desk(cz, "read", got[0]["handle"], passphrase=True)).data
    assert answer["subject"] == "Re: Frage zur Terminvergabe"
    assert answer["in_reply_to"] == sent["id"]
    assert answer["sender"]["team"] == w.team
    # the caseworker and the organisation (its pinned root's name) are verified; the team's
    # name is the server's card (metadata), shown with the team id
    assert answer["sender"]["text"] == (
        f"Team Aufenthaltstitel (team {w.team}) of 'Stadt Nürnberg – Ausländerbehörde', "
        f"signed by caseworker {cw.account} (identity {cw.identity_fingerprint}) (verified)"
    )
    text_read = (await w.desk_text(cz, "read", got[0]["handle"], passphrase=True)).out
    assert f"From:     Team Aufenthaltstitel (team {w.team}) of 'Stadt Nürnberg" in text_read
    assert "Ab Montag, 9 Uhr." in text_read
    # a colleague sees the team's sent copy under the team's name
    colleague = (await w.desk(w.caseworker2, "read", reply["ref"], passphrase=True)).data
    assert colleague["sender"]["text"].startswith(
        f"Team Aufenthaltstitel (team {w.team}) of 'Stadt Nürnberg – Ausländerbehörde', "
        f"signed by caseworker {cw.account}"
    )
    assert colleague["read_receipt"] is None  # nobody sends read receipts to themselves

    # -- attachments: by basename, never overwriting --
    target = tmp_path / "downloads"
    first = await w.desk(cz, "save-attachments", got[0]["handle"], str(target), passphrase=True)
    again = await w.desk(cz, "save-attachments", got[0]["handle"], str(target), passphrase=True)
    [one], [two] = first.data["saved"], again.data["saved"]
    assert Path(one["path"]) == target / "abholschein.pdf"
    assert Path(two["path"]) != Path(one["path"]) and Path(two["path"]).parent == target
    assert content(one["path"]) == content(two["path"]) == b"%PDF-1.4 Abholschein\n"

    # -- receipts: the citizen's own message (submission receipt, the team's read) --
    mine = (await w.desk(cz, "receipts", sent["handle"], passphrase=True)).data
    assert mine["submission"]["verified"] is True
    assert [r["reader"] for r in mine["reads"]] == [cw.account, w.caseworker2.account]
    assert all(r["mailbox"] == w.team for r in mine["reads"])
    # the team's reply: its delivery record (available, retrieved) and the citizen's read
    theirs = (await w.desk(cw, "receipts", reply["ref"], "--team", w.team, passphrase=True)).data
    events = [e["event"] for e in theirs["delivery"]["events"]]
    assert theirs["delivery"]["verified"] is True and events[0] == "available"
    assert "retrieved" in events
    assert [r["reader"] for r in theirs["reads"]] == [cz.account]


async def test_usage_errors_exit_2(mail_world: MailWorld, tmp_path: Path) -> None:
    w = mail_world
    cz = w.citizen
    body = write(tmp_path / "b.txt", "x")
    bad = await w.desk(cz, "read", "nothing-here", expect=2)
    assert bad.data["code"] == "usage"
    await w.desk(cz, "inbox", "--limit", "0", expect=2)
    await w.desk(cz, "inbox", "--team", "Einbürgerung", expect=2)
    no_proc = await w.desk(
        cz, "send", "--to", w.team, "--subject", "s", "--body-file", body,
        "--form-file", body, expect=2,
    )  # fmt: skip
    assert "--procedure" in no_proc.data["detail"]
    missing = await w.desk(
        cz, "send", "--to", w.team, "--subject", "s", "--body-file", str(tmp_path / "nope"),
        expect=2,
    )  # fmt: skip
    assert "--body-file" in missing.data["detail"]
    await w.desk(
        cz, "send", "--to", w.team, "--subject", "s", "--body-file", body,
        "--attach", str(tmp_path / "nope.pdf"), expect=2,
    )  # fmt: skip
    # a message this account cannot see: 404 from every mailbox, exit 1
    ghost = await w.desk(cz, "read", f"{w.team}/{b64e(bytes(16))}", passphrase=True, expect=1)
    assert ghost.data["status"] == 404


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_read_refuses_a_tampered_envelope(db_url: str, tmp_path: Path) -> None:
    """A server that serves a changed envelope is caught: exit 3, the reason named, nothing
    of the message shown, no read receipt sent."""
    tampering = Tampering()
    async with open_mail_world(db_url, tmp_path, tampering=tampering) as w:
        sent = await citizen_writes(w, tmp_path, subject="Vertraulich")
        target = f"/messages/{sent['from']}/{sent['id']}"

        def flip(path: str, body: Any) -> Any:
            if path.endswith(target) and isinstance(body, dict) and "wire" in body:
                ct = bytearray(b64d(body["wire"]["ct"]))
                ct[-1] ^= 1
                body["wire"]["ct"] = b64e(bytes(ct))
            return body

        tampering.fn = flip
        caught = await w.desk(
            w.caseworker, "read", sent["ref"], "--team", w.team, passphrase=True, expect=3
        )
        assert "Vertraulich" not in caught.out
        assert caught.data["code"] == "BadSignature"
        assert "SECURITY ALARM" in caught.err
        tampering.fn = None
        mine = (await w.desk(w.citizen, "receipts", sent["ref"], passphrase=True)).data
        assert mine["reads"] == []
        ok = (await w.desk(w.caseworker, "read", sent["ref"], passphrase=True)).data
        assert ok["subject"] == "Vertraulich"
