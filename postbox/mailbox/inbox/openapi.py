"""OpenAPI part of the inbox: mailboxes, listing, fetch, move/read/flag, delete, retention
(protocol.md §13.10)."""

from __future__ import annotations

from typing import Any

from postbox.crypto.encoding import SEALED_KEY_BYTES
from postbox.crypto.envelope import KINDS
from postbox.mailbox.inbox.service import CURSOR_BYTES, DEFAULT_LIMIT, MAX_DAYS, MAX_LIMIT
from postbox.mailbox.inbox.store import FOLDERS
from postbox.mailbox.openapi.document import (
    b64,
    b64_pattern,
    closed,
    enum,
    integer,
    nullable,
    operation,
    ref,
    register_codes,
)

Json = dict[str, Any]

TAGS: list[Json] = [
    {
        "name": "inbox",
        "description": "Mailboxes: listing, fetching, folders, read and flagged state, "
        "deleting, retention",
    }
]

register_codes(
    {
        # the same meanings as the delivery feature's (one text per code)
        "message-not-found": "no such message for the caller (not its sender's or a recipient's)",
        "mailbox-not-found": "no such mailbox for the caller",
        "invalid-query": "a query parameter is malformed, out of range or given twice",
        "invalid-cursor": "`before` is not a cursor this server made",
        "folder-not-allowed": "`sent` holds the mailbox's own messages, `inbox` the received ones",
    }
)

_COUNTS = {
    "type": "object",
    "properties": {f: integer(0) for f in FOLDERS},
    "required": list(FOLDERS),
    "additionalProperties": False,
}


def schemas() -> dict[str, Json]:
    return {
        "MailboxInfo": closed(
            {
                "mailbox": ref("Id"),
                "kind": enum(("account", "team")),
                "names": nullable(ref("Names")),
                "unread": _COUNTS,
                "total": _COUNTS,
            },
            description="A mailbox the caller acts for: its own (`account`) or a team it is "
            "a member of, with unread and total entries per folder",
        ),
        "MailboxList": closed(
            {"mailboxes": {"type": "array", "items": ref("MailboxInfo")}},
            description="The caller's own mailbox first, then its teams",
        ),
        "MessageSummary": closed(
            {
                "from": ref("Id"),
                "id": ref("Id"),
                "signer": ref("Id"),
                "kind": enum(KINDS),
                "thread": nullable(ref("Id")),
                "case": nullable(ref("Id")),
                "accepted": ref("Time"),
                "size": integer(0, description="Envelope bytes plus attachment blob bytes"),
                "blobs": integer(0, description="Number of attachments"),
                "read": {"type": "boolean"},
                "flagged": {"type": "boolean"},
                "folder": enum(FOLDERS),
            },
            description="What the server knows of a message in one mailbox (metadata only; "
            "`from`/`id` address it). Read and flagged state are per mailbox.",
        ),
        "MessagePage": closed(
            {
                "messages": {"type": "array", "items": ref("MessageSummary")},
                "next": nullable(
                    {
                        "type": "string",
                        "pattern": b64_pattern(CURSOR_BYTES),
                        "description": "Pass as `before` for the next page (opaque)",
                    }
                ),
            }
        ),
        "MailboxKeyEntry": closed(
            {
                "mailbox": ref("Id"),
                "kid": ref("Kid"),
                "sealed": b64(SEALED_KEY_BYTES, "The message key sealed to `kid`"),
            },
            description="This mailbox's `keys` entry of the envelope",
        ),
        "FetchedMessage": closed(
            {
                "wire": {
                    "type": "object",
                    "description": "The envelope exactly as the server accepted it "
                    "(PROTOCOL.md §5); the answer is canonical JSON, so `cj(wire)` gives "
                    "the stored bytes",
                },
                "key": ref("MailboxKeyEntry"),
                "receipt": {
                    "type": "object",
                    "description": "The signed submission receipt (PROTOCOL.md §8)",
                },
                "summary": ref("MessageSummary"),
                "sender": ref("KeyChain"),
            },
            description="Everything a recipient needs to verify and open the message; the "
            "client runs every check itself",
        ),
        "MessagePatch": {
            **closed(
                {
                    "folder": enum(FOLDERS),
                    "read": {"type": "boolean"},
                    "flagged": {"type": "boolean"},
                },
                optional=("folder", "read", "flagged"),
            ),
            "minProperties": 1,
        },
        "RetentionRule": closed(
            {
                "delete_after_days": nullable(
                    integer(
                        1,
                        MAX_DAYS,
                        "The organisation's messages go this many days "
                        "after they were accepted; null keeps them",
                    )
                ),
                "trash_days": integer(
                    0, MAX_DAYS, "Entries in a trash go this many days after they were moved"
                ),
            }
        ),
    }


