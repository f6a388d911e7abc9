"""Procedures: the signed form definitions an organisation publishes (PROTOCOL.md §9).

Nothing the server serves is rendered unverified: every procedure is checked against the
organisation's admin keys from its *verified* chain in the transparency log
(:meth:`KeyDirectory.org`, with the org root pinned) — the signing key must be an
org-certified admin identity of that organisation, valid now — and the procedure must be the
one asked for (org, id, version). The form digest that a submitted form carries
(``form.digest``) is computed here from the verified object.

A procedure is valid as long as the admin key that signed it is: when an admin key is
revoked or expires, the organisation re-publishes its procedures under a current key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from postbox.client.errors import ProtocolViolation, UsageError
from postbox.client.http import segment
from postbox.client.keyring import Keyring
from postbox.client.keys import KeyDirectory, verifying
from postbox.client.session import Session
from postbox.crypto import shapes
from postbox.crypto.errors import CertificateInvalid, CryptoError
from postbox.crypto.keystate import SubjectState
from postbox.crypto.procedures import (
    SIGNED_PROCEDURE_SHAPE,
    Procedure,
    SignedProcedure,
    check_procedure,
    form_digest,
    sign_procedure,
    verify_procedure,
)


@dataclass(frozen=True)
class VerifiedProcedure:
    """A procedure whose signature by a current admin of its organisation verified."""

    procedure: Procedure
    signed: SignedProcedure
    #: ``form.digest`` = H("postbox/v1/form" ‖ cj(procedure), 64): what a submitted form names
    digest: bytes

    @property
    def org(self) -> str:
        return self.procedure["org"]

    @property
    def id(self) -> str:
        return self.procedure["id"]

    @property
    def version(self) -> int:
        return self.procedure["version"]

    @property
    def by(self) -> str:
        """The kid of the admin identity that signed it."""
        return self.signed["by"]

    def label(self, key: str, languages: tuple[str, ...] = ("de", "en")) -> str | None:
        """A label in the first of ``languages`` that has it (else any language)."""
        labels = self.procedure["labels"]
        for lang in (*languages, *sorted(labels)):
            entry = labels.get(lang)
            if isinstance(entry, dict) and isinstance(entry.get(key), str):
                return cast(str, entry[key])
        return None


@dataclass(frozen=True)
class Published:
    org: str
    id: str
    version: int
    digest: str


class Procedures:
    """``client.procedures``: list, fetch (both verified) and, for org admins, publish."""

    def __init__(self, session: Session, keys: KeyDirectory) -> None:
        self.session = session
        self.keys = keys

    def _verify(
        self, served: Any, org_state: SubjectState, org: str, what: str
    ) -> VerifiedProcedure:
        with verifying(what):
            shapes.check(SIGNED_PROCEDURE_SHAPE, served, "signed procedure")
            signed = cast(SignedProcedure, served)
            if signed["procedure"]["org"] != org:
                raise CertificateInvalid("the procedure belongs to another organisation")
            admin = org_state.admin_valid_at(signed["by"], self.session.clock())
            procedure = verify_procedure(signed, admin)
        return VerifiedProcedure(procedure, signed, form_digest(procedure))

    async def list(self, org: str) -> list[VerifiedProcedure]:
        """The newest version of each of ``org``'s procedures, every one verified."""
        answer = await self.session.call(
            "GET", f"/api/v1/orgs/{segment(org)}/procedures", auth=False
        )
        items = answer.get("procedures") if isinstance(answer, dict) else None
        if not isinstance(items, list):
            raise ProtocolViolation("GET /orgs/{org}/procedures: unexpected answer")
        org_state = await self.keys.org(org)
        verified = [self._verify(item, org_state, org, f"procedure of {org}") for item in items]
        ids = [v.id for v in verified]
        if len(ids) != len(set(ids)):
            raise ProtocolViolation("the procedure list names a procedure twice")
        return verified

    async def fetch(self, org: str, procedure: str, version: int) -> VerifiedProcedure:
        """One version of one procedure, verified, and exactly the one asked for."""
        served = await self.session.call(
            "GET",
            f"/api/v1/orgs/{segment(org)}/procedures/{segment(procedure)}/{int(version)}",
            auth=False,
        )
        org_state = await self.keys.org(org)
        what = f"procedure {procedure} version {version} of {org}"
        verified = self._verify(served, org_state, org, what)
        if verified.id != procedure or verified.version != version:
            raise ProtocolViolation(f"{what}: the server answered another procedure")
        return verified

    async def publish(self, keyring: Keyring, procedure: Procedure) -> Published:
        """Sign ``procedure`` with this org admin's identity and publish it."""
        org = self.session.state.org
        if org is None or procedure.get("org") != org:
            raise UsageError("admins publish procedures of their own organisation")
        try:
            check_procedure(procedure)
        except CryptoError as exc:
            raise UsageError(f"not a valid procedure: {exc}") from exc
        signed = sign_procedure(procedure, keyring.identity.seed)
        answer = await self.session.call("POST", f"/api/v1/orgs/{segment(org)}/procedures", signed)
        if not isinstance(answer, dict):
            raise ProtocolViolation("POST /orgs/{org}/procedures: unexpected answer")
        return Published(org, procedure["id"], procedure["version"], str(answer.get("digest")))
