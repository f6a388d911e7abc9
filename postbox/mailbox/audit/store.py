"""Named queries on ``audit_log``."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from postbox.mailbox.db.schema import audit_log

#: pg_advisory_xact_lock key serialising audit appends: "pbaudit!" as a big-endian integer
PG_AUDIT_LOCK_KEY = int.from_bytes(b"pbaudit!", "big") & 0x7FFF_FFFF_FFFF_FFFF


@dataclass(frozen=True)
class AuditRow:
    seq: int
    at: int
    actor: str | None
    action: str
    subject: str | None
    details: str  # cj text
    prev: bytes
    hash: bytes


async def lock_appends(conn: AsyncConnection) -> None:
    """Serialise appends until the transaction ends (SQLite writers are already serial)."""
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": PG_AUDIT_LOCK_KEY})


async def last(conn: AsyncConnection) -> tuple[int, bytes] | None:
    """(seq, hash) of the newest entry."""
    query = select(audit_log.c.seq, audit_log.c.hash).order_by(audit_log.c.seq.desc()).limit(1)
    row = (await conn.execute(query)).first()
    return (int(row[0]), bytes(row[1])) if row is not None else None


async def insert(conn: AsyncConnection, row: AuditRow) -> None:
    await conn.execute(
        audit_log.insert().values(
            seq=row.seq,
            at=row.at,
            actor=row.actor,
            action=row.action,
            subject=row.subject,
            details=row.details,
            prev=row.prev,
            hash=row.hash,
        )
    )


async def page(conn: AsyncConnection, *, after: int, limit: int) -> list[AuditRow]:
    """Entries with ``seq > after`` in order (keyset pagination)."""
    query = select(audit_log).where(audit_log.c.seq > after).order_by(audit_log.c.seq).limit(limit)
    rows = (await conn.execute(query)).mappings().all()
    return [
        AuditRow(
            seq=int(r["seq"]),
            at=int(r["at"]),
            actor=r["actor"],
            action=r["action"],
            subject=r["subject"],
            details=r["details"],
            prev=bytes(r["prev"]),
            hash=bytes(r["hash"]),
        )
        for r in rows
    ]
