"""The notification worker end to end (both databases): messages sent through the real
API, mails received by a real SMTP server on loopback (aiosmtpd) or written as .eml files;
retries on the test's clock, dead letters and the operator's retry, a crashed worker's
claim taken again, and a canary scan of every rendered mail."""

from __future__ import annotations

import argparse
import asyncio
import email
import email.policy
import json
from dataclasses import replace
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from messages.world import MsgWorld, attachment_for
from notifications.conftest import SmtpServer
from sqlalchemy import select, update
from support.onboard import new_id

from postbox import admin
from postbox.cli import build_parser, main
from postbox.mailbox.appkeys import BACKGROUND, DB, NOTIFICATIONS, SECRETS, SETTINGS
from postbox.mailbox.db import schema
from postbox.mailbox.errors import BadRequest
from postbox.mailbox.notifications.mail import languages
from postbox.mailbox.notifications.routes import build_service
from postbox.mailbox.notifications.service import NotificationService
from postbox.mailbox.notifications.sinks import FileSink, eml_name

CANARIES = ("CANARY-SUBJECT-7f3a", "CANARY-BODY-91c2", "CANARY-FILE-5d0e.pdf")
MIN = 60_000


def service(w: MsgWorld) -> NotificationService:
    return w.client.app[NOTIFICATIONS]


async def outbox(w: MsgWorld) -> list[Any]:
    async with w.client.app[DB].read() as conn:
        q = select(schema.outbox).order_by(schema.outbox.c.pk)
        return list((await conn.execute(q)).all())


def address(account: str) -> str:
    return f"n-{account[:8].lower()}@example.org"


async def give_addresses(w: MsgWorld, *accounts: str) -> None:
    for account in accounts:
        assert await service(w).set_address(account, address(account), verified=True)


async def team_writes_to(w: MsgWorld, *to: str, canaries: bool = True) -> tuple[str, str]:
    """cw1 writes for the team (an authority message) with canaries in subject, body and an
    attachment's file name; returns (from, id)."""
    blob = await w.add_blob(w.cw1)
    message_id = new_id()
    sealed = w.seal(
        w.cw1,
        list(to),
        from_=w.team,
        subject=CANARIES[0] if canaries else "x",
        body=CANARIES[1] if canaries else "y",
        blobs=[blob],
        attachments=[attachment_for(blob, name=CANARIES[2] if canaries else "z.pdf")],
        message_id=message_id,
    )
    status, body = await w.post(w.cw1, sealed.body)
    assert status == 201, body
    return w.team, message_id


def parse(raw: bytes) -> EmailMessage:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def parts(msg: EmailMessage) -> dict[str, str]:
    found = {}
    for part in msg.walk():
        if part.get_content_maintype() == "text":
            assert isinstance(part, EmailMessage)
            found[part.get_content_type()] = str(part.get_content())
    return found


def assert_no_canaries(raw: bytes, msg: EmailMessage) -> None:
    texts = [raw.decode("utf-8", "replace"), *parts(msg).values(), str(msg["Subject"])]
    for canary in CANARIES:
        for text in texts:
            assert canary not in text
    # the organisation is named by its neutral notification name, never its office
    for text in texts:
        assert "Ausländerbehörde" not in text


