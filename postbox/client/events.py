"""Live events: follow the account's metadata events over the server's WebSocket.

::

    async for event in client.events.follow():
        if event.type == "message":
            ...  # list the mailbox event.data["mailbox"] again

:meth:`Events.follow` connects to ``/api/v1/events``, sends the access token in the first
frame (never in the URL), and yields :class:`Event` records. The cursor (the ``seq`` of the
last event handed out) lives in the client's state file, so a follower that stops, crashes
or loses the network resumes where it was: it reconnects with backoff and the server first
sends what was missed. The access token is renewed on the open socket before it expires
(``{"type":"auth"}`` again), and refreshed through the session when the server closes with
4401 because it expired; an ended session (logout, revocation) raises
:class:`~postbox.client.errors.NotLoggedIn`.

Events carry ids and states only (protocol.md §13.13); a client fetches and verifies the
objects they name through the other parts of the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Any, Final

import aiohttp

from postbox.client.errors import (
    NotLoggedIn,
    ProtocolViolation,
    TransportError,
    UnauthorizedError,
)
from postbox.client.session import REFRESH_MARGIN_MS, Session
from postbox.client.state import Tokens
from postbox.crypto.encoding import cj

log = logging.getLogger("postbox.client.events")

PATH: Final = "/api/v1/events"
#: the client pings this often; a server that does not answer is given up on
HEARTBEAT_S: Final = 30.0
#: largest server frame accepted (events are small; this is a generous bound)
MAX_FRAME_BYTES: Final = 1024 * 1024
BACKOFF_FIRST_S: Final = 0.5
BACKOFF_CAP_S: Final = 30.0
#: 4401 refusals in a row (each after a token refresh) before giving up
MAX_AUTH_FAILURES: Final = 3

CLOSE_BAD_FRAME: Final = 4400
CLOSE_UNAUTHORIZED: Final = 4401


@dataclass(frozen=True)
class Event:
    """One event: ``type`` is message | case | delivery | read | mailbox (or newer)."""

    seq: int
    type: str
    data: dict[str, Any]
    at: int


@dataclass(frozen=True)
class _Closed:
    code: int | None
    reason: str
    ready: bool  # the server had accepted the token on this connection


def websocket_url(base_url: str) -> str:
    """``http(s)://host[/prefix]`` → ``ws(s)://host[/prefix]/api/v1/events``."""
    scheme, sep, rest = base_url.partition("://")
    if not sep or scheme not in ("http", "https"):
        raise ProtocolViolation(f"not an http(s) base URL: {base_url!r}")
    return ("wss" if scheme == "https" else "ws") + "://" + rest.rstrip("/") + PATH


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ProtocolViolation(f"live events: {what} is not a non-negative integer")
    return int(value)


