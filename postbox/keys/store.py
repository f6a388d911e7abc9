"""SQL for the key-transparency log and the key directory (SQLAlchemy Core, both backends).

Tables (declared in :mod:`postbox.mailbox.db.schema`):

* ``log_state``: one row (``id = 1``) with the log size. Appenders lock it
  (:func:`lock_log`); it is the one serialisation point of the log.
* ``log_leaves``: every leaf (``cj(event)``) by index, with its subject, seq, type, leaf
  hash and time; ``(subject, seq)`` is unique, which also indexes a subject's chain.
* ``log_nodes``: every *perfect* Merkle node ``(level, idx) -> hash``, leaves included
  (level 0). Perfect nodes never change, so proofs for any size read only these rows.
* ``log_heads``: signed tree heads, newest = highest ``id``.
* ``certificates``: the key directory, kept in step with the log by
  :class:`postbox.keys.log.KeyLog`; ``log_index`` is NULL while a staff identity (and the
  encryption certificates uploaded with it) waits for org certification.

Every function takes the caller's connection and never raises an HTTP error; lookups
return ``None`` (or an empty list) when nothing matches.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, and_, bindparam, func, or_, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from postbox.keys.merkle import NodeId
from postbox.mailbox.db.schema import certificates, log_heads, log_leaves, log_nodes, log_state

#: rows per executemany batch when inserting many nodes
_BATCH = 5000


@dataclass(frozen=True, slots=True)
class LeafRow:
    idx: int
    seq: int
    leaf: bytes
    ts: int


@dataclass(frozen=True, slots=True)
class HeadRow:
    id: int
    size: int
    root: bytes
    ts: int
    sig: bytes


@dataclass(frozen=True, slots=True)
class CertRow:
    kid: str
    subject: str
    use: str
    kind: str
    org_id: str | None
    served: str
    created: int
    expires: int | None
    log_index: int | None
    revoked: int | None
    superseded: int | None


async def _all(conn: AsyncConnection, q: Select[Any]) -> list[Row[Any]]:
    return list((await conn.execute(q)).all())


# --- log state -------------------------------------------------------------------------------
async def lock_log(conn: AsyncConnection) -> int:
    """The log size, with the append lock held until the transaction ends.

    PostgreSQL: ``SELECT … FOR UPDATE`` on the one ``log_state`` row. SQLite: write
    transactions already start with ``BEGIN IMMEDIATE`` (one writer), and the dialect
    renders no ``FOR UPDATE``.
    """
    q = select(log_state.c.size).where(log_state.c.id == 1).with_for_update()
    return int((await conn.execute(q)).scalar_one())


async def log_size(conn: AsyncConnection) -> int:
    q = select(log_state.c.size).where(log_state.c.id == 1)
    return int((await conn.execute(q)).scalar_one())


async def set_log_size(conn: AsyncConnection, size: int) -> None:
    await conn.execute(update(log_state).where(log_state.c.id == 1).values(size=size))


# --- leaves ----------------------------------------------------------------------------------
async def insert_leaf(
    conn: AsyncConnection,
    *,
    idx: int,
    subject: str,
    seq: int,
    type: str,
    leaf: bytes,
    leaf_hash: bytes,
    ts: int,
) -> None:
    await conn.execute(
        log_leaves.insert().values(
            idx=idx, subject=subject, seq=seq, type=type, leaf=leaf, leaf_hash=leaf_hash, ts=ts
        )
    )


async def subject_leaves(
    conn: AsyncConnection, subject: str, *, below: int | None = None
) -> list[LeafRow]:
    """A subject's chain in seq order (only leaves with index < ``below`` when given)."""
    q = (
        select(log_leaves.c.idx, log_leaves.c.seq, log_leaves.c.leaf, log_leaves.c.ts)
        .where(log_leaves.c.subject == subject)
        .order_by(log_leaves.c.seq)
    )
    rows = [LeafRow(int(r.idx), int(r.seq), bytes(r.leaf), int(r.ts)) for r in await _all(conn, q)]
    # Filtered here, not in SQL: a chain is a handful of rows, and an ``idx < n`` condition
    # tempts PostgreSQL into scanning the primary-key index of the whole log.
    return rows if below is None else [r for r in rows if r.idx < below]


