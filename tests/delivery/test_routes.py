"""The delivery routes over HTTP on a live server (both databases), with real people and
keys (``support.mailworld``) and the client library's verification (``client.receipts``).

Decisions are stored here the way the send path stores them (rows by SQL, then the
``on_send`` hook) and retrieved through the ``on_fetch`` hook, so these tests exercise the
delivery feature on its own; ``test_end_to_end.py`` goes through the real send and fetch.
"""

from __future__ import annotations

import copy
from datetime import date
from typing import Any

import aiohttp
import pytest
from delivery.dbworld import FakeClock, insert_message
from sqlalchemy import select
from support.client import Tampering
from support.mailworld import MailWorld

from postbox.client.errors import (
    BadRequestError,
    ForbiddenError,
    NotFoundError,
    ProtocolViolation,
    VerificationFailed,
)
from postbox.crypto.primitives import random_bytes
from postbox.crypto.receipts import sign_delivery, sign_read
from postbox.mailbox.appkeys import DB, DELIVERY, SECRETS
from postbox.mailbox.db.schema import events
from postbox.mailbox.delivery import hooks
from postbox.mailbox.delivery.clock import Calendar

DAY = 86_400_000


async def provide(w: MailWorld, clock: FakeClock, kind: str = "decision") -> tuple[int, str, bytes]:
    """A decision from the team to the first citizen, accepted now."""
    app = w.live.app
    pk, mid, digest = await insert_message(
        app[DB],
        org=w.org,
        from_id=w.team,
        signer=w.caseworker.account,
        to=[w.citizen.account],
        kind=kind,
        accepted=clock.now,
        receipt_seed=app[SECRETS].receipt_seed,
    )
    async with app[DB].write() as conn:
        await hooks.on_send(
            conn,
            message_pk=pk,
            message_id=mid,
            from_id=w.team,
            digest=digest,
            kind=kind,
            to=[w.citizen.account],
            from_is_team=True,
            accepted=clock.now,
            receipt_seed=app[SECRETS].receipt_seed,
        )
    return pk, mid, digest


async def retrieve(w: MailWorld, pk: int, at: int) -> None:
    app = w.live.app
    async with app[DB].write() as conn:
        await hooks.on_fetch(
            conn,
            message_pk=pk,
            mailbox_id=w.citizen.account,
            reader_id=w.citizen.account,
            at=at,
            receipt_seed=app[SECRETS].receipt_seed,
        )


async def test_delivery_record_and_clock(w: MailWorld, clock: FakeClock) -> None:
    pk, mid, digest = await provide(w, clock)
    provided = clock.now
    berlin = Calendar()
    for person in (w.citizen, w.caseworker, w.caseworker2):
        status = await person.client.receipts.delivery(w.team, mid, digest=digest)
        assert status.record is not None and status.record.available == provided
        assert status.clock is not None
        assert status.clock["rule"] == "de-vwvfg-41-2a"
        assert status.clock["source"] == "§ 41 Abs. 2a VwVfG"
        assert status.clock["deemed"] is None and status.clock["overdue"] is False
        last = berlin.day_of(provided) + (date(2026, 1, 11) - date(2026, 1, 1))
        assert status.clock["deadline"] == last.isoformat()
    # neither a citizen who is not a recipient nor the org admin outside the team see it
    for outsider in (w.citizen2, w.admin):
        with pytest.raises(NotFoundError) as caught:
            await outsider.client.receipts.delivery(w.team, mid)
        assert caught.value.code == "message-not-found"

    clock.advance(2 * DAY)
    await retrieve(w, pk, clock.now)
    await retrieve(w, pk, clock.now + 1)  # idempotent
    status = await w.caseworker.client.receipts.delivery(w.team, mid, digest=digest)
    assert status.record is not None
    assert status.record.retrieved == {w.citizen.account: clock.now}
    assert [e["event"] for e in status.record.events] == ["available", "retrieved"]
    assert status.clock is not None
    next_day = berlin.day_of(clock.now) + (date(2026, 1, 2) - date(2026, 1, 1))
    assert status.clock["deemed"] == next_day.isoformat()


async def test_plain_messages_and_citizen_messages_have_no_clock(
    w: MailWorld, clock: FakeClock
) -> None:
    _pk, mid, digest = await provide(w, clock, kind="message")
    status = await w.citizen.client.receipts.delivery(w.team, mid, digest=digest)
    assert status.record is not None and status.clock is None


