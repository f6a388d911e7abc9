"""Listing mailboxes and messages: order, folders, filters, pagination, counts (both DBs)."""

from __future__ import annotations

from typing import Any

from inbox.world import InboxWorld, box, ref
from support.onboard import send

from postbox.crypto.encoding import b64e
from postbox.crypto.primitives import random_bytes

FOLDERS = ("inbox", "sent", "archive", "trash")


def ids(page: dict[str, Any]) -> list[str]:
    return [m["id"] for m in page["messages"]]


async def test_mailboxes_with_counts(inbox_world: InboxWorld) -> None:
    w = inbox_world
    first = await w.citizen_writes(w.c1)
    await w.citizen_writes(w.c1)
    await w.citizen_writes(w.c2)
    await w.team_writes(w.c1)

    status, body = await w.get(w.cw1, "/api/v1/mailboxes")
    assert status == 200, body
    boxes = {b["mailbox"]: b for b in body["mailboxes"]}
    assert [b["mailbox"] for b in body["mailboxes"]] == [w.cw1.id, w.team]
    team = boxes[w.team]
    assert team["kind"] == "team"
    assert team["names"] == {"de": "Aufenthaltstitel", "en": "Residence permits"}
    assert team["total"] == {"inbox": 3, "sent": 1, "archive": 0, "trash": 0}
    # the sender's own copy is read already
    assert team["unread"] == {"inbox": 3, "sent": 0, "archive": 0, "trash": 0}
    assert boxes[w.cw1.id] == {
        "mailbox": w.cw1.id,
        "kind": "account",
        "names": None,
        "unread": dict.fromkeys(FOLDERS, 0),
        "total": dict.fromkeys(FOLDERS, 0),
    }

    # reading one (by any member: the state is the team's) lowers the unread count
    status, _ = await send(w.client, "PATCH", ref(w.team, first), {"read": True}, who=w.cw2)
    assert status == 200
    status, body = await w.get(w.cw1, "/api/v1/mailboxes")
    team = {b["mailbox"]: b for b in body["mailboxes"]}[w.team]
    assert team["unread"]["inbox"] == 2 and team["total"]["inbox"] == 3

    # the citizen sees only its own mailbox: two sent, one received
    status, body = await w.get(w.c1, "/api/v1/mailboxes")
    assert [b["mailbox"] for b in body["mailboxes"]] == [w.c1.id]
    mine = body["mailboxes"][0]
    assert mine["kind"] == "account" and mine["names"] is None
    assert mine["total"] == {"inbox": 1, "sent": 2, "archive": 0, "trash": 0}


async def test_newest_first_with_summaries(inbox_world: InboxWorld) -> None:
    w = inbox_world
    thread = b64e(random_bytes(16))
    doc = await w.upload(w.c1, b"%PDF-1.7 " + random_bytes(3000))
    sent = []
    for i in range(3):
        w.clock.advance(1000)
        sent.append(await w.citizen_writes(w.c1, thread=thread if i else None))
    w.clock.advance(1000)
    with_file = await w.citizen_writes(w.c1, attachments=[doc])
    sent.append(with_file)

    status, page = await w.get(w.cw1, box(w.team))
    assert status == 200, page
    assert ids(page) == [s.wire["header"]["id"] for s in reversed(sent)]
    assert page["next"] is None
    top = page["messages"][0]
    assert top == {
        "from": w.c1.id,
        "id": with_file.wire["header"]["id"],
        "signer": w.c1.id,
        "kind": "message",
        "thread": None,
        "case": None,
        "accepted": w.clock.now,
        "size": len(with_file.body) + doc.header["size"],
        "blobs": 1,
        "read": False,
        "flagged": False,
        "folder": "inbox",
    }
    assert page["messages"][-1]["blobs"] == 0

    # the sender's copy is in its sent folder, not its inbox
    status, page = await w.get(w.c1, box(w.c1.id))
    assert ids(page) == []
    status, page = await w.get(w.c1, box(w.c1.id), {"folder": "sent"})
    assert len(page["messages"]) == 4
    assert {m["folder"] for m in page["messages"]} == {"sent"}


