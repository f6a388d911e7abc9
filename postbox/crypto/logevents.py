"""Key-transparency log events and per-subject chains (PROTOCOL.md §7).

A leaf is ``cj(event)``; ``event.prev`` is the RFC 9162 *leaf hash* (``SHA-256(0x00 ‖ leaf)``)
of the subject's previous event, ``null`` at ``seq`` 0. :func:`verify_keys_response` checks
``GET /api/v1/keys/{subject}``: the tree head, each event's inclusion proof and an unbroken
chain from ``seq`` 0 (:class:`BrokenChain`). Tree heads are in
:mod:`postbox.crypto.transparency`, replaying a chain into key state in
:mod:`postbox.crypto.keystate`.

Limits: a server can still *withhold* the tail of a subject's chain from one client (the
response proves inclusion, not completeness); owners' self-checks and the auditor
(:mod:`postbox.crypto.monitor`), who see the full log, are what catch that.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, TypedDict, cast, get_args

from postbox.crypto import certs, shapes
from postbox.crypto.encoding import b64d, b64e, cj, parse_canonical
from postbox.crypto.errors import BrokenChain
from postbox.crypto.primitives import equal
from postbox.crypto.transparency import (
    HASH,
    HASH_BYTES,
    MAX_STH_AGE_MS,
    PATH_SHAPE,
    SIG,
    TREE_HEAD_SHAPE,
    V1,
    TreeHead,
    check_fresh,
    check_hash,
    decode_path,
    verify_head_sig,
    wire,
)
from postbox.keys import merkle

EventType = Literal[
    "server_key",
    "org_root",
    "identity",
    "key",
    "revoke",
    "member_add",
    "member_remove",
    "admin_key",
]
EVENT_TYPES: Final = get_args(EventType)


class ChainHead(TypedDict):
    """What a bundle remembers of its own chain: the last seen ``seq`` and its leaf hash."""

    seq: int
    hash: str


class LogEvent(TypedDict):
    v: int
    subject: str
    seq: int
    prev: str | None
    type: EventType
    ts: int
    body: dict[str, Any]


# --- shapes ------------------------------------------------------------------------------
CHAIN_HEAD_SHAPE = shapes.obj({"seq": shapes.COUNT, "hash": HASH})
BODY_SHAPES: Final[Mapping[str, shapes.Shape]] = {
    "server_key": certs.SIGNED_SERVER_KEY_SHAPE,
    "org_root": certs.SIGNED_ORG_ROOT_SHAPE,
    "identity": certs.SIGNED_CERT_SHAPE,
    "key": certs.SIGNED_CERT_SHAPE,
    "admin_key": certs.SIGNED_CERT_SHAPE,
    "revoke": certs.SIGNED_REVOCATION_SHAPE,
    "member_add": certs.SIGNED_MEMBERSHIP_SHAPE,
    "member_remove": certs.SIGNED_MEMBERSHIP_SHAPE,
}
_EVENT_FRAME = shapes.obj(
    {
        "v": V1,
        "subject": shapes.ID,
        "seq": shapes.COUNT,
        "prev": shapes.nullable(HASH),
        "type": shapes.enum(*EVENT_TYPES),
        "ts": shapes.TIME,
        "body": shapes.free_object,
    }
)


def EVENT_SHAPE(value: Any, path: str) -> None:
    """A log event: the closed frame, then the body shape its ``type`` names."""
    _EVENT_FRAME(value, path)
    BODY_SHAPES[value["type"]](value["body"], f"{path}.body")


PROOF_ENTRY_SHAPE = shapes.obj(
    {"index": shapes.COUNT, "leaf": shapes.b64(None), "path": PATH_SHAPE}
)
KEYS_RESPONSE_SHAPE = shapes.obj(
    {"sth": TREE_HEAD_SHAPE, "sig": SIG, "events": shapes.array(PROOF_ENTRY_SHAPE)}
)


# --- events ------------------------------------------------------------------------------
def make_event(
    *,
    subject: str,
    seq: int,
    prev: bytes | None,
    type: EventType,
    ts: int,
    body: Mapping[str, Any],
) -> LogEvent:
    event = {
        "v": 1,
        "subject": subject,
        "seq": seq,
        "prev": None if prev is None else b64e(check_hash(prev, "prev")),
        "type": type,
        "ts": ts,
        "body": dict(body),
    }
    shapes.check(EVENT_SHAPE, event, "event")
    return cast(LogEvent, event)


def next_event(
    previous: LogEvent | None,
    *,
    subject: str,
    type: EventType,
    ts: int,
    body: Mapping[str, Any],
) -> LogEvent:
    """The event after ``previous`` in a subject's chain (seq and prev filled in)."""
    if previous is None:
        return make_event(subject=subject, seq=0, prev=None, type=type, ts=ts, body=body)
    if previous["subject"] != subject:
        raise BrokenChain("previous event of another subject")
    return make_event(
        subject=subject, seq=previous["seq"] + 1, prev=event_hash(previous), type=type,
        ts=ts, body=body,
    )  # fmt: skip