def _path(name: str, description: str) -> Json:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": ref("Id"),
    }


def _query(name: str, schema: Json, description: str) -> Json:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": f"{description} At most once.",
        "schema": schema,
    }


def paths() -> dict[str, Json]:
    mailbox = _path("mailbox", "A mailbox the caller acts for (any other is 404)")
    message = [
        mailbox,
        _path("from", "The sending mailbox (`header.from`)"),
        _path("id", "The message id (`header.id`)"),
    ]
    org_p = _path("org", "An organisation id (another org's is 404)")
    flag = enum(("true", "false"))
    return {
        "/api/v1/mailboxes": {
            "get": operation(
                "listMailboxes",
                "The caller's mailboxes",
                tag="inbox",
                description="The caller's own mailbox and each team it is a current member "
                "of, with unread and total entries per folder.",
                status=200,
                result="The mailboxes",
                schema=ref("MailboxList"),
            )
        },
        "/api/v1/mailboxes/{mailbox}/messages": {
            "get": operation(
                "listMessages",
                "List a mailbox",
                tag="inbox",
                description="Newest first, one page at a time (keyset pagination: pages "
                "neither repeat nor skip entries while new messages arrive). Without "
                "`folder`: the inbox, or with `thread`/`case` every folder but the trash.",
                parameters=[
                    mailbox,
                    _query("folder", enum(FOLDERS), "The folder."),
                    _query("unread", flag, "Only unread (`true`) or read (`false`) ones."),
                    _query("flagged", flag, "Only flagged (`true`) or unflagged ones."),
                    _query("thread", ref("Id"), "Only this thread."),
                    _query("case", ref("Id"), "Only this case."),
                    _query(
                        "limit",
                        integer(1, MAX_LIMIT),
                        f"Page size (default {DEFAULT_LIMIT}), a decimal integer.",
                    ),
                    _query(
                        "before",
                        {"type": "string", "pattern": b64_pattern(CURSOR_BYTES)},
                        "The `next` of the previous page.",
                    ),
                ],
                path_params=True,
                status=200,
                result="A page",
                schema=ref("MessagePage"),
                errors={
                    400: ("unknown-parameter", "invalid-query", "invalid-cursor"),
                    404: ("mailbox-not-found",),
                },
            )
        },
        "/api/v1/mailboxes/{mailbox}/messages/{from}/{id}": {
            "get": operation(
                "getMessage",
                "Fetch a message",
                tag="inbox",
                description="The envelope as stored, this mailbox's sealed key, the signed "
                "receipt, the summary and the signer's key chain with proofs (as GET "
                "/api/v1/keys/{subject}). A citizen's fetch through its own mailbox records "
                "the retrieval of an authority's message (signed delivery event). "
                "Canonical JSON.",
                parameters=message,
                path_params=True,
                status=200,
                result="The message",
                schema=ref("FetchedMessage"),
                errors={404: ("message-not-found",)},
            ),
            "patch": operation(
                "changeMessage",
                "Move, mark read or flag a message",
                tag="inbox",
                description="For this mailbox (a team's members share the state). Moving "
                "stamps the time the trash purge counts from.",
                parameters=message,
                path_params=True,
                body=ref("MessagePatch"),
                status=200,
                result="The new summary",
                schema=ref("MessageSummary"),
                errors={
                    400: ("malformed",),
                    404: ("message-not-found",),
                    409: ("folder-not-allowed",),
                },
            ),
            "delete": operation(
                "deleteMessage",
                "Delete a message from this mailbox",
                tag="inbox",
                description="Removes this mailbox's entry; once no mailbox holds the "
                "message, it is deleted with its attachments.",
                parameters=message,
                path_params=True,
                status=204,
                result="Deleted",
                schema=None,
                errors={404: ("message-not-found",)},
            ),
        },
        "/api/v1/orgs/{org}/retention": {
            "get": operation(
                "getRetention",
                "The organisation's retention rule",
                tag="inbox",
                description="For every account of the organisation. Without a rule: keep "
                "messages, purge the trash after 30 days.",
                parameters=[org_p],
                path_params=True,
                status=200,
                result="The rule",
                schema=ref("RetentionRule"),
                errors={404: ("org-not-found",)},
            ),
            "put": operation(
                "putRetention",
                "Set the organisation's retention rule",
                tag="inbox",
                description="By an org admin. Applied by every server process's collector "
                "(every `gc_interval_seconds`).",
                parameters=[org_p],
                path_params=True,
                body=ref("RetentionRule"),
                status=200,
                result="The rule",
                schema=ref("RetentionRule"),
                errors={
                    400: ("malformed",),
                    403: ("admin-only",),
                    404: ("org-not-found",),
                },
            ),
        },
    }
