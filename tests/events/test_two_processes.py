"""Two real ``postbox serve`` processes on one PostgreSQL database (issue 4).

Like two server processes behind a load balancer: one public origin, shared secrets (one
data folder) and one database. A message a citizen sends through process A is listed
through process B, and its ``message`` event reaches a WebSocket connected to process B,
live (through PostgreSQL LISTEN/NOTIFY).

The "load balancer" is the clients' resolver: every client talks to the public origin
``http://localhost:PORT_A``; the caseworker's client resolves it to process B's port, so
the client library (which insists that the server's origin is the URL's origin, because
login signatures bind it) needs no special case. The accounts are onboarded first on an
in-process server at the same origin, which then stops; the people's clients continue
with process A on the same port.

Skipped without PostgreSQL, except with ``CI=true``, where a missing PostgreSQL fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.test_utils import TestServer, unused_port
from support.client import Live
from support.db import postgres_database
from support.mailworld import onboard_mail_world

from postbox.client import Client
from postbox.client.events import Event
from postbox.mailbox.app import create_app
from postbox.mailbox.events.routes import REREAD_EVERY_S
from postbox.mailbox.settings import Settings

GUARD_S = 60.0
POSTBOX = Path(sys.executable).with_name("postbox")


class Backend(AbstractResolver):
    """Resolves every host to 127.0.0.1 and one port: a load balancer's choice."""

    def __init__(self, port: int) -> None:
        self.port = port

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            {
                "hostname": host,
                "host": "127.0.0.1",
                "port": self.port,
                "family": socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
        ]

    async def close(self) -> None:
        return None


def via(port: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(resolver=Backend(port)))


@asynccontextmanager
async def serve(
    name: str, port: int, origin: str, data_dir: Path, db_url: str, logs: Path
) -> AsyncIterator[asyncio.subprocess.Process]:
    """``postbox serve`` as a subprocess, until it answers ``/healthz``; stopped after."""
    log = (logs / f"{name}.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        str(POSTBOX),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        "--db",
        db_url,
        "--public-origin",
        origin,
        stdout=log,
        stderr=log,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        async with aiohttp.ClientSession() as http, asyncio.timeout(GUARD_S):
            while True:
                assert proc.returncode is None, (logs / f"{name}.log").read_text()
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"http://127.0.0.1:{port}/healthz") as resp:
                        if resp.status == 200:
                            break
                await asyncio.sleep(0.1)  # polled: the process gives no other signal
        yield proc
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), GUARD_S)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        log.close()


async def test_a_message_sent_through_one_process_reaches_the_other(tmp_path: Path) -> None:
    async with postgres_database() as db_url, AsyncExitStack() as stack:
        port_a, port_b = unused_port(), unused_port()
        origin = f"http://localhost:{port_a}"
        data_dir = tmp_path / "var"

        # onboarding on an in-process server at the public origin, then it stops
        settings = Settings(
            data_dir=data_dir, db=db_url, port=port_a, public_origin=origin
        ).validate()
        app = create_app(settings)
        onboarding = TestServer(app, host="127.0.0.1", port=port_a)
        await onboarding.start_server()
        world = await stack.enter_async_context(
            onboard_mail_world(Live(origin, app, settings), tmp_path)
        )
        await onboarding.close()

        await stack.enter_async_context(serve("a", port_a, origin, data_dir, db_url, tmp_path))
        await stack.enter_async_context(serve("b", port_b, origin, data_dir, db_url, tmp_path))

        # the caseworker, through process B: logs in and follows its events
        http_b = await stack.enter_async_context(via(port_b))
        cw = world.caseworker
        cw_b = await stack.enter_async_context(
            Client(origin, state_dir=tmp_path / "cw-via-b", login=cw.login, http=http_b)
        )
        await cw_b.connect()
        await cw_b.account.login(cw.login, cw.passphrase)
        received: asyncio.Queue[Event] = asyncio.Queue()

        async def follow() -> None:
            async for event in cw_b.events.follow():
                await received.put(event)

        follower = asyncio.create_task(follow())
        try:
            await asyncio.wait_for(cw_b.events.live.wait(), GUARD_S)

            # the citizen, through process A, writes to the team
            citizen = world.citizen
            sent = await citizen.client.messages.send(
                citizen.keyring, to=[world.team], subject="Antrag", body="Guten Tag"
            )
            message_id, sender = sent.header["id"], sent.header["from"]

            # its event reaches the socket on process B, live: within less than the
            # sockets' periodic re-read, which would otherwise mask a broken NOTIFY
            async with asyncio.timeout(REREAD_EVERY_S * 2 / 3):
                while True:
                    event = await received.get()
                    if event.type == "message" and event.data.get("id") == message_id:
                        break
            assert event.data == {
                "mailbox": world.team,
                "from": sender,
                "id": message_id,
                "kind": "message",
                "folder": "inbox",
            }

            # and the message is listed through process B
            listing: Any = await cw_b.session.call(
                "GET", f"/api/v1/mailboxes/{world.team}/messages"
            )
            assert (sender, message_id) in {(m["from"], m["id"]) for m in listing["messages"]}
        finally:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower
