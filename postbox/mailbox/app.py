"""The server's composition root: ``create_app(settings)`` builds everything.

Resources are ``cleanup_ctx`` generators (secrets, database and migrations, then each
feature's services); routes come from each feature's ``setup_routes``. Tests call this same
factory. Nothing is global.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import cast

from aiohttp import web
from aiohttp.typedefs import Middleware

from postbox import __version__
from postbox.keys import routes as keys_routes
from postbox.keys.store import log_size
from postbox.mailbox.access import TokenVerifier, auth_middleware, public
from postbox.mailbox.appkeys import BACKGROUND, CLOCK, DB, SECRETS, SETTINGS, TOKENS
from postbox.mailbox.auth import routes as auth_routes
from postbox.mailbox.background import Background
from postbox.mailbox.blobs import routes as blobs_routes
from postbox.mailbox.cards import routes as cards_routes
from postbox.mailbox.cases import routes as cases_routes
from postbox.mailbox.clock import Clock, system_clock
from postbox.mailbox.db.engine import Database
from postbox.mailbox.db.migrate import upgrade
from postbox.mailbox.delivery import routes as delivery_routes
from postbox.mailbox.errors import ServiceUnavailable
from postbox.mailbox.events import routes as events_routes
from postbox.mailbox.http import error_middleware, security_headers_middleware
from postbox.mailbox.inbox import routes as inbox_routes
from postbox.mailbox.messages import routes as messages_routes
from postbox.mailbox.notifications import routes as notifications_routes
from postbox.mailbox.openapi import routes as openapi_routes
from postbox.mailbox.orgs import routes as orgs_routes
from postbox.mailbox.secrets import load_secrets
from postbox.mailbox.settings import Settings


@dataclass(frozen=True)
class Feature:
    """A part of the server: services started after the database, and its routes."""

    name: str
    start: Callable[[web.Application], Awaitable[None]] | None
    setup_routes: Callable[[web.Application], None]


def _features() -> tuple[Feature, ...]:
    # Each feature registers itself here, one line each, in dependency order.
    return (
        Feature("auth", auth_routes.start, auth_routes.setup_routes),
        Feature("keys", keys_routes.start, keys_routes.setup_routes),
        Feature("orgs", orgs_routes.start, orgs_routes.setup_routes),
        # mailbox (issue 4), in this order: events, blobs, cases, delivery, messages, inbox
        Feature("events", events_routes.start, events_routes.setup_routes),
        Feature("blobs", blobs_routes.start, blobs_routes.setup_routes),
        Feature("cases", cases_routes.start, cases_routes.setup_routes),
        Feature("delivery", delivery_routes.start, delivery_routes.setup_routes),
        Feature("messages", messages_routes.start, messages_routes.setup_routes),
        Feature("notifications", notifications_routes.start, notifications_routes.setup_routes),
        Feature("inbox", inbox_routes.start, inbox_routes.setup_routes),
        Feature("cards", cards_routes.start, cards_routes.setup_routes),
        Feature("openapi", None, openapi_routes.setup_routes),
    )


READY = web.AppKey("ready", asyncio.Event)


@public
async def healthz(request: web.Request) -> web.Response:
    if not request.app[READY].is_set():
        raise ServiceUnavailable("starting")
    return web.json_response({"status": "ok", "version": __version__})


async def _database_is_empty(db: Database) -> bool:
    async with db.read() as conn:
        return await log_size(conn) == 0


def _tokens(app: web.Application) -> TokenVerifier | None:
    return app.get(TOKENS)


async def _resources(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    settings.blobs_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
    app[DB] = db
    background = app[BACKGROUND] = Background()
    try:
        if settings.migrate_on_start:
            await upgrade(db)
        # New secrets only for a database without data: otherwise a lost file must be
        # restored, not replaced (a new pepper or bundle key would lock everyone out).
        fresh = await _database_is_empty(db)
        app[SECRETS] = await asyncio.to_thread(
            functools.partial(load_secrets, settings.secrets_dir, create=fresh)
        )
        for feature in _features():
            if feature.start is not None:
                await feature.start(app)
        app[READY].set()
        yield
    finally:
        await background.close()
        await db.dispose()


def create_app(settings: Settings, *, clock: Clock = system_clock) -> web.Application:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    hsts = settings.origin.startswith("https://")
    app = web.Application(
        # outermost first: every answer, problem answers included, gets the headers
        middlewares=[
            security_headers_middleware(hsts),
            cast(Middleware, error_middleware),
            auth_middleware(_tokens),
        ],
        client_max_size=settings.max_json_bytes,
    )
    app[SETTINGS] = settings
    app[CLOCK] = clock
    app[READY] = asyncio.Event()
    app.cleanup_ctx.append(_resources)
    app.router.add_get("/healthz", healthz)
    for feature in _features():
        feature.setup_routes(app)
    return app
