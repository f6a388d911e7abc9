"""The server's composition root.

At this stage the server answers ``GET /healthz`` only; accounts, the key directory and
the mailbox arrive with the next issues on this same factory.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from postbox import __version__


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "version": __version__})


@web.middleware
async def security_headers(
    request: web.Request,
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> web.StreamResponse:
    response = await handler(request)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def create_app(settings: Settings) -> web.Application:
    app = web.Application(middlewares=[security_headers], client_max_size=64 * 1024)
    app.router.add_get("/healthz", healthz)
    return app
