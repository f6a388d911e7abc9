"""The status table as data: every move it allows, every move it refuses, and its invariants."""

from __future__ import annotations

import itertools

import pytest

from postbox.mailbox.cases import transitions as t

#: the table, written out once more by hand: (from, to) → the ways that may make the move
EXPECTED: dict[tuple[str, str], set[str]] = {
    ("submitted", "in_review"): {"status"},
    ("submitted", "info_requested"): {"status", "info_request"},
    ("in_review", "info_requested"): {"status", "info_request"},
    ("info_requested", "in_review"): {"status", "reply"},
    ("submitted", "decided"): {"decision"},
    ("in_review", "decided"): {"decision"},
    ("info_requested", "decided"): {"decision"},
    ("submitted", "withdrawn"): {"withdrawal"},
    ("in_review", "withdrawn"): {"withdrawal"},
    ("info_requested", "withdrawn"): {"withdrawal"},
    ("decided", "closed"): {"status"},
}


@pytest.mark.parametrize(
    ("source", "target", "via"), list(itertools.product(t.STATUSES, t.STATUSES, t.VIAS))
)
def test_every_move(source: str, target: str, via: t.Via) -> None:
    assert t.allowed(source, target, via) == (via in EXPECTED.get((source, target), set()))


def test_the_table_has_no_duplicates_and_no_self_moves() -> None:
    pairs = [(m.source, m.target) for m in t.TABLE]
    assert len(pairs) == len(set(pairs)) == len(EXPECTED)
    assert all(a != b for a, b in pairs)


def test_decided_and_withdrawn_come_only_from_signed_envelopes() -> None:
    assert {"decided", "withdrawn"} == t.SIGNED_ONLY
    for m in t.TABLE:
        if m.target == "decided":
            assert m.via == {"decision"}
        if m.target == "withdrawn":
            assert m.via == {"withdrawal"}
    for source in t.STATUSES:
        assert not set(t.targets(source, "status")) & t.SIGNED_ONLY


def test_final_statuses() -> None:
    assert t.targets("withdrawn", "status") == []
    assert t.targets("closed", "status") == []
    assert t.targets("decided", "status") == ["closed"]
    for via in t.VIAS:
        assert t.targets("closed", via) == [] and t.targets("withdrawn", via) == []
    assert t.INITIAL == "submitted"


def test_labels() -> None:
    assert t.label("application") == t.label("decision") == t.label("withdrawal") == "signed"
    for via in ("status", "info_request", "reply"):
        assert t.label(via) == "server metadata"
