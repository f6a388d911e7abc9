"""OpenAPI part of the send route (``POST /api/v1/messages``): the envelope, the receipt and
every problem the send path answers (its own checks and the cases hook's)."""

from __future__ import annotations

from typing import Any

from postbox.crypto.encoding import (
    DIGEST_BYTES,
    KEY_BYTES,
    NONCE_BYTES,
    SEALED_KEY_BYTES,
)
from postbox.crypto.envelope import KINDS, MAX_ATTACHMENTS, MAX_RECIPIENTS
from postbox.mailbox.cases.effects import SEND_CODES, SEND_PROBLEMS
from postbox.mailbox.openapi.document import (
    QUERY_400,
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
        "name": "messages",
        "description": "Sending end-to-end encrypted messages (PROTOCOL.md §5) with "
        "signed submission receipts (§8)",
    }
]

CODES: dict[str, str] = {
    "malformed-envelope": "the body is not a v1 envelope (closed shapes, `rcpt` = `to` + "
    "`from` once each and sorted, `keys` = `rcpt`, sizes, ciphertext length)",
    "signer-not-caller": "`header.signer` is not the calling account",
    "unknown-sender-key": "`sender_kid` names no identity certificate of the signer",
    "invalid-signature": "the envelope signature does not verify under `sender_kid`",
    "may-not-send": "this kind of account does not send messages (admins, operators)",
    "may-not-send-as": "the caller may not send as `from` (not its own mailbox, nor a team "
    "it is a current member of with an identity certified by the team's organisation)",
    "stale-sender-key": "`sender_kid` is not the signer's current identity key (`kid` "
    "member: the current one, or null)",
    "clock-skew": "`created` is more than 5 minutes away from the server's clock "
    "(`server_time` member)",
    "unknown-recipient": "no such recipient for this sender: unknown, disabled and "
    "not-allowed mailboxes get this same answer (`mailbox` member)",
    "thread-not-found": "the thread exists but the sender is not one of its parties",
    "stale-key": "a `rcpt` kid is not the mailbox's current encryption key (`mailbox` and "
    "`kid` members: the current key); re-seal and send again",
    "no-current-key": "the mailbox has no current encryption key (`mailbox` member)",
    "blob-unavailable": "a blob is not the signer's own complete, unused, unexpired upload "
    "(`blob` member)",
    "blob-mismatch": "a blob's size or hash differs from the header's (`blob` member)",
    "message-id-reused": "this `(from, id)` is stored with another digest",
    "send-retry": "the message could not be stored right now; send the same envelope again "
    "(safe: sends are idempotent)",
    **SEND_CODES,
}
register_codes(CODES)


def schemas() -> dict[str, Json]:
    mailbox = ref("Id")
    return {
        "EnvelopeHeader": closed(
            {
                "v": {"const": 1},
                "id": ref("Id"),
                "kind": enum(KINDS),
                "from": mailbox,
                "signer": ref("Id"),
                "sender_kid": ref("Kid"),
                "to": {
                    "type": "array",
                    "items": mailbox,
                    "minItems": 1,
                    "maxItems": MAX_RECIPIENTS,
                },
                "rcpt": {
                    "type": "array",
                    "items": closed({"mailbox": mailbox, "kid": ref("Kid")}),
                    "maxItems": MAX_RECIPIENTS + 1,
                },
                "thread": nullable(ref("Id")),
                "case": nullable(ref("Id")),
                "created": ref("Time"),
                "blobs": {
                    "type": "array",
                    "items": closed(
                        {
                            "id": ref("Id"),
                            "size": integer(1, 2**32),
                            "hash": b64(KEY_BYTES, 'H(key="postbox/v1/blob", blob)'),
                        }
                    ),
                    "maxItems": MAX_ATTACHMENTS,
                },
                "commit": b64(KEY_BYTES, 'Key commitment H(key=mk, "postbox/v1/commit")'),
            },
            description="What the server may see of a message (PROTOCOL.md §5); the AAD of "
            "the ciphertext and, through the digest, what the signer signed",
        ),
        "Envelope": closed(
            {
                "header": ref("EnvelopeHeader"),
                "nonce": b64(NONCE_BYTES, "XChaCha20-Poly1305 nonce"),
                "ct": ref("B64"),
                "keys": {
                    "type": "array",
                    "items": closed(
                        {
                            "mailbox": mailbox,
                            "kid": ref("Kid"),
                            "sealed": b64(SEALED_KEY_BYTES, "mk sealed to the mailbox's key"),
                        }
                    ),
                    "maxItems": MAX_RECIPIENTS + 1,
                },
                "signature": ref("Signature"),
            },
            description="The wire form of a message (PROTOCOL.md §5), canonical JSON",
        ),
        "SubmissionReceipt": closed(
            {
                "v": {"const": 1},
                "message": ref("Id"),
                "from": ref("Id"),
                "digest": b64(DIGEST_BYTES, "The envelope digest the signer signed"),
                "accepted": ref("Time"),
            }
        ),
        "SignedSubmissionReceipt": closed(
            {"receipt": ref("SubmissionReceipt"), "sig": ref("Signature"), "kid": ref("Kid")},
            description="Signed by the server's receipt key (leaf 0 of the log) over "
            '"postbox/v1/receipt" ‖ cj(receipt) (PROTOCOL.md §8); canonical JSON',
        ),
    }