async def test_read_receipts(w: MailWorld, clock: FakeClock) -> None:
    _pk, mid, digest = await provide(w, clock)
    clock.advance(60_000)
    citizen = w.citizen
    pair = await citizen.client.receipts.send_read(
        citizen.keyring,
        from_=w.team,
        message=mid,
        digest=digest,
        mailbox=citizen.account,
        read_at=clock.now,
    )
    assert pair.read["reader"] == citizen.account and pair.countersign["received"] == clock.now
    # again: the first receipt is kept and comes back
    clock.advance(60_000)
    again = await citizen.client.receipts.send_read(
        citizen.keyring,
        from_=w.team,
        message=mid,
        digest=digest,
        mailbox=citizen.account,
        read_at=clock.now,
    )
    assert again.signed_read == pair.signed_read
    assert again.signed_countersign == pair.signed_countersign
    # the team sees it, verified against the reader's identity from the key log
    reads = await w.caseworker2.client.receipts.reads(w.team, mid, digest=digest)
    assert [r.signed_read for r in reads] == [pair.signed_read]
    mine = await citizen.client.receipts.reads(w.team, mid)
    assert len(mine) == 1
    # the team's members got one live event each
    async with w.live.app[DB].read() as conn:
        rows = (
            await conn.execute(select(events.c.account_id).where(events.c.type == "read"))
        ).all()
    assert sorted(r[0] for r in rows) == sorted(p.account for p in w.caseworkers)


async def _post(w: MailWorld, person: Any, mid: str, body: Any) -> Any:
    return await person.client.session.call("POST", f"/api/v1/messages/{w.team}/{mid}/reads", body)


async def test_bad_read_receipts_are_refused(w: MailWorld, clock: FakeClock) -> None:
    _pk, mid, digest = await provide(w, clock)
    citizen = w.citizen
    head = await citizen.client.keys.tree_head()
    sth = {"size": head["size"], "root": head["root"]}

    def receipt(**change: Any) -> Any:
        fields: dict[str, Any] = {
            "message": mid,
            "digest": digest,
            "mailbox": citizen.account,
            "reader": citizen.account,
            "sth": sth,
            "read": clock.now,
            "reader_seed": citizen.keyring.identity.seed,
        }
        fields.update(change)
        return sign_read(**fields)

    cases: list[tuple[Any, Any, str]] = [
        (citizen, receipt(digest=random_bytes(64)), "receipt-mismatch"),
        (citizen, receipt(reader=w.citizen2.account), "reader-mismatch"),
        (citizen, receipt(mailbox=w.team), "not-a-recipient"),
        (citizen, receipt(read=clock.now + DAY), "invalid-read-time"),
        (citizen, receipt(reader_seed=random_bytes(32)), "unknown-reader-key"),
        (
            w.caseworker,
            receipt(
                reader=w.caseworker.account,
                mailbox=w.team,
                reader_seed=w.caseworker.keyring.identity.seed,
            ),
            "not-a-recipient",
        ),
    ]
    for person, body, code in cases:
        with pytest.raises(BadRequestError) as caught:
            await _post(w, person, mid, body)
        assert caught.value.code == code, (code, caught.value.detail)
    forged = receipt()
    other = receipt(read=clock.now - 1)
    forged = {**forged, "sig": other["sig"]}  # the right kid, the signature of another body
    with pytest.raises(BadRequestError) as caught:
        await _post(w, citizen, mid, forged)
    assert caught.value.code == "invalid-read-receipt"
    with pytest.raises(BadRequestError) as caught:
        await _post(w, citizen, mid, {"read": {}})
    assert caught.value.code == "malformed"
    # another citizen cannot even see the message
    with pytest.raises(NotFoundError):
        await _post(w, w.citizen2, mid, receipt(reader=w.citizen2.account))
    assert await citizen.client.receipts.reads(w.team, mid) == []


