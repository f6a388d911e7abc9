"""Retention rules per organisation, the trash purge and deletion after N days, with a
controllable clock; several collectors at once (both DBs)."""

from __future__ import annotations

import asyncio

from inbox.world import InboxWorld, other_citizen, ref
from sqlalchemy import select
from support.onboard import DAY, send

from postbox.mailbox.appkeys import CLOCK, DB, INBOX_COLLECTOR, SETTINGS
from postbox.mailbox.db import schema
from postbox.mailbox.db.engine import Database
from postbox.mailbox.inbox.retention import Collector


def path(w: InboxWorld) -> str:
    return f"/api/v1/orgs/{w.org}/retention"


async def test_rule_get_and_put(inbox_world: InboxWorld) -> None:
    w = inbox_world
    default = {"delete_after_days": None, "trash_days": 30}
    for who in (w.admin, w.cw1, w.c1):
        status, body = await w.get(who, path(w))
        assert (status, body) == (200, default)
    stranger = await other_citizen(w)
    status, body = await w.get(stranger, path(w))
    assert status == 404 and body["type"].endswith("org-not-found")

    rule: dict[str, int | None] = {"delete_after_days": 365, "trash_days": 7}
    status, body = await send(w.client, "PUT", path(w), rule, who=w.admin)
    assert (status, body) == (200, rule)
    status, body = await w.get(w.c1, path(w))
    assert body == rule
    rule = {"delete_after_days": None, "trash_days": 0}
    status, body = await send(w.client, "PUT", path(w), rule, who=w.admin)
    assert (status, body) == (200, rule)
    async with w.client.app[DB].read() as conn:
        audit = (
            await conn.execute(
                select(schema.audit_log.c.actor).where(schema.audit_log.c.action == "retention.set")
            )
        ).all()
    assert [a[0] for a in audit] == [w.admin.id, w.admin.id]

    status, body = await send(w.client, "PUT", path(w), rule, who=w.cw1)
    assert status == 403 and body["type"].endswith("admin-only")
    status, body = await send(w.client, "PUT", path(w), rule, who=w.c1)
    assert status == 404 and body["type"].endswith("org-not-found")
    for bad in (
        {},
        {"delete_after_days": 0, "trash_days": 1},
        {"delete_after_days": 1, "trash_days": -1},
        {"delete_after_days": 1, "trash_days": 36_501},
        {"delete_after_days": "1", "trash_days": 1},
        {"delete_after_days": 1, "trash_days": True},
        {"delete_after_days": 1, "trash_days": 1, "x": 1},
    ):
        status, body = await send(w.client, "PUT", path(w), bad, who=w.admin)
        assert status == 400 and body["type"].endswith("malformed"), (bad, body)


async def test_trash_purge(inbox_world: InboxWorld) -> None:
    w = inbox_world
    collector = w.client.app[INBOX_COLLECTOR]
    doc = await w.upload(w.c1, b"%PDF " * 500)
    a = w.seal(w.c1, [w.team], attachments=[doc])
    await w.post(w.c1, a)
    b = await w.citizen_writes(w.c2)
    c = await w.citizen_writes(w.c2)
    for sealed, who, mailbox in ((a, w.cw1, w.team), (a, w.c1, w.c1.id), (b, w.cw1, w.team)):
        status, _ = await send(
            w.client, "PATCH", ref(mailbox, sealed), {"folder": "trash"}, who=who
        )
        assert status == 200
    await w.advance(10 * DAY)
    status, _ = await send(w.client, "PATCH", ref(w.team, c), {"folder": "trash"}, who=w.cw1)
    assert status == 200

    await w.advance(20 * DAY - 1)  # 30 days (the default) minus 1 ms
    purged = await collector.collect()
    assert purged.entries == 0
    await w.advance(2)
    purged = await collector.collect()
    # a: both entries (team and citizen) and the message with its blob; b: the team's entry
    assert (purged.entries, purged.messages, purged.blobs) == (3, 1, 1)
    assert await w.blob_rows([doc.header["id"]]) == 0
    for mailbox, sealed in ((w.team, a), (w.c1.id, a), (w.team, b)):
        status, _ = await w.get(w.cw1 if mailbox == w.team else w.c1, ref(mailbox, sealed))
        assert status == 404
    status, _ = await w.get(w.c2, ref(w.c2.id, b))  # the sender's copy stays
    assert status == 200

    # the org's own rule: trash_days 1 purges c (in the trash for 20 days) now
    status, _ = await send(
        w.client, "PUT", path(w), {"delete_after_days": None, "trash_days": 1}, who=w.admin
    )
    assert status == 200
    purged = await collector.collect()
    assert purged.entries == 1
    status, _ = await w.get(w.cw1, ref(w.team, c))
    assert status == 404


