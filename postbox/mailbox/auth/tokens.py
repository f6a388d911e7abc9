"""Access tokens (JWT, HS256) and refresh tokens (opaque, stored hashed).

Access token claims (python-jose, HS256 under ``secrets/token.key``)::

    iss  settings.origin            aud  settings.origin (the API of that origin)
    iat  issued, Unix seconds       exp  iat + settings.access_token_seconds
    jti  16 random bytes, b64       sub  account id
    sid  session id                 kind account kind      org  org id | null

Decoding names the algorithm list explicitly (``["HS256"]``), so ``none`` and RS/HS
confusion are refused, and requires every claim above. ``exp`` is checked against the
server's injectable clock (not jose's wall clock) so tests can move time. Every verified
token is then checked against its session row (one indexed read): a revoked or expired
session, or a disabled account, ends every token of that session at once, which is how
logout and revocation are immediate without a ``jti`` deny-list.

Refresh tokens are 32 random bytes (b64, 43 characters); the database keeps only
``H(token)`` (``refresh_tokens.hash``).
"""

from __future__ import annotations

from typing import Any, Final

from jose import jwt
from jose.exceptions import JOSEError

from postbox.crypto.encoding import ID_BYTES, KEY_BYTES, b64d, b64e
from postbox.crypto.errors import CryptoError
from postbox.crypto.primitives import H, random_bytes
from postbox.mailbox.access import Principal
from postbox.mailbox.auth import store
from postbox.mailbox.clock import Clock
from postbox.mailbox.db.engine import Database
from postbox.mailbox.errors import Unauthorized
from postbox.mailbox.secrets import Secrets
from postbox.mailbox.settings import Settings

ALGORITHM: Final = "HS256"
ALGORITHMS: Final = [ALGORITHM]
REFRESH_TOKEN_BYTES: Final = KEY_BYTES
MAX_TOKEN_CHARS: Final = 4096
_REQUIRED: Final = ("iss", "aud", "iat", "exp", "jti", "sub", "sid", "kind", "org")
#: access tokens whose signature and claims were checked already (see Tokens.decode)
VERIFIED_TOKENS_MAX: Final = 20_000
_DECODE_OPTIONS: Final = {
    # time is checked against the injected clock below
    "verify_exp": False,
    "verify_nbf": False,
    "verify_iat": True,
    "verify_aud": True,
    "verify_iss": True,
    "require_aud": True,
    "require_iat": True,
    # not "require_exp": jose then forces its wall-clock exp check; presence is checked below
    "require_iss": True,
    "require_sub": True,
    "require_jti": True,
}


def new_refresh_token() -> tuple[str, bytes]:
    """A fresh refresh token and the hash the database keeps."""
    raw = random_bytes(REFRESH_TOKEN_BYTES)
    return b64e(raw), H(raw)


def refresh_token_hash(token: object) -> bytes | None:
    """``H(token)`` of a well-formed refresh token; None for anything else."""
    try:
        return H(b64d(token, REFRESH_TOKEN_BYTES))
    except CryptoError:
        return None


def _invalid(detail: str = "the access token is not valid") -> Unauthorized:
    return Unauthorized(detail, code="invalid-token")


class Tokens:
    """Issues access tokens and verifies them (``app[TOKENS]``, access.TokenVerifier)."""

    def __init__(self, settings: Settings, secrets: Secrets, db: Database, clock: Clock) -> None:
        self._key = secrets.token_key
        self._origin = settings.origin
        self._lifetime_s = settings.access_token_seconds
        self._db = db
        self._clock = clock
        self._verified: dict[str, dict[str, Any]] = {}

    def __repr__(self) -> str:
        return f"Tokens(origin={self._origin!r})"

    @property
    def lifetime_s(self) -> int:
        return self._lifetime_s

    def issue(
        self, *, account_id: str, kind: str, org_id: str | None, session_id: str, now: int
    ) -> str:
        iat = now // 1000
        claims = {
            "iss": self._origin,
            "aud": self._origin,
            "iat": iat,
            "exp": iat + self._lifetime_s,
            "jti": b64e(random_bytes(ID_BYTES)),
            "sub": account_id,
            "sid": session_id,
            "kind": kind,
            "org": org_id,
        }
        return str(jwt.encode(claims, self._key, algorithm=ALGORITHM))

    def decode(self, token: str) -> dict[str, Any]:
        """Signature, algorithm, issuer, audience and claim types; not yet time or session.

        A token that passed once is remembered (by its exact text, in a bounded map), so a
        client's requests within its token's lifetime cost one HMAC check, not one each:
        what is remembered is a pure function of the text and the key. Expiry and the
        session are checked on every request by the callers.
        """
        if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
            raise _invalid()
        known = self._verified.get(token)
        if known is not None:
            return known
        claims = self._decode(token)
        if len(self._verified) >= VERIFIED_TOKENS_MAX:
            self._verified.clear()
        self._verified[token] = claims
        return claims

    def _decode(self, token: str) -> dict[str, Any]:
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=ALGORITHMS,
                audience=self._origin,
                issuer=self._origin,
                options=_DECODE_OPTIONS,
            )
        except (JOSEError, ValueError, TypeError):
            raise _invalid() from None
        if not isinstance(claims, dict) or any(name not in claims for name in _REQUIRED):
            raise _invalid()
        for name in ("jti", "sub", "sid", "kind"):
            if not isinstance(claims[name], str):
                raise _invalid()
        if claims["org"] is not None and not isinstance(claims["org"], str):
            raise _invalid()
        for name in ("iat", "exp"):
            if isinstance(claims[name], bool) or not isinstance(claims[name], int):
                raise _invalid()
        return claims

    def verify_token_only(self, token: str) -> Principal:
        """The token's signature, claims and expiry, without reading the session.

        Only for routes whose service checks the session itself, inside the transaction
        that acts on it (``access.session_checked_by_service``); see :func:`check_session`.
        """
        claims = self.decode(token)
        if claims["exp"] * 1000 <= self._clock():
            raise Unauthorized("the access token has expired; refresh it", code="token-expired")
        return Principal(
            account_id=claims["sub"],
            kind=claims["kind"],
            org_id=claims["org"],
            session_id=claims["sid"],
            token_id=claims["jti"],
        )

    async def verify_access_token(self, token: str) -> Principal:
        who = self.verify_token_only(token)
        async with self._db.read() as conn:
            state = await store.session_state(conn, who.session_id)
        check_session(state, who.account_id, self._clock())
        return who


def check_session(state: store.SessionState | None, account_id: str, now: int) -> None:
    """Refuse (401 ``session-ended``) unless the session is live and the account active."""
    if (
        state is None
        or state.account_id != account_id
        or state.revoked is not None
        or state.expires <= now
        or state.account_status != "active"
    ):
        raise Unauthorized("this session has ended; log in again", code="session-ended")
