"""The key directory: the server's current view of every certificate, kept in step with the log.

The ``certificates`` table is a *cache of the log* for the server's own decisions (which kid
is an account's current encryption key when a message arrives, which identity signs for an
account, which staff identities wait for org certification). It is written only by
:class:`postbox.keys.log.KeyLog`, in the same transaction as the log event it reflects:

| event | directory change |
| --- | --- |
| ``identity`` | the certificate becomes the subject's current identity; older ones superseded |
| ``key`` (account or team) | the subject's current encryption key; older ones superseded |
| ``admin_key`` | the admin identity is recorded (if it is not already) |
| ``revoke`` | ``revoked`` = the revocation's ``at`` |

Clients never trust this table: they verify the log (PROTOCOL.md §7). Pending rows
(``log_index`` NULL) are staff certificates uploaded at activation that wait for the org
root's signature (:meth:`postbox.keys.log.KeyLog.register_pending` /
:meth:`~postbox.keys.log.KeyLog.certify`); they are never "current".

Every method takes the caller's connection, so services can read the directory inside
their own transaction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from postbox.keys import store


@dataclass(frozen=True, slots=True)
class CertRecord:
    """One directory row, with the served certificate parsed."""

    kid: str
    subject: str
    use: str  # sign | encrypt
    kind: str
    org_id: str | None
    served: dict[str, Any]  # {"cert","sig","by","org_sig","prev","prev_sig"}
    created: int
    expires: int | None
    log_index: int | None  # None: waiting for org certification
    revoked: int | None  # the revocation's ``at``
    superseded: int | None  # the ``ts`` of the event that superseded it

    @classmethod
    def from_row(cls, row: store.CertRow) -> CertRecord:
        return cls(
            kid=row.kid,
            subject=row.subject,
            use=row.use,
            kind=row.kind,
            org_id=row.org_id,
            served=json.loads(row.served),
            created=row.created,
            expires=row.expires,
            log_index=row.log_index,
            revoked=row.revoked,
            superseded=row.superseded,
        )

    @property
    def logged(self) -> bool:
        return self.log_index is not None

    def usable_at(self, t: int) -> bool:
        """Logged, created ≤ t < expires, not superseded at t, never revoked.

        Any revocation makes a key unusable for new use, whatever its ``at`` (senders
        encrypt only to keys with "no later revoke", PROTOCOL.md §7).
        """
        if not self.logged or self.revoked is not None or t < self.created:
            return False
        if self.expires is not None and t >= self.expires:
            return False
        return self.superseded is None or t < self.superseded


def _record(row: store.CertRow | None) -> CertRecord | None:
    return None if row is None else CertRecord.from_row(row)


class Directory:
    """Read-only lookups over ``certificates`` (stateless; one shared instance)."""

    async def get(self, conn: AsyncConnection, kid: str) -> CertRecord | None:
        """The certificate with this kid (logged or pending), whoever its subject."""
        return _record(await store.cert_by_kid(conn, kid))

    async def current_identity(self, conn: AsyncConnection, subject: str) -> CertRecord | None:
        """The subject's current identity certificate: its newest logged ``use: sign``
        certificate, or ``None`` if it has none or that one is revoked."""
        row = await store.newest_logged(conn, subject, "sign")
        if row is None or row.revoked is not None or row.superseded is not None:
            return None
        return CertRecord.from_row(row)

    async def current_encryption(
        self, conn: AsyncConnection, subject: str, *, now: int
    ) -> CertRecord | None:
        """The key a sender may encrypt to at ``now``: the subject's newest logged
        encryption certificate if it is neither revoked nor expired, else ``None``.

        As in the log replay, revoking the newest key leaves the subject *without* a
        key; an older one never becomes current again.
        """
        row = await store.newest_logged(conn, subject, "encrypt")
        if row is None:
            return None
        record = CertRecord.from_row(row)
        return record if record.usable_at(now) else None

    async def certificates(self, conn: AsyncConnection, subject: str) -> list[CertRecord]:
        """Every logged certificate of the subject, in log order (current and past)."""
        return [CertRecord.from_row(r) for r in await store.logged_certs(conn, subject)]

    async def subject_org(self, conn: AsyncConnection, subject: str) -> str | None:
        """The organisation of an account (from its newest logged identity), else ``None``."""
        row = await store.newest_logged(conn, subject, "sign")
        return None if row is None else row.org_id

    async def pending(self, conn: AsyncConnection, org_id: str) -> list[CertRecord]:
        """Staff identity certificates of this org waiting for org certification."""
        rows = await store.pending_certs(conn, org_id=org_id, use="sign")
        return [CertRecord.from_row(r) for r in rows]

    async def pending_of(self, conn: AsyncConnection, subject: str) -> list[CertRecord]:
        """A subject's pending certificates (its identity first, then encryption keys)."""
        rows = await store.pending_certs(conn, subject=subject)
        rows.sort(key=lambda r: (r.use != "sign", r.created, r.kid))
        return [CertRecord.from_row(r) for r in rows]
