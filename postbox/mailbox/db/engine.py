"""Database access: one object with a read and a write transaction, for SQLite and PostgreSQL.

SQLite (the embedded default) allows one writer at a time. Write transactions therefore
start with ``BEGIN IMMEDIATE`` on a one-connection pool, so writers queue in the process
and wait (``busy_timeout``) across processes instead of failing half-way with "database
is locked"; reads use a separate pool and see a consistent WAL snapshot. Foreign keys are
on, and ``synchronous`` is FULL by default, so an acknowledged commit survives power loss.

PostgreSQL uses one pool for both; code that must serialise (log appends) locks a row.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

SQLITE_BUSY_TIMEOUT_MS = 10_000


class Database:
    """The read and write entry points every store uses."""

    def __init__(self, url: str, *, sqlite_synchronous: str = "FULL") -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            _create_private(url)
            self._writer = create_async_engine(url, pool_size=1, max_overflow=0)
            self._reader = create_async_engine(url, pool_size=4, max_overflow=4)
            for engine, immediate in ((self._writer, True), (self._reader, False)):
                _sqlite_setup(engine, sqlite_synchronous, immediate=immediate)
        else:
            self._writer = create_async_engine(url, pool_size=10, max_overflow=10)
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