async def test_restored_entries_stay(inbox_world: InboxWorld) -> None:
    w = inbox_world
    collector = w.client.app[INBOX_COLLECTOR]
    sealed = await w.citizen_writes(w.c1)
    await send(w.client, "PATCH", ref(w.team, sealed), {"folder": "trash"}, who=w.cw1)
    await w.advance(29 * DAY)
    await send(w.client, "PATCH", ref(w.team, sealed), {"folder": "inbox"}, who=w.cw1)
    await w.advance(2 * DAY)
    assert (await collector.collect()).entries == 0
    # trashed again: the 30 days count from the new move
    await send(w.client, "PATCH", ref(w.team, sealed), {"folder": "trash"}, who=w.cw1)
    await w.advance(29 * DAY)
    assert (await collector.collect()).entries == 0
    await w.advance(2 * DAY)
    assert (await collector.collect()).entries == 1


async def test_delete_after_days(inbox_world: InboxWorld) -> None:
    w = inbox_world
    collector = w.client.app[INBOX_COLLECTOR]
    collector.batch = 2  # several batches in one run
    doc = await w.upload(w.c1, b"%PDF old " * 300)
    old = [w.seal(w.c1, [w.team], attachments=[doc])]
    await w.post(w.c1, old[0])
    old += [await w.citizen_writes(w.c2) for _ in range(3)]
    old.append(await w.team_writes(w.c1))
    await w.advance(5 * DAY)
    young = [await w.citizen_writes(w.c1), await w.team_writes(w.c2)]
    messages = await w.rows(schema.messages)

    status, _ = await send(
        w.client, "PUT", path(w), {"delete_after_days": 7, "trash_days": 30}, who=w.admin
    )
    assert status == 200
    await w.advance(2 * DAY)  # the old ones are 7 days old now, not more
    assert (await collector.collect()).messages == 0
    await w.advance(1)
    purged = await collector.collect()
    assert purged.messages == len(old) and purged.entries == 2 * len(old) and purged.blobs == 1
    assert await w.rows(schema.messages) == messages - len(old)
    assert await w.blob_rows([doc.header["id"]]) == 0
    for sealed in old:  # gone from every mailbox that held it
        for who, mailbox in ((w.cw1, w.team), (w.c1, w.c1.id), (w.c2, w.c2.id)):
            status, _ = await w.get(who, ref(mailbox, sealed))
            assert status == 404
    status, page = await w.get(w.cw1, f"/api/v1/mailboxes/{w.team}/messages")
    assert [m["id"] for m in page["messages"]] == [young[0].wire["header"]["id"]]
    # readers were told their mailboxes changed
    async with w.client.app[DB].read() as conn:
        told = (
            await conn.execute(
                select(schema.events.c.account_id).where(schema.events.c.type == "mailbox")
            )
        ).all()
    assert {r[0] for r in told} == {w.cw1.id, w.cw2.id, w.c1.id, w.c2.id}


async def test_collectors_in_parallel(inbox_world: InboxWorld) -> None:
    """Two collectors (each with its own database engine, as two processes have) work off
    one backlog at the same time: every message goes exactly once, nothing is left half."""
    w = inbox_world
    app = w.client.app
    sent = [await w.citizen_writes(w.c1 if i % 2 else w.c2) for i in range(24)]
    for s in sent[:8]:
        await send(w.client, "PATCH", ref(w.team, s), {"folder": "trash"}, who=w.cw1)
    status, _ = await send(
        w.client, "PUT", path(w), {"delete_after_days": 1, "trash_days": 1}, who=w.admin
    )
    assert status == 200
    await w.advance(2 * DAY)
    settings = app[SETTINGS]
    other = Database(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
    try:
        first = Collector(app[DB], app[CLOCK], wake=_no_wake, batch=3)
        second = Collector(other, app[CLOCK], wake=_no_wake, batch=3)
        a, b = await asyncio.gather(first.collect(), second.collect())
    finally:
        await other.dispose()
    assert a.messages + b.messages == 24
    assert a.entries + b.entries == 48
    assert await w.rows(schema.messages) == 0
    assert await w.rows(schema.mailbox_entries) == 0


async def _no_wake(_accounts: object) -> None:
    return None
