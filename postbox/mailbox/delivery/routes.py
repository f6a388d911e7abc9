"""HTTP routes of the delivery feature: parse, authenticate, call one service method, render.

``GET /api/v1/mailboxes/{mailbox}/overdue`` takes ``limit`` (1 to 200, default 50) and
``before`` (the ``next`` cursor of the previous page), each at most once; anything else is
``400 unknown-parameter`` / ``invalid-parameter``. :func:`start` validates the shipped rule
file (a broken one stops the server) and starts the overdue job.
"""

from __future__ import annotations

from typing import Final

from aiohttp import web
from multidict import MultiMapping

from postbox.crypto.encoding import MAX_SAFE_INTEGER
from postbox.mailbox.access import principal, public
from postbox.mailbox.appkeys import (
    BACKGROUND,
    CLOCK,
    DB,
    DELIVERY,
    DIRECTORY,
    EVENT_BUS,
    SECRETS,
    SETTINGS,
)
from postbox.mailbox.delivery.rules import default_rules
from postbox.mailbox.delivery.service import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    DeliveryService,
    SetLegalSettings,
)
from postbox.mailbox.errors import BadRequest
from postbox.mailbox.http import read_canonical, read_json

OVERDUE_PARAMETERS: Final = ("limit", "before")
#: seconds between two rounds of the overdue job (deadlines are whole days)
OVERDUE_INTERVAL_S: Final = 60.0


async def start(app: web.Application) -> None:
    """Create the delivery service (after events) and start the overdue job."""
    service = DeliveryService(
        app[DB],
        app[CLOCK],
        directory=app[DIRECTORY],
        receipt_seed=app[SECRETS].receipt_seed,
        rules=default_rules(),
        wake=app[EVENT_BUS].wake,
    )
    app[DELIVERY] = service
    app[BACKGROUND].spawn("overdue", lambda: service.overdue_job(OVERDUE_INTERVAL_S))


def _integer(name: str, text: str, lo: int, hi: int) -> int:
    if not (text.isascii() and text.isdigit()) or (len(text) > 1 and text[0] == "0"):
        raise BadRequest(f"{name} must be one decimal integer", code="invalid-parameter")
    if len(text) > 16 or not lo <= int(text) <= hi:
        raise BadRequest(f"{name} must be in [{lo}, {hi}]", code="invalid-parameter")
    return int(text)


def parse_overdue_query(query: MultiMapping[str]) -> tuple[int, int | None]:
    for name in query:
        if name not in OVERDUE_PARAMETERS:
            raise BadRequest(f"unknown query parameter {name!r}", code="unknown-parameter")
    values: dict[str, str | None] = {}
    for name in OVERDUE_PARAMETERS:
        given = query.getall(name, [])
        if len(given) > 1:
            raise BadRequest(f"{name} is given more than once", code="invalid-parameter")
        values[name] = given[0] if given else None
    limit_text, before_text = values["limit"], values["before"]
    limit = DEFAULT_LIMIT if limit_text is None else _integer("limit", limit_text, 1, MAX_LIMIT)
    before = None if before_text is None else _integer("before", before_text, 1, MAX_SAFE_INTEGER)
    return limit, before


@public
async def legal_rules(request: web.Request) -> web.Response:
    return web.json_response(request.app[DELIVERY].legal_rules())


async def get_settings(request: web.Request) -> web.Response:
    answer = await request.app[DELIVERY].get_settings(principal(request), request.match_info["org"])
    return web.json_response(answer)


async def put_settings(request: web.Request) -> web.Response:
    body = await read_json(request, request.app[SETTINGS].max_json_bytes)
    answer = await request.app[DELIVERY].put_settings(
        principal(request), request.match_info["org"], SetLegalSettings.from_json(body)
    )
    return web.json_response(answer)


async def get_delivery(request: web.Request) -> web.Response:
    m = request.match_info
    answer = await request.app[DELIVERY].delivery(principal(request), m["from"], m["id"])
    return web.json_response(answer)


async def post_read(request: web.Request) -> web.Response:
    body, _ = await read_canonical(request, request.app[SETTINGS].max_json_bytes)
    m = request.match_info
    created, answer = await request.app[DELIVERY].post_read(
        principal(request), m["from"], m["id"], body
    )
    return web.json_response(answer, status=201 if created else 200)


async def get_reads(request: web.Request) -> web.Response:
    m = request.match_info
    answer = await request.app[DELIVERY].reads(principal(request), m["from"], m["id"])
    return web.json_response(answer)


async def get_overdue(request: web.Request) -> web.Response:
    limit, before = parse_overdue_query(request.query)
    answer = await request.app[DELIVERY].overdue(
        principal(request), request.match_info["mailbox"], limit, before
    )
    return web.json_response(answer)


def setup_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/v1/legal-rules", legal_rules)
    r.add_get("/api/v1/orgs/{org}/legal-settings", get_settings)
    r.add_put("/api/v1/orgs/{org}/legal-settings", put_settings)
    r.add_get("/api/v1/messages/{from}/{id}/delivery", get_delivery)
    r.add_post("/api/v1/messages/{from}/{id}/reads", post_read)
    r.add_get("/api/v1/messages/{from}/{id}/reads", get_reads)
    r.add_get("/api/v1/mailboxes/{mailbox}/overdue", get_overdue)
