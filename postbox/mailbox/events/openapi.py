"""OpenAPI part of the live-events WebSocket (``GET /api/v1/events``).

OpenAPI cannot describe the frames of a WebSocket, so the operation documents the HTTP
side (101 on an upgrade, 426 without one) and names the frame schemas in an
``x-postbox-websocket`` extension; protocol.md §13.13 is the full description.
"""

from __future__ import annotations

from typing import Any

from postbox.mailbox.errors import PROBLEM_BASE
from postbox.mailbox.openapi.document import (
    PROBLEM_JSON,
    closed,
    integer,
    nullable,
    operation,
    ref,
    register_codes,
)

Json = dict[str, Any]

TAGS: list[Json] = [
    {
        "name": "events",
        "description": "Live metadata events over a WebSocket (new message, status, receipt)",
    }
]

register_codes(
    {
        "websocket-required": "This route only speaks WebSocket: connect with "
        "`Upgrade: websocket` (then authenticate in the first frame)",
    }
)

EVENT_TYPES = ("message", "case", "delivery", "read", "mailbox")


def schemas() -> dict[str, Json]:
    return {
        "EventsAuthFrame": closed(
            {
                "type": {"const": "auth"},
                "token": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 4096,
                    "description": "An access token (the same as for `Authorization: Bearer`)",
                },
                "cursor": nullable(
                    integer(
                        description="The `seq` of the last event the client has seen; the "
                        "server first sends every later event. Null: only new events."
                    )
                ),
            },
            optional=("cursor",),
            description="Client → server. The first frame (within `ws_auth_seconds`), and "
            "again at any time to renew the token (`cursor` is then ignored).",
        ),
        "EventsReadyFrame": closed(
            {
                "type": {"const": "ready"},
                "cursor": integer(description="The account's latest event `seq` right now"),
            },
            description="Server → client, once, after a good auth frame.",
        ),
        "EventsRenewedFrame": closed(
            {
                "type": {"const": "renewed"},
                "expires": integer(description="The renewed access token's expiry (ms)"),
            },
            description="Server → client, after each accepted renewal frame.",
        ),
        "EventFrame": closed(
            {
                "type": {"const": "event"},
                "seq": integer(1, description="The event's cursor (grows, not contiguous)"),
                "event": {"enum": list(EVENT_TYPES)},
                "data": {
                    "type": "object",
                    "description": "Ids and states only, never content: `message` "
                    '`{"mailbox","from","id","kind","folder"}`, `case` '
                    '`{"case","status","reference"}`, `delivery` `{"from","id","event"}`, '
                    '`read` `{"from","id","mailbox"}`, `mailbox` `{"mailbox"}`',
                },
                "at": integer(description="When the event happened (ms)"),
            },
            description="Server → client, oldest first.",
        ),
    }


def _upgrade_required() -> Json:
    code = "websocket-required"
    return {
        "description": "Upgrade required (a plain HTTP request). Problem codes (`type` = "
        f"`{PROBLEM_BASE}<code>`):\n\n- `{code}`: This route only speaks WebSocket",
        "headers": {
            "X-Request-Id": {"$ref": "#/components/headers/RequestId"},
            "Upgrade": {
                "description": "`websocket`",
                "required": True,
                "schema": {"const": "websocket"},
            },
        },
        "content": {
            PROBLEM_JSON: {
                "schema": {
                    "allOf": [ref("Problem")],
                    "properties": {
                        "status": {"const": 426},
                        "type": {"enum": [PROBLEM_BASE + code]},
                    },
                }
            }
        },
    }


def paths() -> dict[str, Json]:
    op = operation(
        "getEvents",
        "Live events (WebSocket)",
        tag="events",
        description="A WebSocket that pushes the caller's metadata events. It is public "
        "at the HTTP level only because it authenticates in-band: the first frame carries "
        "the access token (never the URL, whose query string is ignored), within "
        "`ws_auth_seconds` (GET /api/v1/server), else close 4401 `auth-timeout`. The "
        "server answers `ready`, then every event after the client's `cursor`, then live "
        "events; it pings every 20 s. A new auth frame renews the token (answered "
        "`renewed`); an expired token without renewal, or an ended session (logout, "
        "revocation), closes with 4401. Close codes: 4400 bad frame, 4401 not "
        "authenticated (reason `auth-timeout`, `invalid-token`, `token-expired`, "
        "`session-ended`), 4408 the client read too slowly (reconnect with the cursor), "
        "4429 too many connections for the account, 1001 server going away, 1013 try again "
        "later. Without an upgrade: 426. Frames: protocol.md §13.13.",
        public=True,
        status=101,
        result="Switching protocols: the WebSocket conversation of protocol.md §13.13",
        schema=None,
    )
    op["responses"]["426"] = _upgrade_required()
    op["x-postbox-websocket"] = {
        "client": [ref("EventsAuthFrame")],
        "server": [ref("EventsReadyFrame"), ref("EventFrame"), ref("EventsRenewedFrame")],
    }
    return {"/api/v1/events": {"get": op}}
