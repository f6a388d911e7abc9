"""HTTP routes of procedures: parse, authenticate, call one service method, render.

Answers are canonical JSON: they carry signed objects exactly as stored.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from postbox.crypto.encoding import MAX_SAFE_INTEGER, cj
from postbox.mailbox.access import principal, public
from postbox.mailbox.appkeys import CLOCK, DB, DIRECTORY, PROCEDURES, SETTINGS
from postbox.mailbox.http import read_canonical
from postbox.mailbox.procedures.service import ProcedureService, Publish, procedure_not_found


def _render(value: Any, status: int = 200) -> web.Response:
    return web.Response(body=cj(value), status=status, content_type="application/json")


async def start(app: web.Application) -> None:
    app[PROCEDURES] = ProcedureService(app[DB], app[CLOCK], app[DIRECTORY])


async def publish(request: web.Request) -> web.Response:
    body, _ = await read_canonical(request, request.app[SETTINGS].max_json_bytes)
    published = await request.app[PROCEDURES].publish(
        principal(request), request.match_info["org"], Publish.from_json(body)
    )
    return _render(published.to_json(), status=201)


@public
async def list_procedures(request: web.Request) -> web.Response:
    items = await request.app[PROCEDURES].latest(request.match_info["org"])
    return _render({"procedures": items})


@public
async def get_procedure(request: web.Request) -> web.Response:
    version = int(request.match_info["version"])
    if version > MAX_SAFE_INTEGER:
        raise procedure_not_found()
    signed = await request.app[PROCEDURES].get(
        request.match_info["org"], request.match_info["procedure"], version
    )
    return _render(signed)


def setup_routes(app: web.Application) -> None:
    r = app.router
    r.add_post("/api/v1/orgs/{org}/procedures", publish)
    r.add_get("/api/v1/orgs/{org}/procedures", list_procedures)
    r.add_get("/api/v1/orgs/{org}/procedures/{procedure}/{version:[1-9][0-9]{0,15}}", get_procedure)
