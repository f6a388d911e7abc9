"""The server's one error tree, rendered as RFC 9457 problem JSON by one middleware.

Services raise these; they never build HTTP responses. Every problem has a stable ``code``
(the last segment of its ``type`` URI) that clients and tests match on, a human ``title``
and a ``detail`` that never contains plaintext, secrets or whether another account exists.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

PROBLEM_BASE = "urn:postbox:problem:"


class PostboxError(Exception):
    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal server error"
    default_code: ClassVar[str] = "internal"

    def __init__(
        self,
        detail: str = "",
        *,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.code = code or self.default_code
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})

    def problem(self, instance: str, request_id: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": PROBLEM_BASE + self.code,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "instance": instance,
            "request_id": request_id,
        }
        body.update(self.extra)
        return body


class BadRequest(PostboxError):
    status = 400
    title = "Bad request"
    default_code = "bad-request"


class Unauthorized(PostboxError):
    status = 401
    title = "Authentication required"
    default_code = "unauthorized"

    def __init__(self, detail: str = "", **kw: Any) -> None:
        kw.setdefault("headers", {"WWW-Authenticate": 'Bearer realm="postbox"'})
        super().__init__(detail, **kw)


class Forbidden(PostboxError):
    status = 403
    title = "Forbidden"
    default_code = "forbidden"


class NotFound(PostboxError):
    status = 404
    title = "Not found"
    default_code = "not-found"


class MethodNotAllowed(PostboxError):
    status = 405
    title = "Method not allowed"
    default_code = "method-not-allowed"


class Conflict(PostboxError):
    status = 409
    title = "Conflict"
    default_code = "conflict"


class Gone(PostboxError):
    status = 410
    title = "Gone"
    default_code = "gone"


class TooLarge(PostboxError):
    status = 413
    title = "Request body too large"
    default_code = "too-large"


class UnsupportedMediaType(PostboxError):
    status = 415
    title = "Unsupported media type"
    default_code = "unsupported-media-type"


class Unprocessable(PostboxError):
    status = 422
    title = "Unprocessable content"
    default_code = "unprocessable"


class RateLimited(PostboxError):
    status = 429
    title = "Too many requests"
    default_code = "rate-limited"

    def __init__(self, retry_after_s: int, detail: str = "", **kw: Any) -> None:
        retry = max(1, int(retry_after_s))
        kw.setdefault("headers", {"Retry-After": str(retry)})
        kw.setdefault("extra", {"retry_after": retry})
        super().__init__(detail or "Too many attempts; try again later", **kw)


class ServiceUnavailable(PostboxError):
    status = 503
    title = "Service unavailable"
    default_code = "unavailable"
