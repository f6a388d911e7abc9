"""Signed tree heads and everything the log proves against them (PROTOCOL.md §7.4, §7.9).

**Tree heads** are signed with the log key: a new one whenever the log grew and at least
every ``settings.tree_head_seconds``. A background task (:meth:`TreeHeads.start_background`)
looks every few seconds, and readers sign lazily (:meth:`TreeHeads.ensure_head`) when the
newest head is stale, so a key appended a moment ago is proved at once. Heads are signed
under the log lock with ``ts = max(now, newest ts)``, so their sizes and times never go
backwards, whichever process signs.

**Proofs** read only perfect Merkle nodes, which never change once complete: an inclusion
or a consistency proof, or a subject's whole chain proved against the newest head, is one
query for O(log n) node rows (plus a handful of indexed lookups), whatever the log size.
Proofs are served for the current size and for every size a head was signed for; other
sizes are refused (``unknown-tree-size``), as are sizes beyond the log (``beyond-log``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncConnection

from postbox.crypto.encoding import SIGNATURE_BYTES, b64d, b64e
from postbox.crypto.transparency import ServedTreeHead, TreeHead, make_tree_head, sign_tree_head
from postbox.keys import merkle, store
from postbox.mailbox.clock import Clock
from postbox.mailbox.db.engine import Database
from postbox.mailbox.errors import BadRequest, NotFound
from postbox.mailbox.secrets import Secrets
from postbox.mailbox.settings import Settings

log = logging.getLogger("postbox.keys")

#: ``GET …/leaves`` returns at most this many leaves per call (clients page on)
MAX_LEAVES_PAGE: Final = 1000
#: the background task looks at the log this often (seconds)
HEAD_POLL_SECONDS: Final = 5.0


@dataclass(frozen=True, slots=True)
class SignedHead:
    """A stored tree head."""

    size: int
    root: bytes
    ts: int
    sig: bytes

    @classmethod
    def from_row(cls, row: store.HeadRow) -> SignedHead:
        return cls(row.size, row.root, row.ts, row.sig)

    @property
    def sth(self) -> TreeHead:
        return make_tree_head(size=self.size, root=self.root, ts=self.ts)


def _b64s(values: Iterable[bytes]) -> list[str]:
    return [b64e(v) for v in values]


class TreeHeads:
    """Signing and serving tree heads, proofs, leaves and proved key chains.

    Every method opens its own transaction (the routes call one method each).
    """

    def __init__(self, *, db: Database, secrets: Secrets, settings: Settings, clock: Clock) -> None:
        self._db = db
        self._secrets = secrets
        self._settings = settings
        self._clock = clock
        self.log_pk = secrets.log_pk
        self._task: asyncio.Task[None] | None = None

    # --- signing ---------------------------------------------------------------------------------
    def _stale(self, head: store.HeadRow | None, size: int, now: int) -> bool:
        if head is None or head.size < size:
            return True
        return now - head.ts >= self._settings.tree_head_seconds * 1000

    async def ensure_head(self, *, force: bool = False) -> SignedHead:
        """The newest tree head, after signing a new one if the log grew since the newest
        or the newest is ``tree_head_seconds`` old (or ``force``)."""
        now = self._clock()
        if not force:
            async with self._db.read() as conn:
                head, size = await store.newest_head_and_size(conn)
            if head is not None and not self._stale(head, size, now):
                return SignedHead.from_row(head)
        async with self._db.write() as conn:
            size = await store.lock_log(conn)
            head = await store.newest_head(conn)
            if head is not None and not force and not self._stale(head, size, now):
                return SignedHead.from_row(head)  # another process signed meanwhile
            if size == 0:
                raise RuntimeError("the log is empty: run KeyLog.genesis() first")
            root = merkle.root_from_nodes(size, await store.nodes(conn, merkle.root_nodes(size)))
            ts = max(now, head.ts) if head is not None else now
            served = sign_tree_head(
                make_tree_head(size=size, root=root, ts=ts), self._secrets.log_seed
            )
            row = await store.insert_head(
                conn, size=size, root=root, ts=ts, sig=b64d(served["sig"], SIGNATURE_BYTES)
            )
        return SignedHead.from_row(row)

    def served(self, head: SignedHead) -> ServedTreeHead:
        """The served form ``{"sth","sig","log_key"}``."""
        return {"sth": head.sth, "sig": b64e(head.sig), "log_key": b64e(self.log_pk)}

    # --- the background task ----------------------------------------------------------------------
    def start_background(self) -> None:
        """Start the task that keeps tree heads fresh (idempotent)."""
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="postbox-tree-heads")

    async def aclose(self) -> None:
        """Stop the background task."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _loop(self) -> None:
        interval = max(0.05, min(HEAD_POLL_SECONDS, float(self._settings.tree_head_seconds)))
        while True:
            await asyncio.sleep(interval)
            try:
                await self.ensure_head()
            except Exception:
                log.exception("signing a tree head failed; trying again in %.0f s", interval)

    # --- the public read routes -------------------------------------------------------------------
    async def tree_head(self) -> ServedTreeHead:
        """``GET /api/v1/transparency/sth``: the newest head (signed now if stale)."""
        return self.served(await self.ensure_head())

    async def _check_size(self, conn: AsyncConnection, size: int, current: int) -> None:
        """A proof may name the current size or any size a head was signed for."""
        if size > current:
            raise BadRequest(f"the log has {current} leaves", code="beyond-log")
        if size != current and await store.head_of_size(conn, size) is None:
            raise NotFound("no tree head was signed for that size", code="unknown-tree-size")

    async def inclusion(self, index: int, size: int) -> dict[str, Any]:
        """``…/inclusion?index&size`` → ``{"index","size","leaf","path"}``."""
        if index >= size:
            raise BadRequest("index must be smaller than size", code="index-out-of-range")
        async with self._db.read() as conn:
            await self._check_size(conn, size, await store.log_size(conn))
            leaf = await store.leaf_at(conn, index)
            plan = merkle.inclusion_plan(index, size)
            path = plan.assemble(await store.nodes(conn, plan.nodes))
        assert leaf is not None  # index < size ≤ log size
        return {"index": index, "size": size, "leaf": b64e(leaf), "path": _b64s(path)}

    async def consistency(self, first: int, second: int) -> dict[str, Any]:
        """``…/consistency?first&second`` → ``{"first","second","path"}``."""
        if first > second:
            raise BadRequest("first must not exceed second", code="first-after-second")
        async with self._db.read() as conn:
            current = await store.log_size(conn)
            await self._check_size(conn, second, current)
            await self._check_size(conn, first, current)
            plan = merkle.consistency_plan(first, second)
            path = plan.assemble(await store.nodes(conn, plan.nodes))
        return {"first": first, "second": second, "path": _b64s(path)}

    async def leaves(self, start: int, end: int) -> dict[str, Any]:
        """``…/leaves?start&end`` → ``{"leaves":[b64…]}``: ``[start, end)``, at most
        :data:`MAX_LEAVES_PAGE` and at most up to the current size (clients page on)."""
        if start >= end:
            raise BadRequest("start must be smaller than end", code="empty-range")
        async with self._db.read() as conn:
            current = await store.log_size(conn)
            if start >= current:
                raise BadRequest(f"the log has {current} leaves", code="beyond-log")
            end = min(end, current, start + MAX_LEAVES_PAGE)
            leaves = await store.leaves_between(conn, start, end)
        return {"leaves": _b64s(leaves)}

    async def keys(self, subject: str) -> dict[str, Any]:
        """``GET /api/v1/keys/{subject}`` → ``{"sth","sig","events":[{"index","leaf","path"}]}``:
        the subject's whole chain, each event proved against the newest tree head (signed
        first if stale, so an event appended a moment ago is included). 404
        ``unknown-subject`` if the subject has no event under that head."""
        now = self._clock()
        for attempt in range(2):
            async with self._db.read() as conn:
                head, size = await store.newest_head_and_size(conn)
                if head is not None and (attempt or not self._stale(head, size, now)):
                    return await self._prove_chain(conn, subject, SignedHead.from_row(head))
            await self.ensure_head()
        raise RuntimeError("no tree head")  # pragma: no cover - ensure_head made one

    async def _prove_chain(
        self, conn: AsyncConnection, subject: str, head: SignedHead
    ) -> dict[str, Any]:
        rows = await store.subject_leaves(conn, subject, below=head.size)
        if not rows:
            raise NotFound("no such subject in the log", code="unknown-subject")
        plans = [merkle.inclusion_plan(r.idx, head.size) for r in rows]
        hashes = await store.nodes(conn, (n for plan in plans for n in plan.nodes))
        events = [
            {"index": r.idx, "leaf": b64e(r.leaf), "path": _b64s(plan.assemble(hashes))}
            for r, plan in zip(rows, plans, strict=True)
        ]
        return {"sth": head.sth, "sig": b64e(head.sig), "events": events}
