"""``POST /api/v1/messages``: what an accepted envelope stores, through real HTTP, on both
databases (citizen → team, caseworker for the team → citizen, threads, blobs, resends)."""

from __future__ import annotations

from typing import Any

from messages.world import MsgWorld, attachment_for
from sqlalchemy import select, update
from support.onboard import DAY, login, new_id

from postbox.crypto.encoding import b64d, cj
from postbox.crypto.receipts import verify_receipt_for
from postbox.mailbox.appkeys import DB, SECRETS
from postbox.mailbox.db import schema


async def rows(w: MsgWorld, table: Any, *where: Any) -> list[Any]:
    async with w.client.app[DB].read() as conn:
        return list((await conn.execute(select(table).where(*where))).all())


def receipt_pk(w: MsgWorld) -> bytes:
    return w.client.app[SECRETS].receipt_pk


async def test_citizen_to_team_stores_everything_and_receipts(msg_world: MsgWorld) -> None:
    w = msg_world
    sealed = w.seal(w.c1, [w.team])
    status, body = await w.post(w.c1, sealed.body)
    assert status == 201, body
    h = sealed.wire["header"]
    receipt = verify_receipt_for(
        body, receipt_pk(w), message=h["id"], from_=w.c1.id, digest=sealed.digest
    )
    assert receipt["accepted"] == w.clock.now

    (msg,) = await rows(w, schema.messages)
    assert (msg.id, msg.from_id, msg.signer_id, msg.kind) == (h["id"], w.c1.id, w.c1.id, "message")
    assert bytes(msg.wire) == sealed.body  # stored byte for byte, opaque
    assert bytes(msg.digest) == sealed.digest
    assert msg.receipt.encode() == cj(body)
    assert msg.org_id == w.home.id
    assert msg.size == len(sealed.body)

    entries = {e.mailbox_id: e for e in await rows(w, schema.mailbox_entries)}
    assert set(entries) == {w.c1.id, w.team}
    assert entries[w.c1.id].folder == "sent" and entries[w.c1.id].read == w.clock.now
    assert entries[w.team].folder == "inbox" and entries[w.team].read is None

    outbox = await rows(w, schema.outbox)
    readers = {w.cw1.id, w.cw2.id, w.connector.id}
    assert {(o.account_id, o.kind, o.state) for o in outbox} == {
        (a, "new_message", "pending") for a in readers
    }
    events = await rows(w, schema.events)
    assert sorted(e.account_id for e in events) == sorted([w.c1.id, *readers])
    assert all(e.type == "message" for e in events)


async def test_resend_is_safe_whatever_its_age_and_other_content_is_refused(
    msg_world: MsgWorld,
) -> None:
    w = msg_world
    sealed = w.seal(w.c1, [w.team])
    status, first = await w.post(w.c1, sealed.body)
    assert status == 201
    w.clock.advance(30 * DAY)  # long after the ±5 min window
    await login(w.client, w.c1)
    before = await w.counts()
    status, again = await w.post(w.c1, sealed.body)
    assert (status, again) == (200, first)
    assert await w.counts() == before

    other = w.seal(w.c1, [w.team], message_id=sealed.wire["header"]["id"], body="anders")
    status, problem = await w.post(w.c1, other.body)
    assert status == 409 and problem["type"].endswith(":message-id-reused")
    assert await w.counts() == before


async def test_caseworker_writes_for_the_team_to_a_citizen(msg_world: MsgWorld) -> None:
    w = msg_world
    sealed = w.seal(w.cw1, [w.c1.id], from_=w.team)
    status, body = await w.post(w.cw1, sealed.body)
    assert status == 201, body
    entries = {e.mailbox_id: e.folder for e in await rows(w, schema.mailbox_entries)}
    assert entries == {w.team: "sent", w.c1.id: "inbox"}
    # the citizen is notified; the team's members read the sent copy but get no notice
    assert [o.account_id for o in await rows(w, schema.outbox)] == [w.c1.id]
    events = sorted(
        e.account_id for e in await rows(w, schema.events, schema.events.c.type == "message")
    )
    assert events == sorted([w.c1.id, w.cw1.id, w.cw2.id, w.connector.id])
    # an authority message starts its delivery record (the delivery hook)
    (available,) = await rows(w, schema.delivery_events)
    assert available.event == "available"


