"""HTTP routes of login, sessions, ``/me`` and bundles; the feature's start-up.

Public: ``POST /api/v1/auth/challenge``, ``/auth/login``, ``/auth/refresh``. Everything else
needs a session (default deny). Request bodies are parsed into the commands of
:mod:`postbox.mailbox.auth.service`; bodies that carry a bundle (an AEAD object) must be
canonical JSON (PROTOCOL.md §1).
"""

from __future__ import annotations

from aiohttp import web

from postbox.mailbox.access import principal, public
from postbox.mailbox.accounts.service import AccountService
from postbox.mailbox.appkeys import ACCOUNTS, AUDIT, AUTH, CLOCK, DB, SECRETS, SETTINGS, TOKENS
from postbox.mailbox.audit.service import Audit
from postbox.mailbox.auth.commands import (
    BundleUpdate,
    Caller,
    ChallengeRequest,
    LoginRequest,
    PassphraseChange,
    RefreshRequest,
)
from postbox.mailbox.auth.ratelimit import client_address
from postbox.mailbox.auth.service import AuthService
from postbox.mailbox.auth.tokens import Tokens
from postbox.mailbox.http import read_canonical, read_json


async def start(app: web.Application) -> None:
    """Create the accounts, audit and auth services and install the token verifier."""
    settings, secrets = app[SETTINGS], app[SECRETS]
    accounts = AccountService(secrets)
    audit = Audit()
    tokens = Tokens(settings, secrets, app[DB], app[CLOCK])
    app[ACCOUNTS] = accounts
    app[AUDIT] = audit
    app[TOKENS] = tokens
    app[AUTH] = AuthService(
        settings=settings,
        secrets=secrets,
        db=app[DB],
        clock=app[CLOCK],
        accounts=accounts,
        audit=audit,
        tokens=tokens,
    )


def _caller(request: web.Request) -> Caller:
    address = client_address(
        request.remote,
        request.headers.get("X-Forwarded-For"),
        trusted_proxy=request.app[SETTINGS].trusted_proxy,
    )
    return Caller.of(address, request.headers.get("User-Agent"))


def _limit(request: web.Request) -> int:
    return request.app[SETTINGS].max_json_bytes


@public
async def post_challenge(request: web.Request) -> web.Response:
    req = ChallengeRequest.from_json(await read_json(request, _limit(request)))
    answer = await request.app[AUTH].challenge(req, _caller(request))
    return web.json_response(answer.to_json())


@public
async def post_login(request: web.Request) -> web.Response:
    req = LoginRequest.from_json(await read_json(request, _limit(request)))
    grant = await request.app[AUTH].login(req, _caller(request))
    return web.json_response(grant.to_json(with_rekey=True))


@public
async def post_refresh(request: web.Request) -> web.Response:
    req = RefreshRequest.from_json(await read_json(request, _limit(request)))
    grant = await request.app[AUTH].refresh(req, _caller(request))
    return web.json_response(grant.to_json(with_rekey=False))


async def post_logout(request: web.Request) -> web.Response:
    await request.app[AUTH].logout(principal(request))
    return web.Response(status=204)


async def get_sessions(request: web.Request) -> web.Response:
    views = await request.app[AUTH].sessions(principal(request))
    return web.json_response({"sessions": [v.to_json() for v in views]})


async def delete_session(request: web.Request) -> web.Response:
    await request.app[AUTH].revoke_session(principal(request), request.match_info["id"])
    return web.Response(status=204)


async def get_me(request: web.Request) -> web.Response:
    me = await request.app[AUTH].me(principal(request))
    return web.json_response(me.to_json())


async def get_bundle(request: web.Request) -> web.Response:
    bundle = await request.app[AUTH].bundle(principal(request), request.match_info["kind"])
    return web.json_response({"bundle": bundle})


async def put_bundle(request: web.Request) -> web.Response:
    body, _ = await read_canonical(request, _limit(request))
    req = BundleUpdate.from_json(body)
    gen = await request.app[AUTH].put_bundle(principal(request), request.match_info["kind"], req)
    return web.json_response({"gen": gen})


async def post_passphrase(request: web.Request) -> web.Response:
    body, _ = await read_canonical(request, _limit(request))
    req = PassphraseChange.from_json(body)
    done = await request.app[AUTH].change_passphrase(principal(request), req, _caller(request))
    return web.json_response(done.to_json())


def setup_routes(app: web.Application) -> None:
    r = app.router
    r.add_post("/api/v1/auth/challenge", post_challenge)
    r.add_post("/api/v1/auth/login", post_login)
    r.add_post("/api/v1/auth/refresh", post_refresh)
    r.add_post("/api/v1/auth/logout", post_logout)
    r.add_get("/api/v1/sessions", get_sessions)
    r.add_delete("/api/v1/sessions/{id}", delete_session)
    r.add_get("/api/v1/me", get_me)
    r.add_get("/api/v1/me/bundles/{kind}", get_bundle)
    r.add_put("/api/v1/me/bundles/{kind}", put_bundle)
    r.add_post("/api/v1/me/passphrase", post_passphrase)