async def leaf_at(conn: AsyncConnection, idx: int) -> bytes | None:
    q = select(log_leaves.c.leaf).where(log_leaves.c.idx == idx)
    value = (await conn.execute(q)).scalar_one_or_none()
    return None if value is None else bytes(value)


async def leaves_between(conn: AsyncConnection, start: int, end: int) -> list[bytes]:
    """Leaf bytes of ``[start, end)`` in index order."""
    q = (
        select(log_leaves.c.leaf)
        .where(log_leaves.c.idx >= start, log_leaves.c.idx < end)
        .order_by(log_leaves.c.idx)
    )
    values: list[Any] = list((await conn.execute(q)).scalars())
    return [bytes(v) for v in values]


# --- Merkle nodes ----------------------------------------------------------------------------
def _nodes_query(slots: int) -> Select[Any]:
    """``SELECT … WHERE (level = :l0 AND idx = :i0) OR …`` with ``slots`` pairs of
    parameters. Both backends answer each term with a primary-key lookup (SQLite scans the
    whole table for a row-value ``(level, idx) IN (…)``, so that form is avoided)."""
    terms = [
        and_(log_nodes.c.level == bindparam(f"l{k}"), log_nodes.c.idx == bindparam(f"i{k}"))
        for k in range(slots)
    ]
    return select(log_nodes.c.level, log_nodes.c.idx, log_nodes.c.hash).where(or_(*terms))


#: one prepared statement per size class (building a large SQLAlchemy expression per call
#: costs more than running it, and would make a lookup's cost grow with log2 of the log)
_NODES_QUERIES: dict[int, Select[Any]] = {}
_SLOT_STEP = 8


