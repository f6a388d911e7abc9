"""The retention collector: purges expired trash and deletes messages past their org's rule.

Every ``gc_interval_seconds`` each server process runs :meth:`Collector.collect`:

1. **Trash**: entries moved to the trash more than ``trash_days`` ago (the rule of the
   mailbox's organisation; 30 days without one) are deleted, read from the partial index
   of trash entries by age.
2. **Retention**: for each organisation with ``delete_after_days``, its messages
   (``messages.org_id``) accepted longer ago than that are deleted from every mailbox,
   read from ``ix_messages_org_id_accepted``, oldest first.

In both, a message left without entries goes with its blob links and blob rows (the blobs
collector removes the files). Work happens in batches of :attr:`Collector.batch` rows, one
write transaction each, at most :data:`MAX_BATCHES` per run, so one run never holds the
writer long and a huge backlog is worked off over several runs.

Several processes may collect at once: retention claims messages with PostgreSQL's
``FOR UPDATE SKIP LOCKED`` (each process takes different ones); every deletion locks the
messages concerned in key order before it touches their entries, and trash entries are
deleted only if they are still in the trash since the time they were chosen at (a user may
have restored one meanwhile). SQLite has one writer, so there the batches simply queue.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final

from postbox.mailbox.clock import Clock
from postbox.mailbox.db.engine import Database
from postbox.mailbox.inbox import store
from postbox.mailbox.inbox.service import DEFAULT_TRASH_DAYS, Wake, announce
from postbox.mailbox.inbox.store import Purged

log = logging.getLogger("postbox.inbox.retention")

#: rows per collection transaction
BATCH: Final = 500
#: transactions per collection run (per organisation for retention)
MAX_BATCHES: Final = 200


class Collector:
    """``app[INBOX_COLLECTOR]``: one :meth:`collect` per run (tests call it directly)."""

    def __init__(self, db: Database, clock: Clock, *, wake: Wake, batch: int = BATCH) -> None:
        self._db = db
        self._clock = clock
        self._wake = wake
        self.batch = batch

    async def collect(self) -> Purged:
        """One run: the trash first, then each organisation's ``delete_after_days``."""
        now = self._clock()
        async with self._db.read() as conn:
            rules = await store.all_rules(conn)
        total = await self._purge_trash(now, rules)
        for rule in rules:
            if rule.delete_after_days is not None:
                cutoff = now - rule.delete_after_days * store.DAY_MS
                total += await self._expire(rule.org_id, cutoff, now)
        return total

    async def _purge_trash(self, now: int, rules: list[store.RuleRow]) -> Purged:
        min_days = min([DEFAULT_TRASH_DAYS, *(r.trash_days for r in rules)])
        total = Purged()
        for _ in range(MAX_BATCHES):
            async with self._db.write() as conn:
                chosen = await store.expired_trash(
                    conn, now, default_days=DEFAULT_TRASH_DAYS, min_days=min_days, limit=self.batch
                )
                if not chosen:
                    break
                pks = [x.message_pk for x in chosen]
                await store.lock_messages(conn, pks)
                removed = await store.delete_trash_entries(conn, chosen)
                purged = await store.purge_orphans(conn, pks)
                readers = await announce(conn, sorted({x.mailbox_id for x in chosen}), now)
            total += Purged(removed) + purged
            await self._wake(readers)
            if len(chosen) < self.batch:
                break
        return total

    async def _expire(self, org_id: str, cutoff: int, now: int) -> Purged:
        total = Purged()
        for _ in range(MAX_BATCHES):
            async with self._db.write() as conn:
                # claimed: with PostgreSQL another process skips these and takes others
                pks = await store.expired_messages(conn, org_id, cutoff, self.batch)
                if not pks:
                    break
                boxes = await store.mailboxes_of(conn, pks)
                removed = await store.delete_entries_of(conn, pks)
                purged = await store.purge_orphans(conn, pks)
                readers = await announce(conn, boxes, now)
            total += Purged(removed) + purged
            await self._wake(readers)
            if len(pks) < self.batch:
                break
        return total

    async def run(self, interval_s: float) -> None:
        """Collect now and then every ``interval_s`` seconds, until cancelled (the
        process's :class:`~postbox.mailbox.background.Background` restarts it after an
        error)."""
        while True:
            purged = await self.collect()
            if purged.entries or purged.messages:
                log.info(
                    "retention: %d entries, %d messages, %d blob rows deleted",
                    purged.entries,
                    purged.messages,
                    purged.blobs,
                )
            await asyncio.sleep(interval_s)
