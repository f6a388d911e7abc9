"""Procedures: an organisation publishes signed, versioned form definitions (PROTOCOL.md §9).

Rules:

* ``POST /api/v1/orgs/{org}/procedures`` (an admin of the org): the body is the signed
  procedure ``{"procedure","sig","by"}`` as canonical JSON. It must name this organisation,
  ``by`` must be a certified, current admin identity of this organisation (key directory),
  the signature and the procedure must verify (``postbox.crypto.procedures``), and its
  version must be higher than every version of the same procedure id published before
  (``409 procedure-version-exists``). Stored exactly as received, with its form digest.
* ``GET /api/v1/orgs/{org}/procedures`` (public): the newest version of each procedure,
  signed objects as stored; ``GET /api/v1/orgs/{org}/procedures/{procedure}/{version}``
  (public): one version. Clients verify the signature against the org's admin keys from the
  transparency log before rendering; the server's checks only keep garbage out.

Procedures are public on purpose: they are what an authority offers, not anybody's data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from postbox.crypto import shapes
from postbox.crypto.encoding import b64e
from postbox.crypto.errors import CryptoError
from postbox.crypto.procedures import (
    SIGNED_PROCEDURE_SHAPE,
    SignedProcedure,
    form_digest,
    verify_procedure,
)
from postbox.keys.directory import Directory
from postbox.mailbox.access import Principal
from postbox.mailbox.clock import Clock
from postbox.mailbox.db.engine import Database
from postbox.mailbox.errors import BadRequest, Conflict, NotFound
from postbox.mailbox.orgs.service import current_admin, invalid, org_not_found, require_admin
from postbox.mailbox.procedures import store


def procedure_not_found() -> NotFound:
    return NotFound("no such procedure version", code="procedure-not-found")


@dataclass(frozen=True)
class Publish:
    signed: dict[str, Any]

    @classmethod
    def from_json(cls, body: Any) -> Publish:
        """A signed procedure; its shape is checked like its signature
        (``invalid-procedure``), since the whole body is the signed object."""
        try:
            shapes.check(SIGNED_PROCEDURE_SHAPE, body, "signed procedure")
        except CryptoError as exc:
            raise invalid("procedure", exc) from exc
        return cls(cast(dict[str, Any], body))


@dataclass(frozen=True)
class Published:
    org: str
    id: str
    version: int
    by: str
    digest: str
    published: int

    @classmethod
    def of(cls, row: store.ProcedureRow) -> Published:
        return cls(row.org_id, row.id, row.version, row.by_kid, b64e(row.digest), row.published)

    def to_json(self) -> dict[str, Any]:
        return {
            "org": self.org,
            "procedure": self.id,
            "version": self.version,
            "by": self.by,
            "digest": self.digest,
            "published": self.published,
        }


class ProcedureService:
    """``app[PROCEDURES]``: publishing and serving procedure definitions."""

    def __init__(self, db: Database, clock: Clock, directory: Directory) -> None:
        self._db = db
        self._clock = clock
        self._directory = directory

    async def publish(self, who: Principal, org_id: str, cmd: Publish) -> Published:
        require_admin(who, org_id)
        signed = cast(SignedProcedure, cmd.signed)
        procedure = signed["procedure"]
        if procedure["org"] != org_id:
            raise BadRequest("the procedure names another organisation", code="invalid-procedure")
        now = self._clock()
        async with self._db.write() as conn:
            if not await store.lock_org(conn, org_id):
                raise org_not_found()
            admin = await current_admin(self._directory, conn, signed["by"], org_id, now)
            try:
                verify_procedure(signed, admin)
            except CryptoError as exc:
                raise invalid("procedure", exc) from exc
            latest = await store.latest_version(conn, org_id, procedure["id"])
            if latest is not None and procedure["version"] <= latest:
                raise Conflict(
                    f"version {latest} of this procedure is published; publish a higher one",
                    code="procedure-version-exists",
                    extra={"version": latest},
                )
            await store.insert(
                conn,
                org_id=org_id,
                procedure_id=procedure["id"],
                version=procedure["version"],
                signed=cmd.signed,
                by_kid=signed["by"],
                digest=form_digest(procedure),
                now=now,
                by_id=who.account_id,
            )
            row = await store.get(conn, org_id, procedure["id"], procedure["version"])
        assert row is not None
        return Published.of(row)

    async def latest(self, org_id: str) -> list[dict[str, Any]]:
        """The newest version of each procedure of the org, signed objects as stored."""
        async with self._db.read() as conn:
            if not await store.org_exists(conn, org_id):
                raise org_not_found()
            return [row.signed for row in await store.latest_of_org(conn, org_id)]

    async def get(self, org_id: str, procedure_id: str, version: int) -> dict[str, Any]:
        async with self._db.read() as conn:
            row = await store.get(conn, org_id, procedure_id, version)
            if row is None:
                if not await store.org_exists(conn, org_id):
                    raise org_not_found()
                raise procedure_not_found()
            return row.signed
