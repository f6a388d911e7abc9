"""The event bus: wakes the live connections of accounts whose events were appended.

The ``events`` table is the source of truth (:mod:`postbox.mailbox.events.store`); the bus
carries no event data, only "account X has something new". A woken subscriber re-reads the
table from its own cursor, so a lost, duplicated or coalesced wake-up can delay an event
but never lose, reorder or duplicate one.

Writers append rows in their transaction and call :meth:`EventBus.wake` **after** it
committed. Within one process the wake-up is immediate. With PostgreSQL the bus also sends
``NOTIFY postbox_events`` (payloads chunked under the server's 8000-byte limit) and keeps
one dedicated asyncpg connection that ``LISTEN``\\s, so a connection on another server
process is woken too. When that connection drops, the bus reconnects with backoff and then
wakes every local subscriber, because notifications sent meanwhile were lost. SQLite is
in-process only: several server processes on one SQLite file do not see each other's events
live (they do after a reconnect, from the cursor); operations.md says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable, Collection, Iterator
from typing import Any, Final

from sqlalchemy import text
from sqlalchemy.engine import make_url

from postbox.mailbox.db.engine import Database

log = logging.getLogger("postbox.events")

CHANNEL: Final = "postbox_events"
#: PostgreSQL refuses NOTIFY payloads of 8000 bytes or more; stay well below.
MAX_PAYLOAD_BYTES: Final = 7900
#: reconnect backoff of the LISTEN connection: first pause, doubling up to the cap
RECONNECT_FIRST_S: Final = 0.25
RECONNECT_CAP_S: Final = 30.0
#: how often the LISTEN connection is probed (a dead TCP peer is otherwise noticed late)
PROBE_EVERY_S: Final = 15.0
PROBE_TIMEOUT_S: Final = 10.0


class Subscription:
    """One live connection's interest in one account's events.

    Use it as a context manager (``with bus.subscribe(account) as sub:``) so it is always
    removed. :meth:`wait` returns when a wake-up arrived since the last :meth:`wait`
    (wake-ups coalesce; the caller re-reads everything after its cursor anyway).
    """

    def __init__(self, bus: EventBus, account_id: str) -> None:
        self.account_id = account_id
        self._bus = bus
        self._event = asyncio.Event()

    def wake(self) -> None:
        self._event.set()

    async def wait(self, at_most: float | None = None) -> bool:
        """Wait for a wake-up (at most ``at_most`` seconds); True if one came. Clears it."""
        try:
            if at_most is None:
                await self._event.wait()
            else:
                async with asyncio.timeout(at_most):
                    await self._event.wait()
        except TimeoutError:
            return False
        self._event.clear()
        return True

    def close(self) -> None:
        self._bus._remove(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class EventBus:
    """Wake-ups for live event connections, in-process and (PostgreSQL) across processes."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._subscribers: dict[str, set[Subscription]] = {}
        # NOTIFY reaches our own LISTEN connection too; the tag lets us skip our own.
        self._origin = secrets.token_hex(8)
        self._listening = asyncio.Event()
        self._reconnects = 0
        self._listen_pid: int | None = None

    @property
    def cross_process(self) -> bool:
        """True when wake-ups also reach other server processes (PostgreSQL)."""
        return not self._db.is_sqlite

    # --- subscribers --------------------------------------------------------------------------
    def subscribe(self, account_id: str) -> Subscription:
        sub = Subscription(self, account_id)
        self._subscribers.setdefault(account_id, set()).add(sub)
        return sub

    def _remove(self, sub: Subscription) -> None:
        subs = self._subscribers.get(sub.account_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subscribers[sub.account_id]

    def subscribers(self, account_id: str) -> int:
        return len(self._subscribers.get(account_id, ()))

    def wake_local(self, account_ids: Collection[str]) -> None:
        for account_id in account_ids:
            for sub in self._subscribers.get(account_id, ()):
                sub.wake()

    def wake_everyone(self) -> None:
        """Every local subscriber re-reads from its cursor (after lost notifications)."""
        for subs in self._subscribers.values():
            for sub in subs:
                sub.wake()

    # --- writers ----------------------------------------------------------------------------
    async def wake(self, account_ids: Collection[str]) -> None:
        """Wake these accounts' connections everywhere. Call after the commit; never raises.

        A failed NOTIFY is logged, not raised: the writer's transaction is committed and
        must be answered as such; connections on other processes then pick the events up at
        their next periodic re-read (see the WebSocket handler).
        """
        ids = sorted(set(account_ids))
        if not ids:
            return
        self.wake_local(ids)
        if not self.cross_process:
            return
        try:
            async with self._db.write() as conn:
                for payload in self.payloads(ids):
                    await conn.execute(
                        text("SELECT pg_notify(:channel, :payload)"),
                        {"channel": CHANNEL, "payload": payload},
                    )
        except Exception:
            log.exception("NOTIFY %s failed; other processes re-read later", CHANNEL)

    def payloads(self, account_ids: Collection[str]) -> Iterator[str]:
        """``"<origin> <id>,<id>,…"`` chunks, each under :data:`MAX_PAYLOAD_BYTES`."""
        head = self._origin + " "
        chunk: list[str] = []
        size = len(head)
        for account_id in account_ids:
            extra = len(account_id.encode()) + (1 if chunk else 0)
            if chunk and size + extra > MAX_PAYLOAD_BYTES:
                yield head + ",".join(chunk)
                chunk, size = [], len(head)
                extra = len(account_id.encode())
            chunk.append(account_id)
            size += extra
        if chunk:
            yield head + ",".join(chunk)

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        origin, _, ids = payload.partition(" ")
        if origin == self._origin or not ids:
            return
        self.wake_local(ids.split(","))

    # --- the LISTEN connection (a background job) -------------------------------------------
    async def listening(self) -> None:
        """Wait until the LISTEN connection is up (immediately for SQLite)."""
        if self.cross_process:
            await self._listening.wait()

    @property
    def listen_pid(self) -> int | None:
        """The PostgreSQL backend pid of the LISTEN connection while it is up."""
        return self._listen_pid

    @property
    def reconnects(self) -> int:
        """How often the LISTEN connection was re-established after its first start."""
        return self._reconnects

    async def run(self) -> None:
        """Keep a LISTEN connection open until cancelled (returns at once for SQLite)."""
        if not self.cross_process:
            return
        import asyncpg  # only needed with PostgreSQL

        dsn = make_url(self._db.url).set(drivername="postgresql")
        pause = RECONNECT_FIRST_S
        first = True
        while True:
            conn: Any = None
            lost = asyncio.Event()
            try:
                conn = await asyncpg.connect(dsn.render_as_string(hide_password=False))
                conn.add_termination_listener(_setter(lost))
                await conn.add_listener(CHANNEL, self._on_notify)
                if not first:
                    self._reconnects += 1
                first = False
                pause = RECONNECT_FIRST_S
                self._listen_pid = int(conn.get_server_pid())
                self._listening.set()
                # Notifications sent while we were not listening are gone: everyone re-reads.
                self.wake_everyone()
                await self._watch(conn, lost)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("event LISTEN connection failed (%s); retrying in %.2fs", exc, pause)
            finally:
                self._listening.clear()
                self._listen_pid = None
                if conn is not None:
                    with contextlib.suppress(Exception):
                        conn.terminate()
            await asyncio.sleep(pause)
            pause = min(pause * 2, RECONNECT_CAP_S)

    async def _watch(self, conn: Any, lost: asyncio.Event) -> None:
        """Return when the connection is lost (terminated, or a probe fails)."""
        while not lost.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(PROBE_EVERY_S):
                    await lost.wait()
            if lost.is_set() or conn.is_closed():
                return
            async with asyncio.timeout(PROBE_TIMEOUT_S):
                await conn.fetchval("SELECT 1")


def _setter(flag: asyncio.Event) -> Callable[[Any], None]:
    def on_termination(_conn: Any) -> None:
        flag.set()

    return on_termination
