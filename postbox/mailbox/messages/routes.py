"""``POST /api/v1/messages``, and the messages feature's start-up (the group-commit writer).

The route parses (a canonical body of at most ``max_message_bytes``, ``?procedure=&version=``),
authenticates, calls :meth:`MessageService.send` and renders the receipt: 201 for a new
message, 200 for a safe resend (the stored receipt, byte for byte). Receipts are canonical
JSON, so the body is the receipt's exact bytes.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from postbox.mailbox.access import principal, session_checked_by_service
from postbox.mailbox.appkeys import (
    BACKGROUND,
    CLOCK,
    DB,
    DIRECTORY,
    EVENT_BUS,
    MESSAGES,
    SECRETS,
    SETTINGS,
)
from postbox.mailbox.db.engine import Database
from postbox.mailbox.http import read_canonical
from postbox.mailbox.messages import service as message_service
from postbox.mailbox.messages.commands import SendMessage
from postbox.mailbox.messages.service import MessageService

PATH = "/api/v1/messages"
#: batches in flight at once on PostgreSQL (each its own transaction and connection). One:
#: a server process is CPU-bound long before its writer is, and more batches in flight only
#: make them smaller (bench/messages.py: 2.8 ms CPU per send with one, 3.9 ms with four)
WRITER_CONCURRENCY_POSTGRES = 1


async def start(app: web.Application) -> None:
    """Create the service and run this process's group-commit writer in the background."""
    settings = app[SETTINGS]
    service = MessageService(
        app[DB],
        app[CLOCK],
        directory=app[DIRECTORY],
        receipt_seed=app[SECRETS].receipt_seed,
        max_batch=settings.send_batch_max,
        # SQLite has one writer at a time; PostgreSQL commits several batches in parallel
        concurrency=1 if settings.is_sqlite else WRITER_CONCURRENCY_POSTGRES,
        writer_db=lambda: Database(
            settings.database_url,
            sqlite_synchronous=settings.sqlite_synchronous,
            inline_sqlite=message_service.WRITER_THREAD,  # the writer's own thread and loop
        ),
        bus=app.get(EVENT_BUS),
    )
    app[MESSAGES] = service
    app[BACKGROUND].spawn("messages-writer", service.run_writer)
    async with asyncio.timeout(60):  # the writer opens its own engine first
        await service.commit.ready.wait()


@session_checked_by_service
async def post_message(request: web.Request) -> web.Response:
    who = principal(request)
    parsed, body = await read_canonical(request, request.app[SETTINGS].max_message_bytes)
    cmd = SendMessage.of(parsed, body, request.query)
    sent = await request.app[MESSAGES].send(who, cmd)
    return web.Response(
        body=sent.receipt, status=201 if sent.created else 200, content_type="application/json"
    )


def setup_routes(app: web.Application) -> None:
    app.router.add_post(PATH, post_message)