async def test_replies_in_a_thread_and_foreign_threads(msg_world: MsgWorld) -> None:
    w = msg_world
    thread = new_id()
    first = w.seal(w.c1, [w.team], thread=thread)
    assert (await w.post(w.c1, first.body))[0] == 201
    (t,) = await rows(w, schema.threads)
    assert (t.id, t.org_id, t.started_by) == (thread, w.home.id, w.c1.id)

    reply = w.seal(w.cw2, [w.c1.id], from_=w.team, thread=thread)
    assert (await w.post(w.cw2, reply.body))[0] == 201
    answer = w.seal(w.c1, [w.team], thread=thread)
    assert (await w.post(w.c1, answer.body))[0] == 201
    parties = {r.mailbox_id for r in await rows(w, schema.thread_mailboxes)}
    assert parties == {w.c1.id, w.team}
    entries = await rows(w, schema.mailbox_entries, schema.mailbox_entries.c.mailbox_id == w.team)
    assert {e.thread_id for e in entries} == {thread}

    # another citizen cannot write into it; a fresh thread id of its own is fine
    before = await w.counts()
    intruder = w.seal(w.c2, [w.team], thread=thread)
    status, problem = await w.post(w.c2, intruder.body)
    assert status == 404 and problem["type"].endswith(":thread-not-found")
    assert await w.counts() == before
    own = w.seal(w.c2, [w.team], thread=new_id())
    assert (await w.post(w.c2, own.body))[0] == 201


async def test_citizens_write_only_where_the_org_allows_but_always_reply(
    msg_world: MsgWorld,
) -> None:
    w = msg_world
    thread = new_id()
    start = w.seal(w.cw1, [w.c1.id], from_=w.team, thread=thread)
    assert (await w.post(w.cw1, start.body))[0] == 201
    async with w.client.app[DB].write() as conn:
        await conn.execute(
            update(schema.organisations)
            .where(schema.organisations.c.id == w.home.id)
            .values(citizens_may_write=False)
        )
    fresh = w.seal(w.c1, [w.team])
    status, problem = await w.post(w.c1, fresh.body)
    assert status == 404 and problem["type"].endswith(":unknown-recipient")
    reply = w.seal(w.c1, [w.team], thread=thread)
    assert (await w.post(w.c1, reply.body))[0] == 201


async def test_staff_write_to_citizens_of_other_orgs_only_after_they_wrote(
    msg_world: MsgWorld,
) -> None:
    w = msg_world
    to_cb = w.seal(w.cw1, [w.cb.id], from_=w.team)
    status, problem = await w.post(w.cw1, to_cb.body)
    assert status == 404 and problem["type"].endswith(":unknown-recipient")
    # the citizen of org B writes to org A's team (A lets citizens write) ...
    hello = w.seal(w.cb, [w.team])
    assert (await w.post(w.cb, hello.body))[0] == 201
    # ... and from then on A's caseworkers may answer
    again = w.seal(w.cw1, [w.cb.id], from_=w.team)
    assert (await w.post(w.cw1, again.body))[0] == 201


async def test_a_caseworker_writes_to_teams_of_its_own_org(msg_world: MsgWorld) -> None:
    w = msg_world
    note = w.seal(w.cw1, [w.team])  # from the personal mailbox, to the team
    assert (await w.post(w.cw1, note.body))[0] == 201
    as_team = w.seal(w.connector, [w.c1.id, w.c2.id], from_=w.team)  # connectors write too
    assert (await w.post(w.connector, as_team.body))[0] == 201
    notified = sorted(o.account_id for o in await rows(w, schema.outbox))
    # the note: every member but the signer; the connector's letter: both citizens
    assert notified == sorted([w.cw2.id, w.connector.id, w.c1.id, w.c2.id])


async def test_blobs_are_linked_and_kept(msg_world: MsgWorld) -> None:
    w = msg_world
    blobs = [await w.add_blob(w.c1, file_size=5000), await w.add_blob(w.c1, file_size=70_000)]
    sealed = w.seal(
        w.c1,
        [w.team],
        blobs=blobs,
        attachments=[attachment_for(blobs[0], 5000), attachment_for(blobs[1], 70_000, "b.pdf")],
    )
    status, body = await w.post(w.c1, sealed.body)
    assert status == 201, body
    (msg,) = await rows(w, schema.messages)
    assert msg.size == len(sealed.body) + blobs[0]["size"] + blobs[1]["size"]
    links = await rows(w, schema.message_blobs)
    assert sorted((r.blob_id, r.position) for r in links) == sorted(
        [(blobs[0]["id"], 0), (blobs[1]["id"], 1)]
    )
    assert all(r.message_pk == msg.pk for r in links)
    stored = await rows(w, schema.blobs)
    assert [b.expires for b in stored] == [None, None]  # the message keeps them
    assert b64d(blobs[0]["hash"], 32) in {bytes(b.hash) for b in stored}
