"""``client.events.follow()`` against a live server (both databases): live events, the
cursor in the state file, resuming, reconnecting, renewing and refreshing tokens."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from events.test_socket import GUARD_S, emit, until
from support.mailworld import MailWorld, Person, open_mail_world

from postbox.client import Client
from postbox.client.errors import NotLoggedIn
from postbox.client.events import Event, websocket_url
from postbox.client.state import ClientState, StateStore
from postbox.mailbox.appkeys import EVENTS
from postbox.mailbox.clock import system_clock
from postbox.mailbox.events.service import CLOSE_TRY_AGAIN

MINUTE = 60_000


async def next_event(events: AsyncIterator[Event]) -> Event:
    return await asyncio.wait_for(anext(events), GUARD_S)


async def start_at_latest(world: MailWorld, person: Person) -> None:
    """Set the person's stored cursor to the server's latest event (no race with ready)."""
    latest = await world.live.app[EVENTS].latest(person.account)
    person.client.session.state.events_cursor = latest


def test_websocket_url() -> None:
    assert websocket_url("http://127.0.0.1:8080") == "ws://127.0.0.1:8080/api/v1/events"
    assert websocket_url("https://pb.example/base/") == "wss://pb.example/base/api/v1/events"


def test_old_state_files_load_without_a_cursor() -> None:
    state = ClientState(origin="https://pb.example", login="a@example.org")
    value = state.to_json()
    del value["events_cursor"]
    assert ClientState.from_json(value).events_cursor is None
    value["events_cursor"] = 42
    assert ClientState.from_json(value).events_cursor == 42


async def test_follow_delivers_live_events_and_keeps_the_cursor(mail_world: MailWorld) -> None:
    w, me = mail_world, mail_world.citizen
    await start_at_latest(w, me)
    events = me.client.events.follow()
    await emit(w.live.app, [w.citizen2.account], {"n": 0})  # someone else's
    await emit(w.live.app, [me.account], {"n": 1})
    first = await next_event(events)
    assert (first.type, first.data) == ("mailbox", {"n": 1})
    assert me.client.events.cursor == first.seq
    # the cursor is in the state file
    stored = StateStore(me.state_dir).load(me.client.origin, me.login)
    assert stored.events_cursor == first.seq
    await events.aclose()  # type: ignore[attr-defined]

    # missed while nobody followed; a new client on the same state resumes after the cursor
    await emit(w.live.app, [me.account], {"n": 2})
    async with Client(w.url, state_dir=me.state_dir, login=me.login) as again:
        resumed = again.events.follow()
        second = await next_event(resumed)
        assert second.data == {"n": 2} and second.seq > first.seq
        await resumed.aclose()  # type: ignore[attr-defined]


async def test_follow_reconnects_and_resumes_after_the_server_drops_it(
    mail_world: MailWorld,
) -> None:
    w, me = mail_world, mail_world.caseworker
    await start_at_latest(w, me)
    events = me.client.events.follow()
    await emit(w.live.app, [me.account], {"n": 1})
    assert (await next_event(events)).data == {"n": 1}
    service = w.live.app[EVENTS]
    assert service.disconnect_account(me.account, CLOSE_TRY_AGAIN, "try-again") == 1
    await emit(w.live.app, [me.account], {"n": 2})  # perhaps while it is away
    await emit(w.live.app, [me.account], {"n": 3})
    assert [(await next_event(events)).data["n"] for _ in range(2)] == [2, 3]
    assert me.client.events.connections == 2
    await events.aclose()  # type: ignore[attr-defined]


class ShiftedClock:
    """The system clock plus an offset the test moves (onboarding needs time to pass, and
    the clients check tree heads against their own clock)."""

    def __init__(self) -> None:
        self.offset = 0

    def __call__(self) -> int:
        return system_clock() + self.offset

    def advance(self, ms: int) -> None:
        self.offset += ms


@pytest.fixture
async def clocked_world(
    db_url: str, tmp_path: Path
) -> AsyncIterator[tuple[MailWorld, ShiftedClock]]:
    clock = ShiftedClock()
    async with open_mail_world(db_url, tmp_path, clock=clock) as world:
        yield world, clock


async def test_an_expired_token_is_refreshed_and_the_socket_reopened(
    clocked_world: tuple[MailWorld, ShiftedClock],
) -> None:
    w, clock = clocked_world
    me = w.citizen
    await start_at_latest(w, me)
    events = me.client.events.follow()
    await emit(w.live.app, [me.account], {"n": 1})
    assert (await next_event(events)).data == {"n": 1}
    old = me.client.session.state.tokens
    assert old is not None
    clock.advance(16 * MINUTE)  # the server now sees the access token as expired
    await w.live.app[EVENTS].check_once()
    await emit(w.live.app, [me.account], {"n": 2})
    assert (await next_event(events)).data == {"n": 2}
    new = me.client.session.state.tokens
    assert new is not None and new.access != old.access and new.session == old.session
    assert me.client.events.connections == 2
    await events.aclose()  # type: ignore[attr-defined]


async def test_an_ended_session_stops_following(mail_world: MailWorld) -> None:
    w, me = mail_world, mail_world.citizen2
    await start_at_latest(w, me)
    events = me.client.events.follow()
    await emit(w.live.app, [me.account], {"n": 1})
    assert (await next_event(events)).data == {"n": 1}
    tokens = me.client.session.state.tokens
    assert tokens is not None
    # the session ends elsewhere (another tab logs out): this client still holds the tokens
    async with aiohttp.ClientSession() as http:
        resp = await http.post(
            w.url + "/api/v1/auth/logout", headers={"Authorization": f"Bearer {tokens.access}"}
        )
        assert resp.status == 204
    with pytest.raises(NotLoggedIn):
        await next_event(events)
    assert me.client.session.state.tokens is None


async def test_follow_without_reconnect_ends_with_the_socket(mail_world: MailWorld) -> None:
    w, me = mail_world, mail_world.caseworker2
    await start_at_latest(w, me)
    seen: list[Event] = []

    async def follow_once() -> None:
        async for event in me.client.events.follow(reconnect=False):
            seen.append(event)

    task = asyncio.create_task(follow_once())
    await emit(w.live.app, [me.account], {"n": 1})
    await until(lambda: len(seen) == 1)
    w.live.app[EVENTS].disconnect_account(me.account, CLOSE_TRY_AGAIN, "try-again")
    await asyncio.wait_for(task, GUARD_S)
    assert [e.data for e in seen] == [{"n": 1}]
