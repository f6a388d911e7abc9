"""A connection to one Postbox server: pins, tokens, and authenticated calls.

On first contact the client reads ``GET /api/v1/server`` and pins its origin, log key and
receipt key in the state file (trust on first use), unless the caller passes explicit
:class:`Pins` (from a configuration the organisation handed out, or from paper). Every later
contact compares: a server whose pins changed is refused with :class:`PinMismatch`, loudly,
before anything else is sent. The origin the server announces must be the origin of the
URL the client talks to, because login signatures bind that origin.

Authenticated calls carry the access token; an expired one (or a 401) is refreshed once with
the refresh token, under a lock so that concurrent calls never present the same refresh
token twice (the server treats reuse as theft and revokes the session).
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import aiohttp

from postbox.client.errors import (
    ClientError,
    NotLoggedIn,
    PinMismatch,
    ProtocolViolation,
    ServerProblem,
    UnauthorizedError,
)
from postbox.client.http import Transport
from postbox.client.state import ClientState, StateStore, Tokens
from postbox.crypto.bundle import check_params
from postbox.crypto.encoding import KEY_BYTES, b64d, b64e
from postbox.crypto.errors import CryptoError
from postbox.crypto.primitives import check_sign_pk, equal

Clock = Callable[[], int]
#: refresh the access token when it has less than this left
REFRESH_MARGIN_MS: Final = 30_000


def wall_clock() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class Pins:
    """What a client trusts a server by: its log key and receipt key (and origin)."""

    log_pk: bytes
    receipt_pk: bytes
    origin: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "origin": self.origin,
            "log_pk": b64e(self.log_pk),
            "receipt_pk": b64e(self.receipt_pk),
        }

    @classmethod
    def from_b64(cls, log_pk: str, receipt_pk: str, origin: str | None = None) -> Pins:
        return cls(b64d(log_pk, KEY_BYTES), b64d(receipt_pk, KEY_BYTES), origin)


@dataclass(frozen=True)
class ServerInfo:
    """``GET /api/v1/server``, checked."""

    origin: str
    version: str
    log_pk: bytes
    receipt_pk: bytes
    ops: int
    mem: int
    json_bytes: int
    message_bytes: int
    blob_bytes: int
    part_bytes: int
    quota_bytes: int

    @classmethod
    def from_json(cls, value: Any) -> ServerInfo:
        try:
            argon2, limits = value["argon2"], value["limits"]
            info = cls(
                origin=_need_str(value["origin"]),
                version=_need_str(value["version"]),
                log_pk=b64d(value["log_pk"], KEY_BYTES),
                receipt_pk=b64d(value["receipt_pk"], KEY_BYTES),
                ops=_need_int(argon2["ops"]),
                mem=_need_int(argon2["mem"]),
                json_bytes=_need_int(limits["json_bytes"]),
                message_bytes=_need_int(limits["message_bytes"]),
                blob_bytes=_need_int(limits["blob_bytes"]),
                part_bytes=_need_int(limits["part_bytes"]),
                quota_bytes=_need_int(limits["quota_bytes"]),
            )
            check_sign_pk(info.log_pk)
            check_sign_pk(info.receipt_pk)
            check_params(info.ops, info.mem)
        except (KeyError, TypeError, ValueError, CryptoError) as exc:
            raise ProtocolViolation(f"GET /api/v1/server: unexpected answer ({exc})") from exc
        return info


def _need_str(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("expected a string")
    return value


def _need_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("expected an integer")
    return int(value)


def token_claims(token: str) -> dict[str, Any]:
    """The unverified claims of a JWT (only for display, e.g. which session is ours)."""
    try:
        part = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (IndexError, ValueError):
        return {}
    return claims if isinstance(claims, dict) else {}


class Session:
    """Transport + state file + pins + tokens for one server and one login name."""

    def __init__(
        self,
        url: str,
        *,
        store: StateStore,
        login: str | None = None,
        pins: Pins | None = None,
        clock: Clock = wall_clock,
        http: aiohttp.ClientSession | None = None,
    ) -> None:
        self.transport = Transport(url, http=http)
        self.origin = self.transport.origin
        self.store = store
        self.clock = clock
        self.explicit_pins = pins
        self.state: ClientState = store.load(self.origin, login)
        self._info: ServerInfo | None = None
        self._refresh_lock = asyncio.Lock()
        #: True when this session pinned the server for the first time (trust on first use)
        self.first_contact = False

    async def close(self) -> None:
        await self.transport.close()

    def save(self) -> None:
        self.store.save(self.state)

    # --- pins ----------------------------------------------------------------------------
    @property
    def log_pk(self) -> bytes:
        if self.state.log_pk is None:
            raise PinMismatch("the server is not pinned yet")
        return b64d(self.state.log_pk, KEY_BYTES)

    @property
    def receipt_pk(self) -> bytes:
        if self.state.receipt_pk is None:
            raise PinMismatch("the server is not pinned yet")
        return b64d(self.state.receipt_pk, KEY_BYTES)

    async def server(self) -> ServerInfo:
        """``GET /api/v1/server``, compared with (or, the first time, stored as) the pins."""
        if self._info is not None:
            return self._info
        answer = await self.transport.request("GET", "/api/v1/server")
        info = ServerInfo.from_json(answer.body)
        if info.origin != self.origin:
            raise PinMismatch(
                f"the server says its origin is {info.origin}, but this client talks to "
                f"{self.origin}: login signatures would not match; use the server's own URL"
            )
        self._check_pins(info)
        self._info = info
        return info

    def _check_pins(self, info: ServerInfo) -> None:
        st = self.state
        stored = None
        if st.log_pk is not None and st.receipt_pk is not None:
            stored = Pins.from_b64(st.log_pk, st.receipt_pk, st.origin)
        given = self.explicit_pins
        if given is not None and given.origin is not None and given.origin != self.origin:
            raise PinMismatch(f"pins are for {given.origin}, not {self.origin}")
        if given is not None and stored is not None and not _same(given, stored):
            raise PinMismatch(
                "the pins given differ from the ones stored for this server: refusing "
                f"(state file {self.store.path_for(st.origin, st.login)})"
            )
        expected = given or stored
        if expected is not None:
            if not _same(expected, Pins(info.log_pk, info.receipt_pk)):
                raise PinMismatch(
                    f"SERVER KEYS CHANGED for {self.origin}: the log key or the receipt key "
                    "is not the pinned one. This is what a server swap or an attack looks "
                    "like; do not continue. Ask the operator before trusting the new keys."
                )
        else:
            self.first_contact = True
        if stored is None:
            st.log_pk, st.receipt_pk = b64e(info.log_pk), b64e(info.receipt_pk)
            self.save()

    def inherit_trust(self, other: ClientState) -> None:
        """Take pins and verified views from another login's state on the same server.

        Used when a client that talked anonymously (or as another login) starts using a
        login name. Conflicting pins raise :class:`PinMismatch`.
        """
        st = self.state
        if other.origin != st.origin:
            raise PinMismatch("cannot inherit trust from another server")
        if other.log_pk is not None and other.receipt_pk is not None:
            if st.log_pk is not None and (st.log_pk, st.receipt_pk) != (
                other.log_pk,
                other.receipt_pk,
            ):
                raise PinMismatch("the two state files pin different server keys")
            st.log_pk, st.receipt_pk = other.log_pk, other.receipt_pk
            st.server_checked = st.server_checked or other.server_checked
        if st.sth is None or (other.sth is not None and other.sth["size"] > st.sth["size"]):
            st.sth = other.sth
        for name in ("chains", "org_roots", "identities", "verified"):
            mine, theirs = getattr(st, name), getattr(other, name)
            for key, value in theirs.items():
                mine.setdefault(key, value)

    def use_login(self, login: str) -> None:
        """Switch this session to ``login``'s state file, keeping what was learnt so far."""
        if self.state.login == login:
            return
        previous = self.state
        self.state = self.store.load(self.origin, login)
        self.inherit_trust(previous)
        self.save()

    # --- tokens --------------------------------------------------------------------------
    def set_tokens(self, body: Any) -> str:
        """Store the tokens of a login or refresh answer; returns the account id."""
        try:
            account = _need_str(body["account"])
            access = _need_str(body["access_token"])
            refresh = _need_str(body["refresh_token"])
            expires_in = _need_int(body["expires_in"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ProtocolViolation(f"token answer: {exc}") from exc
        sid = token_claims(access).get("sid")
        self.state.tokens = Tokens(
            access=access,
            refresh=refresh,
            expires=self.clock() + expires_in * 1000,
            session=sid if isinstance(sid, str) else None,
        )
        self.state.account = account
        self.save()
        return account

    def drop_tokens(self) -> None:
        self.state.tokens = None
        self.save()

    async def refresh(self, seen: Tokens | None = None) -> None:
        """Rotate the tokens (once, even if several calls ask at the same time)."""
        async with self._refresh_lock:
            current = self.state.tokens
            if current is None:
                raise NotLoggedIn("no session: log in first")
            if seen is not None and current is not seen:
                return  # another call refreshed while we waited
            try:
                answer = await self.transport.request(
                    "POST", "/api/v1/auth/refresh", body={"refresh_token": current.refresh}
                )
            except ServerProblem as exc:
                if exc.status is not None and 400 <= exc.status < 500:
                    self.drop_tokens()
                    raise NotLoggedIn(f"the session has ended ({exc.code}); log in again") from exc
                raise
            self.set_tokens(answer.body)

    async def _token(self) -> Tokens:
        tokens = self.state.tokens
        if tokens is None:
            raise NotLoggedIn("no session: log in first")
        if tokens.expires - self.clock() < REFRESH_MARGIN_MS:
            await self.refresh(tokens)
            tokens = self.state.tokens
            assert tokens is not None
        return tokens

    # --- calls ---------------------------------------------------------------------------
    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        auth: bool = True,
        params: Mapping[str, str | int] | None = None,
    ) -> Any:
        """One API call; pins are checked first; authenticated calls refresh once on 401."""
        await self.server()
        if not auth:
            return (await self.transport.request(method, path, body=body, params=params)).body
        tokens = await self._token()
        try:
            answer = await self.transport.request(
                method, path, body=body, token=tokens.access, params=params
            )
        except UnauthorizedError:
            await self.refresh(tokens)
            fresh = self.state.tokens
            if fresh is None:  # pragma: no cover - refresh raises instead
                raise NotLoggedIn("no session") from None
            answer = await self.transport.request(
                method, path, body=body, token=fresh.access, params=params
            )
        return answer.body

    def require_account(self) -> str:
        if self.state.account is None:
            raise NotLoggedIn("no account: activate or log in first")
        return self.state.account


def _same(a: Pins, b: Pins) -> bool:
    return equal(a.log_pk, b.log_pk) and equal(a.receipt_pk, b.receipt_pk)


__all__ = ["ClientError", "Clock", "Pins", "ServerInfo", "Session", "wall_clock"]