def _merge(*groups: dict[int, tuple[str, ...]]) -> dict[int, tuple[str, ...]]:
    merged: dict[int, list[str]] = {}
    for group in groups:
        for status, codes in group.items():
            merged.setdefault(status, []).extend(codes)
    return {status: tuple(codes) for status, codes in merged.items()}


def paths() -> dict[str, Json]:
    own: dict[int, tuple[str, ...]] = {
        400: (
            "malformed-envelope",
            "unknown-sender-key",
            "invalid-signature",
            "clock-skew",
            "blob-unavailable",
            "blob-mismatch",
            *QUERY_400,
        ),
        403: ("signer-not-caller", "may-not-send", "may-not-send-as"),
        404: ("unknown-recipient", "thread-not-found"),
        409: ("message-id-reused", "stale-key", "no-current-key", "stale-sender-key"),
        503: ("send-retry",),
    }
    op = operation(
        "sendMessage",
        "Send a message",
        tag="messages",
        description="The canonical wire envelope of PROTOCOL.md §5 as the whole body (at "
        "most `limits.message_bytes`, GET /api/v1/server). The server checks, in this order: "
        "a resend (same `(from, id)` and digest: 200 with the stored receipt, whatever its "
        "age; another digest: 409 `message-id-reused`); the signer is the caller and the "
        "signature verifies under `sender_kid`, the signer's current identity; the caller "
        "may send as `from`; `created` within ±5 minutes; the thread; who may write to "
        "whom; every `rcpt` kid the mailbox's current key; every blob the signer's own "
        "complete, unused upload with the stated size and hash; the case rules. Then it "
        "stores the message, one entry per recipient mailbox, the blob links, the thread, "
        "the notification outbox and the events in one transaction and answers 201 with "
        "the signed submission receipt, only after the commit.",
        parameters=[
            {
                "name": "procedure",
                "in": "query",
                "required": False,
                "description": "With `version`: the procedure an `application` that opens "
                "a case is for",
                "schema": ref("Id"),
            },
            {
                "name": "version",
                "in": "query",
                "required": False,
                "description": "With `procedure`: its version",
                "schema": integer(1, 2**31 - 1),
            },
        ],
        body=ref("Envelope"),
        canonical=True,
        status=201,
        result="Accepted: the signed submission receipt",
        schema=ref("SignedSubmissionReceipt"),
        errors=_merge(own, dict(SEND_PROBLEMS)),
    )
    responses = op["responses"]
    responses["200"] = {
        "description": "A safe resend: the receipt stored for this `(from, id)`",
        "headers": responses["201"]["headers"],
        "content": responses["201"]["content"],
    }
    responses["503"]["headers"]["Retry-After"] = {"$ref": "#/components/headers/RetryAfter"}
    op["responses"] = dict(sorted(responses.items()))
    op["requestBody"]["description"] = op["requestBody"]["description"].replace(
        "`limits.json_bytes`", "`limits.message_bytes`"
    )
    return {"/api/v1/messages": {"post": op}}
