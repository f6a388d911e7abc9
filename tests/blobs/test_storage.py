"""The local blob store on its own: paths, atomic writes, ranged reads, listing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from postbox.crypto.encoding import b64e
from postbox.crypto.primitives import random_bytes
from postbox.mailbox.blobs.storage import (
    LocalBlobStore,
    PartRef,
    StorageError,
    part_checksum,
)

BLOB = b64e(bytes(range(16)))


def test_paths_come_from_validated_ids_only(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    folder = store.folder(BLOB)
    assert folder == tmp_path / "00" / bytes(range(16)).hex()
    for bad in (
        "../../etc/passwd",
        "..",
        "",
        "A" * 21 + "B",
        "A" * 23,
        "AAAA/AAAAAAAAAAAAAAAAA",
        7,
    ):
        with pytest.raises(ValueError):
            store.folder(bad)  # type: ignore[arg-type]
    for index in (-1, 1_000_000, True):
        with pytest.raises(ValueError):
            store.part_sink(BLOB, index)
    with pytest.raises(ValueError):
        store.part_path(BLOB, 0, b"short")


async def test_a_part_is_visible_only_once_committed(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    data = random_bytes(3 * 1024 * 1024 + 5)
    sink = store.part_sink(BLOB, 3)
    for start in range(0, len(data), 1024 * 1024):
        await sink.write(data[start : start + 1024 * 1024])
    assert sink.size == len(data) and sink.digest() == part_checksum(data)
    (tmp,) = store.folder(BLOB).iterdir()
    assert tmp.name.startswith(".tmp-000003-")  # not a part name
    ref = await sink.commit()
    assert ref == PartRef(3, len(data), part_checksum(data))
    (final,) = store.folder(BLOB).iterdir()
    assert final.name == f"000003-{ref.checksum.hex()}"
    assert final.read_bytes() == data
    assert final.stat().st_mode & 0o777 == 0o600
    assert store.folder(BLOB).stat().st_mode & 0o777 == 0o700
    await sink.discard()  # harmless after commit
    assert final.exists()
    # a discarded part leaves nothing
    other = store.part_sink(BLOB, 4)
    await other.write(b"abc")
    await other.discard()
    assert list(store.folder(BLOB).iterdir()) == [final]


async def test_reads_span_parts_and_check_sizes(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    chunks = [random_bytes(1000), random_bytes(1000), random_bytes(7)]
    refs = []
    for i, chunk in enumerate(chunks):
        sink = store.part_sink(BLOB, i)
        await sink.write(chunk)
        refs.append(await sink.commit())
    whole = b"".join(chunks)

    async def read(offset: int, length: int) -> bytes:
        return b"".join([c async for c in store.read(BLOB, refs, offset, length)])

    assert await read(0, len(whole)) == whole
    for offset, length in ((0, 1), (999, 2), (1500, 507), (2006, 1), (10, 0)):
        assert await read(offset, length) == whole[offset : offset + length]
    with pytest.raises(ValueError):
        await read(2000, 100)
    # a part file that is not what the database says is the server's fault
    path = store.part_path(BLOB, 1, refs[1].checksum)
    os.truncate(path, 10)
    with pytest.raises(StorageError):
        await read(0, len(whole))
    path.unlink()
    with pytest.raises(StorageError):
        await read(0, len(whole))


async def test_listing_and_deleting(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    ids = [b64e(random_bytes(16)) for _ in range(5)]
    for blob in ids:
        sink = store.part_sink(blob, 0)
        await sink.write(b"x")
        await sink.commit()
    # things that are not blobs are never listed
    (tmp_path / "zz").mkdir()
    (tmp_path / "00" / "not-a-blob").mkdir(parents=True)
    (tmp_path / "readme.txt").write_text("hi")
    listed = [b async for batch in store.blob_ids(batch=2) for b in batch]
    assert sorted(listed) == sorted(ids)
    files = await store.files(ids[0])
    assert len(files) == 1 and files[0].part is not None and files[0].size == 1
    await store.delete_blob(ids[0])
    await store.delete_blob(ids[0])  # idempotent
    assert not store.folder(ids[0]).exists()
    assert await store.folder_mtime(ids[0]) is None
    with pytest.raises(ValueError):
        await store.delete_file(ids[1], "../x")


async def test_a_part_written_in_many_pieces(tmp_path: Path) -> None:
    """Pieces as the socket delivers them go to disk with writev, never joined first."""
    store = LocalBlobStore(tmp_path)
    pieces = [random_bytes(n) for n in (1, 65_536, 0, 300_001, 7)] * 300  # > IOV_MAX pieces
    sink = store.part_sink(BLOB, 0)
    await sink.write_pieces(pieces)
    await sink.write_pieces([])
    data = b"".join(pieces)
    assert sink.size == len(data) and sink.digest() == part_checksum(data)
    ref = await sink.commit()
    assert store.part_path(BLOB, 0, ref.checksum).read_bytes() == data
    seen = bytearray()
    await store.feed(BLOB, [ref], seen.extend)  # views of one reused buffer
    assert seen == data
