"""The case status table: every allowed move, and how it may be made (data, not code).

A case (Vorgang) starts ``submitted`` when a citizen's signed ``application`` opens it.
From there it moves along this table and nowhere else:

| from | to | via |
| --- | --- | --- |
| submitted | in_review | status |
| submitted | info_requested | status, info_request |
| in_review | info_requested | status, info_request |
| info_requested | in_review | status, reply |
| submitted, in_review, info_requested | decided | decision |
| submitted, in_review, info_requested | withdrawn | withdrawal |
| decided | closed | status |

``via`` names what may make the move:

* ``status`` — ``POST /api/v1/cases/{case}/status`` by a caseworker or connector who is a
  current member of the case's team: **server metadata**, labelled so wherever shown.
* ``decision`` — a signed ``decision`` envelope from the case's team, signed by a
  caseworker of the organisation owning the case (PROTOCOL.md §5).
* ``withdrawal`` — a signed ``withdrawal`` envelope signed by the case's citizen.
* ``info_request`` — a signed ``info_request`` envelope from the case's team.
* ``reply`` — any envelope the case's citizen sends into the case while information is
  requested (the answer to the request).

``decided`` and ``withdrawn`` are reached only through signed envelopes (legally effective
changes); every other status is server metadata. ``withdrawn`` and ``closed`` are final.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal, get_args

Status = Literal["submitted", "in_review", "info_requested", "decided", "closed", "withdrawn"]
Via = Literal["status", "decision", "withdrawal", "info_request", "reply"]

STATUSES: Final[tuple[Status, ...]] = get_args(Status)
VIAS: Final[tuple[Via, ...]] = get_args(Via)
#: the status a case has when its application opens it
INITIAL: Final[Status] = "submitted"
#: how the opening is recorded in the history (a signed application)
OPENED_VIA: Final = "application"
#: a case in these statuses takes no info request any more (decision, withdrawal, closing)
FINISHED: Final[frozenset[Status]] = frozenset({"decided", "closed", "withdrawn"})
#: what a signed envelope makes legally effective (the history labels these "signed")
SIGNED_VIAS: Final[frozenset[str]] = frozenset({OPENED_VIA, "decision", "withdrawal"})


@dataclass(frozen=True)
class Move:
    source: Status
    target: Status
    via: frozenset[Via]


def _move(source: Status, target: Status, *via: Via) -> Move:
    return Move(source, target, frozenset(via))


_OPEN: Final[tuple[Status, ...]] = ("submitted", "in_review", "info_requested")

#: THE table (see the module docs); nothing else decides which moves exist
TABLE: Final[tuple[Move, ...]] = (
    _move("submitted", "in_review", "status"),
    _move("submitted", "info_requested", "status", "info_request"),
    _move("in_review", "info_requested", "status", "info_request"),
    _move("info_requested", "in_review", "status", "reply"),
    *(_move(s, "decided", "decision") for s in _OPEN),
    *(_move(s, "withdrawn", "withdrawal") for s in _OPEN),
    _move("decided", "closed", "status"),
)

_BY_PAIR: Final[dict[tuple[Status, Status], Move]] = {(m.source, m.target): m for m in TABLE}

#: statuses only a signed envelope reaches (never ``POST …/status``)
SIGNED_ONLY: Final[frozenset[Status]] = frozenset(
    m.target for m in TABLE if not any(n.target == m.target and "status" in n.via for n in TABLE)
)


def allowed(source: str, target: str, via: Via) -> bool:
    """Is ``source → target`` in the table, and may ``via`` make it?"""
    move = _BY_PAIR.get((source, target))  # type: ignore[arg-type]
    return move is not None and via in move.via


def targets(source: str, via: Via) -> list[Status]:
    """Where ``via`` may move a case that is in ``source`` (in table order)."""
    return [m.target for m in TABLE if m.source == source and via in m.via]


def is_status(value: object) -> bool:
    return isinstance(value, str) and value in STATUSES


def label(via: str) -> str:
    """How a history entry is labelled: ``signed`` (a legally effective signed envelope)
    or ``server metadata`` (everything else, PROTOCOL.md §5)."""
    return "signed" if via in SIGNED_VIAS else "server metadata"
