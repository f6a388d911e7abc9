"""A live Postbox for synchronous HTTP clients (schemathesis uses ``requests``).

:class:`LiveServer` runs the whole server (``create_app``) on a loopback port in a thread of
its own with its own event loop, so a synchronous test can call it while it serves.
Coroutines that need the app (the onboarding helpers of ``support.onboard``) run on that
loop through :meth:`LiveServer.run`.

:func:`onboard_world` sets up what the fuzzer can name: an organisation with its root and
admin, a team with a first member, a citizen, a pending staff identity and an invitation,
all through the real HTTP API.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from support.onboard import (
    NOW,
    OrgSetup,
    Person,
    add_citizen,
    add_staff,
    create_team,
    init_team,
    invite,
    login,
    send,
    setup_org,
)

from postbox.mailbox.app import create_app
from postbox.mailbox.clock import Clock
from postbox.mailbox.settings import Settings

Client = TestClient[web.Request, web.Application]
T = TypeVar("T")

#: seconds any one step on the server's loop may take
STEP_TIMEOUT = 120.0


class LiveServer:
    """The server on ``127.0.0.1:<free port>``, served from a background thread."""

    def __init__(self, settings: Settings, clock: Clock) -> None:
        self.settings = settings
        self._clock = clock
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="postbox-live", daemon=True
        )
        self._client: Client | None = None

    # --- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> LiveServer:
        self._thread.start()
        self.run(self._start())
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.run(self._stop())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=STEP_TIMEOUT)
            self._loop.close()

    async def _start(self) -> None:
        app = create_app(self.settings, clock=self._clock)
        self._client = TestClient(TestServer(app, host="127.0.0.1"))
        await self._client.start_server()

    async def _stop(self) -> None:
        if self._client is not None:
            await self._client.close()

    # --- use ---------------------------------------------------------------------------------
    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the server's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(STEP_TIMEOUT)

    @property
    def client(self) -> Client:
        """An aiohttp test client of the server (use it on the server's loop only)."""
        assert self._client is not None, "start the server first"
        return self._client

    @property
    def app(self) -> web.Application:
        return self.client.app

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>`` (no trailing slash)."""
        return str(self.client.make_url("")).rstrip("/")


@dataclass
class World:
    """Real objects on the live server, and the people who may touch them."""

    setup: OrgSetup  # the organisation, its root and its (certified) admin
    caseworker: Person  # certified, first member of ``team``
    pending: Person  # a caseworker whose identity waits for org certification
    citizen: Person  # invited by the caseworker
    leaver: Person  # a citizen whose sessions the fuzzer may end
    team: str
    invitation: str  # an unused invitation made by the caseworker

    @property
    def org(self) -> str:
        return self.setup.org

    @property
    def admin(self) -> Person:
        return self.setup.admin


async def onboard_world(client: Client) -> World:
    """The operator's, the admin's and the caseworker's first steps, over HTTP."""
    setup = await setup_org(client, NOW)
    caseworker = await add_staff(client, setup, "caseworker", NOW)
    pending = await add_staff(client, setup, "caseworker", NOW, certified=False)
    team = await create_team(client, setup)
    await init_team(client, setup, team, caseworker, NOW)
    citizen = await add_citizen(client, caseworker, NOW)
    leaver = await add_citizen(client, caseworker, NOW)
    invitation, _ = await invite(client, caseworker, "citizen", NOW)
    return World(setup, caseworker, pending, citizen, leaver, team, invitation)


async def fresh_session(client: Client, person: Person) -> tuple[str, str]:
    """A new session for ``person`` (challenge and login): (access token, session id)."""
    token = await login(client, person)
    status, body = await send(client, "GET", "/api/v1/sessions", who=person)
    assert status == 200, body
    current = [s["id"] for s in body["sessions"] if s["current"]]
    return token, current[0]