async def nodes(conn: AsyncConnection, wanted: Iterable[NodeId]) -> dict[NodeId, bytes]:
    """The stored hashes of these perfect nodes, in one query (missing ones are absent).

    Cost: one primary-key lookup per node asked, whatever the size of the log.
    """
    keys = sorted({(n.level, n.index) for n in wanted})
    if not keys:
        return {}
    slots = -(-len(keys) // _SLOT_STEP) * _SLOT_STEP
    query = _NODES_QUERIES.get(slots)
    if query is None:
        query = _NODES_QUERIES[slots] = _nodes_query(slots)
    padded = keys + [keys[-1]] * (slots - len(keys))  # repeating a term changes nothing
    params: dict[str, int] = {}
    for k, (level, index) in enumerate(padded):
        params[f"l{k}"] = level
        params[f"i{k}"] = index
    rows = (await conn.execute(query, params)).all()
    return {NodeId(int(r.level), int(r.idx)): bytes(r.hash) for r in rows}


async def insert_nodes(conn: AsyncConnection, created: Sequence[tuple[NodeId, bytes]]) -> None:
    for start in range(0, len(created), _BATCH):
        batch = created[start : start + _BATCH]
        await conn.execute(
            log_nodes.insert(),
            [{"level": n.level, "idx": n.index, "hash": h} for n, h in batch],
        )


# --- tree heads ------------------------------------------------------------------------------
def _head(row: Row[Any]) -> HeadRow:
    return HeadRow(int(row.id), int(row.size), bytes(row.root), int(row.ts), bytes(row.sig))


async def newest_head(conn: AsyncConnection) -> HeadRow | None:
    q = select(log_heads).order_by(log_heads.c.id.desc()).limit(1)
    row = (await conn.execute(q)).first()
    return None if row is None else _head(row)


async def newest_head_and_size(conn: AsyncConnection) -> tuple[HeadRow | None, int]:
    """The newest head and the log size, in one round trip when a head exists."""
    size = select(log_state.c.size).where(log_state.c.id == 1).scalar_subquery()
    q = select(log_heads, size.label("log_size")).order_by(log_heads.c.id.desc()).limit(1)
    row = (await conn.execute(q)).first()
    if row is None:
        return None, await log_size(conn)
    return _head(row), int(row.log_size)


async def head_of_size(conn: AsyncConnection, size: int) -> HeadRow | None:
    """The newest signed head of exactly this size, if one was ever signed."""
    q = select(log_heads).where(log_heads.c.size == size).order_by(log_heads.c.id.desc()).limit(1)
    row = (await conn.execute(q)).first()
    return None if row is None else _head(row)


async def insert_head(
    conn: AsyncConnection, *, size: int, root: bytes, ts: int, sig: bytes
) -> HeadRow:
    result = await conn.execute(
        log_heads.insert().values(size=size, root=root, ts=ts, sig=sig).returning(log_heads.c.id)
    )
    return HeadRow(int(result.scalar_one()), size, root, ts, sig)


async def head_count(conn: AsyncConnection) -> int:
    return int((await conn.execute(select(func.count()).select_from(log_heads))).scalar_one())


async def all_heads(conn: AsyncConnection) -> list[HeadRow]:
    """Every signed head, oldest first (tests and tools; the table grows slowly)."""
    rows = (await conn.execute(select(log_heads).order_by(log_heads.c.id))).all()
    return [_head(r) for r in rows]


# --- certificates (the key directory) --------------------------------------------------------
def _opt(value: Any) -> int | None:
    return None if value is None else int(value)


def _cert(r: Row[Any]) -> CertRow:
    return CertRow(
        kid=r.kid,
        subject=r.subject,
        use=r.use,
        kind=r.kind,
        org_id=r.org_id,
        served=r.served,
        created=int(r.created),
        expires=_opt(r.expires),
        log_index=_opt(r.log_index),
        revoked=_opt(r.revoked),
        superseded=_opt(r.superseded),
    )


async def cert_by_kid(conn: AsyncConnection, kid: str) -> CertRow | None:
    row = (await conn.execute(select(certificates).where(certificates.c.kid == kid))).first()
    return None if row is None else _cert(row)


async def insert_cert(
    conn: AsyncConnection,
    *,
    kid: str,
    subject: str,
    use: str,
    kind: str,
    org_id: str | None,
    served: str,
    created: int,
    expires: int | None,
    log_index: int | None,
) -> None:
    await conn.execute(
        certificates.insert().values(
            kid=kid,
            subject=subject,
            use=use,
            kind=kind,
            org_id=org_id,
            served=served,
            created=created,
            expires=expires,
            log_index=log_index,
        )
    )


async def mark_logged(conn: AsyncConnection, kid: str, *, served: str, log_index: int) -> None:
    """A pending certificate is now in the log (with the served form that was logged)."""
    await conn.execute(
        update(certificates)
        .where(certificates.c.kid == kid)
        .values(served=served, log_index=log_index)
    )


async def supersede(conn: AsyncConnection, *, subject: str, use: str, keep: str, at: int) -> None:
    """Mark every other current, logged certificate of (subject, use) superseded at ``at``."""
    await conn.execute(
        update(certificates)
        .where(
            certificates.c.subject == subject,
            certificates.c.use == use,
            certificates.c.kid != keep,
            certificates.c.log_index.is_not(None),
            certificates.c.superseded.is_(None),
        )
        .values(superseded=at)
    )


async def revoke(conn: AsyncConnection, *, subject: str, kid: str, at: int) -> None:
    await conn.execute(
        update(certificates)
        .where(
            certificates.c.kid == kid,
            certificates.c.subject == subject,
            certificates.c.revoked.is_(None),
        )
        .values(revoked=at)
    )


async def newest_logged(conn: AsyncConnection, subject: str, use: str) -> CertRow | None:
    """The subject's most recently logged certificate of this use."""
    q = (
        select(certificates)
        .where(
            certificates.c.subject == subject,
            certificates.c.use == use,
            certificates.c.log_index.is_not(None),
        )
        .order_by(certificates.c.log_index.desc())
        .limit(1)
    )
    row = (await conn.execute(q)).first()
    return None if row is None else _cert(row)


async def logged_certs(conn: AsyncConnection, subject: str) -> list[CertRow]:
    q = (
        select(certificates)
        .where(certificates.c.subject == subject, certificates.c.log_index.is_not(None))
        .order_by(certificates.c.log_index)
    )
    return [_cert(r) for r in (await conn.execute(q)).all()]


async def pending_certs(
    conn: AsyncConnection,
    *,
    subject: str | None = None,
    org_id: str | None = None,
    use: str | None = None,
) -> list[CertRow]:
    """Certificates waiting for org certification (``log_index`` NULL), oldest first."""
    q = select(certificates).where(certificates.c.log_index.is_(None))
    if subject is not None:
        q = q.where(certificates.c.subject == subject)
    if org_id is not None:
        q = q.where(certificates.c.org_id == org_id)
    if use is not None:
        q = q.where(certificates.c.use == use)
    q = q.order_by(certificates.c.created, certificates.c.kid)
    return [_cert(r) for r in (await conn.execute(q)).all()]
