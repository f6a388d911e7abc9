"""A message sent through ``POST /api/v1/messages`` produces ``message`` events for the
accounts that read the recipient mailboxes, live, and for nobody else (both databases)."""

from __future__ import annotations

from typing import Any

import aiohttp
from events.test_socket import connect, emit, frame
from messages.world import MsgWorld, build_world
from support.onboard import Client, FakeClock, Person


async def message_event(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    """The next ``message`` event (other kinds, e.g. delivery, may come first)."""
    for _ in range(10):
        got = await frame(ws)
        if got["event"] == "message":
            return got
    raise AssertionError("no message event")


async def test_a_sent_message_is_announced_to_its_recipients_only(
    app_client: Client, clock: FakeClock
) -> None:
    w: MsgWorld = await build_world(app_client, clock)
    sockets = {}
    people: list[Person] = [w.cw1, w.cw2, w.c1, w.c2, w.cwb, w.cb]
    for person in people:
        sockets[person.id], _ = await connect(app_client, person)

    # a citizen writes to the team: both caseworkers of the team see it arrive
    sealed = w.seal(w.c1, [w.team])
    status, body = await w.post(w.c1, sealed.body)
    assert status == 201, body
    mid = sealed.wire["header"]["id"]
    for caseworker in (w.cw1, w.cw2):
        got = await message_event(sockets[caseworker.id])
        assert got["data"] == {
            "mailbox": w.team,
            "from": w.c1.id,
            "id": mid,
            "kind": "message",
            "folder": "inbox",
        }

    # the team answers: the citizen sees it in its own mailbox
    reply = w.seal(w.cw1, [w.c1.id], from_=w.team)
    status, body = await w.post(w.cw1, reply.body)
    assert status == 201, body
    got = await message_event(sockets[w.c1.id])
    while got["data"]["id"] != reply.wire["header"]["id"]:  # skip its own sent copy
        got = await message_event(sockets[w.c1.id])
    assert got["data"]["mailbox"] == w.c1.id and got["data"]["folder"] == "inbox"
    assert got["data"]["from"] == w.team

    # nobody else heard anything: their first frame is a marker sent afterwards
    outsiders = [w.c2, w.cwb, w.cb]
    await emit(app_client, [p.id for p in outsiders], {"marker": True})
    for person in outsiders:
        assert (await frame(sockets[person.id]))["data"] == {"marker": True}
    for ws in sockets.values():
        await ws.close()
