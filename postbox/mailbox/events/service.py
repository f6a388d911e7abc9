"""The rules of live event connections: who may listen, for how long, and what they read.

One :class:`EventService` per server process. A WebSocket (:mod:`postbox.mailbox.events.
routes`) authenticates with an access token, registers a :class:`Connection` here and then
reads the account's events from the ``events`` table after its cursor whenever the bus wakes
it. The service ends connections whose right to listen is gone:

- **session ended** (logout, revoked in the session list, account disabled, session
  expired): a sweep every :data:`CHECK_EVERY_S` asks the database about every connected
  session at once (one query per :data:`SESSION_CHECK_CHUNK` sessions, not one per socket);
- **access token expired** without a renewal frame: the same sweep compares the token's
  ``exp`` with the server clock (the injectable one, so tests can move time);
- **server shutting down**: every connection is told ``1001 going away``.

At most :data:`MAX_CONNECTIONS_PER_ACCOUNT` connections per account and process. A second
job prunes events older than :data:`RETENTION_MS`: a client offline for longer than that
misses them and must re-list its mailboxes (protocol.md §13.13).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from jose import jwt

from postbox.mailbox.access import Principal, TokenVerifier
from postbox.mailbox.clock import Clock
from postbox.mailbox.db.engine import Database
from postbox.mailbox.errors import Unauthorized
from postbox.mailbox.events import store
from postbox.mailbox.events.bus import EventBus, Subscription
from postbox.mailbox.events.store import StoredEvent

log = logging.getLogger("postbox.events")

MAX_CONNECTIONS_PER_ACCOUNT: Final = 16
#: how often connected sessions and token lifetimes are checked (revocation latency)
CHECK_EVERY_S: Final = 2.0
SESSION_CHECK_CHUNK: Final = 500
#: events are kept this long (30 days), then pruned
RETENTION_MS: Final = 30 * 24 * 3600 * 1000
PRUNE_EVERY_S: Final = 3600.0

# WebSocket close codes (4000-4999 are the application's own; protocol.md §13.13)
CLOSE_GOING_AWAY: Final = 1001
CLOSE_TRY_AGAIN: Final = 1013
CLOSE_BAD_FRAME: Final = 4400
CLOSE_UNAUTHORIZED: Final = 4401
CLOSE_TOO_SLOW: Final = 4408
CLOSE_TOO_MANY: Final = 4429


class ShuttingDown(Exception):
    """The process is shutting down: no new connections."""


class TooManyConnections(Exception):
    """The account has :data:`MAX_CONNECTIONS_PER_ACCOUNT` connections in this process."""

    code = "too-many-connections"


@dataclass(frozen=True)
class Ending:
    """Why a connection ends: a WebSocket close code and a short machine-readable reason."""

    code: int
    reason: str


@dataclass(eq=False)
class Connection:
    """One authenticated WebSocket: whose it is, until when, and whether it must end."""

    account_id: str
    session_id: str
    expires: int  # ms; the access token's exp
    ending: asyncio.Future[Ending] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    def end(self, code: int, reason: str) -> None:
        """Ask the connection's handler to close with this code (first request wins)."""
        if not self.ending.done():
            self.ending.set_result(Ending(code, reason))


