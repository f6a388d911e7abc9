"""The migrations produce exactly the schema module's tables, on both databases."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from postbox.mailbox.db import schema
from postbox.mailbox.db.engine import Database
from postbox.mailbox.db.migrate import upgrade
from postbox.mailbox.settings import Settings


async def test_migrated_database_matches_the_schema_module(settings: Settings) -> None:
    db = Database(settings.database_url)
    try:
        await upgrade(db)

        def diff(conn: Connection) -> list[object]:
            return list(compare_metadata(MigrationContext.configure(conn), schema.metadata))

        async with db.read() as conn:
            assert await conn.run_sync(diff) == []
            state = (await conn.execute(select(schema.log_state))).all()
            assert [tuple(r) for r in state] == [(1, 0)]
    finally:
        await db.dispose()


async def test_foreign_keys_are_enforced(settings: Settings) -> None:
    db = Database(settings.database_url)
    try:
        await upgrade(db)
        with pytest.raises(IntegrityError):
            async with db.write() as conn:
                await conn.execute(
                    schema.teams.insert().values(
                        id="A" * 22, org_id="B" * 22, names="{}", created=0
                    )
                )
    finally:
        await db.dispose()
