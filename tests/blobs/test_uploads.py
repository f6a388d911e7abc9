"""Uploads through real HTTP (both databases): the happy path and every refusal.

Every refusal is checked for its precise problem code and for leaving nothing behind:
no part row, no part file, no temporary file; the server answers the next request.
"""

from __future__ import annotations

from typing import Any

import pytest
from blobs.world import PART, QUOTA, BlobWorld, blob_of, parts_of
from sqlalchemy import func, select
from support.onboard import new_id

from postbox.crypto.attachment import blob_hash, blob_length
from postbox.crypto.encoding import b64e
from postbox.mailbox.appkeys import BLOBS, DB
from postbox.mailbox.blobs.storage import LocalBlobStore, part_checksum
from postbox.mailbox.db.schema import upload_parts
from postbox.mailbox.errors import PROBLEM_BASE

pytestmark = pytest.mark.usefixtures("bw")


def code(body: Any) -> str:
    assert isinstance(body, dict), body
    return str(body["type"]).removeprefix(PROBLEM_BASE)


def files_of(bw: BlobWorld, blob: str) -> list[str]:
    store = bw.client.app[BLOBS].blob_store
    assert isinstance(store, LocalBlobStore)
    folder = store.folder(blob)
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


async def part_rows(bw: BlobWorld) -> int:
    async with bw.client.app[DB].read() as conn:
        return int(
            (await conn.execute(select(func.count()).select_from(upload_parts))).scalar_one()
        )


# --- the happy path -----------------------------------------------------------------------------
async def test_upload_complete_download(bw: BlobWorld) -> None:
    data = blob_of(200_000)  # 200,796 bytes: 4 parts of 64 KiB, the last short
    blob = new_id()
    status, created, _ = await bw.call(
        "POST", "/api/v1/uploads", bw.owner, json={"blob": blob, "size": len(data)}
    )
    assert status == 201, created
    assert created == {
        "blob": blob,
        "size": len(data),
        "part_bytes": PART,
        "expires": bw.clock() + 3600_000,
        "received": [],
    }
    parts = list(parts_of(data, PART))
    assert len(parts) == 4 and len(parts[-1]) < PART
    for n in (2, 0, 3):  # any order
        status, body = await bw.put(bw.owner, blob, n, parts[n])
        assert status == 201, body
        assert body == {"blob": blob, "part": n, "size": len(parts[n])}
    status, state, _ = await bw.call("GET", f"/api/v1/uploads/{blob}", bw.owner)
    assert status == 200
    assert state["state"] == "uploading" and state["received"] == [0, 2, 3]
    status, body = await bw.put(bw.owner, blob, 1, parts[1])
    assert status == 201, body
    status, done, _ = await bw.call("POST", f"/api/v1/uploads/{blob}/complete", bw.owner)
    assert status == 200, done
    assert done == {"blob": blob, "size": len(data), "hash": b64e(blob_hash(data))}
    # completing again answers the same
    status, again, _ = await bw.call("POST", f"/api/v1/uploads/{blob}/complete", bw.owner)
    assert (status, again) == (200, done)
    status, state, _ = await bw.call("GET", f"/api/v1/uploads/{blob}", bw.owner)
    assert state["state"] == "complete" and state["received"] == [0, 1, 2, 3]
    status, got, headers = await bw.call("GET", f"/api/v1/blobs/{blob}", bw.owner)
    assert status == 200 and got == data
    assert headers["ETag"] == f'"{done["hash"]}"'
    assert headers["Accept-Ranges"] == "bytes"
    assert headers["Content-Type"] == "application/octet-stream"
    status, storage, _ = await bw.call("GET", "/api/v1/me/storage", bw.owner)
    assert storage == {"used": len(data), "quota": QUOTA, "blob_bytes": len(data), "part_bytes": 0}
    # the part files are the blob: no copy, no temporary file, private modes
    names = files_of(bw, blob)
    assert len(names) == 4 and not [n for n in names if n.startswith(".")]
    store = bw.client.app[BLOBS].blob_store
    assert isinstance(store, LocalBlobStore)
    assert (store.folder(blob).stat().st_mode & 0o777) == 0o700
    assert all(((store.folder(blob) / n).stat().st_mode & 0o777) == 0o600 for n in names)


