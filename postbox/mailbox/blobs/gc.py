"""Garbage collection of blobs: expired rows with their files, and files without a row.

Every ``gc_interval_seconds`` each server process runs :meth:`BlobGc.run_once`:

1. **Expired blobs.** Unfinished uploads and complete blobs that no message references
   are deleted once ``expires`` (server clock) has passed: rows first, in one conditional
   ``DELETE … WHERE expires < now AND NOT EXISTS (message_blobs …) RETURNING id``, then the
   files of exactly the rows this process deleted. A blob the send path links at the same
   moment (``expires`` set to NULL) or a part that arrives (``expires`` pushed forward) is
   left alone by the condition, whichever transaction commits first; two processes never
   both delete a row.
2. **Files without a row** (at most every six hours, because it lists every blob
   folder). A crash between a committed row deletion and the file removal, retention
   deleting rows of blobs whose messages went, a part written while its upload was
   aborted: each leaves files that no row describes. A blob folder without a row, a part
   file that is not one of its upload's recorded parts, and a temporary file are removed
   once they are older than a grace period (file-system time), so that a part renamed
   into place a moment before its row is inserted is never touched.

Safe with several processes: deletions are conditional, file removals idempotent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from postbox.mailbox.blobs import store
from postbox.mailbox.blobs.storage import BlobStore
from postbox.mailbox.clock import Clock
from postbox.mailbox.db.engine import Database

log = logging.getLogger("postbox.blobs.gc")

#: files without a row are removed once this old (a part's row follows its file in ms)
ORPHAN_GRACE_S: Final = 3600.0
#: expired rows deleted per transaction
BATCH: Final = 200
#: the sweep for files without a row lists every blob folder: at most this often
SWEEP_INTERVAL_S: Final = 6 * 3600.0


@dataclass(frozen=True)
class GcReport:
    expired: int  # blob rows deleted (with their files)
    orphans: int  # blob folders removed that had no row
    stray_files: int  # part and temporary files removed from blobs that have a row

    @property
    def total(self) -> int:
        return self.expired + self.orphans + self.stray_files


class BlobGc:
    """The collector; :meth:`run_forever` is the background job."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        blob_store: BlobStore,
        *,
        interval_s: float,
        orphan_grace_s: float = ORPHAN_GRACE_S,
        temp_grace_s: float | None = None,
        wall: Callable[[], float] = time.time,
        sweep_interval_s: float = SWEEP_INTERVAL_S,
    ) -> None:
        self._db = db
        self._clock = clock
        self._store = blob_store
        self._interval = interval_s
        self._orphan_grace = orphan_grace_s
        # A temporary file is a part still arriving: give a slow client the upload's life.
        self._temp_grace = orphan_grace_s if temp_grace_s is None else temp_grace_s
        self._wall = wall
        self._sweep_interval = sweep_interval_s
        self._last_sweep: float | None = None
        self._lock = asyncio.Lock()

    async def run_forever(self) -> None:
        while True:
            await asyncio.sleep(self._interval)  # not at start-up: the server starts quickly
            report = await self.run_once()
            if report.total:
                log.info(
                    "blob gc: %d expired, %d orphaned folders, %d stray files removed",
                    report.expired,
                    report.orphans,
                    report.stray_files,
                )

    async def run_once(self, *, sweep: bool | None = None) -> GcReport:
        """One pass: expired blobs always; the sweep for files without a row when ``sweep``
        is true, or (None) when the last sweep is ``sweep_interval_s`` ago. Passes of one
        process never overlap."""
        async with self._lock:
            expired = await self._expired()
            now = self._wall()
            due = self._last_sweep is None or now - self._last_sweep >= self._sweep_interval
            orphans = strays = 0
            if sweep or (sweep is None and due):
                self._last_sweep = now
                orphans, strays = await self._orphans()
        return GcReport(expired, orphans, strays)

    async def _expired(self) -> int:
        deleted = 0
        now = self._clock()
        while True:
            async with self._db.write() as conn:
                candidates = await store.expired(conn, now, BATCH)
                gone = await store.delete_expired(conn, candidates, now)
            for blob_id in gone:
                await self._store.delete_blob(blob_id)
            deleted += len(gone)
            if len(candidates) < BATCH:
                return deleted

    async def _orphans(self) -> tuple[int, int]:
        orphans = strays = 0
        cutoff = self._wall() - self._orphan_grace
        temp_cutoff = self._wall() - self._temp_grace
        async for batch in self._store.blob_ids():
            async with self._db.read() as conn:
                have = await store.existing(conn, batch)
                known = await store.part_keys(conn, sorted(have))
            for blob_id in batch:
                files = await self._store.files(blob_id)
                if blob_id not in have:
                    newest = max(
                        (f.mtime for f in files),
                        default=await self._store.folder_mtime(blob_id) or 0.0,
                    )
                    if newest < cutoff and not await self._has_row(blob_id):
                        await self._store.delete_blob(blob_id)
                        orphans += 1
                    continue
                for f in files:
                    if f.part is not None:
                        if f.part not in known[blob_id] and f.mtime < cutoff:
                            await self._store.delete_file(blob_id, f.name)
                            strays += 1
                    elif f.mtime < temp_cutoff:
                        await self._store.delete_file(blob_id, f.name)
                        strays += 1
        return orphans, strays

    async def _has_row(self, blob_id: str) -> bool:
        """Checked again just before a folder goes: the listing above may be stale."""
        async with self._db.read() as conn:
            return bool(await store.existing(conn, [blob_id]))
