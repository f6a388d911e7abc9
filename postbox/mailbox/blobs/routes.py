"""HTTP routes of uploads and blobs, and the entry of the blobs feature.

Parts arrive as ``application/octet-stream`` bodies that are streamed to the store as they
are read, never held whole; blobs go out with ``sendfile`` from the stored parts, with HTTP
Range support (one range per request: ``bytes=a-b``, ``bytes=a-`` or ``bytes=-n``;
``If-Range`` with the ETag).
A streamed answer carries its security headers and request id itself, because the
middlewares that add them to ordinary answers run after the body has gone out.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from typing import Final

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from postbox.mailbox.access import principal
from postbox.mailbox.appkeys import BACKGROUND, BLOB_GC, BLOBS, CLOCK, DB, SETTINGS
from postbox.mailbox.blobs.gc import ORPHAN_GRACE_S, BlobGc
from postbox.mailbox.blobs.service import (
    BlobService,
    Limits,
    NewUpload,
    RangeNotSatisfiable,
    Readable,
    parse_checksum,
)
from postbox.mailbox.blobs.storage import LocalBlobStore
from postbox.mailbox.errors import BadRequest, UnsupportedMediaType
from postbox.mailbox.http import API_SECURITY_HEADERS, REQUEST_ID, read_json

log = logging.getLogger("postbox.blobs")

OCTET_STREAM: Final = "application/octet-stream"
#: the path patterns: a 22-character b64 id, a part index of at most 7 digits
BLOB_PATTERN: Final = "[A-Za-z0-9_-]{22}"
PART_PATTERN: Final = "[0-9]{1,7}"
_RANGE: Final = re.compile(r"bytes=(\d{0,30})-(\d{0,30})")


async def start(app: web.Application) -> None:
    """The blob store under ``settings.blobs_dir``, the service, and the GC job."""
    settings = app[SETTINGS]
    blob_store = LocalBlobStore(settings.blobs_dir)
    limits = Limits(
        max_blob_bytes=settings.max_blob_bytes,
        max_part_bytes=settings.max_part_bytes,
        quota_bytes=settings.quota_bytes,
        expiry_ms=settings.upload_expiry_seconds * 1000,
    )
    service = app[BLOBS] = BlobService(app[DB], app[CLOCK], blob_store, limits)
    app[BACKGROUND].spawn("blob-hashes", service.run)
    gc = app[BLOB_GC] = BlobGc(
        app[DB],
        app[CLOCK],
        blob_store,
        interval_s=settings.gc_interval_seconds,
        temp_grace_s=max(ORPHAN_GRACE_S, float(settings.upload_expiry_seconds)),
    )
    app[BACKGROUND].spawn("blob-gc", gc.run_forever)


# --- uploads ----------------------------------------------------------------------------------
async def create_upload(request: web.Request) -> web.Response:
    body = await read_json(request, request.app[SETTINGS].max_json_bytes)
    state, created = await request.app[BLOBS].create(principal(request), NewUpload.from_json(body))
    return web.json_response(state.created_json(), status=201 if created else 200)


async def get_upload(request: web.Request) -> web.Response:
    state = await request.app[BLOBS].state(principal(request), request.match_info["blob"])
    return web.json_response(state.to_json())


async def _body(request: web.Request) -> AsyncIterator[bytes]:
    try:
        async for chunk in request.content.iter_any():
            yield chunk
    except (RequestPayloadError, HttpProcessingError) as exc:
        raise BadRequest("the request body could not be read", code="unreadable-body") from exc


async def put_part(request: web.Request) -> web.Response:
    if request.content_type != OCTET_STREAM:
        raise UnsupportedMediaType(f"send the part as {OCTET_STREAM}")
    checksum = parse_checksum(request.headers.get("X-Checksum"))
    part, created = await request.app[BLOBS].put_part(
        principal(request),
        request.match_info["blob"],
        int(request.match_info["n"]),
        checksum,
        request.content_length,
        _body(request),
    )
    return web.json_response(part.to_json(), status=201 if created else 200)


async def complete_upload(request: web.Request) -> web.Response:
    done = await request.app[BLOBS].complete(principal(request), request.match_info["blob"])
    return web.json_response(done.to_json())


async def abort_upload(request: web.Request) -> web.Response:
    await request.app[BLOBS].abort(principal(request), request.match_info["blob"])
    return web.Response(status=204)


async def get_storage(request: web.Request) -> web.Response:
    storage = await request.app[BLOBS].storage(principal(request))
    return web.json_response(storage.to_json())


# --- downloads --------------------------------------------------------------------------------
def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(offset, length)`` of the one byte range asked for, or None for the whole blob.

    Raises :class:`RangeNotSatisfiable` for a range outside the blob and for anything this
    server does not serve (several ranges, other units, malformed syntax).
    """
    if header is None:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None or (not match[1] and not match[2]):
        raise _unsatisfiable(size, "send one range: bytes=first-last, bytes=first- or bytes=-n")
    first, last = match[1], match[2]
    if not first:  # a suffix: the last n bytes
        n = int(last)
        if n == 0:
            raise _unsatisfiable(size, "an empty suffix range")
        start = max(0, size - n)
        return start, size - start
    start = int(first)
    if start >= size:
        raise _unsatisfiable(size, "the range starts beyond the blob")
    end = size - 1 if not last else min(int(last), size - 1)
    if last and int(last) < start:
        raise _unsatisfiable(size, "the range ends before it starts")
    return start, end - start + 1