# --- delivery by SMTP ----------------------------------------------------------------------------
async def test_one_mail_per_recipient_account_with_the_recorded_message_id(
    msg_world: MsgWorld, smtp: SmtpServer
) -> None:
    w = msg_world
    await give_addresses(w, w.c1.id, w.c2.id, w.cw1.id, w.cw2.id)  # not the connector
    sender, message_id = await team_writes_to(w, w.c1.id, w.c2.id)
    # a citizen writes to the team: every member but the connector has an address
    sealed = w.seal(w.c1, [w.team])
    status, body = await w.post(w.c1, sealed.body)
    assert status == 201, body

    report = await service(w).run_once()
    assert (report.claimed, report.sent, report.skipped) == (5, 4, 1)
    assert await service(w).run_once() == type(report)()  # nothing left

    rows = {r.account_id: r for r in await outbox(w)}
    assert rows[w.connector.id].state == "skipped" and rows[w.connector.id].mail_id is None
    sent = {a: r for a, r in rows.items() if r.state == "sent"}
    assert set(sent) == {w.c1.id, w.c2.id, w.cw1.id, w.cw2.id}
    assert all(r.attempts == 1 and r.claimed_until is None for r in sent.values())

    mails = smtp.recorder.mails
    assert len(mails) == 4
    by_rcpt = {m.rcpt_tos[0]: parse(m.content) for m in mails}
    assert set(by_rcpt) == {address(a) for a in sent}
    for account, row in sent.items():
        msg = by_rcpt[address(account)]
        assert msg["Message-ID"] == row.mail_id
        assert row.mail_id.endswith("@127.0.0.1>")
        assert msg["From"] == "postbox@postbox.example"
        assert msg["Subject"] == "Neue Nachricht in Ihrem Postfach"
        assert msg["Auto-Submitted"] == "auto-generated"
        assert set(parts(msg)) == {"text/plain", "text/html"}
    assert len({r.mail_id for r in sent.values()}) == 4

    # the citizen's mail names the sending org by its notification name and links to the
    # message by its opaque ids
    citizen_mail = by_rcpt[address(w.c1.id)]
    link = f"{w.client.app[SETTINGS].origin}/#/m/{sender}/{message_id}"
    for content in parts(citizen_mail).values():
        assert "Stadt Nürnberg" in content
        assert link in content
    for m in mails:
        assert_no_canaries(m.content, parse(m.content))

    # the delivery record of the authority message: "notified" once per citizen mailbox
    async with w.client.app[DB].read() as conn:
        chain = (
            await conn.execute(
                select(schema.delivery_events.c.event, schema.delivery_events.c.by_id).order_by(
                    schema.delivery_events.c.message_pk, schema.delivery_events.c.seq
                )
            )
        ).all()
        live = (
            await conn.execute(
                select(schema.events.c.account_id).where(schema.events.c.type == "delivery")
            )
        ).all()
    assert tuple(chain[0]) == ("available", None)
    assert sorted(tuple(r) for r in chain[1:]) == sorted(
        [("notified", w.c1.id), ("notified", w.c2.id)]
    )
    members = {w.cw1.id, w.cw2.id, w.connector.id}
    assert sorted(r[0] for r in live) == sorted([*members, *members])


#: per template language: the subject, a word of the body, the HTML's direction
LANGUAGES = {
    "de": ("Neue Nachricht in Ihrem Postfach", "Postfach", "ltr"),
    "en": ("New message in your Postbox", "log in", "ltr"),
    "tr": ("Posta kutunuzda yeni bir mesaj var", "kutunuz", "ltr"),
    "ar": ("رسالة جديدة في صندوق بريدكم", "رسالة", "rtl"),
    "uk": ("Нове повідомлення у Вашій поштовій скриньці", "повідомлення", "ltr"),
    "ru": ("Новое сообщение в Вашем почтовом ящике", "сообщение", "ltr"),
}


def test_every_template_language_is_tested() -> None:
    assert languages() == set(LANGUAGES)


@pytest.mark.parametrize(
    ("account_language", "lang"),
    [*((lang, lang) for lang in LANGUAGES), ("ar-EG", "ar"), ("xx", "de"), ("pt-BR", "de")],
)
async def test_the_recipients_language_with_german_fallback(
    msg_world: MsgWorld, smtp: SmtpServer, account_language: str, lang: str
) -> None:
    w = msg_world
    await give_addresses(w, w.c1.id)
    async with w.client.app[DB].write() as conn:
        await conn.execute(
            update(schema.accounts)
            .where(schema.accounts.c.id == w.c1.id)
            .values(language=account_language)
        )
    sender, message_id = await team_writes_to(w, w.c1.id)
    assert (await service(w).run_once()).sent == 1
    (mail,) = smtp.recorder.mails
    msg = parse(mail.content)
    subject, word, direction = LANGUAGES[lang]
    assert msg["Subject"] == subject
    assert msg["Content-Language"] == lang
    found = parts(msg)
    assert f'<html lang="{lang}" dir="{direction}">' in found["text/html"]
    link = f"{w.client.app[SETTINGS].origin}/#/m/{sender}/{message_id}"
    for content in found.values():
        assert word in content
        assert "Stadt Nürnberg" in content
        assert link in content
    assert "<" not in found["text/plain"]  # the text part is plain, also right to left
    assert_no_canaries(mail.content, msg)


