"""``GET /api/v1/events`` through the real server on loopback, on both databases.

Events are produced the way every writer produces them: rows appended with
``events.store.append`` in a write transaction of the app's own database, then
``bus.wake`` after the commit. Timeouts below only guard against a hang; no test depends
on how long anything takes.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Sequence
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from events.conftest import People
from support.onboard import DAY, Client, FakeClock, Person, login, send

from postbox.mailbox.appkeys import CLOCK, DB, EVENT_BUS, EVENTS
from postbox.mailbox.events import routes, store
from postbox.mailbox.events.service import MAX_CONNECTIONS_PER_ACCOUNT, RETENTION_MS
from postbox.mailbox.events.store import NewEvent

GUARD_S = 30.0
MINUTE = 60_000


async def emit(
    server: Client | web.Application,
    account_ids: Sequence[str],
    data: dict[str, Any] | None = None,
) -> None:
    """Append one ``mailbox`` event per account, commit, then wake the bus."""
    app = server if isinstance(server, web.Application) else server.app
    async with app[DB].write() as conn:
        await store.append(
            conn,
            [NewEvent(a, "mailbox", data or {"mailbox": a}) for a in account_ids],
            app[CLOCK](),
        )
    await app[EVENT_BUS].wake(account_ids)


async def frame(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    msg = await ws.receive(timeout=GUARD_S)
    assert msg.type is aiohttp.WSMsgType.TEXT, (msg.type, msg.data, msg.extra)
    value = json.loads(msg.data)
    assert isinstance(value, dict)
    return value


async def closed(ws: aiohttp.ClientWebSocketResponse) -> tuple[int, str]:
    """The close code and reason the server sent (no other frame may come first)."""
    msg = await ws.receive(timeout=GUARD_S)
    assert msg.type is aiohttp.WSMsgType.CLOSE, (msg.type, msg.data)
    return int(msg.data), str(msg.extra)


async def connect(
    client: Client, who: Person, cursor: int | None = None
) -> tuple[aiohttp.ClientWebSocketResponse, int]:
    """An authenticated socket and the ``ready`` cursor."""
    ws = await client.ws_connect(routes.PATH)
    await ws.send_json({"type": "auth", "token": who.token, "cursor": cursor})
    ready = await frame(ws)
    assert ready["type"] == "ready" and set(ready) == {"type", "cursor"}, ready
    return ws, int(ready["cursor"])


async def until(condition: Any) -> None:
    """Wait (bounded by the guard) until ``condition()`` holds."""
    async with asyncio.timeout(GUARD_S):
        while True:
            if condition():
                return
            await asyncio.sleep(0.02)  # polled: the server-side state has no event to await


# --- authentication ---------------------------------------------------------------------------
async def test_without_an_upgrade_the_route_is_a_426_problem(app_client: Client) -> None:
    resp = await app_client.get(routes.PATH)
    assert resp.status == 426
    assert resp.content_type == "application/problem+json"
    assert resp.headers["Upgrade"] == "websocket"
    body = await resp.json()
    assert body["type"] == "urn:postbox:problem:websocket-required"
    assert body["status"] == 426


async def test_a_socket_that_does_not_authenticate_in_time_is_closed(app_client: Client) -> None:
    ws = await app_client.ws_connect(routes.PATH)
    assert await closed(ws) == (4401, "auth-timeout")


async def test_a_token_in_the_url_or_a_header_is_ignored(
    app_client: Client, people: People
) -> None:
    token = people.citizen.token

    async def attempt(path: str, headers: dict[str, str]) -> tuple[int, str]:
        ws = await app_client.ws_connect(path, headers=headers)
        return await closed(ws)

    results = await asyncio.gather(
        attempt(f"{routes.PATH}?token={token}", {}),
        attempt(f"{routes.PATH}?access_token={token}", {}),
        attempt(routes.PATH, {"Authorization": f"Bearer {token}"}),
    )
    assert list(results) == [(4401, "auth-timeout")] * 3


@pytest.mark.parametrize(
    ("token", "code"),
    [
        ("not-a-token", "invalid-token"),
        ("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", "invalid-token"),
        ("x" * 5000, "invalid-token"),
    ],
)
async def test_a_bad_token_is_refused(app_client: Client, token: str, code: str) -> None:
    ws = await app_client.ws_connect(routes.PATH)
    await ws.send_json({"type": "auth", "token": token, "cursor": None})
    assert await closed(ws) == (4401, code)


@pytest.mark.parametrize(
    "first",
    [
        "not json",
        json.dumps({"type": "hello"}),
        json.dumps({"type": "auth"}),
        json.dumps({"type": "auth", "token": 7}),
        json.dumps({"type": "auth", "token": "t", "cursor": -1}),
        json.dumps({"type": "auth", "token": "t", "cursor": True}),
        json.dumps({"type": "auth", "token": "t", "cursor": 1.5}),
        json.dumps({"type": "auth", "token": "t", "cursor": None, "extra": 1}),
        json.dumps([1, 2]),
    ],
)
async def test_a_malformed_first_frame_is_refused(app_client: Client, first: str) -> None:
    ws = await app_client.ws_connect(routes.PATH)
    await ws.send_str(first)
    assert await closed(ws) == (4400, "bad-frame")


async def test_a_binary_first_frame_is_refused(app_client: Client) -> None:
    ws = await app_client.ws_connect(routes.PATH)
    await ws.send_bytes(b'{"type":"auth"}')
    assert await closed(ws) == (4400, "bad-frame")


async def test_an_ended_session_cannot_connect(app_client: Client, people: People) -> None:
    status, _ = await send(app_client, "POST", "/api/v1/auth/logout", who=people.citizen)
    assert status == 204
    ws = await app_client.ws_connect(routes.PATH)
    await ws.send_json({"type": "auth", "token": people.citizen.token, "cursor": None})
    assert await closed(ws) == (4401, "session-ended")


# --- delivery ---------------------------------------------------------------------------------
async def test_live_events_reach_the_account_and_no_other(
    app_client: Client, people: People
) -> None:
    a, b = people.citizen, people.citizen2
    ws_a, ready_a = await connect(app_client, a)
    ws_b, _ = await connect(app_client, b)
    await emit(app_client, [b.id], {"mailbox": b.id, "n": 1})
    await emit(app_client, [a.id], {"mailbox": a.id, "n": 2})
    got = await frame(ws_a)
    # the first (and only) frame A sees is its own event: B's was never sent to it
    assert got["type"] == "event" and got["event"] == "mailbox"
    assert got["data"] == {"mailbox": a.id, "n": 2}
    assert got["seq"] > ready_a
    assert got["at"] == app_client.app[CLOCK]()
    assert set(got) == {"type", "seq", "event", "data", "at"}
    got_b = await frame(ws_b)
    assert got_b["data"] == {"mailbox": b.id, "n": 1}
    # one event for both accounts in one transaction reaches both
    await emit(app_client, [a.id, b.id], {"n": 3})
    assert (await frame(ws_a))["data"] == {"n": 3}
    assert (await frame(ws_b))["data"] == {"n": 3}
    for ws in (ws_a, ws_b):
        await ws.close()


async def test_several_connections_of_one_account_all_get_every_event(
    app_client: Client, people: People
) -> None:
    sockets = [(await connect(app_client, people.caseworker))[0] for _ in range(3)]
    await emit(app_client, [people.caseworker.id])
    for ws in sockets:
        assert (await frame(ws))["event"] == "mailbox"
        await ws.close()


async def test_a_reconnect_with_a_cursor_replays_what_was_missed(
    app_client: Client, people: People
) -> None:
    a, b = people.citizen, people.citizen2
    for n in range(3):
        await emit(app_client, [a.id], {"n": n})
        await emit(app_client, [b.id], {"n": 100 + n})
    ws, latest = await connect(app_client, a, cursor=0)
    replayed = [await frame(ws) for _ in range(3)]
    assert [e["data"]["n"] for e in replayed] == [0, 1, 2]
    assert [e["seq"] for e in replayed] == sorted(e["seq"] for e in replayed)
    assert latest == replayed[-1]["seq"]
    await ws.close()

    # from the first event's seq: the two after it, then live events
    ws, _ = await connect(app_client, a, cursor=replayed[0]["seq"])
    assert [(await frame(ws))["data"]["n"] for _ in range(2)] == [1, 2]
    await emit(app_client, [a.id], {"n": 3})
    assert (await frame(ws))["data"] == {"n": 3}
    await ws.close()

    # no cursor: only new events
    ws, latest = await connect(app_client, a)
    await emit(app_client, [a.id], {"n": 4})
    got = await frame(ws)
    assert got["data"] == {"n": 4} and got["seq"] > latest
    await ws.close()

    # a cursor from the future (a restored database) does not hide new events
    ws, _ = await connect(app_client, a, cursor=2**53 - 1)
    await emit(app_client, [a.id], {"n": 5})
    assert (await frame(ws))["data"] == {"n": 5}
    await ws.close()


async def test_a_long_backlog_is_replayed_in_order_across_pages(
    app_client: Client, people: People
) -> None:
    a = people.citizen
    total = routes.PAGE * 2 + 7
    async with app_client.app[DB].write() as conn:
        await store.append(conn, [NewEvent(a.id, "mailbox", {"n": n}) for n in range(total)], 1)
    ws, _ = await connect(app_client, a, cursor=0)
    assert [(await frame(ws))["data"]["n"] for _ in range(total)] == list(range(total))
    await ws.close()


# --- ending connections -----------------------------------------------------------------------
async def test_logout_closes_the_socket(app_client: Client, people: People) -> None:
    ws, _ = await connect(app_client, people.citizen)
    other, _ = await connect(app_client, people.citizen2)
    status, _ = await send(app_client, "POST", "/api/v1/auth/logout", who=people.citizen)
    assert status == 204
    # the periodic session check (a background job) notices it
    assert await closed(ws) == (4401, "session-ended")
    # the other account's socket lives on
    await emit(app_client, [people.citizen2.id])
    assert (await frame(other))["event"] == "mailbox"
    await other.close()


async def test_a_revoked_session_closes_the_socket(app_client: Client, people: People) -> None:
    cw = people.caseworker
    ws, _ = await connect(app_client, cw)
    first_token = cw.token
    await login(app_client, cw)  # a second session; revoke the first one from it
    status, sessions = await send(app_client, "GET", "/api/v1/sessions", who=cw)
    assert status == 200, sessions
    first = next(s for s in sessions["sessions"] if not s["current"])
    status, _ = await send(app_client, "DELETE", f"/api/v1/sessions/{first['id']}", who=cw)
    assert status == 204
    await app_client.app[EVENTS].check_once()
    assert await closed(ws) == (4401, "session-ended")
    assert first_token != cw.token


async def test_an_expired_token_closes_the_socket_unless_renewed(
    app_client: Client, people: People, clock: FakeClock
) -> None:
    a, b = people.citizen, people.citizen2
    ws_a, _ = await connect(app_client, a)
    ws_b, _ = await connect(app_client, b)
    clock.advance(10 * MINUTE)
    renewed = await login(app_client, b)  # a fresh token (15 minutes from now)
    await ws_b.send_json({"type": "auth", "token": renewed})
    ack = await frame(ws_b)
    assert ack == {"type": "renewed", "expires": (clock() // 1000 + 15 * 60) * 1000}
    clock.advance(10 * MINUTE)  # both first tokens are past their expiry now
    await app_client.app[EVENTS].check_once()
    assert await closed(ws_a) == (4401, "token-expired")
    await emit(app_client, [b.id])
    assert (await frame(ws_b))["event"] == "mailbox"
    await ws_b.close()


async def test_a_renewal_with_a_bad_token_or_another_account_closes(
    app_client: Client, people: People
) -> None:
    ws, _ = await connect(app_client, people.citizen)
    await ws.send_json({"type": "auth", "token": "garbage"})
    assert await closed(ws) == (4401, "invalid-token")
    ws, _ = await connect(app_client, people.citizen)
    await ws.send_json({"type": "auth", "token": people.citizen2.token})
    assert await closed(ws) == (4401, "invalid-token")
    ws, _ = await connect(app_client, people.citizen)
    await ws.send_str("{}")
    assert await closed(ws) == (4400, "bad-frame")


async def test_at_most_so_many_connections_per_account(app_client: Client, people: People) -> None:
    sockets = [
        (await connect(app_client, people.citizen))[0] for _ in range(MAX_CONNECTIONS_PER_ACCOUNT)
    ]
    extra = await app_client.ws_connect(routes.PATH)
    await extra.send_json({"type": "auth", "token": people.citizen.token, "cursor": None})
    assert await closed(extra) == (4429, "too-many-connections")
    # another account is not affected; a closed socket frees its place
    other, _ = await connect(app_client, people.citizen2)
    await sockets.pop().close()
    await until(lambda: app_client.app[EVENTS].connections(people.citizen.id) < 16)
    again, _ = await connect(app_client, people.citizen)
    for ws in [*sockets, other, again]:
        await ws.close()
    await until(lambda: app_client.app[EVENTS].connections(people.citizen.id) == 0)


def _small_receive_buffer(addr_info: Any) -> socket.socket:
    """A client socket with a 4 KiB receive buffer (no autotuning): it fills quickly."""
    family, kind, proto, _, _ = addr_info
    sock = socket.socket(family=family, type=kind, proto=proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    return sock


async def test_a_client_that_does_not_read_is_disconnected_and_resumes(
    app_client: Client, people: People, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(routes, "SEND_TIMEOUT_S", 0.5)
    a = people.citizen
    total, pad = 1200, "x" * 8000  # ~10 MB: more than the socket buffers between us
    url = str(app_client.make_url(routes.PATH))
    connector = aiohttp.TCPConnector(socket_factory=_small_receive_buffer)
    async with aiohttp.ClientSession(connector=connector) as http:
        ws = await http.ws_connect(url, max_msg_size=0)
        await ws.send_json({"type": "auth", "token": a.token, "cursor": None})
        assert (await frame(ws))["type"] == "ready"
        async with app_client.app[DB].write() as conn:
            await store.append(
                conn, [NewEvent(a.id, "mailbox", {"n": n, "pad": pad}) for n in range(total)], 1
            )
        await app_client.app[EVENT_BUS].wake([a.id])
        # the client reads nothing: the server gives up on it instead of buffering
        await until(lambda: app_client.app[EVENTS].connections(a.id) == 0)
        seen: list[int] = []
        while True:
            msg = await ws.receive(timeout=GUARD_S)
            if msg.type is not aiohttp.WSMsgType.TEXT:
                break
            seen.append(json.loads(msg.data)["seq"])
        assert (msg.type, msg.data, msg.extra) == (aiohttp.WSMsgType.CLOSE, 4408, "too-slow")
        assert 0 < len(seen) < total
    # it reconnects from its cursor and gets the rest, in order, nothing twice
    ws2, _ = await connect(app_client, a, cursor=seen[-1])
    rest = [(await frame(ws2))["data"]["n"] for _ in range(total - len(seen))]
    assert rest == list(range(len(seen), total))
    await ws2.close()


async def test_shutdown_tells_every_socket_to_go_away(app_client: Client, people: People) -> None:
    ws, _ = await connect(app_client, people.citizen)
    app_client.app[EVENTS].shutdown()
    assert await closed(ws) == (1001, "going-away")
    late = await app_client.ws_connect(routes.PATH)
    await late.send_json({"type": "auth", "token": people.citizen.token, "cursor": None})
    assert await closed(late) == (1001, "going-away")


# --- pruning ----------------------------------------------------------------------------------
async def test_old_events_are_pruned(app_client: Client, people: People, clock: FakeClock) -> None:
    a = people.citizen
    async with app_client.app[DB].write() as conn:
        await store.append(conn, [NewEvent(a.id, "mailbox", {"old": True})], clock() - 31 * DAY)
        await store.append(conn, [NewEvent(a.id, "mailbox", {"old": False})], clock() - DAY)
    assert await app_client.app[EVENTS].prune_once() == 1
    assert RETENTION_MS == 30 * DAY
    ws, _ = await connect(app_client, a, cursor=0)
    assert (await frame(ws))["data"] == {"old": False}
    await ws.close()
