"""HTTP routes of cases (and, through :mod:`postbox.mailbox.procedures.routes`, procedures):
parse, authenticate, call one service method, render.

``GET /api/v1/cases`` takes closed query filters: ``mailbox`` (a mailbox the caller acts
for), ``status``, ``limit`` (1 to 200, default 50) and ``before`` (the ``next`` cursor of the
previous page); each at most once, anything else ``400 unknown-parameter`` /
``invalid-filter``.
"""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web
from multidict import MultiMapping

from postbox.crypto import shapes
from postbox.crypto.encoding import MAX_SAFE_INTEGER
from postbox.crypto.errors import CryptoError
from postbox.mailbox.access import principal
from postbox.mailbox.appkeys import CASES, CLOCK, DB, EVENT_BUS, SETTINGS
from postbox.mailbox.cases import transitions
from postbox.mailbox.cases.service import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    CaseQuery,
    CaseService,
    SetPattern,
    SetStatus,
)
from postbox.mailbox.errors import BadRequest
from postbox.mailbox.http import read_json
from postbox.mailbox.procedures import routes as procedure_routes

FILTERS: Final = ("mailbox", "status", "limit", "before")


async def start(app: web.Application) -> None:
    """Create the case and procedure services (after events: status changes wake the bus)."""
    app[CASES] = CaseService(app[DB], app[CLOCK], app[EVENT_BUS].wake)
    await procedure_routes.start(app)


def _bad_filter(detail: str) -> BadRequest:
    return BadRequest(detail, code="invalid-filter")


def _integer(name: str, text: str, lo: int, hi: int) -> int:
    if not (text.isascii() and text.isdigit()) or (len(text) > 1 and text[0] == "0"):
        raise _bad_filter(f"{name} must be one decimal integer")
    if len(text) > 16 or not lo <= int(text) <= hi:
        raise _bad_filter(f"{name} must be in [{lo}, {hi}]")
    return int(text)


def parse_query(query: MultiMapping[str]) -> CaseQuery:
    for name in query:
        if name not in FILTERS:
            raise BadRequest(f"unknown query parameter {name!r}", code="unknown-parameter")
    values: dict[str, str | None] = {}
    for name in FILTERS:
        given = query.getall(name, [])
        if len(given) > 1:
            raise _bad_filter(f"{name} is given more than once")
        values[name] = given[0] if given else None
    mailbox, status = values["mailbox"], values["status"]
    if mailbox is not None:
        try:
            shapes.ID(mailbox, "mailbox")
        except CryptoError as exc:
            raise _bad_filter(str(exc)) from exc
    if status is not None and not transitions.is_status(status):
        raise _bad_filter(f"status must be one of {', '.join(transitions.STATUSES)}")
    limit_text, before_text = values["limit"], values["before"]
    limit = DEFAULT_LIMIT if limit_text is None else _integer("limit", limit_text, 1, MAX_LIMIT)
    before = None if before_text is None else _integer("before", before_text, 1, MAX_SAFE_INTEGER)
    return CaseQuery(mailbox, status, limit, before)


async def list_cases(request: web.Request) -> web.Response:
    page = await request.app[CASES].list(principal(request), parse_query(request.query))
    return web.json_response(page.to_json())


async def get_case(request: web.Request) -> web.Response:
    detail = await request.app[CASES].get(principal(request), request.match_info["case"])
    return web.json_response(detail.to_json())


async def set_status(request: web.Request) -> web.Response:
    body: Any = await read_json(request, request.app[SETTINGS].max_json_bytes)
    detail = await request.app[CASES].set_status(
        principal(request), request.match_info["case"], SetStatus.from_json(body)
    )
    return web.json_response(detail.to_json())


async def get_pattern(request: web.Request) -> web.Response:
    answer = await request.app[CASES].pattern(principal(request), request.match_info["org"])
    return web.json_response(answer)


async def put_pattern(request: web.Request) -> web.Response:
    body: Any = await read_json(request, request.app[SETTINGS].max_json_bytes)
    answer = await request.app[CASES].set_pattern(
        principal(request), request.match_info["org"], SetPattern.from_json(body)
    )
    return web.json_response(answer)


def setup_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/v1/cases", list_cases)
    r.add_get("/api/v1/cases/{case}", get_case)
    r.add_post("/api/v1/cases/{case}/status", set_status)
    r.add_get("/api/v1/orgs/{org}/case-pattern", get_pattern)
    r.add_put("/api/v1/orgs/{org}/case-pattern", put_pattern)
    procedure_routes.setup_routes(app)
