"""The auth feature's records: requests parsed at the edge, and what the service answers.

Requests are closed objects (unknown members rejected) checked with the crypto core's
shapes; anything unexpected is 400 ``malformed``, a login name that does not normalise is
400 ``invalid-login``. Records that hold tokens keep them out of their ``repr``.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Any, Final, cast

from postbox.crypto import shapes
from postbox.crypto.encoding import CHALLENGE_BYTES, SIGNATURE_BYTES, b64d, b64e
from postbox.crypto.errors import CryptoError
from postbox.crypto.login import METHODS, Method, normalize_login
from postbox.crypto.primitives import PUBLIC_KEY_BYTES
from postbox.mailbox.auth.store import SessionRecord
from postbox.mailbox.errors import BadRequest
from postbox.mailbox.http import check_shape

MAX_LOGIN_CHARS: Final = 1024  # before normalisation (which caps at 254 UTF-8 bytes)
MAX_CLIENT_CHARS: Final = 200


# --- commands (parsed at the edge) ------------------------------------------------------------
def _login_name(value: str) -> str:
    try:
        return normalize_login(value)
    except CryptoError as exc:
        raise BadRequest(f"login: {type(exc).__name__}: {exc}", code="invalid-login") from exc


_LOGIN = shapes.string(MAX_LOGIN_CHARS * 4)
_CHALLENGE = shapes.b64(CHALLENGE_BYTES)
_PK = shapes.b64(PUBLIC_KEY_BYTES)
_SIGNATURE = shapes.b64(SIGNATURE_BYTES)
_METHOD = shapes.enum(*METHODS)
_GEN = shapes.integer(0, 2**32 - 2)
_CHALLENGE_SHAPE = shapes.obj({"login": _LOGIN})
_LOGIN_SHAPE = shapes.obj(
    {
        "login": _LOGIN,
        "challenge": _CHALLENGE,
        "auth_pk": _PK,
        "signature": _SIGNATURE,
        "method": _METHOD,
    }
)
_REFRESH_SHAPE = shapes.obj({"refresh_token": shapes.string(256)})
_BUNDLE_PUT_SHAPE = shapes.obj({"bundle": shapes.free_object, "expected_gen": _GEN})
_PASSPHRASE_SHAPE = shapes.obj(
    {
        "challenge": _CHALLENGE,
        "signature": _SIGNATURE,
        "method": _METHOD,
        "signer_pk": _PK,
        "auth_pk": _PK,
        "bundle": shapes.free_object,
        "expected_gen": _GEN,
    }
)


@dataclass(frozen=True)
class LoginProof:
    """A signature over PROTOCOL.md §2's login layout, by ``signer_pk``: what a login and a
    passphrase change both carry (the server checks it the same way for both)."""

    challenge: bytes
    signer_pk: bytes
    signature: bytes
    method: Method


@dataclass(frozen=True)
class ChallengeRequest:
    login: str  # normalised

    @classmethod
    def from_json(cls, value: Any) -> ChallengeRequest:
        check_shape(_CHALLENGE_SHAPE, value, "body")
        return cls(_login_name(value["login"]))


@dataclass(frozen=True)
class LoginRequest:
    login: str  # normalised
    challenge: bytes
    auth_pk: bytes
    signature: bytes
    method: Method

    @classmethod
    def from_json(cls, value: Any) -> LoginRequest:
        check_shape(_LOGIN_SHAPE, value, "body")
        return cls(
            login=_login_name(value["login"]),
            challenge=b64d(value["challenge"], CHALLENGE_BYTES),
            auth_pk=b64d(value["auth_pk"], PUBLIC_KEY_BYTES),
            signature=b64d(value["signature"], SIGNATURE_BYTES),
            method=cast(Method, value["method"]),
        )

    @property
    def proof(self) -> LoginProof:
        return LoginProof(self.challenge, self.auth_pk, self.signature, self.method)


@dataclass(frozen=True)
class RefreshRequest:
    token: str = ""

    def __repr__(self) -> str:
        return "RefreshRequest(token=…)"

    @classmethod
    def from_json(cls, value: Any) -> RefreshRequest:
        check_shape(_REFRESH_SHAPE, value, "body")
        return cls(value["refresh_token"])


@dataclass(frozen=True)
class BundleUpdate:
    bundle: dict[str, Any]
    expected_gen: int

    @classmethod
    def from_json(cls, value: Any) -> BundleUpdate:
        check_shape(_BUNDLE_PUT_SHAPE, value, "body")
        return cls(value["bundle"], value["expected_gen"])


@dataclass(frozen=True)
class PassphraseChange:
    challenge: bytes
    signature: bytes
    method: Method
    signer_pk: bytes  # the key that signed: current pass auth key or recovery auth key
    auth_pk: bytes  # the new pass auth key
    bundle: dict[str, Any]
    expected_gen: int

    @classmethod
    def from_json(cls, value: Any) -> PassphraseChange:
        check_shape(_PASSPHRASE_SHAPE, value, "body")
        return cls(
            challenge=b64d(value["challenge"], CHALLENGE_BYTES),
            signature=b64d(value["signature"], SIGNATURE_BYTES),
            method=cast(Method, value["method"]),
            signer_pk=b64d(value["signer_pk"], PUBLIC_KEY_BYTES),
            auth_pk=b64d(value["auth_pk"], PUBLIC_KEY_BYTES),
            bundle=value["bundle"],
            expected_gen=value["expected_gen"],
        )

    @property
    def proof(self) -> LoginProof:
        return LoginProof(self.challenge, self.signer_pk, self.signature, self.method)


@dataclass(frozen=True)
class Caller:
    """Where a request comes from: the rate-limit address and the client description."""

    address: str
    client: str = ""

    @classmethod
    def of(cls, address: str, user_agent: str | None) -> Caller:
        text = "".join(ch for ch in (user_agent or "") if unicodedata.category(ch)[0] != "C")
        return cls(address, text[:MAX_CLIENT_CHARS])


# --- results --------------------------------------------------------------------------------
@dataclass(frozen=True)
class ChallengeAnswer:
    salt: bytes
    ops: int
    mem: int
    challenge: bytes

    def to_json(self) -> dict[str, Any]:
        return {
            "salt": b64e(self.salt),
            "ops": self.ops,
            "mem": self.mem,
            "challenge": b64e(self.challenge),
        }


@dataclass(frozen=True)
class Grant:
    """A new access token (and refresh token) for a session."""

    account: str
    access_token: str
    refresh_token: str
    expires_in: int
    rekey: tuple[int, int] | None = None  # (ops, mem) the client should re-key to

    def __repr__(self) -> str:
        return f"Grant(account={self.account!r}, tokens=…)"

    def to_json(self, *, with_rekey: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "account": self.account,
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "expires_in": self.expires_in,
        }
        if with_rekey:
            body["rekey"] = (
                None if self.rekey is None else {"ops": self.rekey[0], "mem": self.rekey[1]}
            )
        return body


@dataclass(frozen=True)
class SessionView:
    session: SessionRecord
    current: bool

    def to_json(self) -> dict[str, Any]:
        s = self.session
        return {
            "id": s.id,
            "created": s.created,
            "last_seen": s.last_seen,
            "expires": s.expires,
            "method": s.method,
            "client": s.client,
            "current": self.current,
        }


@dataclass(frozen=True)
class Me:
    account: str
    kind: str
    org: str | None
    login: str | None
    identity_verified: bool
    language: str

    def to_json(self) -> dict[str, Any]:
        return {
            "account": self.account,
            "kind": self.kind,
            "org": self.org,
            "login": self.login,
            "identity_verified": self.identity_verified,
            "language": self.language,
        }


@dataclass(frozen=True)
class PassphraseChanged:
    gen: int
    revoked_sessions: int

    def to_json(self) -> dict[str, Any]:
        return {"gen": self.gen, "revoked_sessions": self.revoked_sessions}