def parse_frame(raw: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise ProtocolViolation("live events: a frame is not JSON") from exc
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        raise ProtocolViolation("live events: a frame is not a typed object")
    return value


def parse_event(frame: dict[str, Any]) -> Event:
    data, kind = frame.get("data"), frame.get("event")
    if not isinstance(data, dict) or not isinstance(kind, str):
        raise ProtocolViolation("live events: malformed event frame")
    return Event(_int(frame.get("seq"), "seq"), kind, data, _int(frame.get("at"), "at"))


class Events:
    """``client.events``: the live events of the logged-in account."""

    def __init__(
        self,
        session: Session,
        *,
        backoff_first_s: float = BACKOFF_FIRST_S,
        backoff_cap_s: float = BACKOFF_CAP_S,
    ) -> None:
        self._session = session
        self._backoff_first = backoff_first_s
        self._backoff_cap = backoff_cap_s
        #: how many times :meth:`follow` (re)connected; for tests and diagnostics
        self.connections = 0
        #: set while a socket is authenticated and live (the server sent ``ready``), e.g.
        #: for a "live" indicator; cleared when it closes
        self.live = asyncio.Event()

    @property
    def cursor(self) -> int | None:
        """The ``seq`` of the last event handed out (kept in the state file)."""
        return self._session.state.events_cursor

    def _advance(self, seq: int) -> None:
        state = self._session.state
        if state.events_cursor is None or seq > state.events_cursor:
            state.events_cursor = seq
            self._session.save()

    async def follow(self, *, reconnect: bool = True) -> AsyncIterator[Event]:
        """Yield the account's events, oldest first, forever (or until the socket closes,
        with ``reconnect=False``).

        The first connection starts after the stored cursor (or, with none stored, at the
        server's latest event). Each event advances the stored cursor as it is handed out.
        Raises :class:`NotLoggedIn` when the session has ended, :class:`ProtocolViolation`
        when the server breaks the protocol; network failures and server restarts are
        retried with exponential backoff (with jitter), resuming from the cursor.
        """
        pause = self._backoff_first
        auth_failures = 0
        while True:
            closed: _Closed | None = None
            try:
                async with contextlib.aclosing(self._connection()) as connection:
                    async for item in connection:
                        if isinstance(item, _Closed):
                            closed = item
                        else:
                            yield item
            except TransportError as exc:
                log.info("live events: %s", exc)
            if closed is not None and closed.ready:
                pause = self._backoff_first
                auth_failures = 0
            if closed is not None and closed.code == CLOSE_BAD_FRAME:
                raise ProtocolViolation(f"live events: the server refused a frame ({closed})")
            if closed is not None and closed.code == CLOSE_UNAUTHORIZED:
                auth_failures += 1
                if auth_failures > MAX_AUTH_FAILURES:
                    raise UnauthorizedError(
                        f"live events: the server keeps refusing the token ({closed.reason})",
                        code=closed.reason or "unauthorized",
                        status=401,
                    )
                # expired or refused: refresh through the session (raises NotLoggedIn when
                # the session has ended) and reconnect at once
                try:
                    await self._session.refresh(self._session.state.tokens)
                except TransportError as exc:
                    log.info("live events: refreshing failed: %s", exc)
                else:
                    if reconnect:
                        continue
            if not reconnect:
                return
            await asyncio.sleep(pause * (0.5 + random.random()))  # noqa: S311 - jitter only
            pause = min(pause * 2, self._backoff_cap)

    async def _token(self) -> Tokens:
        tokens = self._session.state.tokens
        if tokens is None:
            raise NotLoggedIn("no session: log in first")
        if tokens.expires - self._session.clock() < REFRESH_MARGIN_MS:
            await self._session.refresh(tokens)
            tokens = self._session.state.tokens
            if tokens is None:  # pragma: no cover - refresh raises instead
                raise NotLoggedIn("no session: log in first")
        return tokens

    async def _connection(self) -> AsyncGenerator[Event | _Closed, None]:
        """One WebSocket: events, then a :class:`_Closed` saying how it ended."""
        session = self._session
        await session.server()  # pins first: never send a token to a server we do not trust
        tokens = await self._token()
        url = websocket_url(session.transport.base_url)
        http = session.transport._session()
        try:
            ws = await http.ws_connect(
                url, heartbeat=HEARTBEAT_S, max_msg_size=MAX_FRAME_BYTES, autoclose=True
            )
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise TransportError(f"live events: cannot connect: {exc}") from exc
        self.connections += 1
        ready = False
        renewer: asyncio.Task[None] | None = None
        try:
            await ws.send_str(
                cj({"type": "auth", "token": tokens.access, "cursor": self.cursor}).decode()
            )
            renewer = asyncio.create_task(self._renew(ws))
            while True:
                msg = await ws.receive()
                if msg.type is aiohttp.WSMsgType.TEXT:
                    frame = parse_frame(msg.data)
                    if frame["type"] == "event":
                        event = parse_event(frame)
                        if self.cursor is None or event.seq > self.cursor:
                            self._advance(event.seq)
                            yield event
                    elif frame["type"] == "ready":
                        ready = True
                        self.live.set()
                        latest = _int(frame.get("cursor"), "cursor")
                        if self.cursor is None or self.cursor > latest:
                            # none yet, or the server's database went back (a restore)
                            session.state.events_cursor = latest
                            session.save()
                    # "renewed" and frame types of later versions need nothing
                elif msg.type is aiohttp.WSMsgType.CLOSE:
                    yield _Closed(int(msg.data), str(msg.extra or ""), ready)
                    return
                elif msg.type in (aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
                    yield _Closed(ws.close_code, "", ready)
                    return
                elif msg.type is aiohttp.WSMsgType.ERROR:
                    yield _Closed(None, f"error: {msg.data}", ready)
                    return
                else:
                    raise ProtocolViolation(f"live events: unexpected {msg.type.name} frame")
        except (aiohttp.ClientError, ConnectionError) as exc:
            raise TransportError(f"live events: connection lost: {exc}") from exc
        finally:
            self.live.clear()
            if renewer is not None:
                renewer.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await renewer
            with contextlib.suppress(Exception):
                await ws.close()

    async def _renew(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Send a fresh access token before the current one expires."""
        session = self._session
        while not ws.closed:
            tokens = session.state.tokens
            if tokens is None:
                return
            left_ms = tokens.expires - REFRESH_MARGIN_MS - session.clock()
            if left_ms > 0:
                # re-checked at least every minute, so a jump of the clock is noticed
                await asyncio.sleep(min(left_ms / 1000, 60.0))
                continue
            try:
                await session.refresh(tokens)
            except NotLoggedIn:
                return  # the server closes the socket; follow() reports it
            fresh = session.state.tokens
            if fresh is not None and not ws.closed:
                await ws.send_str(cj({"type": "auth", "token": fresh.access}).decode())
