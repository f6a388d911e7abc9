"""Fetching, moving, marking, flagging and deleting one message; access (both DBs)."""

from __future__ import annotations

import asyncio
from typing import Any

from inbox.world import InboxWorld, box, other_citizen, ref, remove_member
from sqlalchemy import select
from support.onboard import send

from postbox.crypto.encoding import cj, parse_canonical
from postbox.mailbox.appkeys import DB
from postbox.mailbox.db import schema


async def raw_get(w: InboxWorld, who: Any, path: str) -> tuple[int, bytes]:
    resp = await w.client.get(path, headers=who.headers)
    return resp.status, await resp.read()


async def test_fetch_answers_the_stored_envelope(inbox_world: InboxWorld) -> None:
    w = inbox_world
    doc = await w.upload(w.c1, b"%PDF " + bytes(range(256)) * 10)
    sealed = w.seal(w.c1, [w.team], attachments=[doc])
    receipt = await w.post(w.c1, sealed)

    status, raw = await raw_get(w, w.cw2, ref(w.team, sealed))
    assert status == 200, raw
    body = parse_canonical(raw)  # the answer is canonical JSON
    assert cj(body["wire"]) == sealed.body  # byte for byte what was sent
    assert body["receipt"] == receipt
    team_key = [k for k in sealed.wire["keys"] if k["mailbox"] == w.team]
    assert [body["key"]] == team_key
    assert body["summary"]["blobs"] == 1 and body["summary"]["folder"] == "inbox"
    status, chain = await w.get(w.cw2, f"/api/v1/keys/{w.c1.id}")
    assert status == 200
    assert body["sender"] == chain  # what GET /api/v1/keys/{signer} answers

    # the sender's own copy, with its own keys entry
    status, raw = await raw_get(w, w.c1, ref(w.c1.id, sealed))
    assert status == 200
    mine = parse_canonical(raw)
    assert mine["key"]["mailbox"] == w.c1.id and mine["summary"]["folder"] == "sent"


async def test_a_citizens_fetch_records_the_retrieval(inbox_world: InboxWorld) -> None:
    w = inbox_world
    sealed = await w.team_writes(w.c1)
    h = sealed.wire["header"]
    delivery = f"/api/v1/messages/{h['from']}/{h['id']}/delivery"
    status, record = await w.get(w.cw1, delivery)
    assert status == 200, record
    assert [e["delivery"]["event"] for e in record["events"]] == ["available"]

    w.clock.advance(60_000)
    for _ in range(2):  # the first fetch counts, the second adds nothing
        status, _ = await raw_get(w, w.c1, ref(w.c1.id, sealed))
        assert status == 200
    status, record = await w.get(w.cw1, delivery)
    events = [e["delivery"] for e in record["events"]]
    assert [e["event"] for e in events] == ["available", "retrieved"]
    assert events[1]["by"] == w.c1.id and events[1]["at"] == w.clock.now
    # the team's members got a live event about it
    async with w.client.app[DB].read() as conn:
        rows = (
            await conn.execute(
                select(schema.events.c.account_id).where(schema.events.c.type == "delivery")
            )
        ).all()
    assert sorted(r[0] for r in rows) == sorted([w.cw1.id, w.cw2.id])


