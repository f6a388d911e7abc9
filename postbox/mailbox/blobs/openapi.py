"""OpenAPI part of uploads and blobs (PROTOCOL.md §6, protocol.md §13.8).

Parts go up and blobs come down as ``application/octet-stream``; everything else is JSON.
"""

from __future__ import annotations

from typing import Any, Final

from postbox.crypto.encoding import MAX_SAFE_INTEGER
from postbox.mailbox.blobs.service import MAX_PARTS
from postbox.mailbox.blobs.storage import CHECKSUM_BYTES
from postbox.mailbox.errors import PROBLEM_BASE
from postbox.mailbox.openapi.document import (
    PROBLEM_JSON,
    b64,
    closed,
    enum,
    integer,
    nullable,
    operation,
    ref,
    register_codes,
)

Json = dict[str, Any]
OCTET_STREAM: Final = "application/octet-stream"

TAGS: list[Json] = [
    {
        "name": "blobs",
        "description": "Attachments as opaque blobs: chunked resumable uploads, ranged "
        "downloads, storage quota",
    }
]

CODES: Final[dict[str, str]] = {
    "blob-too-large": "the announced size is over the server's `limits.blob_bytes`",
    "invalid-blob-size": "the announced size is not the length of any attachment blob "
    "(PROTOCOL.md §6: 24 + n + 17·k for a padded file of n bytes in k chunks)",
    "too-many-parts": f"a blob this large would need more than {MAX_PARTS} parts of the "
    "server's part size",
    "blob-exists": "the blob id is already in use (choose another random id)",
    "quota-exceeded": "the upload would take the account over its storage quota (see "
    "GET /api/v1/me/storage)",
    "upload-not-found": "no upload of the caller has this id",
    "upload-complete": "the upload is already complete: its parts cannot change",
    "part-out-of-range": "the part index is not below the upload's number of parts",
    "part-too-large": "the body is longer than this part's slot",
    "wrong-part-size": "the body is shorter than this part's slot (only the last part "
    "of an upload is shorter than `part_bytes`, and by exactly the blob's length)",
    "invalid-checksum": "`X-Checksum` is missing or not the b64 of 32 bytes",
    "checksum-mismatch": "the part's bytes do not have the BLAKE2b-256 that `X-Checksum` states",
    "part-conflict": "the server already has other bytes for this part",
    "parts-missing": "some parts have not arrived yet (GET the upload to see which)",
    "blob-in-use": "a message references this blob: it goes with its messages",
    "blob-not-found": "no blob with this id that the caller may read",
    "blob-incomplete": "the caller's own upload is not complete yet",
    "range-not-satisfiable": "the Range is outside the blob, or not one range "
    "(`bytes=a-b`, `bytes=a-` or `bytes=-n`)",
}
register_codes(CODES)

BLOB_ID: Final = ref("Id")


def schemas() -> dict[str, Json]:
    size = integer(0, MAX_SAFE_INTEGER, "The blob's length in bytes (ciphertext)")
    part_bytes = integer(1, MAX_SAFE_INTEGER, "Every part but the last has this many bytes")
    received = {
        "type": "array",
        "items": integer(0, MAX_PARTS - 1),
        "maxItems": MAX_PARTS,
        "uniqueItems": True,
        "description": "Indices of the parts the server has, ascending",
    }
    expires = nullable(
        integer(
            description="When the blob is collected if it is still unfinished or no message "
            "references it (ms); every new part moves it forward; null once a message "
            "references the blob"
        )
    )
    return {
        "NewUpload": closed(
            {"blob": BLOB_ID, "size": size},
            description="A new upload: an id chosen by the client (16 random bytes) and the "
            "blob's length, both as they will appear in the message header",
        ),
        "UploadCreated": closed(
            {
                "blob": BLOB_ID,
                "size": size,
                "part_bytes": part_bytes,
                "expires": expires,
                "received": received,
            },
            description="The upload: send parts of `part_bytes` bytes",
        ),
        "UploadState": closed(
            {
                "blob": BLOB_ID,
                "size": size,
                "part_bytes": part_bytes,
                "state": enum(("uploading", "complete")),
                "received": received,
                "expires": expires,
            },
            description="Where an upload stands: what to resume",
        ),
        "StoredPart": closed(
            {
                "blob": BLOB_ID,
                "part": integer(0, MAX_PARTS - 1),
                "size": integer(1, MAX_SAFE_INTEGER),
            }
        ),
        "CompletedBlob": closed(
            {
                "blob": BLOB_ID,
                "size": size,
                "hash": b64(32, 'H(key="postbox/v1/blob", blob): what header.blobs[].hash states'),
            },
            description="The blob as the server measured it",
        ),
        "Storage": closed(
            {
                "used": integer(
                    description="Bytes counted against the quota: the announced "
                    "sizes of all the caller's blobs, complete or not"
                ),
                "quota": integer(description="The account's quota in bytes"),
                "blob_bytes": integer(description="Bytes of the caller's complete blobs"),
                "part_bytes": integer(
                    description="Bytes of parts received for the caller's unfinished uploads"
                ),
            }
        ),
    }


