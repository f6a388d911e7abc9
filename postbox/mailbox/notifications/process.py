"""``postbox worker``: a process that only sends notifications (for scale).

It opens the same database and secrets as ``postbox serve`` (never creating secrets: a
server must have started once) and runs :meth:`NotificationService.run_forever` until
``stop`` is set. Any number of workers and servers may run side by side: claims are
exclusive (``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite has one writer). Live events
its delivery records produce reach other processes through PostgreSQL NOTIFY; on SQLite
connected clients pick them up at their next periodic re-read.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools

from postbox.mailbox.clock import Clock, system_clock
from postbox.mailbox.db.engine import Database
from postbox.mailbox.db.migrate import upgrade
from postbox.mailbox.events.bus import EventBus
from postbox.mailbox.notifications.routes import build_service
from postbox.mailbox.secrets import load_secrets
from postbox.mailbox.settings import Settings


async def run_worker(
    settings: Settings, stop: asyncio.Event, *, clock: Clock = system_clock
) -> None:
    db = Database(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
    try:
        if settings.migrate_on_start:
            await upgrade(db)
        secrets = await asyncio.to_thread(
            functools.partial(load_secrets, settings.secrets_dir, create=False)
        )
        bus = EventBus(db)
        service = build_service(
            settings, db, clock, receipt_seed=secrets.receipt_seed, wake=bus.wake
        )
        task = asyncio.create_task(service.run_forever(), name="postbox:notifications")
        stopping = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (task, stopping):
                t.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await t
        if task.done() and not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
    finally:
        await db.dispose()