async def test_filters(inbox_world: InboxWorld) -> None:
    w = inbox_world
    thread = b64e(random_bytes(16))
    a = await w.citizen_writes(w.c1, thread=thread)
    b = await w.citizen_writes(w.c1)
    c = await w.citizen_writes(w.c2)
    reply = await w.team_writes(w.c1, thread=thread)
    aid, bid, cid = (s.wire["header"]["id"] for s in (a, b, c))

    await send(w.client, "PATCH", ref(w.team, b), {"read": True}, who=w.cw1)
    await send(w.client, "PATCH", ref(w.team, c), {"flagged": True}, who=w.cw1)
    await send(w.client, "PATCH", ref(w.team, a), {"folder": "archive"}, who=w.cw1)

    async def listing(**params: str) -> list[str]:
        status, page = await w.get(w.cw1, box(w.team), params)
        assert status == 200, page
        return ids(page)

    assert await listing() == [cid, bid]
    assert await listing(unread="true") == [cid]
    assert await listing(unread="false") == [bid]
    assert await listing(flagged="true") == [cid]
    assert await listing(flagged="false") == [bid]
    assert await listing(folder="archive") == [aid]
    assert await listing(folder="sent") == [reply.wire["header"]["id"]]
    # a thread across folders (inbox, archive, sent), never the trash
    assert await listing(thread=thread) == [reply.wire["header"]["id"], aid]
    assert await listing(thread=thread, folder="archive") == [aid]
    await send(w.client, "PATCH", ref(w.team, a), {"folder": "trash"}, who=w.cw1)
    assert await listing(thread=thread) == [reply.wire["header"]["id"]]
    assert await listing(thread=thread, folder="trash") == [aid]
    assert await listing(thread=b64e(random_bytes(16))) == []
    assert await listing(case=b64e(random_bytes(16))) == []


async def test_pagination_without_duplicates_or_skips(inbox_world: InboxWorld) -> None:
    w = inbox_world
    first = [(await w.citizen_writes(w.c1)).wire["header"]["id"] for _ in range(7)]
    seen: list[str] = []
    status, page = await w.get(w.cw1, box(w.team), {"limit": "3"})
    assert status == 200 and len(page["messages"]) == 3 and page["next"]
    seen += ids(page)
    # new messages arrive between pages: they appear before the cursor, not in later pages
    late = [(await w.citizen_writes(w.c2)).wire["header"]["id"] for _ in range(4)]
    while page["next"] is not None:
        status, page = await w.get(w.cw1, box(w.team), {"limit": "3", "before": page["next"]})
        assert status == 200, page
        seen += ids(page)
    assert seen == list(reversed(first))
    status, page = await w.get(w.cw1, box(w.team), {"limit": "200"})
    assert ids(page) == list(reversed(first + late))
    # a full last page says so by next: null only when nothing is left
    status, page = await w.get(w.cw1, box(w.team), {"limit": "11"})
    assert len(page["messages"]) == 11 and page["next"] is None


async def test_bad_queries(inbox_world: InboxWorld) -> None:
    w = inbox_world
    cases = [
        ({"folder": "spam"}, "invalid-query"),
        ({"unread": "yes"}, "invalid-query"),
        ({"flagged": "1"}, "invalid-query"),
        ({"limit": "0"}, "invalid-query"),
        ({"limit": "201"}, "invalid-query"),
        ({"limit": "05"}, "invalid-query"),
        ({"limit": "-1"}, "invalid-query"),
        ({"thread": "nope"}, "invalid-query"),
        ({"case": "A" * 23}, "invalid-query"),
        ({"before": "xyz"}, "invalid-cursor"),
        ({"before": "AAAAAAAAAAA"}, "invalid-cursor"),
        ({"before": "__________8"}, "invalid-cursor"),  # 2^64 - 1: beyond any key
        ({"sort": "asc"}, "unknown-parameter"),
    ]
    for params, code in cases:
        status, body = await w.get(w.cw1, box(w.team), params)
        assert status == 400, (params, body)
        assert body["type"].endswith(code), (params, body)
    resp = await w.client.get(box(w.team) + "?limit=3&limit=4", headers=w.cw1.headers)
    assert resp.status == 400
    assert (await resp.json())["type"].endswith("invalid-query")