async def test_storage_counts_unfinished_uploads(bw: BlobWorld) -> None:
    data = blob_of(100_000)
    state = await bw.create(bw.owner, len(data))
    status, _ = await bw.put(bw.owner, state["blob"], 0, data[:PART])
    assert status == 201
    status, storage, _ = await bw.call("GET", "/api/v1/me/storage", bw.owner)
    assert storage == {"used": len(data), "quota": QUOTA, "blob_bytes": 0, "part_bytes": PART}
    status, storage, _ = await bw.call("GET", "/api/v1/me/storage", bw.other)
    assert storage["used"] == 0


async def test_create_is_safe_to_repeat(bw: BlobWorld) -> None:
    data = blob_of(100_000)
    first = await bw.create(bw.owner, len(data))
    blob = first["blob"]
    assert (await bw.put(bw.owner, blob, 0, data[:PART]))[0] == 201
    status, again, _ = await bw.call(
        "POST", "/api/v1/uploads", bw.owner, json={"blob": blob, "size": len(data)}
    )
    assert status == 200
    assert again == {**first, "received": [0]}
    # another size, another account, or a complete blob: the id is taken
    other_size = blob_length(5)
    for who, size in ((bw.owner, other_size), (bw.other, len(data))):
        status, body, _ = await bw.call(
            "POST", "/api/v1/uploads", who, json={"blob": blob, "size": size}
        )
        assert (status, code(body)) == (409, "blob-exists")


async def test_identical_part_again_is_fine_other_bytes_conflict(bw: BlobWorld) -> None:
    data = blob_of(100_000)
    blob = (await bw.create(bw.owner, len(data)))["blob"]
    part = data[:PART]
    assert (await bw.put(bw.owner, blob, 0, part))[0] == 201
    status, body = await bw.put(bw.owner, blob, 0, part)
    assert status == 200, body
    other = bytes([part[0] ^ 1]) + part[1:]
    status, body = await bw.put(bw.owner, blob, 0, other)
    assert (status, code(body)) == (409, "part-conflict")
    assert len(files_of(bw, blob)) == 1  # the refused bytes were removed
    assert (await bw.put(bw.owner, blob, 1, data[PART:]))[0] == 201
    status, done, _ = await bw.call("POST", f"/api/v1/uploads/{blob}/complete", bw.owner)
    assert done["hash"] == b64e(blob_hash(data))


# --- refusals -----------------------------------------------------------------------------------
async def test_part_refusals_store_nothing(bw: BlobWorld) -> None:
    data = blob_of(150_000)  # 150,624 bytes: parts of 65,536 / 65,536 / 19,552
    blob = (await bw.create(bw.owner, len(data)))["blob"]
    parts = list(parts_of(data, PART))
    cases: list[tuple[int, bytes, dict[str, Any], int, str]] = [
        (3, parts[2], {}, 400, "part-out-of-range"),
        (9999999, parts[0], {}, 400, "part-out-of-range"),
        (0, parts[0], {"checksum": part_checksum(parts[1])}, 400, "checksum-mismatch"),
        (0, parts[0], {"headers": {"X-Checksum": "not b64!"}}, 400, "invalid-checksum"),
        (0, parts[0], {"headers": {"X-Checksum": b64e(bytes(31))}}, 400, "invalid-checksum"),
        (0, parts[0] + b"x", {}, 413, "part-too-large"),  # more than part_bytes
        (0, parts[0][:-1], {}, 400, "wrong-part-size"),  # a short part that is not the last
        (2, parts[2] + b"x", {}, 413, "part-too-large"),  # the last part too long
        (2, parts[2][:-1], {}, 400, "wrong-part-size"),  # the last part too short
        (0, parts[0], {"headers": {"Content-Type": "text/plain"}}, 415, "unsupported-media-type"),
    ]
    for n, body, kw, want_status, want_code in cases:
        status, answer = await bw.put(bw.owner, blob, n, body, **kw)
        assert (status, code(answer)) == (want_status, want_code), (n, len(body), kw)
    # a missing checksum header
    status, answer, _ = await bw.call(
        "PUT",
        f"/api/v1/uploads/{blob}/parts/0",
        bw.owner,
        data=parts[0],
        headers={"Content-Type": "application/octet-stream"},
    )
    assert (status, code(answer)) == (400, "invalid-checksum")
    assert await part_rows(bw) == 0
    assert files_of(bw, blob) == []
    # the same upload still works
    for n, part in enumerate(parts):
        assert (await bw.put(bw.owner, blob, n, part))[0] == 201


