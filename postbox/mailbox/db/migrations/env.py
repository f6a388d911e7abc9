"""Alembic environment: always run on a connection handed in by postbox.mailbox.db.migrate."""

from __future__ import annotations

from alembic import context

from postbox.mailbox.db.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `postbox db upgrade`")

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
