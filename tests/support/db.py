"""Throwaway databases for tests: SQLite in a temporary folder, or a fresh PostgreSQL database.

PostgreSQL is the one at 127.0.0.1:5432 (trust auth, user ``postgres``) unless
``POSTBOX_TEST_PG`` names another server (``postgresql://user@host:port``). Without one the
PostgreSQL half of the storage tests is skipped with a clear message, except when
``CI=true``: then a missing PostgreSQL fails the run.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest

PG = os.environ.get("POSTBOX_TEST_PG", "postgresql://postgres@127.0.0.1:5432")


async def pg_problem() -> str | None:
    """Why :data:`PG` cannot be used (None: it answers)."""
    try:
        conn = await asyncio.wait_for(asyncpg.connect(PG + "/postgres"), timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        return f"PostgreSQL at {PG} is not reachable ({type(exc).__name__}: {exc})"
    await conn.close()
    return None


@asynccontextmanager
async def postgres_database() -> AsyncIterator[str]:
    """A new, empty PostgreSQL database; dropped afterwards. Yields its asyncpg URL."""
    problem = await pg_problem()
    if problem is not None:
        message = problem
        if os.environ.get("CI") == "true":
            pytest.fail(message + "; it is required when CI=true")
        pytest.skip(message + ": PostgreSQL storage tests skipped")
    async with throwaway_database("postbox_test_") as url:
        yield url


@asynccontextmanager
async def throwaway_database(prefix: str) -> AsyncIterator[str]:
    """Create a database named ``prefix`` + random hex on :data:`PG`, yield its SQLAlchemy
    (asyncpg) URL, and drop it afterwards (tests and benchmarks alike)."""
    name = prefix + secrets.token_hex(6)
    admin = await asyncpg.connect(PG + "/postgres")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield PG.replace("postgresql://", "postgresql+asyncpg://", 1) + "/" + name
    finally:
        admin = await asyncpg.connect(PG + "/postgres")
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