def _blob_param() -> Json:
    return {
        "name": "blob",
        "in": "path",
        "required": True,
        "description": "A blob id (the caller's upload; for reading, any blob the caller "
        "may read; everything else is 404)",
        "schema": BLOB_ID,
    }


def _header(name: str, schema: Json, description: str, *, required: bool = False) -> Json:
    return {
        "name": name,
        "in": "header",
        "required": required,
        "description": description,
        "schema": schema,
    }


def _binary(description: str) -> Json:
    return {
        "description": description,
        "content": {OCTET_STREAM: {"schema": {"type": "string", "format": "binary"}}},
    }


def _with_second_success(op: Json, status: str, description: str) -> None:
    """Another success status answering the same body (e.g. 200 next to 201)."""
    first = next(s for s in op["responses"] if s < "300")
    response = dict(op["responses"][first])
    response["description"] = description
    op["responses"][status] = response
    op["responses"] = dict(sorted(op["responses"].items()))


def _range_not_satisfiable() -> Json:
    code = "range-not-satisfiable"
    return {
        "description": "Range not satisfiable. Problem codes (`type` = "
        f"`{PROBLEM_BASE}<code>`):\n\n- `{code}`: {CODES[code]}",
        "headers": {
            "X-Request-Id": {"$ref": "#/components/headers/RequestId"},
            "Content-Range": {
                "description": "`bytes */<size>`: the blob's length",
                "required": True,
                "schema": {"type": "string", "pattern": "^bytes \\*/[0-9]+$"},
            },
        },
        "content": {
            PROBLEM_JSON: {
                "schema": {
                    "allOf": [ref("Problem")],
                    "properties": {
                        "status": {"const": 416},
                        "type": {"enum": [PROBLEM_BASE + code]},
                    },
                }
            }
        },
    }


def _blob_response(description: str, *, partial: bool) -> Json:
    response = _binary(description)
    headers: Json = {
        "X-Request-Id": {"$ref": "#/components/headers/RequestId"},
        "ETag": {
            "description": "The blob hash, b64 in quotes (for If-Range)",
            "required": True,
            "schema": {"type": "string"},
        },
        "Accept-Ranges": {
            "description": "`bytes`",
            "required": True,
            "schema": {"const": "bytes"},
        },
    }
    if partial:
        headers["Content-Range"] = {
            "description": "`bytes <first>-<last>/<size>`",
            "required": True,
            "schema": {"type": "string", "pattern": "^bytes [0-9]+-[0-9]+/[0-9]+$"},
        }
    response["headers"] = headers
    return response


