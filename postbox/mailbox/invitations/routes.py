"""HTTP routes of invitations, activation and self-registration."""

from __future__ import annotations

from aiohttp import web

from postbox.mailbox.access import principal, public
from postbox.mailbox.appkeys import INVITATIONS, SETTINGS
from postbox.mailbox.http import read_canonical, read_json
from postbox.mailbox.invitations.service import Activate, Lookup, NewInvitation, Register


async def create_invitation(request: web.Request) -> web.Response:
    body = await read_json(request, request.app[SETTINGS].max_json_bytes)
    invitation = await request.app[INVITATIONS].create(
        principal(request), NewInvitation.from_json(body)
    )
    return web.json_response(invitation.to_json(), status=201)


async def get_invitation(request: web.Request) -> web.Response:
    invitation = await request.app[INVITATIONS].get(principal(request), request.match_info["id"])
    return web.json_response(invitation.to_json())


async def mark_verified(request: web.Request) -> web.Response:
    invitation = await request.app[INVITATIONS].mark_verified(
        principal(request), request.match_info["id"]
    )
    return web.json_response(invitation.to_json())


@public
async def lookup(request: web.Request) -> web.Response:
    # POST, so that the authoriser stays out of URLs and access logs
    body = await read_json(request, request.app[SETTINGS].max_json_bytes)
    found = await request.app[INVITATIONS].lookup(Lookup.from_json(body))
    return web.json_response(found.to_json())


@public
async def activate(request: web.Request) -> web.Response:
    body, _ = await read_canonical(request, request.app[SETTINGS].max_json_bytes)
    done = await request.app[INVITATIONS].activate(Activate.from_json(body))
    return web.json_response(done.to_json(), status=201)


@public
async def register(request: web.Request) -> web.Response:
    body, _ = await read_canonical(request, request.app[SETTINGS].max_json_bytes)
    done = await request.app[INVITATIONS].register(Register.from_json(body))
    return web.json_response(done.to_json(), status=201)


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/invitations", create_invitation)
    app.router.add_get("/api/v1/invitations/{id}", get_invitation)
    app.router.add_post("/api/v1/invitations/{id}/verified", mark_verified)
    app.router.add_post("/api/v1/activation/lookup", lookup)
    app.router.add_post("/api/v1/activation", activate)
    app.router.add_post("/api/v1/registration", register)
