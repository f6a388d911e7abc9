"""Garbage collection (both databases), with a controllable clock and file-system time.

Expired rows go with their files; linked blobs stay; files without a row go after the
grace period, never before; two server processes collecting at once delete each blob once.
"""

from __future__ import annotations

import asyncio
import time

from blobs.world import EXPIRY_S, PART, BlobWorld, blob_of
from pytest_aiohttp import AiohttpClient
from support.onboard import login, new_id

from postbox.mailbox.app import create_app
from postbox.mailbox.appkeys import BLOB_GC, BLOBS, CLOCK, DB
from postbox.mailbox.blobs import store
from postbox.mailbox.blobs.gc import ORPHAN_GRACE_S, BlobGc
from postbox.mailbox.blobs.service import delete_blob_rows
from postbox.mailbox.blobs.storage import LocalBlobStore, part_checksum

EXPIRY_MS = EXPIRY_S * 1000


def local(bw: BlobWorld) -> LocalBlobStore:
    s = bw.client.app[BLOBS].blob_store
    assert isinstance(s, LocalBlobStore)
    return s


def later_gc(bw: BlobWorld, seconds: float) -> BlobGc:
    """A collector whose file-system clock runs ``seconds`` ahead."""
    app = bw.client.app
    return BlobGc(
        app[DB],
        app[CLOCK],
        local(bw),
        interval_s=3600,
        temp_grace_s=2 * ORPHAN_GRACE_S,
        wall=lambda: time.time() + seconds,
    )


async def test_an_unfinished_upload_expires_without_progress(bw: BlobWorld) -> None:
    data = blob_of(100_000)
    blob = (await bw.create(bw.owner, len(data)))["blob"]
    gc = bw.client.app[BLOB_GC]
    bw.clock.advance(EXPIRY_MS - 10)
    assert (await bw.put(bw.owner, blob, 0, data[:PART]))[0] == 201  # progress: a new expiry
    bw.clock.advance(EXPIRY_MS - 10)
    assert (await gc.run_once()).expired == 0
    assert await bw.blob_row(blob) is not None
    bw.clock.advance(20)
    assert (await gc.run_once()).expired == 1
    assert await bw.blob_row(blob) is None
    assert not local(bw).folder(blob).exists()
    status, _, _ = await bw.call("GET", f"/api/v1/uploads/{blob}", bw.owner)
    assert status == 404


async def test_complete_blobs_expire_unless_a_message_references_them(bw: BlobWorld) -> None:
    loose = await bw.upload(bw.owner, blob_of(1000))
    linked = await bw.upload(bw.owner, blob_of(1000))
    await bw.link(linked, bw.team)
    gc = bw.client.app[BLOB_GC]
    bw.clock.advance(EXPIRY_MS + 1)
    assert (await gc.run_once()).expired == 1
    assert await bw.blob_row(loose) is None and not local(bw).folder(loose).exists()
    bw.clock.advance(10 * 365 * 24 * 3600 * 1000)
    assert (await gc.run_once()).expired == 0
    await login(bw.client, bw.caseworker)
    status, _, _ = await bw.call("GET", f"/api/v1/blobs/{linked}", bw.caseworker)
    assert status == 200


async def test_a_blob_linked_meanwhile_is_not_deleted(bw: BlobWorld) -> None:
    """The DELETE itself checks expiry and links: a stale candidate list is harmless."""
    blob = await bw.upload(bw.owner, blob_of(1000))
    bw.clock.advance(EXPIRY_MS + 1)
    db = bw.client.app[DB]
    async with db.read() as conn:
        candidates = await store.expired(conn, bw.clock(), 10)
    assert candidates == [blob]
    await bw.link(blob, bw.team)
    async with db.write() as conn:
        assert await store.delete_expired(conn, candidates, bw.clock()) == []
    assert await bw.blob_row(blob) is not None


async def test_files_without_a_row_go_after_the_grace_period(bw: BlobWorld) -> None:
    s = local(bw)
    # a folder whose row is gone (a crash between the row deletion and the files)
    ghost = new_id()
    sink = s.part_sink(ghost, 0)
    await sink.write(b"x" * 100)
    await sink.commit()
    # an upload with one recorded part, one part file nobody recorded, a temporary file
    data = blob_of(150_000)
    live = (await bw.create(bw.owner, len(data)))["blob"]
    assert (await bw.put(bw.owner, live, 0, data[:PART]))[0] == 201
    stray = s.part_sink(live, 1)
    await stray.write(b"y" * 10)
    await stray.commit()
    unfinished = s.part_sink(live, 2)
    await unfinished.write(b"z" * 10)  # neither committed nor discarded: a crash
    assert len(list(s.folder(live).iterdir())) == 3

    now = await later_gc(bw, 0).run_once()
    assert (now.orphans, now.stray_files) == (0, 0)
    assert s.folder(ghost).exists()

    hour = await later_gc(bw, ORPHAN_GRACE_S + 60).run_once()
    assert (hour.orphans, hour.stray_files) == (1, 1)
    assert not s.folder(ghost).exists()
    names = sorted(p.name for p in s.folder(live).iterdir())
    assert len(names) == 2 and names[0].startswith(".tmp-")
    assert names[1] == f"000000-{part_checksum(data[:PART]).hex()}"

    later = await later_gc(bw, 2 * ORPHAN_GRACE_S + 60).run_once()
    assert (later.orphans, later.stray_files) == (0, 1)
    assert [p.name for p in s.folder(live).iterdir()] == [names[1]]
    await unfinished.discard()
    # the upload is intact
    assert (await bw.put(bw.owner, live, 1, data[PART : 2 * PART]))[0] == 201


async def test_rows_deleted_by_another_feature(bw: BlobWorld) -> None:
    """Retention deletes rows in its transaction; files go now (best effort) or with the GC."""
    first = await bw.upload(bw.owner, blob_of(1000))
    second = await bw.upload(bw.owner, blob_of(1000))
    await bw.link(first, bw.team)
    app = bw.client.app
    async with app[DB].write() as conn:
        assert await delete_blob_rows(conn, [first, second]) == 2
    assert await bw.blob_row(first) is None
    await app[BLOBS].remove_files([first])
    assert not local(bw).folder(first).exists()
    assert local(bw).folder(second).exists()
    report = await later_gc(bw, ORPHAN_GRACE_S + 60).run_once()
    assert report.orphans == 1 and not local(bw).folder(second).exists()
    status, _, _ = await bw.call("GET", f"/api/v1/blobs/{first}", bw.caseworker)
    assert status == 404


async def test_two_processes_collect_each_blob_once(
    bw: BlobWorld, aiohttp_client: AiohttpClient
) -> None:
    blobs_ = [await bw.upload(bw.owner, blob_of(1000)) for _ in range(6)]
    for _ in range(3):
        await bw.create(bw.owner, len(blob_of(1000)))
    second = await aiohttp_client(create_app(bw.settings, clock=bw.clock))
    gcs = [bw.client.app[BLOB_GC], second.app[BLOB_GC]]
    bw.clock.advance(EXPIRY_MS + 1)
    reports = await asyncio.gather(*(gc.run_once() for gc in gcs))
    assert sum(r.expired for r in reports) == 9
    for blob in blobs_:
        assert await bw.blob_row(blob) is None
        assert not local(bw).folder(blob).exists()
    status, storage, _ = await bw.call("GET", "/api/v1/me/storage", bw.owner)
    assert (status, storage["used"]) == (200, 0)