# --- the .eml sink -------------------------------------------------------------------------------
def file_service(w: MsgWorld) -> NotificationService:
    """A second worker on the same database, without SMTP settings: the .eml sink."""
    app = w.client.app
    settings = replace(app[SETTINGS], smtp_host="")
    return build_service(
        settings, app[DB], w.clock, receipt_seed=app[SECRETS].receipt_seed, wake=_no_wake
    )


async def _no_wake(_accounts: object) -> None:
    return None


async def test_without_smtp_each_mail_is_an_eml_file(msg_world: MsgWorld) -> None:
    w = msg_world
    worker = file_service(w)
    assert isinstance(worker.sink, FileSink)
    folder = w.client.app[SETTINGS].data_dir / "mail"
    assert worker.sink.folder == folder
    await give_addresses(w, w.c1.id, w.c2.id)
    await team_writes_to(w, w.c1.id, w.c2.id)
    report = await worker.run_once()
    assert report.sent == 2
    files = sorted(folder.iterdir())
    rows = [r for r in await outbox(w) if r.state == "sent"]
    assert [f.name for f in files] == sorted(eml_name(r.mail_id) for r in rows)
    for f in files:
        assert f.stat().st_mode & 0o777 == 0o600
        raw = f.read_bytes()
        msg = parse(raw)
        assert eml_name(str(msg["Message-ID"])) == f.name
        assert msg["To"] in {address(w.c1.id), address(w.c2.id)}
        assert_no_canaries(raw, msg)


async def test_the_worker_runs_inside_the_server(msg_world: MsgWorld) -> None:
    """``postbox serve`` runs the worker as a background job (here: the .eml sink)."""
    w = msg_world
    app = w.client.app
    worker = file_service(w)
    await give_addresses(w, w.c1.id)
    await team_writes_to(w, w.c1.id)
    worker.config = replace(worker.config, poll_s=0.05)
    app[BACKGROUND].spawn("notifications-test", worker.run_forever)
    folder = app[SETTINGS].data_dir / "mail"
    for _ in range(400):  # a bound, not a timing assertion
        (row,) = await outbox(w)
        if row.state == "sent":  # recorded after the file was written
            break
        await asyncio.sleep(0.05)
    assert row.state == "sent"
    assert [f.name for f in folder.glob("*.eml")] == [eml_name(row.mail_id)]


