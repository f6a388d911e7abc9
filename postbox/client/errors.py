"""One error tree for everything the client library raises.

Every failure is a :class:`ClientError`. Problems the server answered (RFC 9457 problem
JSON) become :class:`ServerProblem` subclasses chosen by HTTP status, carrying ``status``,
the stable ``code`` (the last segment of the problem ``type``), ``detail`` and, for 429,
``retry_after`` in seconds. Problems the *client* found — a server whose pinned keys
changed, a key chain that does not verify, a foreign key in the owner's own chain — have
their own classes, because they are alarms, not ordinary errors: callers must show them
loudly and never retry them away.

A :class:`VerificationFailed` wraps the crypto core's error; its ``code`` is the crypto
error name (``BadProof``, ``ForkDetected``, ``IdentityChanged``…), so that tests and the
desk can tell what was caught.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from postbox.crypto.errors import CryptoError

PROBLEM_PREFIX: Final = "urn:postbox:problem:"


class ClientError(Exception):
    """Base of every error the client raises."""

    status: int | None = None
    default_code: str = "client-error"

    def __init__(
        self,
        detail: str = "",
        *,
        code: str | None = None,
        status: int | None = None,
        retry_after: int | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail or self.default_code)
        self.detail = detail or self.default_code
        self.code = code or self.default_code
        if status is not None:
            self.status = status
        self.retry_after = retry_after
        self.extra: dict[str, Any] = dict(extra or {})

    def to_json(self) -> dict[str, Any]:
        """What the desk prints with ``--json``."""
        out: dict[str, Any] = {
            "error": type(self).__name__,
            "code": self.code,
            "detail": self.detail,
        }
        if self.status is not None:
            out["status"] = self.status
        if self.retry_after is not None:
            out["retry_after"] = self.retry_after
        return out


# --- what the server answered --------------------------------------------------------------
class ServerProblem(ClientError):
    """The server refused the request with a problem response."""

    default_code = "problem"


class BadRequestError(ServerProblem):
    status = 400
    default_code = "bad-request"


class UnauthorizedError(ServerProblem):
    status = 401
    default_code = "unauthorized"


class ForbiddenError(ServerProblem):
    status = 403
    default_code = "forbidden"


class NotFoundError(ServerProblem):
    status = 404
    default_code = "not-found"


class ConflictError(ServerProblem):
    status = 409
    default_code = "conflict"


class GoneError(ServerProblem):
    status = 410
    default_code = "gone"


class TooLargeError(ServerProblem):
    status = 413
    default_code = "too-large"


class RateLimitedError(ServerProblem):
    status = 429
    default_code = "rate-limited"


class ServerFailure(ServerProblem):
    """5xx: the server failed; safe requests may be retried later."""

    status = 500
    default_code = "internal"


_BY_STATUS: Final[Mapping[int, type[ServerProblem]]] = {
    400: BadRequestError,
    401: UnauthorizedError,
    403: ForbiddenError,
    404: NotFoundError,
    409: ConflictError,
    410: GoneError,
    413: TooLargeError,
    422: BadRequestError,
    429: RateLimitedError,
}


def problem_error(status: int, body: Any, retry_after_header: str | None = None) -> ServerProblem:
    """The typed error for a non-2xx answer (``body`` = parsed problem JSON, or anything)."""
    cls = _BY_STATUS.get(status, ServerFailure if status >= 500 else ServerProblem)
    problem = body if isinstance(body, dict) else {}
    type_uri = problem.get("type")
    code = None
    if isinstance(type_uri, str) and type_uri.startswith(PROBLEM_PREFIX):
        code = type_uri[len(PROBLEM_PREFIX) :]
    detail = problem.get("detail")
    retry_after = _retry_after(problem.get("retry_after"), retry_after_header)
    known = {"type", "title", "status", "detail", "instance", "request_id", "retry_after"}
    extra = {k: v for k, v in problem.items() if k not in known}
    if isinstance(problem.get("request_id"), str):
        extra["request_id"] = problem["request_id"]
    return cls(
        detail if isinstance(detail, str) else f"HTTP {status}",
        code=code or cls.default_code,
        status=status,
        retry_after=retry_after,
        extra=extra,
    )


def _retry_after(member: Any, header: str | None) -> int | None:
    if isinstance(member, int) and not isinstance(member, bool) and member >= 0:
        return member
    if header is not None and header.strip().isdigit():
        return int(header.strip())
    return None


# --- what the client found ------------------------------------------------------------------
class TransportError(ClientError):
    """The server could not be reached or the connection broke."""

    default_code = "transport"


class ProtocolViolation(ClientError):
    """The server answered something the API does not allow (wrong shape, not JSON)."""

    default_code = "protocol-violation"


class PinMismatch(ClientError):
    """The server's origin, log key or receipt key differ from the pinned ones.

    This is what a server swap or a man in the middle looks like. Never continue.
    """

    default_code = "pin-mismatch"


class VerificationFailed(ClientError):
    """A signature, proof, chain or certificate did not verify (``code`` = crypto error)."""

    default_code = "verification-failed"

    def __init__(self, what: str, cause: CryptoError) -> None:
        super().__init__(f"{what}: {type(cause).__name__}: {cause}", code=type(cause).__name__)
        self.cause = cause


class KeyMismatch(ClientError):
    """The keys the directory publishes for this account are not the ones it holds."""

    default_code = "key-mismatch"


class KeyAlarm(ClientError):
    """Something signed or wrapped does not fit the log (what a key substitution looks like)."""

    default_code = "key-alarm"


class FingerprintMismatch(ClientError):
    """A fingerprint the user gave (from paper or a phone call) does not match the key."""

    default_code = "fingerprint-mismatch"


class NotLoggedIn(ClientError):
    """The operation needs a session (or the opened key bundle) and there is none."""

    default_code = "not-logged-in"


class StateError(ClientError):
    """The local state file is unusable (unreadable, wrong permissions, wrong format)."""

    default_code = "state"


class UsageError(ClientError):
    """The caller asked for something impossible (bad argument, wrong role)."""

    default_code = "usage"
