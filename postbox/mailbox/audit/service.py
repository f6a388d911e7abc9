"""The audit log: security events in a hash chain.

Each entry is ``{"seq","at","actor","action","subject","details"}`` (``seq`` from 1,
``at`` in ms, ``actor``/``subject`` ids or null, ``details`` a small object of metadata);
the row stores ``prev`` (the previous entry's hash, 32 zero bytes for seq 1) and
``hash = H(prev ‖ cj(entry))`` (BLAKE2b-256). :meth:`Audit.verify` walks the chain and names
the first broken link, so an edit, a deletion or an insertion in the middle of the log is
found. A consistent rewrite of the whole tail (recomputing every later hash) or a
truncation is not: compare the reported head (``seq``, ``hash``) with one noted earlier.

Rules for callers:

* :meth:`Audit.record` runs in the caller's write transaction, so an event is logged if and
  only if what it describes is committed. Call it **last** in the transaction: on PostgreSQL
  it takes a transaction-level advisory lock that serialises appends until commit; calling
  it last keeps that lock short and gives every transaction the same lock order (key log
  ``log_state`` row first, audit lock last), so two transactions cannot deadlock.
* ``details`` carry metadata only: ids, kinds, counts, reasons, generations, keyed hashes.
  Never login names in clear, tokens, passphrase-derived values, bundles or content.

Actions recorded by the auth feature: ``login``, ``login-failed``, ``session-revoked``
(reasons ``logout``, ``user``, ``refresh-reuse``), ``passphrase-changed``,
``bundle-updated``. Organisation features add their own (admin actions) through the same
service.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncConnection

from postbox.crypto.encoding import b64e, cj, parse_canonical
from postbox.crypto.errors import CryptoError
from postbox.crypto.primitives import H, equal
from postbox.mailbox.audit import store
from postbox.mailbox.audit.store import AuditRow

GENESIS_PREV: Final = bytes(32)
FIRST_SEQ: Final = 1
MAX_DETAILS_BYTES: Final = 4096
MAX_ID_CHARS: Final = 22
VERIFY_PAGE: Final = 1000
_ACTION: Final = re.compile(r"[a-z][a-z0-9]*(?:[-.][a-z0-9]+)*")
MAX_ACTION_CHARS: Final = 40


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    at: int
    actor: str | None
    action: str
    subject: str | None
    details: dict[str, Any]
    hash: bytes

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at,
            "actor": self.actor,
            "action": self.action,
            "subject": self.subject,
            "details": self.details,
            "hash": b64e(self.hash),
        }


@dataclass(frozen=True)
class AuditReport:
    """The result of :meth:`Audit.verify`."""

    ok: bool
    entries: int  # entries checked (up to the first broken one)
    head_seq: int  # last good seq (0: empty log)
    head_hash: bytes  # hash of the last good entry (GENESIS_PREV: empty log)
    broken_seq: int | None = None  # the first entry that does not verify
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "entries": self.entries,
            "head": {"seq": self.head_seq, "hash": b64e(self.head_hash)},
            "broken_seq": self.broken_seq,
            "reason": self.reason,
        }


def entry_object(
    *,
    seq: int,
    at: int,
    actor: str | None,
    action: str,
    subject: str | None,
    details: Mapping[str, Any],
) -> dict[str, Any]:
    return {
        "seq": seq,
        "at": at,
        "actor": actor,
        "action": action,
        "subject": subject,
        "details": dict(details),
    }


def chain_hash(prev: bytes, entry: Mapping[str, Any]) -> bytes:
    """``H(prev ‖ cj(entry))``."""
    return H(prev + cj(dict(entry)))


class Audit:
    """``app[AUDIT]``: append to and verify the audit chain."""

    async def record(
        self,
        conn: AsyncConnection,
        *,
        action: str,
        actor: str | None,
        subject: str | None,
        details: Mapping[str, Any],
        now: int,
    ) -> None:
        """Append one entry inside the caller's transaction (call it last; see module doc)."""
        if (
            not isinstance(action, str)
            or len(action) > MAX_ACTION_CHARS
            or not _ACTION.fullmatch(action)
        ):
            raise ValueError(f"audit action {action!r}: lower-case words joined by - or .")
        for what, value in (("actor", actor), ("subject", subject)):
            if value is not None and (not isinstance(value, str) or len(value) > MAX_ID_CHARS):
                raise ValueError(f"audit {what}: an id of at most {MAX_ID_CHARS} characters")
        text = cj(dict(details)).decode("utf-8")  # refuses floats, non-str keys, ...
        if len(text) > MAX_DETAILS_BYTES:
            raise ValueError("audit details: metadata only, at most 4 KiB")
        await store.lock_appends(conn)
        head = await store.last(conn)
        seq, prev = (head[0] + 1, head[1]) if head is not None else (FIRST_SEQ, GENESIS_PREV)
        entry = entry_object(
            seq=seq, at=now, actor=actor, action=action, subject=subject, details=details
        )
        await store.insert(
            conn,
            AuditRow(
                seq=seq,
                at=now,
                actor=actor,
                action=action,
                subject=subject,
                details=text,
                prev=prev,
                hash=chain_hash(prev, entry),
            ),
        )

    async def entries(
        self, conn: AsyncConnection, *, after: int = 0, limit: int = 100
    ) -> list[AuditEntry]:
        """Entries with ``seq > after``, oldest first (for ``postbox admin audit show``)."""
        rows = await store.page(conn, after=after, limit=max(1, min(limit, VERIFY_PAGE)))
        return [
            AuditEntry(
                seq=r.seq,
                at=r.at,
                actor=r.actor,
                action=r.action,
                subject=r.subject,
                details=_details(r.details) or {},
                hash=r.hash,
            )
            for r in rows
        ]

    async def verify(self, conn: AsyncConnection) -> AuditReport:
        """Walk the whole chain from seq 1; report the first broken link, if any."""
        expected, prev, checked = FIRST_SEQ, GENESIS_PREV, 0
        after = 0
        while True:
            rows = await store.page(conn, after=after, limit=VERIFY_PAGE)
            if not rows:
                return AuditReport(True, checked, expected - 1, prev)
            for row in rows:
                problem = _check_row(row, expected, prev)
                if problem is not None:
                    return AuditReport(False, checked, expected - 1, prev, row.seq, problem)
                prev, expected, checked = row.hash, expected + 1, checked + 1
            after = rows[-1].seq


def _details(text: str) -> dict[str, Any] | None:
    try:
        value = parse_canonical(text.encode("utf-8"))
    except (CryptoError, UnicodeError):
        return None
    return value if isinstance(value, dict) else None


def _check_row(row: AuditRow, expected: int, prev: bytes) -> str | None:
    if row.seq != expected:
        return f"entry {expected} is missing (next is {row.seq})"
    if not equal(row.prev, prev):
        return "prev is not the previous entry's hash"
    details = _details(row.details)
    if details is None:
        return "details are not a canonical JSON object"
    entry = entry_object(
        seq=row.seq,
        at=row.at,
        actor=row.actor,
        action=row.action,
        subject=row.subject,
        details=details,
    )
    if not equal(row.hash, chain_hash(prev, entry)):
        return "hash does not match the entry"
    return None
