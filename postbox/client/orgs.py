"""An org admin's work: the org root, org certification of staff, revocations, teams.

The org root key is generated on the admin's machine (:func:`new_root_seed`), kept in an
encrypted file (:mod:`postbox.client.rootfile`) and used only to sign: the self-signed org
root (registered once) and ``org_sig`` over staff identity certificates. Before signing a
staff identity the admin must know it is the real one: the identity must have been checked
by activation code (``invite verify``, which pins it) or by a fingerprint the admin got from
the person, or be the admin's own identity. A server that put another key in the pending
list is caught here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from postbox.client.errors import ProtocolViolation, UsageError
from postbox.client.http import segment
from postbox.client.keyring import Keyring
from postbox.client.keys import (
    KeyDirectory,
    cert_fingerprint,
    check_fingerprint,
    check_self_signed,
    verifying,
)
from postbox.client.rootfile import OrgRootKey
from postbox.client.session import Session
from postbox.crypto import certs
from postbox.crypto.certs import SignedCert, SignedOrgRoot
from postbox.crypto.encoding import ID_BYTES, b64e
from postbox.crypto.primitives import random_bytes


def new_root_seed() -> bytes:
    return random_bytes(32)


def new_id() -> str:
    return b64e(random_bytes(ID_BYTES))


@dataclass(frozen=True)
class Certified:
    account: str
    kid: str
    kind: str
    fingerprint: str


class OrgAdmin:
    def __init__(self, session: Session, keys: KeyDirectory) -> None:
        self.session = session
        self.keys = keys

    def _org(self, org: str | None) -> str:
        org = org or self.session.state.org
        if org is None:
            raise UsageError("this account belongs to no organisation")
        return org

    async def get(self, org: str | None = None) -> dict[str, Any]:
        body = await self.session.call("GET", f"/api/v1/orgs/{segment(self._org(org))}")
        if not isinstance(body, dict):
            raise ProtocolViolation("GET /orgs/{org}: unexpected answer")
        return body

    async def set_citizens_may_write(self, value: bool, org: str | None = None) -> dict[str, Any]:
        """Let citizens write to the organisation's teams, or not (replies in their threads
        stay possible); the organisation as the server now has it."""
        body = await self.session.call(
            "PATCH", f"/api/v1/orgs/{segment(self._org(org))}", {"citizens_may_write": value}
        )
        if not isinstance(body, dict) or body.get("citizens_may_write") is not value:
            raise ProtocolViolation("PATCH /orgs/{org}: unexpected answer")
        return body

    async def register_root(self, root: OrgRootKey) -> SignedOrgRoot:
        """Register the self-signed org root (once) and pin it locally."""
        signed = certs.make_org_root(
            org=root.org, name=root.name, root_seed=root.seed, created=self.session.clock()
        )
        await self.session.call(
            "POST", f"/api/v1/orgs/{segment(root.org)}/root", {"org_root": signed}
        )
        self.keys.pin_org_root(signed, certs.fingerprint(root.pk))
        return signed

    async def endorse_server(self, root: OrgRootKey) -> dict[str, Any]:
        """Have the org root endorse the pinned log and receipt keys (a ``server_key`` event in
        the org chain): from then on every client of this org can check its pins against
        what the org root signed (:meth:`KeyDirectory.check_endorsement`)."""
        key = certs.make_server_key(
            log_pk=self.session.log_pk,
            receipt_pk=self.session.receipt_pk,
            created=self.session.clock(),
        )
        signed = certs.endorse_server_key(key, org=root.org, root_seed=root.seed)
        body = await self.session.call(
            "POST", "/api/v1/keys", {"type": "server_key", "body": signed}
        )
        return body if isinstance(body, dict) else {}

    async def pending(self, org: str | None = None) -> list[SignedCert]:
        """Staff identities waiting for the org root's signature (self-signatures checked)."""
        body = await self.session.call("GET", f"/api/v1/orgs/{segment(self._org(org))}/pending")
        items = body.get("pending") if isinstance(body, dict) else body
        if not isinstance(items, list):
            raise ProtocolViolation("GET /orgs/{org}/pending: unexpected answer")
        out = []
        for item in items:
            signed = item.get("served", item) if isinstance(item, dict) else item
            check_self_signed(signed)
            out.append(cast(SignedCert, signed))
        return out

    async def certify(
        self, root: OrgRootKey, account: str, *, fingerprint: str | None = None
    ) -> Certified:
        """Sign ``account``'s pending identity with the org root and log it.

        Refused unless the identity is this admin's own, was verified by activation code
        on this client (``invite verify``), or matches ``fingerprint``.
        """
        org = self._org(root.org)
        candidates = [s for s in await self.pending(org) if s["cert"]["subject"] == account]
        if not candidates:
            raise UsageError(f"no identity of {account} waits for certification")
        signed = candidates[-1]
        cert = signed["cert"]
        actual = cert_fingerprint(cert)
        st = self.session.state
        own = account == st.account and cert["kid"] == st.identity_kid
        checked = st.verified.get(account) == cert["kid"]
        if fingerprint is not None:
            check_fingerprint(fingerprint, actual, f"the identity of {account}")
        elif not (own or checked):
            raise UsageError(
                f"the identity of {account} (fingerprint {actual}) was not verified on this "
                "client: run `invite verify` with the activation code first, or pass the "
                "fingerprint the person read to you"
            )
        if cert["org"] != org:
            raise UsageError("that identity belongs to another organisation")
        certified = certs.org_certify(signed, root.seed)
        with verifying("org certification"):
            certs.verify_identity_cert(certified, self._root_of(root))
        await self.session.call(
            "POST", f"/api/v1/orgs/{segment(org)}/certify", {"identity": certified}
        )
        self.keys.mark_verified(account, cert["kid"])
        return Certified(account, cert["kid"], cert["kind"], actual)

    def _root_of(self, root: OrgRootKey) -> certs.OrgRoot:
        pinned = self.session.state.org_roots.get(root.org)
        if pinned is None:
            raise UsageError("the org root is not registered on this client yet")
        return pinned

    async def revoke(
        self, keyring: Keyring, account: str, *, reason: str = "left"
    ) -> list[dict[str, Any]]:
        """Revoke an account's current identity and encryption keys (admin signature)."""
        subject = await self.keys.subject(account)
        state = subject.state
        kids = []
        if state.identity is not None:
            kids.append(state.identity["kid"])
        if state.encryption and not any(
            r["kid"] == state.encryption[-1].cert["kid"] for r in state.revocations
        ):
            kids.append(state.encryption[-1].cert["kid"])
        if not kids:
            raise UsageError(f"{account} has no current keys to revoke")
        results = []
        for kid in kids:
            signed = certs.make_revocation(
                subject=account,
                kid=kid,
                at=self.session.clock(),
                reason=reason,
                signer_seed=keyring.identity.seed,
            )
            body = await self.session.call(
                "POST", "/api/v1/keys", {"type": "revoke", "body": signed}
            )
            results.append({"kid": kid, **(body if isinstance(body, dict) else {})})
        return results

    async def create_team(
        self, names: dict[str, str], *, org: str | None = None, team: str | None = None
    ) -> dict[str, Any]:
        org = self._org(org)
        body = await self.session.call(
            "POST",
            f"/api/v1/orgs/{segment(org)}/teams",
            {"team": team or new_id(), "names": names},
        )
        if not isinstance(body, dict):
            raise ProtocolViolation("POST /orgs/{org}/teams: unexpected answer")
        return body

    async def teams(self, org: str | None = None) -> list[dict[str, Any]]:
        body = await self.session.call("GET", f"/api/v1/orgs/{segment(self._org(org))}/teams")
        items = body.get("teams") if isinstance(body, dict) else body
        if not isinstance(items, list):
            raise ProtocolViolation("GET /orgs/{org}/teams: unexpected answer")
        return items
