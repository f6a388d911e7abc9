"""Bounded memory: a 64 MiB attachment goes up and comes down through the client library
and the server (one process here, so both sides are measured) without either holding the
file. tracemalloc's peak is compared with the file size, never wall time."""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

import pytest
from blobs.world import BlobWorld

from postbox.client.attachments import download, upload
from postbox.mailbox.settings import Settings

MIB = 1024 * 1024
FILE = 64 * MIB
#: what may be alive at once: parts in flight on both sides, read-ahead, hash batches
BOUND = 24 * MIB


@pytest.fixture
def settings(db_url: str, tmp_path: Path, port: int) -> Settings:
    return Settings(
        data_dir=tmp_path / "var",
        db=db_url,
        port=port,
        public_origin=f"http://127.0.0.1:{port}",
        max_part_bytes=MIB,
        quota_bytes=4 * FILE,
        access_token_seconds=24 * 3600,
    ).validate()


def write_file(path: Path) -> None:
    with path.open("wb") as f:
        for _ in range(FILE // MIB):
            f.write(os.urandom(MIB))


async def test_a_large_file_in_bounded_memory(bw: BlobWorld, tmp_path: Path) -> None:
    src = tmp_path / "big.bin"
    write_file(src)
    session = bw.session(bw.owner)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        ref = await upload(session, src, name="big.bin")
        _, up_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        out = await download(
            session, ref.blob, ref.key, ref.blob_size, ref.hash, tmp_path / "copy.bin"
        )
        _, down_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    await session.close()
    assert out.stat().st_size == FILE
    with src.open("rb") as a, out.open("rb") as b:
        while chunk := a.read(MIB):
            assert chunk == b.read(MIB)
    print(f"peak: upload {up_peak / MIB:.1f} MiB, download {down_peak / MIB:.1f} MiB")
    assert up_peak < BOUND, up_peak
    assert down_peak < BOUND, down_peak
