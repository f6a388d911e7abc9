"""Monitoring the key-transparency log (PROTOCOL.md §7): the owner's self-check and the auditor.

:func:`self_check` compares an owner's chain with the ``{"seq","hash"}`` its bundle
remembers and lists key events it did not make; :class:`Auditor` scans the whole log for
duplicate ``(subject, seq)`` and chains that do not link. They are what catch a server
*withholding* the tail of a subject's chain from one client, which a keys response alone
cannot show (it proves inclusion, not completeness).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, cast

from postbox.crypto import shapes
from postbox.crypto.certs import SignedCert, SignedRevocation
from postbox.crypto.encoding import b64d
from postbox.crypto.errors import CryptoError, ForkDetected
from postbox.crypto.logevents import (
    CHAIN_HEAD_SHAPE,
    ChainHead,
    EventType,
    LogEvent,
    chain_head,
    check_chain,
    event_hash,
    parse_leaf,
)
from postbox.crypto.primitives import equal
from postbox.crypto.transparency import HASH_BYTES, TreeHead
from postbox.keys import merkle


# --- the owner's self-check --------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ForeignEvent:
    """A key event in the owner's chain that none of the owner's keys made or names."""

    seq: int
    type: EventType
    kid: str


@dataclass(frozen=True, slots=True)
class SelfCheck:
    head: ChainHead
    foreign: tuple[ForeignEvent, ...]

    @property
    def ok(self) -> bool:
        return not self.foreign


def self_check(
    events: Sequence[LogEvent], remembered: ChainHead | None, own_kids: Collection[str]
) -> SelfCheck:
    """The owner's check at login: its chain still contains what the bundle remembers, and
    which later key events it did not create.

    The remembered event must still be at its ``seq`` with the same leaf hash, else
    :class:`ForkDetected` (the log rewrote or hid the owner's history). Reported as foreign
    after it: ``identity``/``key``/``admin_key`` events whose certificate kid is not in
    ``own_kids``, and ``revoke`` events signed by a key not in ``own_kids`` (e.g. an admin).
    Store ``head`` in the bundle afterwards.
    """
    check_chain(events)
    start = 0
    if remembered is not None:
        shapes.check(CHAIN_HEAD_SHAPE, remembered, "chain")
        seq = remembered["seq"]
        if seq >= len(events):
            raise ForkDetected("the log no longer shows events this account has seen")
        if not equal(event_hash(events[seq]), b64d(remembered["hash"], HASH_BYTES)):
            raise ForkDetected("the event this account remembers was replaced")
        start = seq + 1
    own = set(own_kids)
    foreign: list[ForeignEvent] = []
    for event in events[start:]:
        t = event["type"]
        if t in ("identity", "key", "admin_key"):
            kid = cast(SignedCert, event["body"])["cert"]["kid"]
        elif t == "revoke":
            kid = cast(SignedRevocation, event["body"])["by"]
        else:
            continue
        if kid not in own:
            foreign.append(ForeignEvent(event["seq"], t, kid))
    return SelfCheck(chain_head(events), tuple(foreign))


# --- the auditor ---------------------------------------------------------------------------
FindingKind = Literal["malformed", "first_leaf", "duplicate_seq", "seq_gap", "broken_link", "time"]


@dataclass(frozen=True, slots=True)
class Finding:
    kind: FindingKind
    index: int
    subject: str | None
    seq: int | None
    detail: str


@dataclass
class _Tip:
    next_seq: int
    hash: bytes
    ts: int


class Auditor:
    """Scans the whole log, leaf by leaf, for structural alarms (PROTOCOL.md §7).

    Memory is one entry per subject plus a Merkle frontier; feed leaves in index order
    (``…/leaves?start=&end=`` pages), then compare :meth:`root` with verified tree heads
    (:meth:`check_head`). Findings: a leaf that is not a valid event; leaf 0 not the
    server's ``server_key`` at ``seq`` 0; two events with the same ``(subject, seq)``;
    a ``seq`` gap; a ``prev`` that is not the leaf hash of the subject's previous event;
    a subject's time going backwards. Signatures are checked by :func:`replay` per subject.
    """

    def __init__(self) -> None:
        self._tips: dict[str, _Tip] = {}
        self._frontier = merkle.Frontier.empty()
        self.findings: list[Finding] = []

    @property
    def size(self) -> int:
        return self._frontier.size

    def root(self) -> bytes:
        return self._frontier.root()

    def add(self, leaf: bytes) -> list[Finding]:
        """Audit the next leaf; returns the findings it raised (also kept in ``findings``)."""
        index = self._frontier.size
        h = merkle.leaf_hash(leaf)
        self._frontier, _ = self._frontier.append(h)
        found: list[Finding] = []
        try:
            event = parse_leaf(leaf)
        except CryptoError as exc:
            found.append(Finding("malformed", index, None, None, str(exc)))
            self.findings.extend(found)
            return found
        subject, seq = event["subject"], event["seq"]

        def note(kind: FindingKind, detail: str) -> None:
            found.append(Finding(kind, index, subject, seq, detail))

        if index == 0 and (event["type"] != "server_key" or seq != 0):
            note("first_leaf", "leaf 0 must be the log's server_key event")
        tip = self._tips.get(subject)
        expected = 0 if tip is None else tip.next_seq
        if seq < expected:
            note("duplicate_seq", f"a second event with seq {seq}")
        elif seq > expected:
            note("seq_gap", f"expected seq {expected}")
        else:
            prev = event["prev"]
            if tip is None:
                if prev is not None:
                    note("broken_link", "seq 0 has a prev")
            elif prev is None or not equal(b64d(prev, HASH_BYTES), tip.hash):
                note("broken_link", f"prev is not the leaf hash of seq {seq - 1}")
            if tip is not None and event["ts"] < tip.ts:
                note("time", "older than the subject's previous event")
            self._tips[subject] = _Tip(seq + 1, h, event["ts"])
        self.findings.extend(found)
        return found

    def extend(self, leaves: Iterable[bytes]) -> list[Finding]:
        found: list[Finding] = []
        for leaf in leaves:
            found.extend(self.add(leaf))
        return found

    def check_head(self, sth: TreeHead) -> None:
        """Compare a verified tree head with the leaves audited so far (equal sizes only)."""
        if sth["size"] != self.size:
            raise ValueError("audit up to the head's size first")
        if not equal(self.root(), b64d(sth["root"], HASH_BYTES)):
            raise ForkDetected("the leaves served do not hash to the signed root")


def audit_leaves(leaves: Iterable[bytes]) -> list[Finding]:
    """Audit a whole log from leaf 0 (see :class:`Auditor`)."""
    auditor = Auditor()
    return auditor.extend(leaves)
