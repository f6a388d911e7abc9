"""The edge of the server: request ids, problem responses, security headers, body parsing.

Bodies are size-checked before they are read (``Content-Length``) and while they are read
(chunked uploads), decoded as strict UTF-8 JSON, and — for anything signed or hashed —
accepted only if canonical (PROTOCOL.md §1). Handlers get plain values or typed records,
never raw requests bodies: the features' commands (``from_json``) check the closed shape of
a body with :func:`check_shape`, so every feature answers a malformed body the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, cast

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Middleware
from aiohttp.web_protocol import RequestPayloadError

from postbox.crypto import shapes
from postbox.crypto.encoding import b64e, parse_canonical, parse_json
from postbox.crypto.errors import CryptoError
from postbox.crypto.primitives import random_bytes
from postbox.mailbox.errors import (
    BadRequest,
    MethodNotAllowed,
    NotFound,
    PostboxError,
    TooLarge,
    UnsupportedMediaType,
)

log = logging.getLogger("postbox.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
REQUEST_ID = web.RequestKey("request_id", str)

API_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
    "Cache-Control": "no-store",
}


def problem_response(error: PostboxError, request: web.Request) -> web.Response:
    body = error.problem(request.path, request.get(REQUEST_ID, "-"))
    response = web.json_response(body, status=error.status, content_type="application/problem+json")
    response.headers.update(error.headers)
    return response


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Request ids, and every failure as RFC 9457 problem JSON."""
    request_id = b64e(random_bytes(9))
    request[REQUEST_ID] = request_id
    try:
        response = await handler(request)
    except PostboxError as exc:
        response = problem_response(exc, request)
    except web.HTTPNotFound:
        response = problem_response(NotFound("no such route"), request)
    except web.HTTPMethodNotAllowed as exc:
        error = MethodNotAllowed(f"{request.method} is not allowed here")
        error.headers["Allow"] = ", ".join(sorted(exc.allowed_methods))
        response = problem_response(error, request)
    except web.HTTPRequestEntityTooLarge:
        response = problem_response(TooLarge("request body too large"), request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = problem_response(_generic(exc.status, exc.reason), request)
    except Exception:
        log.exception(
            "unhandled error (request %s %s %s)", request_id, request.method, request.path
        )
        response = problem_response(PostboxError("an internal error occurred"), request)
    response.headers["X-Request-Id"] = request_id
    return response


def _generic(status: int, reason: str) -> PostboxError:
    error = PostboxError(reason, code=f"http-{status}")
    error.status = status  # type: ignore[misc]
    return error


def security_headers_middleware(hsts: bool) -> Middleware:
    @web.middleware
    async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        for name, value in API_SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if hsts:
            response.headers.setdefault("Strict-Transport-Security", "max-age=63072000")
        return response

    return cast(Middleware, security_headers)


# --- bodies --------------------------------------------------------------------------------
async def read_body(request: web.Request, limit: int) -> bytes:
    """The raw body, refusing more than ``limit`` bytes before and while reading."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise TooLarge(f"request body over {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.content.iter_chunked(64 * 1024):
            size += len(chunk)
            if size > limit:
                raise TooLarge(f"request body over {limit} bytes")
            chunks.append(chunk)
    except (RequestPayloadError, HttpProcessingError) as exc:
        # e.g. a body that does not decode under its Content-Encoding, or is cut short
        raise BadRequest("the request body could not be read", code="unreadable-body") from exc
    return b"".join(chunks)


def _check_json_type(request: web.Request) -> None:
    if request.content_type != "application/json":
        raise UnsupportedMediaType("send application/json")


async def read_json(request: web.Request, limit: int) -> Any:
    """A strict JSON body (UTF-8, no duplicate names, integers only)."""
    _check_json_type(request)
    body = await read_body(request, limit)
    try:
        return parse_json(body)
    except CryptoError as exc:
        raise BadRequest(str(exc), code="malformed-json") from exc


async def read_canonical(request: web.Request, limit: int) -> tuple[Any, bytes]:
    """A canonical JSON body (PROTOCOL.md §1) and its exact bytes."""
    _check_json_type(request)
    body = await read_body(request, limit)
    try:
        return parse_canonical(body), body
    except CryptoError as exc:
        raise BadRequest(str(exc), code="non-canonical") from exc


# --- commands --------------------------------------------------------------------------------
def malformed(detail: str) -> BadRequest:
    """A body that is not what the route takes: 400 ``malformed``."""
    return BadRequest(detail, code="malformed")


def check_shape(shape: shapes.Shape, value: Any, what: str) -> None:
    """A closed request object; anything unexpected is ``malformed``."""
    try:
        shapes.check(shape, value, what)
    except CryptoError as exc:
        raise malformed(str(exc)) from exc


def one_object(body: Any, member: str) -> dict[str, Any]:
    """The object in a body of exactly ``{member: {...}}`` (a signed object the service
    verifies); anything else is ``malformed``."""
    check_shape(shapes.obj({member: shapes.free_object}), body, "body")
    return cast(dict[str, Any], body[member])
