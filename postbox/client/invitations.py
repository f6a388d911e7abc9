"""Inviting: the inviting client makes the activation code and later checks ``act_mac``.

PROTOCOL.md §9: the code (20 random bytes) is made here and handed to the person on paper
or as a link; the server gets only ``act_auth``. After the person activated, the inviter
fetches the new identity certificate and the ``act_mac`` the activating client sent, checks
the MAC with the code it still holds, and marks the identity "verified by activation code".
A server that substituted the identity cannot forge the MAC. The client also remembers the
verified identity, so the admin's later ``org certify`` trusts exactly that key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from postbox.client.errors import ProtocolViolation, UsageError
from postbox.client.http import segment
from postbox.client.keys import KeyDirectory, cert_fingerprint, check_self_signed, verifying
from postbox.client.session import Session
from postbox.crypto import activation
from postbox.crypto.certs import Cert
from postbox.crypto.encoding import ID_BYTES, b64d, b64e
from postbox.crypto.primitives import random_bytes

DAY_MS: Final = 24 * 3600 * 1000
DEFAULT_VALIDITY_MS: Final = 30 * DAY_MS
ACT_MAC_BYTES: Final = 32


@dataclass(frozen=True)
class Invite:
    id: str
    kind: str
    team: str | None
    expires: int
    code: bytes
    #: the code as printed: 8 groups of 4 Crockford characters
    formatted: str
    #: the activation link; the code travels in the fragment, which browsers never send
    link: str


@dataclass(frozen=True)
class VerifiedInvite:
    id: str
    account: str
    kind: str
    identity: Cert
    fingerprint: str


def activation_link(origin: str, formatted: str) -> str:
    return f"{origin}/activate#{formatted}"


class Invitations:
    def __init__(self, session: Session, keys: KeyDirectory) -> None:
        self.session = session
        self.keys = keys

    async def create(
        self,
        kind: str,
        *,
        team: str | None = None,
        validity_ms: int = DEFAULT_VALIDITY_MS,
        code: bytes | None = None,
    ) -> Invite:
        """Make a code here and register only its authoriser with the server."""
        raw = activation.generate_code(code=code)
        invite_id = b64e(random_bytes(ID_BYTES))
        expires = self.session.clock() + validity_ms
        await self.session.call(
            "POST",
            "/api/v1/invitations",
            {
                "id": invite_id,
                "kind": kind,
                "team": team,
                "authoriser": b64e(activation.act_auth(raw)),
                "expires": expires,
            },
        )
        formatted = activation.format_code(raw)
        return Invite(
            id=invite_id,
            kind=kind,
            team=team,
            expires=expires,
            code=raw,
            formatted=formatted,
            link=activation_link(self.session.origin, formatted),
        )

    async def get(self, invite_id: str) -> dict[str, Any]:
        body = await self.session.call("GET", f"/api/v1/invitations/{segment(invite_id)}")
        if not isinstance(body, dict):
            raise ProtocolViolation("GET /invitations/{id}: unexpected answer")
        return body

    async def verify(self, invite_id: str, code: str | bytes) -> VerifiedInvite:
        """Check the activating client's ``act_mac`` with the code, then mark it verified."""
        raw = code if isinstance(code, bytes) else _parse(code)
        body = await self.get(invite_id)
        if not body.get("used") or body.get("identity") is None:
            raise UsageError("this invitation has not been used for an activation yet")
        served = body["identity"]
        if isinstance(served, dict) and "cert" in served:
            cert = check_self_signed(served)
        else:
            raise ProtocolViolation("the invitation's identity is not a served certificate")
        try:
            mac = b64d(body["act_mac"], ACT_MAC_BYTES)
        except Exception as exc:
            raise ProtocolViolation(f"act_mac: {exc}") from exc
        if cert["subject"] != body.get("account"):
            raise ProtocolViolation("the identity is not the invited account's")
        with verifying("activation MAC"):
            activation.verify_act_mac(raw, cert, mac)
        await self.session.call("POST", f"/api/v1/invitations/{segment(invite_id)}/verified", {})
        self.keys.mark_verified(cert["subject"], cert["kid"])
        return VerifiedInvite(
            id=invite_id,
            account=cert["subject"],
            kind=cert["kind"],
            identity=cert,
            fingerprint=cert_fingerprint(cert),
        )


def _parse(code: str) -> bytes:
    with verifying("activation code"):
        return activation.parse_code(code)