async def test_access(inbox_world: InboxWorld) -> None:
    w = inbox_world
    to_c1 = await w.team_writes(w.c1)
    from_c1 = await w.citizen_writes(w.c1)
    stranger = await other_citizen(w)

    def not_found(body: Any, code: str) -> bool:
        return bool(body["type"].endswith(code))

    # another citizen's mailbox does not exist, nor do its messages, in any route
    for who in (w.c2, stranger, w.admin):
        status, body = await w.get(who, box(w.c1.id))
        assert status == 404 and not_found(body, "mailbox-not-found"), body
        for path in (ref(w.c1.id, to_c1), ref(w.c1.id, from_c1)):
            status, body = await w.get(who, path)
            assert status == 404 and not_found(body, "message-not-found"), body
            status, body = await send(w.client, "PATCH", path, {"read": True}, who=who)
            assert status == 404 and not_found(body, "message-not-found"), body
            status, body = await send(w.client, "DELETE", path, who=who)
            assert status == 404 and not_found(body, "message-not-found"), body
    # a message not in the caller's own mailbox: the same answer
    status, body = await w.get(w.c2, ref(w.c2.id, to_c1))
    assert status == 404 and not_found(body, "message-not-found")
    # the team mailbox: members only (not the org admin, not citizens)
    for who in (w.admin, w.c1, stranger):
        status, body = await w.get(who, box(w.team))
        assert status == 404 and not_found(body, "mailbox-not-found"), body
        status, body = await w.get(who, ref(w.team, from_c1))
        assert status == 404 and not_found(body, "message-not-found"), body
    # malformed ids are the same 404
    for path in (box("not-an-id"), ref("x", from_c1), f"{box(w.team)}/abc/def"):
        status, body = await w.get(w.cw1, path)
        assert status == 404, (path, body)
    status, body = await w.get(w.cw2, ref(w.team, from_c1))
    assert status == 200

    # a removed member loses access at once
    await remove_member(w, w.cw2)
    status, body = await w.get(w.cw2, box(w.team))
    assert status == 404 and not_found(body, "mailbox-not-found")
    status, body = await w.get(w.cw2, ref(w.team, from_c1))
    assert status == 404 and not_found(body, "message-not-found")
    status, body = await w.get(w.cw2, "/api/v1/mailboxes")
    assert [b["mailbox"] for b in body["mailboxes"]] == [w.cw2.id]
    # no authentication: 401
    resp = await w.client.get(box(w.team))
    assert resp.status == 401


async def entry_row(w: InboxWorld, mailbox: str, sealed: Any) -> Any:
    h = sealed.wire["header"]
    e, m = schema.mailbox_entries, schema.messages
    async with w.client.app[DB].read() as conn:
        return (
            await conn.execute(
                select(e)
                .join(m, m.c.pk == e.c.message_pk)
                .where(e.c.mailbox_id == mailbox, m.c.from_id == h["from"], m.c.id == h["id"])
            )
        ).first()


async def test_patch(inbox_world: InboxWorld) -> None:
    w = inbox_world
    sealed = await w.citizen_writes(w.c1)
    path = ref(w.team, sealed)

    w.clock.advance(5_000)
    status, summary = await send(w.client, "PATCH", path, {"read": True}, who=w.cw1)
    assert status == 200 and summary["read"] is True and summary["folder"] == "inbox"
    first_read = (await entry_row(w, w.team, sealed)).read
    assert first_read == w.clock.now
    w.clock.advance(5_000)
    status, summary = await send(w.client, "PATCH", path, {"read": True}, who=w.cw2)
    assert (await entry_row(w, w.team, sealed)).read == first_read  # the first time is kept
    status, summary = await send(
        w.client, "PATCH", path, {"flagged": True, "read": False, "folder": "archive"}, who=w.cw2
    )
    assert status == 200, summary
    assert (summary["flagged"], summary["read"], summary["folder"]) == (True, False, "archive")
    row = await entry_row(w, w.team, sealed)
    assert row.moved == w.clock.now and row.read is None
    # the citizen's copy is its own: unchanged
    mine = await entry_row(w, w.c1.id, sealed)
    assert (mine.folder, mine.flagged) == ("sent", False)

    # every reader of the team mailbox got a live "mailbox" event per change
    async with w.client.app[DB].read() as conn:
        rows = (
            await conn.execute(
                select(schema.events.c.account_id, schema.events.c.data).where(
                    schema.events.c.type == "mailbox"
                )
            )
        ).all()
    assert sorted(r[0] for r in rows) == sorted([w.cw1.id, w.cw2.id] * 2)  # 2 changes
    assert {parse_canonical(r[1].encode()) == {"mailbox": w.team} for r in rows} == {True}

    # folders that do not fit, and malformed bodies
    status, body = await send(w.client, "PATCH", path, {"folder": "sent"}, who=w.cw1)
    assert status == 409 and body["type"].endswith("folder-not-allowed")
    status, body = await send(
        w.client, "PATCH", ref(w.c1.id, sealed), {"folder": "inbox"}, who=w.c1
    )
    assert status == 409 and body["type"].endswith("folder-not-allowed")
    for bad in ({}, {"folder": "spam"}, {"read": "yes"}, {"flagged": 1}, {"x": True}, [1]):
        status, body = await send(w.client, "PATCH", path, bad, who=w.cw1)
        assert status == 400 and body["type"].endswith("malformed"), (bad, body)
    resp = await w.client.patch(
        path, data=b"{", headers={**w.cw1.headers, "Content-Type": "application/json"}
    )
    assert resp.status == 400
    # a restore from the trash goes back to the inbox
    for folder in ("trash", "inbox"):
        status, summary = await send(w.client, "PATCH", path, {"folder": folder}, who=w.cw1)
        assert status == 200 and summary["folder"] == folder


