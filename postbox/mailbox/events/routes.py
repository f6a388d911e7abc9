"""``GET /api/v1/events``: the live-events WebSocket, and the feature's start-up.

The route is ``@public`` only because it authenticates in-band: browsers cannot set an
``Authorization`` header on a WebSocket and tokens must not travel in URLs (they end up in
proxy and server logs), so the access token arrives in the client's first frame. A query
string is never read. The conversation (protocol.md §13.13)::

    client  {"type":"auth","token":ACCESS,"cursor":n|null}     within ws_auth_seconds
    server  {"type":"ready","cursor":latest}
    server  {"type":"event","seq":n,"event":type,"data":{…},"at":ms}   missed ones first
    client  {"type":"auth","token":ACCESS}                     any time: renews the token
    server  {"type":"renewed","expires":ms}                    the renewal was accepted

The server pings every :data:`HEARTBEAT_S`; a client that does not answer is dropped.
Close codes: 4400 bad frame, 4401 not (or no longer) authenticated, 4408 too slow,
4429 too many connections, 1001 server going away, 1013 try again later. The reason is a
short machine-readable word (``auth-timeout``, ``invalid-token``, ``session-ended`` …).

Memory per connection is bounded: the sender reads at most :data:`PAGE` events at a time
from the database and writes them with backpressure (aiohttp waits for the socket to
drain); a client that cannot take a frame within :data:`SEND_TIMEOUT_S` is disconnected
with 4408 and resumes later from its cursor instead of making the server buffer for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass
from typing import Any, Final

from aiohttp import WSMsgType, web

from postbox.crypto.encoding import MAX_SAFE_INTEGER, cj
from postbox.mailbox.access import public
from postbox.mailbox.appkeys import BACKGROUND, CLOCK, DB, EVENT_BUS, EVENTS, SETTINGS, TOKENS
from postbox.mailbox.errors import PostboxError, Unauthorized
from postbox.mailbox.events.bus import EventBus, Subscription
from postbox.mailbox.events.service import (
    CLOSE_BAD_FRAME,
    CLOSE_GOING_AWAY,
    CLOSE_TOO_MANY,
    CLOSE_TOO_SLOW,
    CLOSE_TRY_AGAIN,
    CLOSE_UNAUTHORIZED,
    Connection,
    Ending,
    EventService,
    ShuttingDown,
    TooManyConnections,
)
from postbox.mailbox.events.store import StoredEvent
from postbox.mailbox.http import API_SECURITY_HEADERS, REQUEST_ID

log = logging.getLogger("postbox.events")

PATH: Final = "/api/v1/events"
HEARTBEAT_S: Final = 20.0
#: largest client frame (an auth frame: a token of at most 4096 characters)
MAX_FRAME_BYTES: Final = 8 * 1024
#: how long one frame may take to leave before the client counts as too slow
SEND_TIMEOUT_S: Final = 15.0
#: how long the close handshake may take
CLOSE_TIMEOUT_S: Final = 5.0
#: events read (and held) per database read
PAGE: Final = 200
#: a woken-up-or-not re-read, in case a cross-process notification was lost
REREAD_EVERY_S: Final = 30.0


class UpgradeRequired(PostboxError):
    status = 426
    title = "Upgrade required"
    default_code = "websocket-required"


async def start(app: web.Application) -> None:
    """Create the bus and the service; start the LISTEN, session-check and prune jobs."""
    bus = EventBus(app[DB])
    service = EventService(db=app[DB], bus=bus, tokens=app[TOKENS], clock=app[CLOCK])
    app[EVENT_BUS] = bus
    app[EVENTS] = service
    background = app[BACKGROUND]
    background.spawn("events-listen", bus.run)
    background.spawn("events-sessions", service.watch_sessions)
    background.spawn("events-prune", service.prune_forever)


async def _on_shutdown(app: web.Application) -> None:
    service = app.get(EVENTS)
    if service is not None:
        service.shutdown()


def setup_routes(app: web.Application) -> None:
    app.router.add_get(PATH, get_events)
    app.on_shutdown.append(_on_shutdown)


# --- frames ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AuthFrame:
    token: str
    cursor: int | None


class BadFrame(Exception):
    """The client sent something other than a well-formed auth frame."""


def parse_auth_frame(raw: str) -> AuthFrame:
    """``{"type":"auth","token":str,"cursor"?:int|null}``; anything else is :class:`BadFrame`."""
    try:
        value = json.loads(raw)
    except ValueError:
        raise BadFrame("not JSON") from None
    if not isinstance(value, dict) or value.get("type") != "auth":
        raise BadFrame("expected an auth frame")
    if set(value) - {"type", "token", "cursor"}:
        raise BadFrame("unknown members")
    token, cursor = value.get("token"), value.get("cursor")
    if not isinstance(token, str) or not token:
        raise BadFrame("token must be a string")
    if cursor is not None and not (
        isinstance(cursor, int) and not isinstance(cursor, bool) and 0 <= cursor <= MAX_SAFE_INTEGER
    ):
        raise BadFrame("cursor must be a non-negative integer or null")
    return AuthFrame(token, cursor)


def event_frame(event: StoredEvent) -> str:
    return cj(
        {"type": "event", "seq": event.seq, "event": event.type, "data": event.data, "at": event.at}
    ).decode()


def ready_frame(cursor: int) -> str:
    return cj({"type": "ready", "cursor": cursor}).decode()


def renewed_frame(expires: int) -> str:
    return cj({"type": "renewed", "expires": expires}).decode()


# --- the handler -------------------------------------------------------------------------------
@public  # authenticates in-band: the first frame carries the access token (module docstring)
async def get_events(request: web.Request) -> web.StreamResponse:
    ws = web.WebSocketResponse(
        heartbeat=HEARTBEAT_S,
        max_msg_size=MAX_FRAME_BYTES,
        timeout=CLOSE_TIMEOUT_S,
        autoclose=True,
        # frames are small; and compressing concurrently written frames needs care
        compress=False,
    )
    if not ws.can_prepare(request).ok:
        raise UpgradeRequired(
            "this is a WebSocket endpoint; connect with Upgrade: websocket",
            headers={"Upgrade": "websocket", "Connection": "Upgrade"},
        )
    # The middlewares add these to answers a handler returns, which is too late for a
    # response that is sent here, by prepare().
    ws.headers["X-Request-Id"] = request.get(REQUEST_ID, "-")
    for name, value in API_SECURITY_HEADERS.items():
        ws.headers.setdefault(name, value)
    await ws.prepare(request)
    service = request.app.get(EVENTS)
    if service is None:  # pragma: no cover - the route exists only once start() ran
        await ws.close(code=CLOSE_TRY_AGAIN, message=b"starting")
        return ws
    socket = _Socket(ws, service, float(request.app[SETTINGS].ws_auth_seconds))
    try:
        await socket.run()
    finally:
        if not ws.closed:
            await ws.close(code=CLOSE_GOING_AWAY, message=b"going-away")
    return ws


class _Socket:
    """One WebSocket conversation: authentication, replay, live events, renewals."""

    def __init__(self, ws: web.WebSocketResponse, service: EventService, auth_s: float) -> None:
        self._ws = ws
        self._service = service
        self._auth_s = auth_s
        # the sender and the receiver (renewal answers) both write frames
        self._send_lock = asyncio.Lock()

    async def _send(self, text: str) -> Ending | None:
        """Send one frame; an :class:`Ending` if the client is too slow or gone."""
        try:
            async with asyncio.timeout(SEND_TIMEOUT_S), self._send_lock:
                await self._ws.send_str(text)
        except TimeoutError:
            return Ending(CLOSE_TOO_SLOW, "too-slow")
        except ConnectionError:
            return Ending(CLOSE_GOING_AWAY, "gone")
        return None

    async def _close(self, code: int, reason: str, *, drain: bool = True) -> None:
        with contextlib.suppress(Exception):
            await self._ws.close(code=code, message=reason.encode(), drain=drain)

    async def run(self) -> None:
        first = await self._first_frame()
        if first is None:
            return
        try:
            who, expires = await self._service.authenticate(first.token)
        except Unauthorized as exc:
            await self._close(CLOSE_UNAUTHORIZED, exc.code)
            return
        except Exception:  # the session lookup failed: the client may try again later
            log.exception("authenticating a live-events socket failed")
            await self._close(CLOSE_TRY_AGAIN, "try-again")
            return
        try:
            conn = self._service.connect(who, expires)
        except TooManyConnections as exc:
            await self._close(CLOSE_TOO_MANY, exc.code)
            return
        except ShuttingDown:
            await self._close(CLOSE_GOING_AWAY, "going-away")
            return
        try:
            with self._service.subscribe(conn.account_id) as sub:
                ending = await self._live(conn, sub, first.cursor)
        finally:
            self._service.disconnect(conn)
        if ending is not None:
            await self._close(ending.code, ending.reason, drain=ending.code != CLOSE_TOO_SLOW)

    async def _first_frame(self) -> AuthFrame | None:
        try:
            async with asyncio.timeout(self._auth_s):
                msg = await self._ws.receive()
        except TimeoutError:
            await self._close(CLOSE_UNAUTHORIZED, "auth-timeout")
            return None
        if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
            return None
        if msg.type is not WSMsgType.TEXT:
            await self._close(CLOSE_BAD_FRAME, "bad-frame")
            return None
        try:
            return parse_auth_frame(msg.data)
        except BadFrame:
            await self._close(CLOSE_BAD_FRAME, "bad-frame")
            return None

    async def _live(self, conn: Connection, sub: Subscription, cursor: int | None) -> Ending | None:
        """Ready, replay, then live until something ends the connection."""
        try:
            latest = await self._service.latest(conn.account_id)
        except Exception:
            log.exception("reading the event cursor failed")
            return Ending(CLOSE_TRY_AGAIN, "try-again")
        # A cursor from the future (a restored database) would hide new events: clamp it.
        start = latest if cursor is None else min(cursor, latest)
        ending = await self._send(ready_frame(latest))
        if ending is not None:
            return ending
        sender = asyncio.create_task(self._send_loop(conn, sub, start))
        receiver = asyncio.create_task(self._receive_loop(conn))
        try:
            waiters: set[asyncio.Future[Any]] = {sender, receiver, conn.ending}
            done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sender, receiver):
                task.cancel()
            for task in (sender, receiver):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if conn.ending.done():
            return conn.ending.result()
        for task in (sender, receiver):
            if task in done and not task.cancelled() and task.exception() is None:
                return task.result()
        return None

    async def _send_loop(self, conn: Connection, sub: Subscription, cursor: int) -> Ending | None:
        """Read after the cursor and send, page by page; then wait to be woken."""
        while True:
            try:
                page = await self._service.since(conn.account_id, cursor, PAGE)
            except Exception:
                log.exception("reading events failed")
                return Ending(CLOSE_TRY_AGAIN, "try-again")
            for event in page:
                ending = await self._send(event_frame(event))
                if ending is not None:
                    return ending
                cursor = event.seq
            if len(page) < PAGE:
                await sub.wait(REREAD_EVERY_S)

    async def _receive_loop(self, conn: Connection) -> Ending | None:
        """Renewal frames; returns when the client closes or breaks the protocol."""
        async for msg in self._ws:
            if msg.type is WSMsgType.ERROR:
                return None
            if msg.type is not WSMsgType.TEXT:
                return Ending(CLOSE_BAD_FRAME, "bad-frame")
            try:
                frame = parse_auth_frame(msg.data)
            except BadFrame:
                return Ending(CLOSE_BAD_FRAME, "bad-frame")
            try:
                who, expires = await self._service.authenticate(frame.token)
            except Unauthorized as exc:
                return Ending(CLOSE_UNAUTHORIZED, exc.code)
            except Exception:
                log.exception("renewing a live-events socket failed")
                return Ending(CLOSE_TRY_AGAIN, "try-again")
            if not self._service.renew(conn, who, expires):
                return Ending(CLOSE_UNAUTHORIZED, "invalid-token")
            ending = await self._send(renewed_frame(expires))
            if ending is not None:
                return ending
        return None
