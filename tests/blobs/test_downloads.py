"""Reading blobs (both databases): who may, and HTTP Range in every corner.

A blob is readable by its owner and by every account acting for a mailbox that holds a
message referencing it. The message rows are written directly here, as the send path
writes them (``messages``, ``message_blobs``, ``mailbox_entries``).
"""

from __future__ import annotations

from typing import Any

import pytest
from blobs.world import BlobWorld, blob_of

from postbox.crypto.attachment import blob_hash
from postbox.crypto.encoding import b64e
from postbox.mailbox.blobs.routes import parse_range
from postbox.mailbox.blobs.service import RangeNotSatisfiable
from postbox.mailbox.errors import PROBLEM_BASE


def code(body: Any) -> str:
    assert isinstance(body, dict), body
    return str(body["type"]).removeprefix(PROBLEM_BASE)


async def test_readers_are_owner_and_mailboxes_holding_a_message(bw: BlobWorld) -> None:
    data = blob_of(3000)
    blob = await bw.upload(bw.owner, data)
    path = f"/api/v1/blobs/{blob}"
    for who in (bw.other, bw.caseworker, bw.setup.admin):
        status, body, _ = await bw.call("GET", path, who)
        assert (status, code(body)) == (404, "blob-not-found")
    # a message from the owner to the team: the team's members may read it
    await bw.link(blob, bw.team)
    status, got, _ = await bw.call("GET", path, bw.caseworker)
    assert (status, got) == (200, data)
    for who in (bw.other, bw.setup.admin):  # not in the team, no entry of their own
        status, body, _ = await bw.call("GET", path, who)
        assert (status, code(body)) == (404, "blob-not-found")
    status, got, _ = await bw.call("GET", path, bw.owner)
    assert (status, got) == (200, data)


async def test_a_citizen_reads_what_reaches_its_own_mailbox(bw: BlobWorld) -> None:
    data = blob_of(3000)
    blob = await bw.upload(bw.caseworker, data)
    await bw.link(blob, bw.other.id, sender=bw.caseworker)
    status, got, _ = await bw.call("GET", f"/api/v1/blobs/{blob}", bw.other)
    assert (status, got) == (200, data)
    status, body, _ = await bw.call("GET", f"/api/v1/blobs/{blob}", bw.owner)
    assert (status, code(body)) == (404, "blob-not-found")


async def test_ranges(bw: BlobWorld) -> None:
    data = blob_of(100_000)  # several parts: ranges cross part boundaries
    size = len(data)
    blob = await bw.upload(bw.owner, data)
    path = f"/api/v1/blobs/{blob}"
    etag = f'"{b64e(blob_hash(data))}"'
    cases = [
        ("bytes=0-0", 0, 1),
        ("bytes=0-", 0, size),
        ("bytes=65530-65545", 65530, 16),  # across the first part boundary
        (f"bytes={size - 1}-", size - 1, 1),
        (f"bytes=10-{size + 1000}", 10, size - 10),  # the end is clipped
        ("bytes=-1", size - 1, 1),
        (f"bytes=-{size + 5}", 0, size),  # a suffix longer than the blob
        (" bytes=5-9 ", 5, 5),
    ]
    for header, start, length in cases:
        status, got, headers = await bw.call("GET", path, bw.owner, headers={"Range": header})
        assert status == 206, (header, got)
        assert got == data[start : start + length], header
        assert headers["Content-Range"] == f"bytes {start}-{start + length - 1}/{size}"
        assert headers["Content-Length"] == str(length)
        assert headers["ETag"] == etag and headers["Accept-Ranges"] == "bytes"
    for header in (
        f"bytes={size}-",
        f"bytes={size}-{size + 10}",
        "bytes=10-5",
        "bytes=-0",
        "bytes=0-1,5-6",
        "items=0-1",
        "bytes=",
        "bytes=-",
        "bytes=a-b",
    ):
        status, body, headers = await bw.call("GET", path, bw.owner, headers={"Range": header})
        assert (status, code(body)) == (416, "range-not-satisfiable"), header
        assert headers["Content-Range"] == f"bytes */{size}"
    # If-Range: the same ETag honours the range, another sends the whole blob
    status, got, _ = await bw.call(
        "GET", path, bw.owner, headers={"Range": "bytes=5-9", "If-Range": etag}
    )
    assert (status, got) == (206, data[5:10])
    status, got, _ = await bw.call(
        "GET", path, bw.owner, headers={"Range": "bytes=5-9", "If-Range": '"other"'}
    )
    assert (status, got) == (200, data)
    # HEAD: the headers without the body
    resp = await bw.client.head(path, headers=bw.owner.headers)
    assert resp.status == 200
    assert resp.headers["Content-Length"] == str(size) and resp.headers["ETag"] == etag
    assert await resp.read() == b""


def test_parse_range_rules() -> None:
    assert parse_range(None, 10) is None
    assert parse_range("bytes=2-4", 10) == (2, 3)
    assert parse_range("bytes=9-", 10) == (9, 1)
    assert parse_range("bytes=-3", 10) == (7, 3)
    assert parse_range("bytes=0-99999999999999999999", 10) == (0, 10)
    for bad in ("bytes=10-", "bytes=3-2", "bytes=-0", "bytes=1-2,4-5", "bits=1-2", "bytes=x"):
        with pytest.raises(RangeNotSatisfiable):
            parse_range(bad, 10)
