"""The event bus and the ordering of appends: in-process wake-ups, NOTIFY payload chunking,
two servers on one PostgreSQL database, the LISTEN connection's reconnect, and appends that
commit in ``seq`` order."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest
from events.conftest import People
from events.test_socket import GUARD_S, connect, emit, frame, until
from pytest_aiohttp import AiohttpClient
from sqlalchemy import text
from support.onboard import Client, FakeClock

from postbox.mailbox.app import create_app
from postbox.mailbox.appkeys import DB, EVENT_BUS
from postbox.mailbox.db.engine import Database
from postbox.mailbox.events import store
from postbox.mailbox.events.bus import MAX_PAYLOAD_BYTES, EventBus
from postbox.mailbox.events.store import NewEvent
from postbox.mailbox.settings import Settings


def _pg_only(db_url: str) -> None:
    if db_url.startswith("sqlite"):
        pytest.skip("PostgreSQL only (SQLite wakes in-process only)")


async def test_subscriptions_wake_only_their_account(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'bus.db'}")
    bus = EventBus(db)
    try:
        with bus.subscribe("a") as a, bus.subscribe("b") as b:
            assert bus.subscribers("a") == 1
            await bus.wake(["a"])
            assert await a.wait(GUARD_S)
            assert not await b.wait(0)  # nothing for b
            await bus.wake(["a", "a", "b"])
            await bus.wake(["a"])
            # wake-ups coalesce: one wait consumes them
            assert await a.wait(GUARD_S) and not await a.wait(0)
            assert await b.wait(GUARD_S)
            bus.wake_everyone()
            assert await a.wait(0) and await b.wait(0)
        assert bus.subscribers("a") == 0
        await bus.run()  # SQLite: nothing to listen to, returns at once
    finally:
        await db.dispose()


def test_notify_payloads_stay_under_the_postgresql_limit(tmp_path: Path) -> None:
    bus = EventBus(Database("postgresql+asyncpg://postgres@127.0.0.1/unused"))
    ids = [f"{n:022d}" for n in range(1000)]
    payloads = list(bus.payloads(ids))
    assert len(payloads) > 2
    origins = {p.split(" ", 1)[0] for p in payloads}
    assert len(origins) == 1
    seen = [i for p in payloads for i in p.split(" ", 1)[1].split(",")]
    assert seen == ids
    assert all(len(p.encode()) <= MAX_PAYLOAD_BYTES < 8000 for p in payloads)
    assert list(bus.payloads(["x"])) == [f"{next(iter(origins))} x"]


@pytest.fixture
async def second_server(
    aiohttp_client: AiohttpClient, settings: Settings, clock: FakeClock, app_client: Client
) -> Client:
    """Another server on the same database and data folder (secrets), like a second process."""
    changed = dataclasses.replace(settings, ws_auth_seconds=1).validate()
    return await aiohttp_client(create_app(changed, clock=clock))


async def test_an_event_appended_on_one_server_reaches_a_socket_on_another(
    db_url: str, app_client: Client, second_server: Client, people: People
) -> None:
    _pg_only(db_url)
    await second_server.app[EVENT_BUS].listening()
    ws, _ = await connect(second_server, people.citizen)
    await emit(app_client, [people.citizen.id], {"via": "first"})
    assert (await frame(ws))["data"] == {"via": "first"}
    await ws.close()


async def test_after_losing_its_listen_connection_the_bus_reconnects_and_rereads(
    db_url: str, app_client: Client, people: People
) -> None:
    _pg_only(db_url)
    bus = app_client.app[EVENT_BUS]
    await bus.listening()
    ws, _ = await connect(app_client, people.citizen)
    pid = bus.listen_pid
    assert pid is not None
    # an event whose wake-up is lost (appended, never woken) ...
    async with app_client.app[DB].write() as conn:
        await store.append(conn, [NewEvent(people.citizen.id, "mailbox", {"lost": True})], 1)
    # ... is read by every subscriber once the LISTEN connection is back
    async with app_client.app[DB].write() as conn:
        await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    assert (await frame(ws))["data"] == {"lost": True}
    await until(lambda: bus.reconnects == 1 and bus.listen_pid not in (None, pid))
    # and live notifications flow again
    await emit(app_client, [people.citizen.id], {"after": True})
    assert (await frame(ws))["data"] == {"after": True}
    await ws.close()


async def test_postgresql_appends_commit_in_seq_order(
    db_url: str, app_client: Client, people: People
) -> None:
    """A transaction that appends while another one's append is uncommitted waits for it,
    so no event can commit "behind" a seq a reader has already passed."""
    _pg_only(db_url)
    db, account = app_client.app[DB], people.citizen.id
    started = asyncio.Event()

    async def second() -> None:
        async with db.write() as conn:
            started.set()
            await store.append(conn, [NewEvent(account, "mailbox", {"n": 2})], 1)

    async with db.write() as first:
        await store.append(first, [NewEvent(account, "mailbox", {"n": 1})], 1)
        task = asyncio.create_task(second())
        await started.wait()

        async def waiting_for_the_lock() -> bool:
            async with db.read() as conn:
                waiting = await conn.execute(
                    text(
                        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                    )
                )
                return bool(waiting.scalar())

        async with asyncio.timeout(GUARD_S):
            while True:
                if await waiting_for_the_lock():
                    break
                await asyncio.sleep(0.02)
        assert not task.done()
    await asyncio.wait_for(task, GUARD_S)
    async with db.read() as conn:
        got = await store.since(conn, account, 0, 10)
    assert [e.data["n"] for e in got] == [1, 2]