def paths() -> dict[str, Json]:
    p: dict[str, Json] = {}
    create = operation(
        "createUpload",
        "Start an upload",
        tag="blobs",
        description="Announces a blob: its id (chosen by the client) and its exact length. "
        "The size is checked up front against `limits.blob_bytes` and the caller's quota "
        "(announced sizes of all its blobs, complete or not). The answer says how to cut "
        "the blob: part `n` covers bytes `[n·part_bytes, (n+1)·part_bytes)`. Repeating the "
        "request for the caller's own unfinished upload of the same size answers 200 with "
        "its state (safe to retry).",
        body=ref("NewUpload"),
        status=201,
        result="The upload",
        schema=ref("UploadCreated"),
        errors={
            400: ("malformed", "invalid-blob-size"),
            409: ("blob-exists", "quota-exceeded"),
            413: ("blob-too-large", "too-many-parts"),
        },
    )
    _with_second_success(create, "200", "The same unfinished upload (a repeated request)")
    p["/api/v1/uploads"] = {"post": create}
    p["/api/v1/uploads/{blob}"] = {
        "get": operation(
            "getUpload",
            "Where an upload stands",
            tag="blobs",
            description="Which parts the server has (to resume an interrupted upload), its "
            "state and expiry.",
            parameters=[_blob_param()],
            path_params=True,
            status=200,
            result="The upload",
            schema=ref("UploadState"),
            errors={404: ("upload-not-found",)},
        ),
        "delete": operation(
            "abortUpload",
            "Abort an upload",
            tag="blobs",
            description="Deletes the caller's unfinished upload, or its complete blob that "
            "no message references, with every stored part.",
            parameters=[_blob_param()],
            path_params=True,
            status=204,
            result="Deleted",
            schema=None,
            errors={404: ("upload-not-found",), 409: ("blob-in-use",)},
        ),
    }
    put = operation(
        "putUploadPart",
        "Send one part",
        tag="blobs",
        description="The bytes of part `n` as `application/octet-stream`, exactly the "
        "part's length (`part_bytes`, or the rest of the blob for the last part), with "
        "`X-Checksum: b64(BLAKE2b-256(part))`. The part streams to disk while its checksum "
        "is computed and counts only when length and checksum match. Sending the same bytes "
        "again answers 200; other bytes for a part the server has are 409 `part-conflict`. "
        "At most `limits.part_bytes` bytes (GET /api/v1/server).",
        parameters=[
            _blob_param(),
            {
                "name": "n",
                "in": "path",
                "required": True,
                "description": "The part index, from 0",
                "schema": integer(0, MAX_PARTS - 1),
            },
            _header(
                "X-Checksum",
                b64(CHECKSUM_BYTES, "BLAKE2b-256 of the part's bytes"),
                "The part's checksum",
                required=True,
            ),
        ],
        path_params=True,
        status=201,
        result="The part is stored",
        schema=ref("StoredPart"),
        errors={
            400: (
                "invalid-checksum",
                "part-out-of-range",
                "wrong-part-size",
                "checksum-mismatch",
                "unreadable-body",
            ),
            404: ("upload-not-found",),
            409: ("part-conflict", "upload-complete"),
            413: ("part-too-large",),
            415: ("unsupported-media-type",),
        },
    )
    put["requestBody"] = {"required": True, **_binary("The part's bytes")}
    _with_second_success(put, "200", "The server already had exactly these bytes")
    p["/api/v1/uploads/{blob}/parts/{n}"] = {"put": put}
    p["/api/v1/uploads/{blob}/complete"] = {
        "post": operation(
            "completeUpload",
            "Complete an upload",
            tag="blobs",
            description="Once every part is there, the server answers the blob's length "
            'and `H(key="postbox/v1/blob", blob)`, measured from the stored parts, which the '
            "message header must state. Completing a complete upload answers the same "
            "again. Takes no body.",
            parameters=[_blob_param()],
            path_params=True,
            status=200,
            result="The blob",
            schema=ref("CompletedBlob"),
            errors={404: ("upload-not-found",), 409: ("parts-missing",)},
        )
    }
    get = operation(
        "getBlob",
        "Download a blob",
        tag="blobs",
        description="The blob's bytes, streamed. Readable by its owner and by every "
        "account acting for a mailbox that holds a message referencing it; for everyone "
        "else 404, exactly as for a blob that does not exist. One byte range per request "
        "(`Range: bytes=a-b`, `bytes=a-`, `bytes=-n`) answers 206; a range outside the blob "
        "or several ranges 416. `If-Range` with the ETag makes a resumed download safe.",
        parameters=[
            _blob_param(),
            _header("Range", {"type": "string"}, "One byte range"),
            _header("If-Range", {"type": "string"}, "The ETag of the copy being resumed"),
        ],
        path_params=True,
        status=200,
        result="The whole blob",
        schema=None,
        errors={404: ("blob-not-found",), 409: ("blob-incomplete",)},
    )
    get["responses"]["200"] = _blob_response("The whole blob", partial=False)
    get["responses"]["206"] = _blob_response("The requested range", partial=True)
    get["responses"]["416"] = _range_not_satisfiable()
    get["responses"] = dict(sorted(get["responses"].items()))
    p["/api/v1/blobs/{blob}"] = {"get": get}
    p["/api/v1/me/storage"] = {
        "get": operation(
            "getStorage",
            "Storage used",
            tag="blobs",
            description="The caller's storage: what counts against the quota, the quota, "
            "and how much of it complete blobs and received parts take.",
            status=200,
            result="Storage figures",
            schema=ref("Storage"),
        )
    }
    return p
