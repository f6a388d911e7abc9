"""The HTTP edge: origins, problem JSON to typed errors."""

from __future__ import annotations

import pytest

from postbox.client.errors import (
    BadRequestError,
    ConflictError,
    NotFoundError,
    RateLimitedError,
    ServerFailure,
    ServerProblem,
    UsageError,
    problem_error,
)
from postbox.client.http import origin_of


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://Postbox.Example/", "https://postbox.example"),
        ("https://postbox.example:443/api", "https://postbox.example"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://[::1]:8080/x", "http://[::1]:8080"),
    ],
)
def test_origin_of(url: str, origin: str) -> None:
    assert origin_of(url) == origin


@pytest.mark.parametrize("url", ["ftp://x.example", "postbox.example", "http://:80"])
def test_origin_of_refuses(url: str) -> None:
    with pytest.raises(UsageError):
        origin_of(url)


def test_problems_become_typed_errors() -> None:
    err = problem_error(
        409,
        {"type": "urn:postbox:problem:login-taken", "status": 409, "detail": "taken", "gen": 4},
    )
    assert isinstance(err, ConflictError)
    assert (err.status, err.code, err.detail, err.extra["gen"]) == (409, "login-taken", "taken", 4)
    limited = problem_error(429, {"type": "urn:postbox:problem:rate-limited"}, "17")
    assert isinstance(limited, RateLimitedError) and limited.retry_after == 17
    assert problem_error(429, {"retry_after": 3}).retry_after == 3
    assert isinstance(problem_error(404, None), NotFoundError)
    assert isinstance(problem_error(400, "garbage"), BadRequestError)
    assert isinstance(problem_error(502, None), ServerFailure)
    odd = problem_error(418, {})
    assert type(odd) is ServerProblem and odd.status == 418
    assert odd.to_json()["status"] == 418
