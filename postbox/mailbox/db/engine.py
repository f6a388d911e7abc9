"""Database access: one object with a read and a write transaction, for SQLite and PostgreSQL.

SQLite (the embedded default) allows one writer at a time. Write transactions therefore
start with ``BEGIN IMMEDIATE`` on a one-connection pool, so writers queue in the process
and wait (``busy_timeout``) across processes instead of failing half-way with "database
is locked"; reads use a separate pool and see a consistent WAL snapshot. Foreign keys are
on, and ``synchronous`` is FULL by default, so an acknowledged commit survives power loss.

PostgreSQL uses one pool for both; code that must serialise (log appends) locks a row.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Generator
from contextlib import asynccontextmanager
from typing import Any, cast

import aiosqlite
import aiosqlite.core
from sqlalchemy import event, make_url
from sqlalchemy.dialects.sqlite.aiosqlite import SQLiteDialect_aiosqlite
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

SQLITE_BUSY_TIMEOUT_MS = 10_000
#: pooled connections per engine (kept open; see __init__)
READ_POOL = 8
PG_POOL = 16


class Database:
    """The read and write entry points every store uses."""

    def __init__(
        self, url: str, *, sqlite_synchronous: str = "FULL", inline_sqlite: bool = False
    ) -> None:
        """``inline_sqlite``: run the SQLite writer's calls on the calling thread (see
        :class:`InlineSQLiteConnection`): only for a thread and loop that do nothing else,
        like the group-commit writer's."""
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            _create_private(url)
            self._writer = create_async_engine(
                url,
                pool_size=1,
                max_overflow=0,
                **({"async_creator": _inline_creator(url)} if inline_sqlite else {}),
            )
            # No overflow: an overflow connection is opened for one request and closed again
            # (a new thread, the pragmas, a cold page cache each time), which under load
            # cost more CPU than the queries; requests rather wait for a pooled one.
            self._reader = create_async_engine(url, pool_size=READ_POOL, max_overflow=0)
            for engine, immediate in ((self._writer, True), (self._reader, False)):
                _sqlite_setup(engine, sqlite_synchronous, immediate=immediate)
        else:
            self._writer = create_async_engine(url, pool_size=PG_POOL, max_overflow=0)
            self._reader = self._writer

    @property
    def engine(self) -> AsyncEngine:
        """The engine for migrations and tools (the writer)."""
        return self._writer

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """One write transaction: committed when the block ends, rolled back on error."""
        async with self._writer.begin() as conn:
            yield conn

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """One read-only snapshot (nothing is committed)."""
        async with self._reader.connect() as conn:
            try:
                yield conn
            finally:
                await conn.rollback()

    async def dispose(self) -> None:
        await self._writer.dispose()
        if self._reader is not self._writer:
            await self._reader.dispose()


class _InlineQueue:
    """aiosqlite's request queue, except that a request runs at once, on the caller's thread,
    and its future is settled before ``put_nowait`` returns."""

    def put_nowait(self, request: tuple[asyncio.Future[Any] | None, Callable[[], Any]]) -> None:
        future, function = request
        try:
            result = function()
        except BaseException as exc:  # the worker thread hands every error to the future
            if future is not None and not future.done():
                future.set_exception(exc)
            return
        if future is not None and not future.done():
            future.set_result(None if result is _STOP else result)


_STOP = getattr(aiosqlite.core, "_STOP_RUNNING_SENTINEL", object())


class InlineSQLiteConnection(aiosqlite.Connection):
    """aiosqlite's connection API without its worker thread: every call runs on the calling
    thread and event loop, blocking it for the call's duration.

    aiosqlite hands each call (cursor, execute, fetch, commit) to a thread of its own and the
    answer back, two thread switches per call; the group-commit writer makes a dozen calls
    per batch, on a thread and loop that do nothing else, while the server's main thread
    holds the GIL most of the time, so every switch could wait for the interpreter's switch
    interval. Run inline, the sqlite3 module still releases the GIL while SQLite works (and
    syncs), and the writer needs no hand-offs at all.
    """

    def __init__(self, connector: Callable[[], sqlite3.Connection]) -> None:
        super().__init__(connector, iter_chunk_size=64)
        self._tx = cast(Any, _InlineQueue())

    def __await__(self) -> Generator[Any, None, aiosqlite.Connection]:
        return self._connect().__await__()  # no worker thread to start


def _inline_creator(url: str) -> Callable[[], InlineSQLiteConnection]:
    """SQLAlchemy's ``async_creator`` for :class:`InlineSQLiteConnection`, with the same
    connect arguments as the dialect would give aiosqlite."""
    dialect = SQLiteDialect_aiosqlite()
    args, params = dialect.create_connect_args(make_url(url))
    params.setdefault("check_same_thread", False)

    def create() -> InlineSQLiteConnection:
        connect = cast(Callable[..., sqlite3.Connection], sqlite3.connect)
        return InlineSQLiteConnection(lambda: connect(*args, **params))

    return create


def _create_private(url: str) -> None:
    """Create the SQLite file with mode 0600 (SQLite gives its WAL the same mode)."""
    path = url.split(":///", 1)[1]
    if path and path != ":memory:" and not os.path.exists(path):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))


def _sqlite_setup(engine: AsyncEngine, synchronous: str, *, immediate: bool) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let us issue BEGIN ourselves (pysqlite's implicit BEGIN is DEFERRED).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys=ON")
        # Reads of a large log touch a few dozen index pages per proof: keep them in memory
        # (32 MiB page cache per connection, the file memory-mapped up to 1 GiB).
        cur.execute("PRAGMA cache_size=-32768")
        cur.execute("PRAGMA mmap_size=1073741824")
        cur.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