def _unsatisfiable(size: int, detail: str) -> RangeNotSatisfiable:
    return RangeNotSatisfiable(detail, headers={"Content-Range": f"bytes */{size}"})


def _stream_headers(request: web.Request, blob: Readable) -> dict[str, str]:
    headers = dict(API_SECURITY_HEADERS)
    if request.app[SETTINGS].origin.startswith("https://"):
        headers["Strict-Transport-Security"] = "max-age=63072000"
    headers.update(
        {
            "X-Request-Id": request.get(REQUEST_ID, "-"),
            "Content-Type": OCTET_STREAM,
            "Content-Disposition": "attachment",
            "Accept-Ranges": "bytes",
            "ETag": blob.etag,
        }
    )
    return headers


async def get_blob(request: web.Request) -> web.StreamResponse:
    service: BlobService = request.app[BLOBS]
    blob = await service.open(principal(request), request.match_info["blob"])
    wanted = request.headers.get("Range")
    if_range = request.headers.get("If-Range")
    if wanted is not None and if_range is not None and if_range.strip() != blob.etag:
        wanted = None  # the client's copy is of another blob version: send it whole
    asked = parse_range(wanted, blob.size)
    offset, length = (0, blob.size) if asked is None else asked
    response = web.StreamResponse(
        status=200 if asked is None else 206, headers=_stream_headers(request, blob)
    )
    if asked is not None:
        response.headers["Content-Range"] = f"bytes {offset}-{offset + length - 1}/{blob.size}"
    response.content_length = length
    await response.prepare(request)
    if request.method == "HEAD":
        return response
    try:
        transport = request.transport
        if transport is None:
            raise ConnectionResetError("the client went away")
        # The headers have gone out (prepare); the body bypasses the response writer.
        await service.send(blob, offset, length, transport)
        await response.write_eof()
    except ConnectionError:
        pass  # the client went away; nothing to tell it
    except Exception:
        # The status line has gone out: the only honest signal left is a cut connection
        # (the client sees fewer bytes than Content-Length).
        log.exception("blob read failed mid-stream (request %s)", request.get(REQUEST_ID))
        if request.transport is not None:
            request.transport.abort()
    return response


def setup_routes(app: web.Application) -> None:
    r = app.router
    blob = f"{{blob:{BLOB_PATTERN}}}"
    r.add_post("/api/v1/uploads", create_upload)
    r.add_get(f"/api/v1/uploads/{blob}", get_upload)
    r.add_delete(f"/api/v1/uploads/{blob}", abort_upload)
    r.add_put(f"/api/v1/uploads/{blob}/parts/{{n:{PART_PATTERN}}}", put_part)
    r.add_post(f"/api/v1/uploads/{blob}/complete", complete_upload)
    r.add_get(f"/api/v1/blobs/{blob}", get_blob)
    r.add_get("/api/v1/me/storage", get_storage)
