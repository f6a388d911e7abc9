"""End to end over HTTP on a live server (both databases): a caseworker sends a decision
through ``POST /api/v1/messages``, the citizen fetches it through the inbox route, and the
delivery record, the legal clock, read receipts and overdue decisions follow."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

from delivery.dbworld import FakeClock
from sqlalchemy import select
from support.mailworld import MailWorld, Person

from postbox.client.procedures import Procedures
from postbox.crypto.encoding import b64e
from postbox.crypto.envelope import seal_message
from postbox.crypto.primitives import random_bytes
from postbox.crypto.procedures import Procedure, form_digest
from postbox.mailbox.appkeys import DB, DELIVERY
from postbox.mailbox.db.schema import events
from postbox.mailbox.delivery.clock import Calendar

DAY = 86_400_000


async def send(
    w: MailWorld,
    clock: FakeClock,
    signer: Person,
    *,
    kind: str,
    from_: str,
    to: Person | str,
    case: str,
    form: dict[str, Any] | None = None,
    params: dict[str, str | int] | None = None,
) -> tuple[str, bytes]:
    """Seal, sign and send one envelope with ``signer``'s real keys, check the submission
    receipt offline; returns (message id, digest)."""
    to_id = to if isinstance(to, str) else to.account
    now = clock.now
    recipients = {}
    for mailbox in (from_, to_id):
        subject = await signer.client.keys.subject(mailbox)
        recipients[mailbox] = subject.state.current_encryption(now)
    head = await signer.client.keys.tree_head()
    message_id = b64e(random_bytes(16))
    sealed = seal_message(
        content={
            "subject": "Bescheid",
            "body": "Ihr Antrag wird bewilligt.",
            "format": "text",
            "form": form,
            "attachments": [],
            "in_reply_to": None,
            "sth": {"size": head["size"], "root": head["root"]},
        },
        message_id=message_id,
        kind=kind,  # type: ignore[arg-type]
        from_=from_,
        signer=signer.account,
        signer_seed=signer.keyring.identity.seed,
        to=[to_id],
        recipients=recipients,
        thread=None,
        case=case,
        created=now,
    )
    answer = await signer.client.session.call(
        "POST", "/api/v1/messages", sealed.wire, params=params
    )
    receipt = signer.client.receipts.verify_submission(
        answer, message=message_id, from_=from_, digest=sealed.digest
    )
    assert receipt["accepted"] == now
    return message_id, sealed.digest


async def open_case(w: MailWorld, clock: FakeClock, citizen: Person) -> str:
    """The admin publishes a procedure (once); ``citizen`` applies, opening a case."""
    pid = b64e(b"aufenthaltstitel")
    procedure: Procedure = {
        "v": 1,
        "org": w.org,
        "id": pid,
        "version": 1,
        "schema": {"type": "object", "properties": {"name": {"type": "string"}}},
        "labels": {"de": {"title": "Aufenthaltstitel"}},
        "documents": [],
    }
    procedures = Procedures(w.admin.client.session, w.admin.client.keys)
    if not await procedures.list(w.org):
        await procedures.publish(w.admin.keyring, procedure)
    case = b64e(random_bytes(16))
    form = {
        "procedure": pid,
        "version": 1,
        "digest": b64e(form_digest(procedure)),
        "data": {"name": "Ada Lovelace"},
    }
    await send(
        w,
        clock,
        citizen,
        kind="application",
        from_=citizen.account,
        to=w.team,
        case=case,
        form=form,
        params={"procedure": pid, "version": 1},
    )
    return case


async def send_decision(
    w: MailWorld, clock: FakeClock, to: Person, kind: str = "decision"
) -> tuple[str, bytes]:
    """A citizen applies; the first caseworker answers from the team with ``kind``."""
    case = await open_case(w, clock, to)
    return await send(w, clock, w.caseworker, kind=kind, from_=w.team, to=to, case=case)


async def fetch(person: Person, from_: str, message_id: str) -> Any:
    path = f"/api/v1/mailboxes/{person.account}/messages/{from_}/{message_id}"
    return await person.client.session.call("GET", path)


async def test_decision_retrieved_once_with_its_deemed_date(w: MailWorld, clock: FakeClock) -> None:
    mid, digest = await send_decision(w, clock, w.citizen)
    provided = clock.now
    status = await w.caseworker.client.receipts.delivery(w.team, mid, digest=digest)
    assert status.record is not None and status.record.available == provided
    assert status.clock is not None and status.clock["deemed"] is None

    # the team's own fetches are no retrieval
    team_path = f"/api/v1/mailboxes/{w.team}/messages/{w.team}/{mid}"
    await w.caseworker.client.session.call("GET", team_path)

    clock.advance(DAY + 3_600_000)
    retrieved_at = clock.now
    # several fetches at once (two devices): one retrieval
    await asyncio.gather(*(fetch(w.citizen, w.team, mid) for _ in range(4)))
    clock.advance(DAY)
    await fetch(w.citizen, w.team, mid)

    status = await w.citizen.client.receipts.delivery(w.team, mid, digest=digest)
    assert status.record is not None
    assert [e["event"] for e in status.record.events] == ["available", "retrieved"]
    assert status.record.retrieved == {w.citizen.account: retrieved_at}
    assert status.clock is not None
    deemed = Calendar().day_of(retrieved_at) + timedelta(days=1)
    assert status.clock["deemed"] == deemed.isoformat()
    assert status.clock["overdue"] is False

    # the citizen confirms reading it; the team verifies the receipt
    pair = await w.citizen.client.receipts.send_read(
        w.citizen.keyring,
        from_=w.team,
        message=mid,
        digest=digest,
        mailbox=w.citizen.account,
        read_at=clock.now,
    )
    reads = await w.caseworker.client.receipts.reads(w.team, mid, digest=digest)
    assert [r.signed_countersign for r in reads] == [pair.signed_countersign]


async def test_a_decision_not_fetched_in_ten_days_is_overdue(
    w: MailWorld, clock: FakeClock
) -> None:
    late, _ = await send_decision(w, clock, w.citizen)
    in_time, _ = await send_decision(w, clock, w.citizen2)
    plain, _ = await send_decision(w, clock, w.citizen, kind="message")
    clock.advance(5 * DAY)
    await fetch(w.citizen2, w.team, in_time)
    overdue_path = f"/api/v1/mailboxes/{w.team}/overdue"
    assert (await w.caseworker.client.session.call("GET", overdue_path))["overdue"] == []

    clock.advance(6 * DAY)  # 11 days after provision
    page = await w.caseworker.client.session.call("GET", overdue_path)
    assert [i["id"] for i in page["overdue"]] == [late]
    assert plain not in {i["id"] for i in page["overdue"]}
    await w.live.app[DELIVERY].mark_overdue()  # what the server's job does every minute
    async with w.live.app[DB].read() as conn:
        rows = (
            await conn.execute(
                select(events.c.account_id, events.c.data).where(events.c.type == "delivery")
            )
        ).all()
    alerts = [r.account_id for r in rows if json.loads(r.data)["event"] == "overdue"]
    assert sorted(alerts) == sorted(p.account for p in w.caseworkers)  # once each
    assert all(json.loads(r.data)["id"] == late for r in rows if '"overdue"' in r.data)
    status = await w.caseworker2.client.receipts.delivery(w.team, late)
    assert status.clock is not None
    assert (status.clock["overdue"], status.clock["deemed"]) == (True, None)
