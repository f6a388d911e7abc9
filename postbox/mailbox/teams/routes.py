"""HTTP routes of team mailboxes: parse, authenticate, call one service method, render."""

from __future__ import annotations

from aiohttp import web

from postbox.mailbox.access import principal
from postbox.mailbox.appkeys import SETTINGS, TEAMS
from postbox.mailbox.http import read_canonical
from postbox.mailbox.teams.service import AddMember, RemoveMember, SetTeamKey


async def get_team(request: web.Request) -> web.Response:
    team = await request.app[TEAMS].get(principal(request), request.match_info["team"])
    return web.json_response(team.to_json())


async def set_key(request: web.Request) -> web.Response:
    body, _ = await read_canonical(request, request.app[SETTINGS].max_json_bytes)
    team = await request.app[TEAMS].set_key(
        principal(request), request.match_info["team"], SetTeamKey.from_json(body)
    )
    return web.json_response(team.to_json(), status=201)


async def add_member(request: web.Request) -> web.Response:
    body, _ = await read_canonical(request, request.app[SETTINGS].max_json_bytes)
    team = await request.app[TEAMS].add_member(
        principal(request), request.match_info["team"], AddMember.from_json(body)
    )
    return web.json_response(team.to_json(), status=201)


async def remove_member(request: web.Request) -> web.Response:
    body, _ = await read_canonical(request, request.app[SETTINGS].max_json_bytes)
    team = await request.app[TEAMS].remove_member(
        principal(request),
        request.match_info["team"],
        request.match_info["member"],
        RemoveMember.from_json(body),
    )
    return web.json_response(team.to_json())


async def my_wraps(request: web.Request) -> web.Response:
    wraps = await request.app[TEAMS].my_wraps(principal(request), request.match_info["team"])
    return web.json_response({"wraps": wraps})


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/teams/{team}", get_team)
    app.router.add_post("/api/v1/teams/{team}/key", set_key)
    app.router.add_post("/api/v1/teams/{team}/members", add_member)
    app.router.add_delete("/api/v1/teams/{team}/members/{member}", remove_member)
    app.router.add_get("/api/v1/teams/{team}/wraps", my_wraps)
