"""The blob hash kept up to date while parts arrive (a shortcut for completing uploads)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path

from postbox.crypto.attachment import blob_hash
from postbox.crypto.encoding import b64e
from postbox.crypto.primitives import random_bytes
from postbox.mailbox.blobs.service import RunningHashes
from postbox.mailbox.blobs.storage import LocalBlobStore, PartRef

BLOB = b64e(bytes(range(16)))


class CountingStore(LocalBlobStore):
    """The local store, counting the bytes it hands out."""

    read_bytes = 0

    def _feed(
        self, blob_id: str, parts: Sequence[PartRef], consume: Callable[[memoryview], None]
    ) -> None:
        def counting(chunk: memoryview) -> None:
            self.read_bytes += len(chunk)
            consume(chunk)

        super()._feed(blob_id, parts, counting)


async def stored_parts(store: LocalBlobStore, data: bytes, size: int) -> list[PartRef]:
    refs = []
    for i, start in enumerate(range(0, len(data), size)):
        sink = store.part_sink(BLOB, i)
        await sink.write(data[start : start + size])
        refs.append(await sink.commit())
    return refs


async def settle(hashes: RunningHashes) -> None:
    for run in list(hashes._runs.values()):
        if run.task is not None:
            await asyncio.wait([run.task])


async def test_parts_in_any_order_are_hashed_once(tmp_path: Path) -> None:
    store = CountingStore(tmp_path)
    data = random_bytes(10 * 1000 + 7)
    refs = await stored_parts(store, data, 1000)
    hashes = RunningHashes(store)
    for i in (3, 0, 1, 2, 10, 9, 8, 7, 6, 5, 4):
        hashes.recorded(BLOB, refs[i])
        await asyncio.sleep(0)
    await settle(hashes)
    assert store.read_bytes == len(data)  # every part read once, while "uploading"
    assert await hashes.finish(BLOB, refs) == (len(data), blob_hash(data))
    assert store.read_bytes == len(data)  # completing read nothing more


async def test_completing_finishes_what_is_missing(tmp_path: Path) -> None:
    store = CountingStore(tmp_path)
    data = random_bytes(5 * 1000)
    refs = await stored_parts(store, data, 1000)
    hashes = RunningHashes(store)
    hashes.recorded(BLOB, refs[0])  # the others came through another process
    hashes.recorded(BLOB, refs[3])
    await settle(hashes)
    assert await hashes.finish(BLOB, refs) == (len(data), blob_hash(data))
    assert store.read_bytes == len(data)
    # no state at all: everything is read
    assert await RunningHashes(store).finish(BLOB, refs) == (len(data), blob_hash(data))


async def test_a_failed_or_forgotten_state_falls_back(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    data = random_bytes(3 * 1000)
    refs = await stored_parts(store, data, 1000)
    hashes = RunningHashes(store)
    missing = PartRef(0, 1000, bytes(32))  # a part whose file is not there
    hashes.recorded(BLOB, missing)
    await settle(hashes)
    assert await hashes.finish(BLOB, refs) == (len(data), blob_hash(data))
    hashes.recorded(BLOB, refs[0])
    hashes.forget(BLOB)
    assert await hashes.finish(BLOB, refs) == (len(data), blob_hash(data))
    hashes.recorded(BLOB, refs[0])
    hashes.close()
    assert hashes._runs == {}
