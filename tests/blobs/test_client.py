"""The client library's attachments over real HTTP (both databases).

Upload from a file, bytes or iterators; resume after an interruption (only the missing
parts go out again); refuse a file that changed; download with verification before any
plaintext is released, resuming a cut connection with a Range request; never overwrite.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from blobs.world import EXPIRY_S, PART, BlobWorld
from support.atrest import assert_nothing_in_clear, stored_bytes

from postbox.client.attachments import AttachmentRef, download, upload
from postbox.client.errors import UsageError, VerificationFailed
from postbox.crypto.attachment import blob_hash, blob_length
from postbox.crypto.attachment_stream import decrypt_bytes
from postbox.crypto.encoding import b64d, b64e
from postbox.crypto.primitives import random_bytes
from postbox.mailbox.appkeys import BLOB_GC, BLOBS
from postbox.mailbox.blobs.storage import LocalBlobStore, StorageError


class Interrupted(Exception):
    """What a crash in the middle of an upload looks like to the caller."""


def server_blob(bw: BlobWorld, blob: str) -> bytes:
    store = bw.client.app[BLOBS].blob_store
    assert isinstance(store, LocalBlobStore)
    return b"".join(p.read_bytes() for p in sorted(store.folder(blob).iterdir()))


def count_parts(
    bw: BlobWorld, monkeypatch: pytest.MonkeyPatch, blob: str | None = None
) -> list[int]:
    """Record the index of every part the server receives from now on (of ``blob``)."""
    service = bw.client.app[BLOBS]
    seen: list[int] = []
    original = service.put_part

    async def counting(who: Any, blob_id: str, index: int, *args: Any) -> Any:
        if blob is None or blob_id == blob:
            seen.append(index)
        return await original(who, blob_id, index, *args)

    monkeypatch.setattr(service, "put_part", counting)
    return seen


async def test_upload_a_file_and_download_it(bw: BlobWorld, tmp_path: Path) -> None:
    data = random_bytes(5 * PART + 123)
    src = tmp_path / "Bescheid.pdf"
    src.write_bytes(data)
    session = bw.session(bw.owner)
    seen: list[tuple[int, int]] = []
    ref = await upload(
        session,
        src,
        name="Bescheid.pdf",
        type="application/pdf",
        progress=lambda done, total: seen.append((done, total)),
    )
    assert ref.size == len(data) and ref.blob_size == blob_length(len(data))
    stored = server_blob(bw, ref.blob)
    assert ref.hash == blob_hash(stored) and len(stored) == ref.blob_size
    assert decrypt_bytes(stored, ref.key, ref.blob_size, ref.hash) == data
    assert ref.manifest() == {
        "blob": ref.blob,
        "name": "Bescheid.pdf",
        "type": "application/pdf",
        "size": len(data),
        "key": b64e(ref.key),
    }
    assert ref.header_entry() == {"id": ref.blob, "size": ref.blob_size, "hash": b64e(ref.hash)}
    assert "key" not in repr(ref)
    assert seen[-1] == (ref.blob_size, ref.blob_size)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    # the resume record is gone once the upload completed
    assert not list((bw.state_dir(bw.owner) / "uploads").rglob("*.json"))

    out = tmp_path / "out"
    out.mkdir()
    got: list[int] = []
    saved = await download(
        session,
        ref.blob,
        ref.key,
        ref.blob_size,
        ref.hash,
        out,
        lambda done, total: got.append(done),
        name=ref.name,
        file_size=ref.size,
    )
    assert saved == out / "Bescheid.pdf" and saved.read_bytes() == data
    assert got[-1] == ref.blob_size
    # never overwrite: the next copies get free names
    again = await download(session, ref.blob, ref.key, ref.blob_size, ref.hash, out, name=ref.name)
    third = await download(
        session, ref.blob, ref.key, ref.blob_size, ref.hash, out / "Bescheid.pdf"
    )
    assert (again.name, third.name) == ("Bescheid (1).pdf", "Bescheid (2).pdf")
    assert sorted(p.name for p in out.iterdir()) == [
        "Bescheid (1).pdf",
        "Bescheid (2).pdf",
        "Bescheid.pdf",
    ]
    await session.close()


async def test_the_client_object_has_attachments(bw: BlobWorld, tmp_path: Path) -> None:
    async with bw.client_for(bw.owner) as client:
        ref = await client.attachments.upload(b"hello", name="hello.txt", type="text/plain")
        saved = await client.attachments.download(
            ref.blob, ref.key, ref.blob_size, ref.hash, tmp_path, name=ref.name
        )
        assert saved.read_bytes() == b"hello"


async def test_upload_from_bytes_and_iterators(bw: BlobWorld) -> None:
    data = random_bytes(3 * PART + 7)
    session = bw.session(bw.owner)

    def pieces() -> Iterator[bytes]:
        for start in range(0, len(data), 10_000):
            yield data[start : start + 10_000]

    async def apieces() -> AsyncIterator[bytes]:
        for piece in pieces():
            yield piece

    refs: list[AttachmentRef] = [
        await upload(session, data, name="a.bin"),
        await upload(session, pieces(), name="b.bin", size=len(data)),
        await upload(session, apieces(), name="c.bin", size=len(data)),
    ]
    for ref in refs:
        stored = server_blob(bw, ref.blob)
        assert decrypt_bytes(stored, ref.key, ref.blob_size, ref.hash) == data
    assert len({r.key for r in refs}) == 3  # one fresh key per blob
    # a stream that is not the announced size: refused, and nothing stays on the server
    with pytest.raises(UsageError):
        await upload(session, pieces(), name="d.bin", size=len(data) + 70_000)
    with pytest.raises(UsageError):
        await upload(session, pieces(), name="e.bin")  # no size
    _status, storage, _ = await bw.call("GET", "/api/v1/me/storage", bw.owner)
    assert storage["used"] == sum(r.blob_size for r in refs)
    await session.close()


async def test_bad_names_and_types_are_refused_before_anything_is_sent(bw: BlobWorld) -> None:
    session = bw.session(bw.owner)
    for name in ("../passwd", "a/b", ".", "x\x00y", "e\u0301.txt", "n" * 256):
        with pytest.raises(UsageError):
            await upload(session, b"x", name=name)
    for media_type in ("text/plain\n", "tëxt/plain", "t" * 256):
        with pytest.raises(UsageError):
            await upload(session, b"x", name="ok.txt", type=media_type)
    _status, storage, _ = await bw.call("GET", "/api/v1/me/storage", bw.owner)
    assert storage["used"] == 0
    await session.close()


async def _interrupted(bw: BlobWorld, src: Path, after_parts: int) -> None:
    session = bw.session(bw.owner)

    def stop(done: int, total: int) -> None:
        if done >= after_parts * PART:
            raise Interrupted

    with pytest.raises(Interrupted):
        await upload(session, src, name="scan.pdf", progress=stop)
    await session.close()


def _record(bw: BlobWorld) -> dict[str, Any]:
    import json

    (path,) = (bw.state_dir(bw.owner) / "uploads").rglob("*.json")
    value = json.loads(path.read_text())
    assert isinstance(value, dict)
    assert path.stat().st_mode & 0o777 == 0o600  # it holds the file key
    return value


async def test_resume_sends_only_missing_parts(
    bw: BlobWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = random_bytes(9 * PART + 100)
    src = tmp_path / "scan.pdf"
    src.write_bytes(data)
    await _interrupted(bw, src, after_parts=3)
    record = _record(bw)
    blob = record["blob"]
    seen = count_parts(bw, monkeypatch)
    # what the server says it has when the client asks (a part cut off by the interruption
    # may still have landed after it)
    service = bw.client.app[BLOBS]
    original = service.state
    told: list[set[int]] = []

    async def state(who: Any, blob_id: str) -> Any:
        answer = await original(who, blob_id)
        told.append(set(answer.received))
        return answer

    monkeypatch.setattr(service, "state", state)
    session = bw.session(bw.owner)
    ref = await upload(session, src, name="scan.pdf")
    assert ref.blob == blob  # the same upload, continued
    assert len(told) == 1 and 3 <= len(told[0]) < 10
    assert sorted(seen) == sorted(set(range(10)) - told[0])
    assert ref.key == b64d(record["key"], 32)
    out = await download(session, ref.blob, ref.key, ref.blob_size, ref.hash, tmp_path / "o.pdf")
    assert out.read_bytes() == data
    assert not list((bw.state_dir(bw.owner) / "uploads").rglob("*.json"))
    await session.close()


async def test_a_changed_file_starts_a_fresh_upload(bw: BlobWorld, tmp_path: Path) -> None:
    data = random_bytes(6 * PART)
    src = tmp_path / "scan.pdf"
    src.write_bytes(data)
    await _interrupted(bw, src, after_parts=2)
    old = _record(bw)["blob"]
    changed = random_bytes(len(data))
    src.write_bytes(changed)
    stat = src.stat()
    os.utime(src, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    session = bw.session(bw.owner)
    ref = await upload(session, src, name="scan.pdf")
    assert ref.blob != old
    assert decrypt_bytes(server_blob(bw, ref.blob), ref.key, ref.blob_size, ref.hash) == changed
    status, _, _ = await bw.call("GET", f"/api/v1/uploads/{old}", bw.owner)
    assert status == 404  # the old upload was aborted
    await session.close()


async def test_a_file_changed_in_place_is_caught_by_the_checksums(
    bw: BlobWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same size and modification time, other bytes: the parts the server has no longer
    match the record, so nothing is encrypted again under the old key."""
    data = random_bytes(6 * PART)
    src = tmp_path / "scan.pdf"
    src.write_bytes(data)
    await _interrupted(bw, src, after_parts=3)
    old = _record(bw)["blob"]
    stat = src.stat()
    changed = bytes([data[0] ^ 0xFF]) + data[1:]
    src.write_bytes(changed)
    os.utime(src, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    seen = count_parts(bw, monkeypatch, old)
    session = bw.session(bw.owner)
    ref = await upload(session, src, name="scan.pdf")
    assert ref.blob != old
    assert seen == []  # nothing more went to the old upload, under the old key
    status, _, _ = await bw.call("GET", f"/api/v1/uploads/{old}", bw.owner)
    assert status == 404
    assert decrypt_bytes(server_blob(bw, ref.blob), ref.key, ref.blob_size, ref.hash) == changed
    await session.close()


async def test_an_upload_the_server_forgot_starts_afresh(bw: BlobWorld, tmp_path: Path) -> None:
    data = random_bytes(4 * PART)
    src = tmp_path / "scan.pdf"
    src.write_bytes(data)
    await _interrupted(bw, src, after_parts=1)
    old = _record(bw)
    bw.clock.advance(EXPIRY_S * 1000 + 1)
    assert (await bw.client.app[BLOB_GC].run_once()).expired == 1
    session = bw.session(bw.owner)
    ref = await upload(session, src, name="scan.pdf")
    assert ref.blob != old["blob"] and ref.key != b64d(old["key"], 32)
    await session.close()


async def test_download_verifies_before_releasing(bw: BlobWorld, tmp_path: Path) -> None:
    data = random_bytes(3 * PART)
    session = bw.session(bw.owner)
    ref = await upload(session, data, name="a.bin")
    out = tmp_path / "out"
    out.mkdir()

    async def refused(**kw: Any) -> VerificationFailed:
        args: dict[str, Any] = {
            "blob": ref.blob,
            "key": ref.key,
            "size": ref.blob_size,
            "hash": ref.hash,
            "dest": out,
            "name": "a.bin",
        }
        args.update(kw)
        with pytest.raises(VerificationFailed) as caught:
            await download(session, **args)
        assert list(out.iterdir()) == []  # nothing released, no temporary file left
        return caught.value

    assert (await refused(hash=bytes(32))).code == "BlobHashMismatch"
    assert (await refused(size=ref.blob_size + 17)).code == "BlobLengthMismatch"
    assert (await refused(key=bytes(32))).code == "DecryptionFailed"
    assert (await refused(file_size=ref.size + 1)).code == "BlobLengthMismatch"
    # the server's copy changed (one flipped bit in the last part)
    store = bw.client.app[BLOBS].blob_store
    assert isinstance(store, LocalBlobStore)
    last = sorted(store.folder(ref.blob).iterdir())[-1]
    raw = bytearray(last.read_bytes())
    raw[-5] ^= 1
    last.write_bytes(bytes(raw))
    assert (await refused()).code == "DecryptionFailed"
    await session.close()


async def test_a_cut_download_resumes_with_a_range(
    bw: BlobWorld,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = random_bytes(3 * 1024 * 1024)  # more than one piece reaches the decryptor
    session = bw.session(bw.owner)
    ref = await upload(session, data, name="a.bin")
    service = bw.client.app[BLOBS]
    original = service.send
    calls: list[tuple[int, int]] = []

    async def cut_once(blob: Any, offset: int, length: int, transport: Any) -> None:
        calls.append((offset, length))
        if len(calls) > 1:
            await original(blob, offset, length, transport)
            return
        await original(blob, offset, length // 2, transport)  # half goes out, then:
        raise StorageError("the disk went away")

    monkeypatch.setattr(service, "send", cut_once)
    with caplog.at_level(logging.ERROR):
        saved = await download(
            session, ref.blob, ref.key, ref.blob_size, ref.hash, tmp_path / "a.bin"
        )
    assert saved.read_bytes() == data
    assert len(calls) == 2 and calls[0] == (0, ref.blob_size)
    assert 0 < calls[1][0] <= ref.blob_size // 2 and sum(calls[1]) == ref.blob_size
    await session.close()


async def test_no_file_name_or_content_reaches_the_server(
    bw: BlobWorld, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    name = "Kontoauszug-Canary-Zw7qK.pdf"
    content = ("Geheimer Inhalt Canary-Bx9mQ " * 20_000).encode()
    src = tmp_path / name
    src.write_bytes(content)
    async with bw.client_for(bw.owner) as client:
        ref = await client.attachments.upload(src, name=name, type="application/pdf")
        await bw.link(ref.blob, bw.team)
        saved = await client.attachments.download(
            ref.blob, ref.key, ref.blob_size, ref.hash, tmp_path / "copy.pdf"
        )
    assert saved.read_bytes() == content
    haystacks = await stored_bytes(bw.settings)
    assert any("blobs" in where for where in haystacks)
    assert_nothing_in_clear(
        [name, "Canary-Zw7qK", "Canary-Bx9mQ", "Geheimer Inhalt"], haystacks, caplog.records
    )