async def test_overdue_decisions(w: MailWorld, clock: FakeClock) -> None:
    pk_late, mid_late, _ = await provide(w, clock)
    pk_ok, _mid_ok, _ = await provide(w, clock)
    service = w.live.app[DELIVERY]
    cw = w.caseworker.client.session
    path = f"/api/v1/mailboxes/{w.team}/overdue"
    assert (await cw.call("GET", path)) == {"overdue": [], "next": None}
    assert await service.mark_overdue() == 0

    clock.advance(3 * DAY)
    await retrieve(w, pk_ok, clock.now)
    clock.advance(9 * DAY)  # 12 days after provision: past the 10-day deadline
    page = await cw.call("GET", path)
    assert [(i["from"], i["id"]) for i in page["overdue"]] == [(w.team, mid_late)]
    assert page["overdue"][0]["clock"]["overdue"] is True
    assert page["overdue"][0]["clock"]["deemed"] is None
    # (the server's own job may have run this round already: either way, once)
    assert await service.mark_overdue() in (0, 1)
    assert await service.mark_overdue() == 0
    async with w.live.app[DB].read() as conn:
        rows = (
            await conn.execute(
                select(events.c.account_id, events.c.data).where(events.c.type == "delivery")
            )
        ).all()
    overdue = [r for r in rows if '"overdue"' in r.data]
    assert sorted(r.account_id for r in overdue) == sorted(p.account for p in w.caseworkers)
    status = await w.caseworker.client.receipts.delivery(w.team, mid_late)
    assert status.clock is not None and status.clock["overdue"] is True
    # a retrieval after the deadline does not make it notified
    await retrieve(w, pk_late, clock.now)
    status = await w.caseworker.client.receipts.delivery(w.team, mid_late)
    assert status.clock is not None and (status.clock["overdue"], status.clock["deemed"]) == (
        True,
        None,
    )

    # paging, and who may look
    first = await cw.call("GET", path, params={"limit": 1})
    assert len(first["overdue"]) == 1
    with pytest.raises(NotFoundError):
        await w.citizen.client.session.call("GET", path)
    with pytest.raises(BadRequestError) as caught:
        await cw.call("GET", path, params={"limit": 0})
    assert caught.value.code == "invalid-parameter"
    with pytest.raises(BadRequestError) as caught:
        await cw.call("GET", path, params={"page": 1})
    assert caught.value.code == "unknown-parameter"


async def test_legal_settings(w: MailWorld, clock: FakeClock) -> None:
    path = f"/api/v1/orgs/{w.org}/legal-settings"
    admin = w.admin.client.session
    got = await admin.call("GET", path)
    assert got == {
        "org": w.org,
        "time_zone": "Europe/Berlin",
        "country": "DE",
        "subdivision": None,
        "decision_rule": "de-vwvfg-41-2a",
        "updated": None,
    }
    assert (await w.caseworker.client.session.call("GET", path))[
        "decision_rule"
    ] == "de-vwvfg-41-2a"
    new = {
        "time_zone": "Europe/Berlin",
        "country": "DE",
        "subdivision": "BY",
        "decision_rule": "de-ozg-9",
    }
    assert (await admin.call("PUT", path, new))["updated"] == clock.now
    bad = [
        ({**new, "time_zone": "Mars/Olympus"}, "invalid-time-zone"),
        ({**new, "subdivision": "XX"}, "invalid-holiday-calendar"),
        ({**new, "subdivision": ""}, "invalid-holiday-calendar"),
        ({**new, "decision_rule": "nope"}, "unknown-rule"),
        ({**new, "decision_rule": "at-zustg-35-6"}, "rule-not-applicable"),
        ({**new, "extra": 1}, "malformed"),
    ]
    for body, code in bad:
        with pytest.raises(BadRequestError) as caught:
            await admin.call("PUT", path, body)
        assert caught.value.code == code
    with pytest.raises(ForbiddenError):
        await w.caseworker.client.session.call("PUT", path, new)
    with pytest.raises(NotFoundError):
        await w.citizen.client.session.call("GET", path)

    # a decision provided now follows the new rule; settings frozen at provision
    _pk, mid, _ = await provide(w, clock)
    status = await w.citizen.client.receipts.delivery(w.team, mid)
    assert status.clock is not None and status.clock["rule"] == "de-ozg-9"
    day = Calendar().day_of(clock.now)
    assert status.clock["deemed"] == (day + (date(2026, 1, 4) - date(2026, 1, 1))).isoformat()
    assert status.clock["notify_by"] == day.isoformat()
    await admin.call("PUT", path, {**new, "decision_rule": "de-vwvfg-41-2a"})
    status = await w.citizen.client.receipts.delivery(w.team, mid)
    assert status.clock is not None and status.clock["rule"] == "de-ozg-9"


