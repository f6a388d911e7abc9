"""Default-deny access: every route needs a valid session unless its handler is ``@public``.

The auth feature installs a :data:`~postbox.mailbox.appkeys.TOKENS` verifier; the
middleware turns ``Authorization: Bearer <access token>`` into a :class:`Principal` stored
as ``request[PRINCIPAL]``. Handlers read it with :func:`principal`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar, cast

from aiohttp import web
from aiohttp.typedefs import Middleware

from postbox.mailbox.errors import Unauthorized
from postbox.mailbox.http import Handler

_PUBLIC = "__postbox_public__"
_SESSION_LATER = "__postbox_session_checked_by_service__"

H = TypeVar("H", bound=Callable[..., Awaitable[web.StreamResponse]])


@dataclass(frozen=True)
class Principal:
    """Who is calling: the account behind a verified access token."""

    account_id: str
    kind: str  # citizen | caseworker | connector | admin | operator
    org_id: str | None
    session_id: str
    token_id: str


PRINCIPAL = web.RequestKey("principal", Principal)


class TokenVerifier(Protocol):
    async def verify_access_token(self, token: str) -> Principal: ...

    def verify_token_only(self, token: str) -> Principal: ...


def public(handler: H) -> H:
    """Mark a route handler as reachable without a session."""
    setattr(handler, _PUBLIC, True)
    return handler


def session_checked_by_service(handler: H) -> H:
    """Mark a route whose service checks the caller's session itself, inside the write
    transaction that acts on the request (the send path's group commit: one query for a
    whole batch instead of one read per request). The middleware then checks only the
    token's signature, claims and expiry. A revoked session is refused exactly as before,
    and no later than the transaction that would act on it."""
    setattr(handler, _SESSION_LATER, True)
    return handler


def is_public(handler: object) -> bool:
    return bool(getattr(handler, _PUBLIC, False))


def principal(request: web.Request) -> Principal:
    try:
        return request[PRINCIPAL]
    except KeyError:  # pragma: no cover - the middleware guarantees it
        raise Unauthorized("no session") from None


def auth_middleware(verifier: Callable[[web.Application], TokenVerifier | None]) -> Middleware:
    """Require a valid access token on every non-public route (default deny)."""

    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        route_handler = request.match_info.handler
        if is_public(route_handler) or request.match_info.http_exception is not None:
            return await handler(request)
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("send Authorization: Bearer <access token>")
        tokens = verifier(request.app)
        if tokens is None:
            raise Unauthorized("sessions are not available")
        if getattr(route_handler, _SESSION_LATER, False):
            request[PRINCIPAL] = tokens.verify_token_only(token.strip())
        else:
            request[PRINCIPAL] = await tokens.verify_access_token(token.strip())
        return await handler(request)

    return cast(Middleware, authenticate)
