"""Alembic migrations, applied by ``postbox db upgrade`` and at server start.

Only one process migrates at a time: PostgreSQL takes a session advisory lock, SQLite an
exclusive ``flock`` on a file beside the database. A process that waits for the lock finds
the schema already at head and does nothing.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection

from postbox.mailbox.db.engine import Database

#: pg_advisory_lock key: "postbox!" as a big-endian integer
_PG_LOCK_KEY = int.from_bytes(b"postbox!", "big") & 0x7FFF_FFFF_FFFF_FFFF


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", "postbox.mailbox.db:migrations")
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def _current(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def _upgrade(conn: Connection) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, "head")


@asynccontextmanager
async def _sqlite_lock(database_path: Path) -> AsyncIterator[None]:
    lock_path = database_path.with_name(database_path.name + ".migrate-lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


async def upgrade(db: Database) -> str | None:
    """Migrate to head under the lock; return the revision before (None: fresh database)."""
    if db.is_sqlite:
        path = Path(db.url.split(":///", 1)[1])
        async with _sqlite_lock(path):
            async with db.engine.begin() as conn:
                before = await conn.run_sync(_current)
                if before != head_revision():
                    await conn.run_sync(_upgrade)
            return before
    async with db.engine.connect() as conn:
        await conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_LOCK_KEY})
        await conn.commit()
        try:
            async with conn.begin():
                before = await conn.run_sync(_current)
                if before != head_revision():
                    await conn.run_sync(_upgrade)
            return before
        finally:
            await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LOCK_KEY})
            await conn.commit()


async def current_revision(db: Database) -> str | None:
    async with db.read() as conn:
        return await conn.run_sync(_current)