async def test_an_oversized_body_without_length_is_cut_off(bw: BlobWorld) -> None:
    """Chunked transfer (no Content-Length): the size is checked while reading."""
    data = blob_of(100_000)
    blob = (await bw.create(bw.owner, len(data)))["blob"]

    async def chunks() -> Any:
        for _ in range(PART // 1024 + 10):
            yield b"\x00" * 1024

    status, body, _ = await bw.call(
        "PUT",
        f"/api/v1/uploads/{blob}/parts/0",
        bw.owner,
        data=chunks(),
        headers={
            "Content-Type": "application/octet-stream",
            "X-Checksum": b64e(bytes(32)),
        },
    )
    assert (status, code(body)) == (413, "part-too-large")
    assert files_of(bw, blob) == [] and await part_rows(bw) == 0


async def test_create_refusals(bw: BlobWorld) -> None:
    # the next Padmé bucket after a 1 GiB file: over the default limit (the blob of 1 GiB)
    too_big = blob_length(1024 * 1024 * 1024 + 2**25)
    cases: list[tuple[Any, int, str]] = [
        ({"blob": new_id(), "size": too_big}, 413, "blob-too-large"),
        ({"blob": new_id(), "size": 0}, 400, "invalid-blob-size"),
        ({"blob": new_id(), "size": 1000}, 400, "invalid-blob-size"),
        ({"blob": new_id(), "size": QUOTA + 1}, 400, "invalid-blob-size"),
        ({"blob": "short", "size": 297}, 400, "malformed"),
        ({"blob": new_id(), "size": 297, "name": "x"}, 400, "malformed"),
        ({"blob": new_id(), "size": -1}, 400, "malformed"),
    ]
    for body, want_status, want_code in cases:
        status, answer, _ = await bw.call("POST", "/api/v1/uploads", bw.owner, json=body)
        assert (status, code(answer)) == (want_status, want_code), body


async def test_quota_is_checked_up_front(bw: BlobWorld) -> None:
    big = blob_length(3 * 1024 * 1024)
    await bw.create(bw.owner, big)  # unfinished uploads count
    status, body, _ = await bw.call(
        "POST", "/api/v1/uploads", bw.owner, json={"blob": new_id(), "size": big}
    )
    assert (status, code(body)) == (409, "quota-exceeded")
    # another account has its own quota
    await bw.create(bw.other, big)


async def test_complete_needs_every_part(bw: BlobWorld) -> None:
    data = blob_of(150_000)
    blob = (await bw.create(bw.owner, len(data)))["blob"]
    assert (await bw.put(bw.owner, blob, 1, data[PART : 2 * PART]))[0] == 201
    status, body, _ = await bw.call("POST", f"/api/v1/uploads/{blob}/complete", bw.owner)
    assert (status, code(body)) == (409, "parts-missing")
    assert "0, 2" in body["detail"]
    status, body, _ = await bw.call("GET", f"/api/v1/blobs/{blob}", bw.owner)
    assert (status, code(body)) == (409, "blob-incomplete")


async def test_a_complete_upload_takes_no_parts(bw: BlobWorld) -> None:
    data = blob_of(100_000)
    blob = await bw.upload(bw.owner, data)
    status, body = await bw.put(bw.owner, blob, 0, data[:PART])
    assert (status, code(body)) == (409, "upload-complete")


async def test_someone_elses_upload_and_blob_are_not_found(bw: BlobWorld) -> None:
    data = blob_of(100_000)
    mine = (await bw.create(bw.owner, len(data)))["blob"]
    done = await bw.upload(bw.owner, blob_of(1000))
    missing = new_id()
    bad = "A" * 21 + "B"  # the right length, but not a strict b64 id
    for blob in (mine, missing, bad):
        for method, path in (
            ("GET", f"/api/v1/uploads/{blob}"),
            ("POST", f"/api/v1/uploads/{blob}/complete"),
            ("DELETE", f"/api/v1/uploads/{blob}"),
        ):
            status, body, _ = await bw.call(method, path, bw.other)
            assert (status, code(body)) == (404, "upload-not-found"), (method, path)
        status, body = await bw.put(bw.other, blob, 0, data[:PART])
        assert (status, code(body)) == (404, "upload-not-found")
    for blob in (done, mine, missing, bad):
        status, body, _ = await bw.call("GET", f"/api/v1/blobs/{blob}", bw.other)
        assert (status, code(body)) == (404, "blob-not-found")
        status, body, _ = await bw.call("GET", f"/api/v1/blobs/{blob}", bw.caseworker)
        assert (status, code(body)) == (404, "blob-not-found")
    # the owner's upload is untouched
    status, state, _ = await bw.call("GET", f"/api/v1/uploads/{mine}", bw.owner)
    assert status == 200 and state["received"] == []


async def test_abort(bw: BlobWorld) -> None:
    data = blob_of(100_000)
    blob = (await bw.create(bw.owner, len(data)))["blob"]
    assert (await bw.put(bw.owner, blob, 0, data[:PART]))[0] == 201
    assert files_of(bw, blob)
    status, _, _ = await bw.call("DELETE", f"/api/v1/uploads/{blob}", bw.owner)
    assert status == 204
    assert files_of(bw, blob) == [] and await bw.blob_row(blob) is None
    status, body, _ = await bw.call("GET", f"/api/v1/uploads/{blob}", bw.owner)
    assert (status, code(body)) == (404, "upload-not-found")
    status, storage, _ = await bw.call("GET", "/api/v1/me/storage", bw.owner)
    assert storage["used"] == 0
    # a complete blob no message references can be withdrawn too; a referenced one not
    loose = await bw.upload(bw.owner, blob_of(1000))
    used = await bw.upload(bw.owner, blob_of(1000))
    await bw.link(used, bw.team)
    status, _, _ = await bw.call("DELETE", f"/api/v1/uploads/{loose}", bw.owner)
    assert status == 204
    status, body, _ = await bw.call("DELETE", f"/api/v1/uploads/{used}", bw.owner)
    assert (status, code(body)) == (409, "blob-in-use")
    status, _, _ = await bw.call("GET", f"/api/v1/blobs/{used}", bw.owner)
    assert status == 200


async def test_a_part_for_an_aborted_upload_leaves_no_file(
    bw: BlobWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An upload aborted while its part arrives: the part is refused and its file goes."""
    data = blob_of(100_000)
    blob = (await bw.create(bw.owner, len(data)))["blob"]
    service = bw.client.app[BLOBS]
    original = service._receive

    async def abort_meanwhile(*args: Any) -> Any:
        part = await original(*args)
        status, _, _ = await bw.call("DELETE", f"/api/v1/uploads/{blob}", bw.owner)
        assert status == 204
        return part

    monkeypatch.setattr(service, "_receive", abort_meanwhile)
    status, body = await bw.put(bw.owner, blob, 0, data[:PART])
    assert (status, code(body)) == (404, "upload-not-found")
    assert files_of(bw, blob) == []