# --- retries, dead letters, the operator ---------------------------------------------------------
async def test_refusals_back_off_then_die_and_the_operator_resends_with_the_same_id(
    msg_world: MsgWorld, smtp: SmtpServer, capsys: pytest.CaptureFixture[str]
) -> None:
    w = msg_world
    smtp.recorder.refuse = "451 4.3.0 try again later"
    await give_addresses(w, w.c1.id)
    await team_writes_to(w, w.c1.id)
    worker = service(w)
    ids = set()
    for attempt in (1, 2):
        now = w.clock.now
        report = await worker.run_once()
        assert (report.sent, report.retried, report.dead) == (0, 1, 0)
        (row,) = await outbox(w)
        assert (row.state, row.attempts) == ("pending", attempt)
        assert row.last_error == "SMTPDataError 451"
        ids.add(row.mail_id)
        delay = min(600_000, MIN * 2 ** (attempt - 1))
        assert now + delay // 2 <= row.next_attempt <= now + delay
        # not due before its time
        w.clock.now = row.next_attempt - 1
        assert (await worker.run_once()).claimed == 0
        w.clock.now = row.next_attempt
    report = await worker.run_once()
    assert (report.sent, report.dead) == (0, 1)
    (row,) = await outbox(w)
    assert (row.state, row.attempts) == ("dead", 3)
    ids.add(row.mail_id)
    assert len(ids) == 1 and smtp.recorder.refused == 3 and smtp.recorder.mails == []
    w.clock.advance(24 * 3600_000)
    assert (await worker.run_once()).claimed == 0  # dead stays dead

    # the operator's view and retry, through the CLI's parser and handlers
    listed = await admin.notifications_list(
        w.client.app,
        build_parser().parse_args(["admin", "notifications", "list", "--state", "dead"]),
    )
    assert listed.data["counts"] == {"dead": 1}
    assert [n["pk"] for n in listed.data["notifications"]] == [row.pk]
    assert listed.data["notifications"][0]["mail_id"] == row.mail_id
    args = build_parser().parse_args(["admin", "notifications", "retry", "--all-dead", "--json"])
    retried = await admin.notifications_retry(w.client.app, args)
    assert retried.data == {"retried": [row.pk], "not_dead": []}

    smtp.recorder.refuse = None
    assert (await worker.run_once()).sent == 1
    (mail,) = smtp.recorder.mails
    assert parse(mail.content)["Message-ID"] == row.mail_id
    (done,) = await outbox(w)
    assert (done.state, done.mail_id, done.attempts) == ("sent", row.mail_id, 1)

    # `postbox admin notifications list --json` as the operator runs it (its own process
    # objects on the same database and data folder)
    settings = w.client.app[SETTINGS]
    code = await asyncio.to_thread(
        main,
        [
            "admin",
            "notifications",
            "list",
            "--json",
            "--data-dir",
            str(settings.data_dir),
            "--db",
            settings.database_url,
        ],
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["counts"] == {"sent": 1}


async def test_retry_needs_numbers_or_all_dead(msg_world: MsgWorld) -> None:
    args = argparse.Namespace(pk=[], all_dead=False)
    with pytest.raises(BadRequest):
        await admin.notifications_retry(msg_world.client.app, args)


async def test_a_crashed_workers_claim_is_taken_again_with_the_same_message_id(
    msg_world: MsgWorld, smtp: SmtpServer
) -> None:
    w = msg_world
    await give_addresses(w, w.c1.id)
    await team_writes_to(w, w.c1.id)
    crashed = await service(w).claim()  # claimed and identities committed; then it "dies"
    (job,) = crashed.jobs
    (row,) = await outbox(w)
    assert (row.state, row.mail_id) == ("sending", job.mail_id)

    other = file_service(w)  # another worker process
    assert (await service(w).run_once()).claimed == 0  # the claim is still in force
    w.clock.advance(300_000 - 1)
    assert (await other.run_once()).claimed == 0
    w.clock.advance(1)
    report = await service(w).run_once()
    assert (report.claimed, report.sent) == (1, 1)
    (mail,) = smtp.recorder.mails
    assert parse(mail.content)["Message-ID"] == job.mail_id
    (row,) = await outbox(w)
    assert (row.state, row.mail_id) == ("sent", job.mail_id)


async def test_concurrent_claims_are_disjoint(msg_world: MsgWorld) -> None:
    """Two workers claiming at once (PostgreSQL: SKIP LOCKED) never share a row."""
    w = msg_world
    await give_addresses(w, w.c1.id, w.c2.id)
    for _ in range(6):
        await team_writes_to(w, w.c1.id, w.c2.id, canaries=False)
    a, b = service(w), file_service(w)
    small = replace(a.config, batch=5)
    a.config, b.config = small, small
    first, second = await asyncio.gather(a.claim(), b.claim())
    mine = {j.pk for j in first.jobs}
    theirs = {j.pk for j in second.jobs}
    assert not mine & theirs
    assert len(mine | theirs) == 10
    assert len({j.mail_id for j in (*first.jobs, *second.jobs)}) == 10


async def test_an_unreachable_smtp_server_is_a_retry(msg_world: MsgWorld, tmp_path: Path) -> None:
    w = msg_world
    app = w.client.app
    dead_port = replace(app[SETTINGS], smtp_port=1, smtp_timeout_seconds=5)
    worker = build_service(
        dead_port, app[DB], w.clock, receipt_seed=app[SECRETS].receipt_seed, wake=_no_wake
    )
    await give_addresses(w, w.c1.id)
    await team_writes_to(w, w.c1.id)
    report = await worker.run_once()
    assert (report.sent, report.retried) == (0, 1)
    (row,) = await outbox(w)
    assert row.state == "pending" and row.last_error is not None and row.mail_id is not None


@pytest.mark.parametrize(
    ("command", "reply", "dead"),
    [
        ("RCPT", "550 5.1.1 mailbox unavailable", True),
        ("DATA", "550 5.7.1 message refused", True),
        ("RCPT", "450 4.2.1 mailbox busy, try again later", False),
    ],
)
async def test_a_5xx_refusal_is_dead_at_once_a_4xx_one_is_retried(
    msg_world: MsgWorld, smtp: SmtpServer, command: str, reply: str, dead: bool
) -> None:
    w = msg_world
    await give_addresses(w, w.c1.id, w.c2.id)
    if command == "RCPT":  # only c1's address; c2's mail in the same session goes out
        smtp.recorder.refuse_rcpt[address(w.c1.id)] = reply
    else:
        smtp.recorder.refuse = reply
    await team_writes_to(w, w.c1.id, w.c2.id)
    report = await service(w).run_once()
    refused = 1 if command == "RCPT" else 2
    assert report.sent == 2 - refused
    assert (report.dead, report.retried) == ((refused, 0) if dead else (0, refused))
    rows = {r.account_id: r for r in await outbox(w)}
    row = rows[w.c1.id]
    error = "SMTPRecipientsRefused" if command == "RCPT" else "SMTPDataError"
    assert row.last_error == f"{error} {reply[:3]}"
    assert (row.state, row.attempts) == ("dead" if dead else "pending", 1)
    assert smtp.recorder.refused == refused
    if command == "RCPT":
        (mail,) = smtp.recorder.mails
        assert mail.rcpt_tos == [address(w.c2.id)]
        assert rows[w.c2.id].state == "sent"
    w.clock.advance(24 * 3600_000)
    again = await service(w).run_once()
    assert again.claimed == (0 if dead else 1)  # dead stays dead (until the operator)


async def test_a_connection_dropped_mid_data_is_retried_with_the_same_message_id(
    msg_world: MsgWorld, smtp: SmtpServer
) -> None:
    w = msg_world
    await give_addresses(w, w.c1.id, w.c2.id)
    await team_writes_to(w, w.c1.id, w.c2.id)
    smtp.recorder.drop = 1  # the batch's first mail: the server closes the connection
    report = await service(w).run_once()
    # the session is gone: the mail not yet tried is retried with it
    assert (report.sent, report.retried, report.dead) == (0, 2, 0)
    first = await outbox(w)
    assert all(r.state == "pending" and r.attempts == 1 for r in first)
    assert {r.last_error for r in first} == {"SMTPServerDisconnected"}
    assert smtp.recorder.dropped == 1 and smtp.recorder.mails == []

    w.clock.now = max(r.next_attempt for r in first)
    assert (await service(w).run_once()).sent == 2
    done = await outbox(w)
    assert [(r.state, r.mail_id) for r in done] == [("sent", r.mail_id) for r in first]
    received = sorted(str(parse(m.content)["Message-ID"]) for m in smtp.recorder.mails)
    assert received == sorted(r.mail_id for r in first)  # each exactly once
