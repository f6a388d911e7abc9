"""OpenAPI part of the delivery feature: delivery records, read receipts, the legal clock,
legal settings, overdue decisions and the public rule list (PROTOCOL.md §8; protocol.md
§13.12)."""

from __future__ import annotations

import copy
from typing import Any

from postbox.crypto.encoding import DIGEST_BYTES, KEY_BYTES
from postbox.crypto.receipts import DELIVERY_EVENTS, LINK_BYTES
from postbox.mailbox.delivery.rules import MESSAGE_KINDS, default_rules
from postbox.mailbox.delivery.service import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    MAX_RULE_CHARS,
    MAX_SUBDIVISION_CHARS,
    MAX_ZONE_CHARS,
)
from postbox.mailbox.openapi.document import (
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

TAGS: list[Json] = [
    {
        "name": "delivery",
        "description": "Delivery records, read receipts and the legal clock of decisions",
    }
]

register_codes(
    {
        "message-not-found": "no such message for the caller (not its sender's or a recipient's)",
        "mailbox-not-found": "no such mailbox for the caller",
        "reader-mismatch": "the read receipt's reader is not the caller",
        "not-a-recipient": "the read receipt's mailbox is not a recipient of the message "
        "that the caller acts for",
        "receipt-mismatch": "the read receipt names another message or digest",
        "invalid-read-time": "the read time lies before the message was accepted or after now",
        "unknown-reader-key": "the read receipt is not signed by the reader's current identity key",
        "invalid-read-receipt": "the read receipt's signature does not verify",
        "invalid-time-zone": "not an IANA time zone name",
        "invalid-holiday-calendar": "no holiday calendar for this country and subdivision",
        "unknown-rule": "no rule family of that name (GET /api/v1/legal-rules)",
        "rule-not-applicable": "the rule family does not govern decisions in this country",
        "invalid-parameter": "a query parameter is not one decimal integer in range",
    }
)

_DATE = {
    "type": "string",
    "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
    "description": "A calendar day (ISO 8601) in the organisation's time zone",
}
_DAYS = closed(
    {
        "days": integer(0, 366, "Days after the event's day (0: that day)"),
        "count": enum(("calendar", "working")),
    }
)


def schemas() -> dict[str, Json]:
    digest = b64(DIGEST_BYTES, "The envelope digest the sender signed")
    link = b64(LINK_BYTES, "A BLAKE2b-256 link")
    families = sorted(default_rules().families)
    return {
        "DeliveryEvent": closed(
            {
                "v": {"const": 1},
                "message": ref("Id"),
                "digest": digest,
                "event": enum(DELIVERY_EVENTS),
                "at": ref("Time"),
                "by": nullable(ref("Id")),
                "prev": nullable(link),
            },
            description="A delivery event (PROTOCOL.md §8); `prev` = H(cj(previous event) ‖ "
            "its signature)",
        ),
        "SignedDeliveryEvent": closed(
            {"delivery": ref("DeliveryEvent"), "sig": ref("Signature"), "kid": ref("Kid")},
            description="Signed by the server's receipt key (`postbox/v1/delivery`)",
        ),
        "LegalClock": closed(
            {
                "rule": {"type": "string", "description": "The rule version applied"},
                "family": {"type": "string"},
                "source": {"type": "string", "description": "The legal citation"},
                "reference": {"type": "string", "description": "The full legal reference"},
                "time_zone": {"type": "string"},
                "available": ref("Time"),
                "notified": nullable(ref("Time")),
                "retrieved": nullable(ref("Time")),
                "deemed": nullable(_DATE),
                "deadline": nullable(_DATE),
                "deadline_ends": nullable(ref("Time")),
                "overdue": {"type": "boolean"},
                "notify_by": nullable(_DATE),
                "notified_late": {"type": "boolean"},
            },
            description="The legal clock of a decision at the time of the request: the "
            "deemed-notification day known so far, the last day a retrieval is in time "
            "(`deadline`, ending at `deadline_ends`), whether it was missed (`overdue`: "
            "not notified, use another channel) and the day the notification must go out "
            "by. Rule, time zone and holiday calendar are frozen at provision.",
        ),
        "DeliveryRecord": closed(
            {
                "events": {"type": "array", "items": ref("SignedDeliveryEvent")},
                "clock": nullable(ref("LegalClock")),
            },
            description="The signed chain (empty for messages that are not an authority's "
            "message to a citizen) and the legal clock (null when no rule applies)",
        ),
        "ReadReceipt": closed(
            {
                "v": {"const": 1},
                "message": ref("Id"),
                "digest": digest,
                "mailbox": ref("Id"),
                "reader": ref("Id"),
                "sth": closed(
                    {
                        "size": integer(1),
                        "root": b64(KEY_BYTES, "The tree root the reader verified"),
                    }
                ),
                "read": ref("Time"),
            }
        ),
        "SignedReadReceipt": closed(
            {"read": ref("ReadReceipt"), "sig": ref("Signature"), "kid": ref("Kid")},
            description="Signed by the reader's identity key (`postbox/v1/read`)",
        ),
        "Countersign": closed(
            {
                "v": {"const": 1},
                "read": link,
                "received": ref("Time"),
            },
            description="`read` = H(cj(read receipt) ‖ its signature)",
        ),
        "SignedCountersign": closed(
            {"countersign": ref("Countersign"), "sig": ref("Signature"), "kid": ref("Kid")},
            description="Signed by the server's receipt key (`postbox/v1/countersign`)",
        ),
        "ReadPair": closed(
            {"read": ref("SignedReadReceipt"), "countersign": ref("SignedCountersign")}
        ),
        "ReadList": closed({"reads": {"type": "array", "items": ref("ReadPair")}}),
        "OverduePage": closed(
            {
                "overdue": {
                    "type": "array",
                    "items": closed(
                        {"from": ref("Id"), "id": ref("Id"), "clock": nullable(ref("LegalClock"))}
                    ),
                },
                "next": nullable({"type": "string", "pattern": "^[1-9][0-9]*$"}),
            }
        ),
        "LegalSettingsUpdate": closed(
            {
                "time_zone": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": MAX_ZONE_CHARS,
                    "description": "An IANA time zone, e.g. `Europe/Berlin`",
                },
                "country": {
                    "type": "string",
                    "pattern": "^[A-Z]{2}$",
                    "description": "ISO 3166 country of the holiday calendar, e.g. `DE`",
                },
                "subdivision": nullable(
                    {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": MAX_SUBDIVISION_CHARS,
                        "description": "Federal state (ISO 3166-2 suffix, e.g. `BY`)",
                    }
                ),
                "decision_rule": {
                    "type": "string",
                    "enum": families,
                    "maxLength": MAX_RULE_CHARS,
                    "description": "The rule family that governs decisions",
                },
            }
        ),
        "LegalSettings": closed(
            {
                "org": ref("Id"),
                "time_zone": {"type": "string"},
                "country": {"type": "string"},
                "subdivision": nullable({"type": "string"}),
                "decision_rule": {"type": "string"},
                "updated": nullable(ref("Time")),
            },
            description="`updated` null: the defaults (Europe/Berlin, DE, § 41 (2a) VwVfG)",
        ),
        "LegalRule": closed(
            {
                "id": {"type": "string"},
                "family": {"type": "string"},
                "jurisdiction": {"type": "string"},
                "title": {"type": "object", "additionalProperties": {"type": "string"}},
                "source": closed({"citation": {"type": "string"}, "reference": {"type": "string"}}),
                "summary": {"type": "string"},
                "valid_from": nullable(_DATE),
                "valid_until": nullable(_DATE),
                "kinds": {"type": "array", "items": enum(sorted(MESSAGE_KINDS))},
                "computation": closed(
                    {
                        "after_provision": nullable(_DAYS),
                        "after_notification": nullable(_DAYS),
                        "after_retrieval": nullable(_DAYS),
                        "roll_to_working_day": {"type": "boolean"},
                        "retrieval_deadline": nullable(
                            closed(
                                {
                                    "days": integer(0, 366),
                                    "count": enum(("calendar", "working")),
                                    "anchor": enum(("notification", "provision")),
                                }
                            )
                        ),
                        "notify_by": nullable(_DAYS),
                    }
                ),
            }
        ),
        "LegalRules": closed(
            {"caveat": {"type": "string"}, "rules": {"type": "array", "items": ref("LegalRule")}}
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


def _optional_query(name: str, schema: Json, description: str) -> Json:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": f"{description} One decimal integer, given at most once.",
        "schema": schema,
    }


def _also_200(op: Json, description: str) -> Json:
    """A 201 operation that also answers 200 with the same body (an idempotent resend)."""
    again = copy.deepcopy(op["responses"]["201"])
    again["description"] = description
    op["responses"] = {"200": again, **op["responses"]}
    return op


def paths() -> dict[str, Json]:
    message = [
        _path("from", "The sending mailbox (`header.from`)"),
        _path("id", "The message id (`header.id`)"),
    ]
    org_p = _path("org", "An organisation id (another org's is 404)")
    return {
        "/api/v1/legal-rules": {
            "get": operation(
                "getLegalRules",
                "The legal delivery rules",
                tag="delivery",
                description="Every rule the server knows, with its legal source, validity "
                "and computation (data shipped with the server; each authority must check "
                "the rule it selects).",
                public=True,
                status=200,
                result="The rules",
                schema=ref("LegalRules"),
            )
        },
        "/api/v1/orgs/{org}/legal-settings": {
            "get": operation(
                "getLegalSettings",
                "The organisation's legal settings",
                tag="delivery",
                description="For staff of the organisation.",
                parameters=[org_p],
                path_params=True,
                status=200,
                result="The settings (the defaults until an admin sets them)",
                schema=ref("LegalSettings"),
                errors={404: ("org-not-found",)},
            ),
            "put": operation(
                "putLegalSettings",
                "Set the organisation's legal settings",
                tag="delivery",
                description="By an org admin. Applies to decisions provided from now on; "
                "earlier decisions keep the rule and calendar they were provided under.",
                parameters=[org_p],
                path_params=True,
                body=ref("LegalSettingsUpdate"),
                status=200,
                result="The settings",
                schema=ref("LegalSettings"),
                errors={
                    400: (
                        "malformed",
                        "invalid-time-zone",
                        "invalid-holiday-calendar",
                        "unknown-rule",
                        "rule-not-applicable",
                    ),
                    403: ("admin-only",),
                    404: ("org-not-found",),
                },
            ),
        },
        "/api/v1/messages/{from}/{id}/delivery": {
            "get": operation(
                "getDelivery",
                "A message's delivery record and legal clock",
                tag="delivery",
                description="For the accounts acting for the sending mailbox or a recipient "
                "mailbox still holding the message. Verify the chain with the pinned "
                "receipt key.",
                parameters=message,
                path_params=True,
                status=200,
                result="The signed chain and the clock",
                schema=ref("DeliveryRecord"),
                errors={404: ("message-not-found",)},
            )
        },
        "/api/v1/messages/{from}/{id}/reads": {
            "post": _also_200(
                operation(
                    "postReadReceipt",
                    "Send a read receipt",
                    tag="delivery",
                    description="By the reader, for a recipient mailbox it acts for, signed by "
                    "its current identity key over the stored digest. The server countersigns "
                    "it on arrival. Per (message, mailbox, reader) the first receipt is kept: "
                    "sending again answers 200 with the stored pair.",
                    parameters=message,
                    path_params=True,
                    body=ref("SignedReadReceipt"),
                    canonical=True,
                    status=201,
                    result="The receipt and its countersignature (200: stored earlier)",
                    schema=ref("ReadPair"),
                    errors={
                        400: (
                            "malformed",
                            "reader-mismatch",
                            "not-a-recipient",
                            "receipt-mismatch",
                            "invalid-read-time",
                            "unknown-reader-key",
                            "invalid-read-receipt",
                        ),
                        404: ("message-not-found",),
                    },
                ),
                "The receipt kept earlier for this (message, mailbox, reader), unchanged",
            ),
            "get": operation(
                "getReadReceipts",
                "A message's read receipts",
                tag="delivery",
                description="The sending mailbox's accounts see every receipt; a recipient "
                "sees those of the mailboxes it acts for.",
                parameters=message,
                path_params=True,
                status=200,
                result="The receipts, oldest first",
                schema=ref("ReadList"),
                errors={404: ("message-not-found",)},
            ),
        },
        "/api/v1/mailboxes/{mailbox}/overdue": {
            "get": operation(
                "getOverdueDecisions",
                "Decisions not retrieved in time",
                tag="delivery",
                description="Decisions sent from this mailbox (a team the caller is a member "
                "of) whose retrieval deadline passed without a timely retrieval: not "
                "notified, the caseworker must use another channel. Newest first.",
                parameters=[
                    _path("mailbox", "A mailbox the caller acts for"),
                    _optional_query(
                        "limit",
                        integer(1, MAX_LIMIT),
                        f"Page size (default {DEFAULT_LIMIT}).",
                    ),
                    _optional_query(
                        "before",
                        integer(1),
                        "The `next` cursor of the previous page.",
                    ),
                ],
                path_params=True,
                status=200,
                result="A page of overdue decisions",
                schema=ref("OverduePage"),
                errors={
                    400: ("unknown-parameter", "invalid-parameter"),
                    404: ("mailbox-not-found",),
                },
            )
        },
    }