async def test_delete_last_entry_removes_message_and_blobs(inbox_world: InboxWorld) -> None:
    w = inbox_world
    doc = await w.upload(w.c1, b"%PDF secret scan " * 100)
    pic = await w.upload(w.c1, b"\x89PNG " * 200, name="foto.png")
    sealed = w.seal(w.c1, [w.team], attachments=[doc, pic])
    await w.post(w.c1, sealed)
    blob_ids = [doc.header["id"], pic.header["id"]]
    messages = await w.rows(schema.messages)
    assert await w.blob_rows(blob_ids) == 2

    status, _ = await send(w.client, "DELETE", ref(w.team, sealed), who=w.cw1)
    assert status == 204
    # the citizen still has it: message, links and blobs stay
    assert await w.rows(schema.messages) == messages
    assert await w.blob_rows(blob_ids) == 2
    status, _ = await w.get(w.cw1, ref(w.team, sealed))
    assert status == 404
    status, body = await send(w.client, "DELETE", ref(w.team, sealed), who=w.cw1)
    assert status == 404 and body["type"].endswith("message-not-found")
    status, _ = await w.get(w.c1, ref(w.c1.id, sealed))
    assert status == 200

    status, _ = await send(w.client, "DELETE", ref(w.c1.id, sealed), who=w.c1)
    assert status == 204
    assert await w.rows(schema.messages) == messages - 1
    assert await w.blob_rows(blob_ids) == 0
    async with w.client.app[DB].read() as conn:
        links = (
            await conn.execute(
                select(schema.message_blobs).where(schema.message_blobs.c.blob_id.in_(blob_ids))
            )
        ).all()
    assert links == []
    status, _ = await w.get(w.c1, f"/api/v1/blobs/{doc.header['id']}")
    assert status == 404


async def test_delete_authority_message_with_its_delivery_record(inbox_world: InboxWorld) -> None:
    w = inbox_world
    sealed = await w.team_writes(w.c1)
    status, _ = await raw_get(w, w.c1, ref(w.c1.id, sealed))  # retrieved
    assert status == 200
    assert await w.rows(schema.delivery_events) == 2
    for who, mailbox in ((w.c1, w.c1.id), (w.cw2, w.team)):
        status, body = await send(w.client, "DELETE", ref(mailbox, sealed), who=who)
        assert status == 204, body
    assert await w.rows(schema.delivery_events) == 0
    assert await w.rows(schema.messages) == 0
    async with w.client.app[DB].read() as conn:
        pending = (await conn.execute(select(schema.outbox.c.message_pk))).all()
    assert {r[0] for r in pending} <= {None}  # notifications no longer point at it


async def test_last_two_entries_deleted_at_once(inbox_world: InboxWorld) -> None:
    """The citizen and the team delete their entries at the same moment: the message goes
    exactly once, with its blob (PostgreSQL runs the two transactions concurrently)."""
    w = inbox_world
    for _ in range(5):
        doc = await w.upload(w.c1, b"%PDF " * 50)
        sealed = w.seal(w.c1, [w.team], attachments=[doc])
        await w.post(w.c1, sealed)
        answers = await asyncio.gather(
            send(w.client, "DELETE", ref(w.team, sealed), who=w.cw1),
            send(w.client, "DELETE", ref(w.c1.id, sealed), who=w.c1),
        )
        assert [a[0] for a in answers] == [204, 204]
        assert await w.rows(schema.messages) == 0
        assert await w.blob_rows([doc.header["id"]]) == 0
