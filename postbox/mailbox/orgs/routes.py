"""HTTP routes of organisations, and the entry of the orgs feature (orgs, teams, invitations).

:func:`start` builds the three services on top of the key log, the accounts and the audit
log; :func:`setup_routes` adds the routes of all three packages. The operator CLI
(:mod:`postbox.admin`) runs the same ``create_app`` start-up, so it uses these same
service objects.
"""

from __future__ import annotations

from aiohttp import web

from postbox.mailbox.access import principal
from postbox.mailbox.appkeys import (
    ACCOUNTS,
    AUDIT,
    CLOCK,
    DB,
    INVITATIONS,
    KEYLOG,
    ORGS,
    SECRETS,
    SETTINGS,
    TEAMS,
)
from postbox.mailbox.http import read_canonical, read_json
from postbox.mailbox.invitations import routes as invitation_routes
from postbox.mailbox.invitations.service import InvitationService
from postbox.mailbox.orgs.service import Certify, OrgChange, OrgService, RegisterRoot
from postbox.mailbox.teams import routes as team_routes
from postbox.mailbox.teams.service import NewTeam, TeamService


async def start(app: web.Application) -> None:
    """Create the org, team and invitation services (after keys and auth have started)."""
    db, clock, keylog = app[DB], app[CLOCK], app[KEYLOG]
    accounts, audit = app[ACCOUNTS], app[AUDIT]
    app[ORGS] = OrgService(db, clock, keylog=keylog, accounts=accounts, audit=audit)
    app[TEAMS] = TeamService(db, clock, keylog=keylog, accounts=accounts, audit=audit)
    app[INVITATIONS] = InvitationService(
        db, clock, keylog=keylog, accounts=accounts, audit=audit, pepper=app[SECRETS].pepper
    )


async def get_org(request: web.Request) -> web.Response:
    org = await request.app[ORGS].get(principal(request), request.match_info["org"])
    return web.json_response(org.to_json())


async def patch_org(request: web.Request) -> web.Response:
    body = await read_json(request, request.app[SETTINGS].max_json_bytes)
    org = await request.app[ORGS].change(
        principal(request), request.match_info["org"], OrgChange.from_json(body)
    )
    return web.json_response(org.to_json())


async def register_root(request: web.Request) -> web.Response:
    body, _ = await read_canonical(request, request.app[SETTINGS].max_json_bytes)
    org = await request.app[ORGS].register_root(
        principal(request), request.match_info["org"], RegisterRoot.from_json(body)
    )
    return web.json_response(org.to_json(), status=201)


async def pending(request: web.Request) -> web.Response:
    items = await request.app[ORGS].pending(principal(request), request.match_info["org"])
    return web.json_response({"pending": list(items)})


async def certify(request: web.Request) -> web.Response:
    body, _ = await read_canonical(request, request.app[SETTINGS].max_json_bytes)
    result = await request.app[ORGS].certify(
        principal(request), request.match_info["org"], Certify.from_json(body)
    )
    return web.json_response(result, status=201)


async def create_team(request: web.Request) -> web.Response:
    body = await read_json(request, request.app[SETTINGS].max_json_bytes)
    team = await request.app[TEAMS].create(
        principal(request), request.match_info["org"], NewTeam.from_json(body)
    )
    return web.json_response(team.to_json(), status=201)


async def list_teams(request: web.Request) -> web.Response:
    teams = await request.app[TEAMS].of_org(principal(request), request.match_info["org"])
    return web.json_response({"teams": [t.to_json() for t in teams]})


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/orgs/{org}", get_org)
    app.router.add_patch("/api/v1/orgs/{org}", patch_org)
    app.router.add_post("/api/v1/orgs/{org}/root", register_root)
    app.router.add_get("/api/v1/orgs/{org}/pending", pending)
    app.router.add_post("/api/v1/orgs/{org}/certify", certify)
    app.router.add_post("/api/v1/orgs/{org}/teams", create_team)
    app.router.add_get("/api/v1/orgs/{org}/teams", list_teams)
    team_routes.setup_routes(app)
    invitation_routes.setup_routes(app)