class EventService:
    def __init__(
        self,
        *,
        db: Database,
        bus: EventBus,
        tokens: TokenVerifier,
        clock: Clock,
        max_connections: int = MAX_CONNECTIONS_PER_ACCOUNT,
    ) -> None:
        self._db = db
        self._bus = bus
        self._tokens = tokens
        self._clock = clock
        self._max = max_connections
        self._connections: dict[str, set[Connection]] = {}
        self._closed = False

    @property
    def bus(self) -> EventBus:
        return self._bus

    # --- authentication ---------------------------------------------------------------------
    async def authenticate(self, token: str) -> tuple[Principal, int]:
        """The principal behind an access token and the token's expiry (ms).

        Raises :class:`Unauthorized` (codes ``invalid-token``, ``token-expired``,
        ``session-ended``) exactly as the HTTP routes would.
        """
        who = await self._tokens.verify_access_token(token)
        return who, _token_expiry_ms(token)

    # --- connections ------------------------------------------------------------------------
    def connect(self, who: Principal, expires: int) -> Connection:
        """Register an authenticated connection; refuses more than the per-account limit."""
        if self._closed:
            raise ShuttingDown
        mine = self._connections.setdefault(who.account_id, set())
        if len(mine) >= self._max:
            if not mine:
                del self._connections[who.account_id]
            raise TooManyConnections(f"at most {self._max} live connections per account")
        conn = Connection(who.account_id, who.session_id, expires)
        mine.add(conn)
        return conn

    def renew(self, conn: Connection, who: Principal, expires: int) -> bool:
        """Take a renewed token; False if it belongs to another account (end the socket)."""
        if who.account_id != conn.account_id:
            return False
        conn.session_id = who.session_id
        conn.expires = expires
        return True

    def disconnect(self, conn: Connection) -> None:
        mine = self._connections.get(conn.account_id)
        if mine is not None:
            mine.discard(conn)
            if not mine:
                del self._connections[conn.account_id]

    def connections(self, account_id: str) -> int:
        """Live authenticated connections of an account in this process."""
        return len(self._connections.get(account_id, ()))

    def _all(self) -> list[Connection]:
        return [c for conns in self._connections.values() for c in conns]

    def subscribe(self, account_id: str) -> Subscription:
        return self._bus.subscribe(account_id)

    def disconnect_account(self, account_id: str, code: int, reason: str) -> int:
        """End every connection of an account in this process; returns how many."""
        conns = list(self._connections.get(account_id, ()))
        for conn in conns:
            conn.end(code, reason)
        return len(conns)

    def shutdown(self) -> None:
        """End every connection (server going away); refuse new ones."""
        self._closed = True
        for conn in self._all():
            conn.end(CLOSE_GOING_AWAY, "going-away")

    # --- reading ------------------------------------------------------------------------------
    async def latest(self, account_id: str) -> int:
        async with self._db.read() as conn:
            return await store.latest_seq(conn, account_id)

    async def since(self, account_id: str, cursor: int, limit: int) -> list[StoredEvent]:
        async with self._db.read() as conn:
            return await store.since(conn, account_id, cursor, limit)

    # --- background jobs ----------------------------------------------------------------------
    async def check_once(self) -> None:
        """End connections whose token expired or whose session ended."""
        now = self._clock()
        live: list[Connection] = []
        for conn in self._all():
            if conn.expires <= now:
                conn.end(CLOSE_UNAUTHORIZED, "token-expired")
            else:
                live.append(conn)
        if not live:
            return
        sessions = sorted({c.session_id for c in live})
        ended: set[str] = set()
        async with self._db.read() as db:
            for i in range(0, len(sessions), SESSION_CHECK_CHUNK):
                ended |= await store.ended_sessions(db, sessions[i : i + SESSION_CHECK_CHUNK], now)
        for conn in live:
            if conn.session_id in ended:
                conn.end(CLOSE_UNAUTHORIZED, "session-ended")

    async def watch_sessions(self) -> None:
        """Background job: :meth:`check_once` every :data:`CHECK_EVERY_S` seconds."""
        while True:
            await asyncio.sleep(CHECK_EVERY_S)
            await self.check_once()

    async def prune_once(self) -> int:
        """Delete events older than :data:`RETENTION_MS`; returns how many."""
        async with self._db.write() as conn:
            return await store.prune(conn, self._clock() - RETENTION_MS)

    async def prune_forever(self) -> None:
        """Background job: :meth:`prune_once` at start and every :data:`PRUNE_EVERY_S`."""
        while True:
            pruned = await self.prune_once()
            if pruned:
                log.info("pruned %d events older than %d days", pruned, RETENTION_MS // 86_400_000)
            await asyncio.sleep(PRUNE_EVERY_S)


def _token_expiry_ms(token: str) -> int:
    """``exp`` of an access token that :meth:`TokenVerifier.verify_access_token` accepted.

    Reading the claims without checking the signature is safe only because the verifier
    has just checked it; the verifier's protocol returns the principal, not the claims.
    """
    claims = jwt.get_unverified_claims(token)
    exp = claims.get("exp") if isinstance(claims, dict) else None
    if isinstance(exp, bool) or not isinstance(exp, int):  # pragma: no cover - verified above
        raise Unauthorized("the access token is not valid", code="invalid-token")
    return exp * 1000


def account_ids(new: Iterable[store.NewEvent]) -> set[str]:
    """The accounts to wake after appending ``new`` (helper for writers)."""
    return {e.account_id for e in new}
