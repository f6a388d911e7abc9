"""The HTTP edge of the client: JSON requests over one aiohttp session, problems as errors.

Request bodies are always sent as canonical JSON (``cj``): the server accepts signed
objects only in canonical form, and canonical JSON is valid JSON everywhere else. Answers
are parsed strictly (UTF-8, no duplicate names, integers only); a non-2xx answer becomes a
typed :class:`~postbox.client.errors.ServerProblem`, a broken connection a
:class:`~postbox.client.errors.TransportError`. Tokens are passed in per request; this
module knows nothing about sessions or pins (see :mod:`postbox.client.session`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote, urlsplit

import aiohttp

from postbox import __version__
from postbox.client.errors import (
    ProtocolViolation,
    TransportError,
    UsageError,
    problem_error,
)
from postbox.crypto.encoding import cj, parse_json
from postbox.crypto.errors import CryptoError
from postbox.crypto.login import check_origin

DEFAULT_TIMEOUT_S: Final = 60.0
#: the largest answer the client reads (a keys response of a long chain, a page of leaves)
MAX_RESPONSE_BYTES: Final = 16 * 1024 * 1024
USER_AGENT: Final = f"postbox-client/{__version__}"
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


def origin_of(url: str) -> str:
    """The RFC 6454 ASCII origin of ``url`` (what login signatures bind), checked.

    Scheme and host lower-case, the port only when it is not the scheme's default, no
    path. Raises :class:`UsageError` for anything that is not an http(s) URL.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise UsageError(f"not an http(s) server URL: {url!r}")
    host = parts.hostname.lower()
    try:
        if isinstance(ipaddress.ip_address(host), ipaddress.IPv6Address):
            host = f"[{host}]"
    except ValueError:
        host = host.encode("idna").decode("ascii") if not host.isascii() else host
    try:
        port = parts.port
    except ValueError as exc:
        raise UsageError(f"bad port in {url!r}") from exc
    origin = f"{scheme}://{host}"
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        origin += f":{port}"
    try:
        return check_origin(origin)
    except CryptoError as exc:
        raise UsageError(f"not a usable server origin: {origin!r} ({exc})") from exc


def segment(value: str) -> str:
    """One path segment, percent-encoded (ids are b64url, but never trust that)."""
    return quote(value, safe="")


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any
    headers: Mapping[str, str]


async def read_capped(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    """The whole body, or ``limit + 1`` bytes if it is longer (so callers can refuse it).

    ``StreamReader.read(n)`` returns only what has arrived so far; read to the end.
    """
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(64 * 1024):
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            break
    return b"".join(chunks)[: limit + 1]


class Transport:
    """JSON over HTTP to one server (``base_url`` may carry a path prefix)."""

    def __init__(
        self,
        base_url: str,
        *,
        http: aiohttp.ClientSession | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.origin = origin_of(base_url)
        self.base_url = base_url.rstrip("/")
        self._own = http is None
        self._http = http
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None:
            self._http = aiohttp.ClientSession(
                timeout=self._timeout, headers={"User-Agent": USER_AGENT}
            )
        return self._http

    async def close(self) -> None:
        if self._own and self._http is not None:
            await self._http.close()
        self._http = None

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        token: str | None = None,
        params: Mapping[str, str | int] | None = None,
    ) -> Answer:
        """Send one request; a 2xx answer's parsed JSON (``None`` if empty), else raise."""
        headers = {"Accept": "application/json, application/problem+json"}
        data: bytes | None = None
        if body is not None:
            try:
                data = cj(body)
            except CryptoError as exc:
                raise UsageError(f"request body is not canonical JSON: {exc}") from exc
            headers["Content-Type"] = "application/json"
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        url = self.base_url + path
        query = None if params is None else {k: str(v) for k, v in params.items()}
        try:
            async with self._session().request(
                method, url, data=data, headers=headers, params=query, allow_redirects=False
            ) as resp:
                raw = await read_capped(resp, MAX_RESPONSE_BYTES)
                status, resp_headers = resp.status, dict(resp.headers)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransportError(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
        if len(raw) > MAX_RESPONSE_BYTES:
            raise ProtocolViolation(f"{method} {path}: answer larger than {MAX_RESPONSE_BYTES}")
        parsed: Any = None
        if raw:
            try:
                parsed = parse_json(raw)
            except CryptoError as exc:
                if status < 400:
                    raise ProtocolViolation(f"{method} {path}: answer is not JSON") from exc
        if status >= 400 or status < 200:
            raise problem_error(status, parsed, resp_headers.get("Retry-After"))
        if status >= 300:
            raise ProtocolViolation(f"{method} {path}: unexpected redirect ({status})")
        return Answer(status, parsed, resp_headers)
