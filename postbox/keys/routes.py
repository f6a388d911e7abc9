"""HTTP routes of the key directory and the transparency log (PROTOCOL.md §7.9).

Public: ``GET /api/v1/server``, ``GET /api/v1/transparency/{sth,inclusion,consistency,
leaves}``, ``GET /api/v1/keys/{subject}``. Authenticated: ``POST /api/v1/keys``.

Every answer is canonical JSON (``cj``), so a client may check the exact bytes it got
(``postbox.crypto.transparency.wire``). Query parameters are closed: each route takes
exactly its listed integers (decimal, no sign, no leading zeros, ≤ 2^53-1), anything
else is a 400 problem (``missing-parameter``, ``invalid-parameter``,
``unknown-parameter``).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any, Final

from aiohttp import web

from postbox.crypto import shapes
from postbox.crypto.encoding import MAX_SAFE_INTEGER, cj
from postbox.crypto.errors import CryptoError
from postbox.keys.commands import PublishKey
from postbox.keys.log import KeyLog
from postbox.mailbox.access import principal, public
from postbox.mailbox.appkeys import ACCOUNTS, AUDIT, CLOCK, DB, DIRECTORY, KEYLOG, SECRETS, SETTINGS
from postbox.mailbox.errors import BadRequest
from postbox.mailbox.http import read_canonical

_DECIMAL: Final = re.compile(r"0|[1-9][0-9]{0,15}")


def _render(value: Any, status: int = 200) -> web.Response:
    return web.Response(body=cj(value), status=status, content_type="application/json")


def _query(request: web.Request, *names: str, minimum: int = 0) -> list[int]:
    """Exactly these query parameters, each a safe non-negative integer ≥ ``minimum``."""
    query = request.query
    for name in query:
        if name not in names:
            raise BadRequest(f"unknown query parameter {name!r}", code="unknown-parameter")
    values = []
    for name in names:
        given = query.getall(name, [])
        if not given:
            raise BadRequest(f"query parameter {name!r} is required", code="missing-parameter")
        if len(given) > 1 or not _DECIMAL.fullmatch(given[0]):
            raise BadRequest(f"{name} must be one decimal integer", code="invalid-parameter")
        value = int(given[0])
        if not minimum <= value <= MAX_SAFE_INTEGER:
            raise BadRequest(f"{name} must be in [{minimum}, 2^53-1]", code="invalid-parameter")
        values.append(value)
    return values


@public
async def get_server(request: web.Request) -> web.Response:
    return _render(request.app[KEYLOG].server_info())


@public
async def get_sth(request: web.Request) -> web.Response:
    _query(request)
    return _render(await request.app[KEYLOG].heads.tree_head())


@public
async def get_inclusion(request: web.Request) -> web.Response:
    index, size = _query(request, "index", "size")
    if size < 1:
        raise BadRequest("size must be at least 1", code="invalid-parameter")
    return _render(await request.app[KEYLOG].heads.inclusion(index, size))


@public
async def get_consistency(request: web.Request) -> web.Response:
    first, second = _query(request, "first", "second", minimum=1)
    return _render(await request.app[KEYLOG].heads.consistency(first, second))


@public
async def get_leaves(request: web.Request) -> web.Response:
    start, end = _query(request, "start", "end")
    return _render(await request.app[KEYLOG].heads.leaves(start, end))


@public
async def get_keys(request: web.Request) -> web.Response:
    _query(request)
    subject = request.match_info["subject"]
    try:
        shapes.ID(subject, "subject")
    except CryptoError as exc:
        raise BadRequest(f"{type(exc).__name__}: {exc}", code="invalid-subject") from exc
    return _render(await request.app[KEYLOG].heads.keys(subject))


async def post_keys(request: web.Request) -> web.Response:
    caller = principal(request)
    body, _ = await read_canonical(request, request.app[SETTINGS].max_json_bytes)
    cmd = PublishKey.from_json(body)
    appended = await request.app[KEYLOG].publish(caller, cmd)
    return _render({"index": appended.index, "seq": appended.seq}, status=201)


# --- the feature -----------------------------------------------------------------------------
async def start(app: web.Application) -> None:
    """Create the log service (after migrations) and make sure leaf 0 and a head exist."""
    keylog = KeyLog(
        db=app[DB],
        secrets=app[SECRETS],
        settings=app[SETTINGS],
        clock=app[CLOCK],
        accounts=app[ACCOUNTS],
        audit=app[AUDIT],
    )
    await keylog.genesis()
    app[KEYLOG] = keylog
    app[DIRECTORY] = keylog.directory


async def _tree_heads(app: web.Application) -> AsyncIterator[None]:
    # Registered from setup_routes, i.e. after the app's resources context: it starts once
    # start() has run and stops (cleanup runs in reverse) before the database is closed.
    heads = app[KEYLOG].heads
    heads.start_background()
    try:
        yield
    finally:
        await heads.aclose()


def setup_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/v1/server", get_server)
    r.add_get("/api/v1/transparency/sth", get_sth)
    r.add_get("/api/v1/transparency/inclusion", get_inclusion)
    r.add_get("/api/v1/transparency/consistency", get_consistency)
    r.add_get("/api/v1/transparency/leaves", get_leaves)
    r.add_get("/api/v1/keys/{subject}", get_keys)
    r.add_post("/api/v1/keys", post_keys)
    app.cleanup_ctx.append(_tree_heads)