def event_leaf(event: LogEvent) -> bytes:
    """The leaf bytes of an event: ``cj(event)``."""
    return cj(event)


def event_hash(event: LogEvent) -> bytes:
    """The RFC 9162 leaf hash ``SHA-256(0x00 ‖ cj(event))``, what the next ``prev`` holds."""
    return merkle.leaf_hash(cj(event))


def parse_leaf(leaf: bytes) -> LogEvent:
    """An event from its leaf bytes (canonical JSON, closed shape)."""
    event = parse_canonical(leaf)
    shapes.check(EVENT_SHAPE, event, "event")
    return cast(LogEvent, event)


def check_chain(events: Sequence[LogEvent], subject: str | None = None) -> None:
    """An unbroken chain from ``seq`` 0: one subject, consecutive seqs, each ``prev`` the
    leaf hash of the event before, times non-decreasing. Raises :class:`BrokenChain`."""
    if not events:
        raise BrokenChain("empty chain")
    want = events[0]["subject"] if subject is None else subject
    prev_hash: bytes | None = None
    prev_ts = 0
    for i, event in enumerate(events):
        if event["subject"] != want:
            raise BrokenChain(f"event {i} is about another subject")
        if event["seq"] != i:
            raise BrokenChain(f"expected seq {i}, got {event['seq']}")
        if prev_hash is None:
            if event["prev"] is not None:
                raise BrokenChain("seq 0 has a prev")
        elif event["prev"] is None or not equal(b64d(event["prev"], HASH_BYTES), prev_hash):
            raise BrokenChain(f"seq {i} does not link to seq {i - 1}")
        if event["ts"] < prev_ts:
            raise BrokenChain(f"seq {i} is older than seq {i - 1}")
        prev_hash, prev_ts = event_hash(event), event["ts"]


def chain_head(events: Sequence[LogEvent]) -> ChainHead:
    """The ``{"seq","hash"}`` a bundle stores for the last event of its own chain."""
    if not events:
        raise BrokenChain("empty chain")
    return {"seq": events[-1]["seq"], "hash": b64e(event_hash(events[-1]))}


@dataclass(frozen=True, slots=True)
class VerifiedChain:
    """A subject's chain proved against a verified tree head."""

    subject: str
    sth: TreeHead
    events: tuple[LogEvent, ...]
    indices: tuple[int, ...]

    @property
    def head(self) -> ChainHead:
        return chain_head(self.events)


def verify_keys_response(
    response: Any,
    subject: str,
    log_pk: bytes,
    *,
    now: int,
    max_age_ms: int = MAX_STH_AGE_MS,
) -> VerifiedChain:
    """Verify ``GET /api/v1/keys/{subject}`` = ``{"sth","sig","events":[{"index","leaf","path"}]}``.

    Checks the tree head (pinned log key, age), every event's inclusion proof
    (:class:`BadProof`) and an unbroken chain of ``subject`` from ``seq`` 0 in increasing
    leaf order (:class:`BrokenChain`). The head is *not* compared with the caller's stored
    head: do that with :func:`compare_heads` (or :func:`advance`) before trusting it.
    """
    r = wire(response)
    shapes.check(KEYS_RESPONSE_SHAPE, r, "keys response")
    sth = cast(TreeHead, r["sth"])
    verify_head_sig(sth, r["sig"], log_pk)
    check_fresh(sth, now=now, max_age_ms=max_age_ms)
    root = b64d(sth["root"], HASH_BYTES)
    events: list[LogEvent] = []
    indices: list[int] = []
    for entry in r["events"]:
        leaf = b64d(entry["leaf"])
        merkle.verify_inclusion(
            merkle.leaf_hash(leaf), entry["index"], sth["size"], decode_path(entry["path"]), root
        )
        if indices and entry["index"] <= indices[-1]:
            raise BrokenChain("events are not in log order")
        events.append(parse_leaf(leaf))
        indices.append(entry["index"])
    check_chain(events, subject)
    return VerifiedChain(subject, sth, tuple(events), tuple(indices))