async def test_legal_rules_are_public(w: MailWorld) -> None:
    async with aiohttp.ClientSession() as http, http.get(w.url + "/api/v1/legal-rules") as r:
        assert r.status == 200
        body = await r.json()
    ids = [rule["id"] for rule in body["rules"]]
    assert "de-vwvfg-41-2a" in ids and "de-ozg-9" in ids
    assert "check" in body["caveat"]


async def test_a_tampered_record_fails_on_the_client(
    w: MailWorld, clock: FakeClock, tampering: Tampering
) -> None:
    pk, mid, digest = await provide(w, clock)
    clock.advance(DAY)
    await retrieve(w, pk, clock.now)
    receipts = w.caseworker.client.receipts
    assert (await receipts.delivery(w.team, mid, digest=digest)).record is not None

    def edit(change: Any) -> Any:
        def fn(path: str, body: Any) -> Any:
            if path.endswith("/delivery"):
                body = copy.deepcopy(body)
                change(body)
            return body

        return fn

    def earlier_retrieval(body: Any) -> None:
        body["events"][1]["delivery"]["at"] -= DAY

    def swapped(body: Any) -> None:
        body["events"].reverse()

    def dropped_available(body: Any) -> None:
        del body["events"][0]

    def other_by(body: Any) -> None:
        body["events"][1]["delivery"]["by"] = w.citizen2.account

    def resigned(body: Any) -> None:
        # a well-formed chain signed by another key than the pinned receipt key
        seed = random_bytes(32)
        first = sign_delivery(
            message=mid,
            digest=digest,
            event="available",
            at=1,
            by=None,
            previous=None,
            receipt_seed=seed,
        )
        body["events"] = [first]

    for change in (earlier_retrieval, swapped, dropped_available, other_by, resigned):
        tampering.fn = edit(change)
        with pytest.raises(VerificationFailed):
            await receipts.delivery(w.team, mid, digest=digest)

    def clock_lies(body: Any) -> None:
        body["clock"]["retrieved"] -= DAY

    tampering.fn = edit(clock_lies)
    with pytest.raises(ProtocolViolation):
        await receipts.delivery(w.team, mid, digest=digest)
    tampering.fn = None
    # another message's record served for this one
    _pk2, mid2, digest2 = await provide(w, clock)
    with pytest.raises(VerificationFailed):
        receipts.verify_delivery(
            (
                await w.caseworker.client.session.call(
                    "GET", f"/api/v1/messages/{w.team}/{mid2}/delivery"
                )
            )["events"],
            message=mid,
        )
    with pytest.raises(VerificationFailed):
        await receipts.delivery(w.team, mid2, digest=digest)  # the digest of another envelope
    assert (await receipts.delivery(w.team, mid2, digest=digest2)).record is not None


async def test_a_team_reads_a_citizens_message(w: MailWorld, clock: FakeClock) -> None:
    """Read receipts are not only for decisions: a caseworker confirms reading a citizen's
    message in the team mailbox; the citizen (the sender) sees it verified."""
    app = w.live.app
    _pk, mid, digest = await insert_message(
        app[DB],
        org=w.org,
        from_id=w.citizen.account,
        signer=w.citizen.account,
        to=[w.team],
        kind="application",
        accepted=clock.now,
        receipt_seed=app[SECRETS].receipt_seed,
    )
    cw = w.caseworker2
    pair = await cw.client.receipts.send_read(
        cw.keyring,
        from_=w.citizen.account,
        message=mid,
        digest=digest,
        mailbox=w.team,
        read_at=clock.now,
    )
    assert pair.read["mailbox"] == w.team
    seen = await w.citizen.client.receipts.reads(w.citizen.account, mid, digest=digest)
    assert [r.signed_read for r in seen] == [pair.signed_read]
    # no delivery record for a citizen's message
    status = await w.citizen.client.receipts.delivery(w.citizen.account, mid)
    assert (status.record, status.clock) == (None, None)
    # the citizen cannot "read" its own message as a recipient
    with pytest.raises(BadRequestError) as caught:
        await w.citizen.client.receipts.send_read(
            w.citizen.keyring,
            from_=w.citizen.account,
            message=mid,
            digest=digest,
            mailbox=w.citizen.account,
            read_at=clock.now,
        )
    assert caught.value.code == "not-a-recipient"
