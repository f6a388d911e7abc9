"""What an accepted envelope does to cases: the send path's one call into the cases feature.

The send path (``postbox.mailbox.messages``) calls :func:`apply_send` inside the message's
savepoint, after the message row exists and after every envelope check of PROTOCOL.md §5
passed (the signer may send as ``from``, to every ``to``). A raised
:class:`~postbox.mailbox.errors.PostboxError` refuses that one message (the savepoint rolls
back whatever was written here); the returned events go into the same transaction.

Rules (``header.case`` null costs no query at all):

* **Opening.** A citizen's ``application`` from its own mailbox to exactly one team mailbox,
  naming a ``case`` id that does not exist yet, opens the case: ``procedure``/``version``
  (the send route's query string) must name a procedure the team's organisation published;
  the reference number is allocated from the organisation's pattern in this transaction;
  status ``submitted``; a history row (``via`` application, by the citizen, with the
  message). An application without a case id, or a ``withdrawal`` without one, is refused
  (``case-required``); ``procedure``/``version`` on a message that opens no case are
  refused (``procedure-unexpected``).
* **Messages in a case** must fit it: the case's citizen (writing as itself) and the case's
  team (written for by a caseworker or connector of the case's organisation) are the only
  parties. A sender who is neither gets ``404 case-not-found`` — the same answer as for a
  case that does not exist, so nobody learns about other people's cases. A party that
  addresses anyone else gets ``400 case-parties``.
* **Status changes** follow :mod:`postbox.mailbox.cases.transitions`: ``decision`` (from
  the team, signed by a *caseworker* of the case's organisation) → ``decided``;
  ``withdrawal`` (signed by the case's citizen) → ``withdrawn``; ``info_request`` (from the
  team) → ``info_requested`` unless already there; anything the citizen sends while
  ``info_requested`` → back to ``in_review`` (its answer). A decision or withdrawal the
  table does not allow from the current status, or an info request in a finished case, is
  ``409 transition-not-allowed``. Each change writes a history row (the message's
  ``(from, id)`` behind it) and ``case`` events.

Events go to every account behind the citizen's and the team's mailboxes:
``{"case","status","reference"}``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from sqlalchemy.ext.asyncio import AsyncConnection

from postbox.mailbox.cases import references, store, transitions
from postbox.mailbox.errors import BadRequest, Conflict, Forbidden, NotFound
from postbox.mailbox.events.store import NewEvent
from postbox.mailbox.mailboxes.store import accounts_behind, mailboxes
from postbox.mailbox.procedures import store as procedure_store

#: kinds of account that may write for a team (PROTOCOL.md docs §5.8)
TEAM_WRITERS: Final = frozenset({"caseworker", "connector"})
#: attempts to find a free reference (only a pattern change can make numbers collide)
MAX_REFERENCE_ATTEMPTS: Final = 1000

#: every problem :func:`apply_send` raises, with its meaning (registered in the OpenAPI part)
SEND_CODES: Final[dict[str, str]] = {
    "case-required": "an application or withdrawal names no case",
    "procedure-required": "an application that opens a case needs ?procedure=ID&version=N",
    "procedure-unexpected": "procedure/version are only for an application that opens a case",
    "procedure-not-found": "no such published procedure of that organisation",
    "application-by-citizen-only": "applications are signed by a citizen from its own mailbox",
    "application-to-one-team": "an application goes to exactly one team mailbox",
    "case-not-found": "no such case for the caller",
    "case-exists": "the application names a case that exists already",
    "case-parties": "messages in a case go only between the case's citizen and its team",
    "decision-not-allowed": "decisions come from the case's team, signed by a caseworker of "
    "the case's organisation",
    "withdrawal-not-allowed": "a withdrawal is signed by the case's citizen",
    "info-request-not-allowed": "information requests come from the case's team",
    "transition-not-allowed": "the case's status table has no such move from its status "
    "(`status` member: the current status)",
    "reference-unavailable": "no free reference number under the organisation's pattern",
}
#: the statuses of those problems, for the send route's OpenAPI operation
SEND_PROBLEMS: Final[dict[int, tuple[str, ...]]] = {
    400: (
        "case-required",
        "procedure-required",
        "procedure-unexpected",
        "application-to-one-team",
        "case-parties",
    ),
    403: (
        "application-by-citizen-only",
        "decision-not-allowed",
        "withdrawal-not-allowed",
        "info-request-not-allowed",
    ),
    404: ("case-not-found", "procedure-not-found"),
    409: ("case-exists", "transition-not-allowed", "reference-unavailable"),
}


@dataclass(frozen=True)
class SendFacts:
    """What the send path knows about an accepted envelope (header values, server facts)."""

    message_pk: int
    message_id: str
    from_id: str
    signer_id: str
    signer_kind: str  # the signer account's kind: citizen | caseworker | connector | …
    signer_org: str | None
    kind: str  # header.kind
    to: tuple[str, ...]
    thread_id: str | None
    case_id: str | None
    accepted: int  # the server's acceptance time (ms), as in the receipt
    procedure: str | None  # ?procedure= of the send request
    procedure_version: int | None  # ?version= of the send request


def case_not_found() -> NotFound:
    """The one answer for a case that does not exist *for the caller*."""
    return NotFound("no such case", code="case-not-found")


def not_allowed(current: str, detail: str) -> Conflict:
    return Conflict(detail, code="transition-not-allowed", extra={"case_status": current})


async def apply_send(conn: AsyncConnection, facts: SendFacts) -> list[NewEvent]:
    """Open or update the case the envelope names; refuse it if it does not fit (see module).

    Runs inside the caller's transaction (the message's savepoint); returns the ``case``
    events to append. ``facts.case_id`` None costs no database query.
    """
    if facts.case_id is None:
        if facts.kind in ("application", "withdrawal"):
            raise BadRequest(f"a {facts.kind} names its case", code="case-required")
        _no_procedure(facts)
        return []
    case = await store.get_case(conn, facts.case_id, lock=True)
    if case is None:
        if facts.kind != "application":
            raise case_not_found()
        return await _open(conn, facts, facts.case_id)
    side = _side(case, facts)
    if side is None:
        raise case_not_found()
    if facts.kind == "application":
        raise Conflict("this case exists already", code="case-exists")
    _no_procedure(facts)
    parties = {case.citizen_id, case.team_id}
    if any(m not in parties for m in facts.to):
        raise BadRequest(
            "messages in a case go only between its citizen and its team", code="case-parties"
        )
    target, via = _move(case, facts, side)
    if target is None:
        return []
    return await change_status(
        conn,
        case,
        target,
        via=via,
        by_id=facts.signer_id,
        at=facts.accepted,
        message=(facts.from_id, facts.message_id),
    )


def _no_procedure(facts: SendFacts) -> None:
    if facts.procedure is not None or facts.procedure_version is not None:
        raise BadRequest(
            "procedure and version are given only with an application that opens a case",
            code="procedure-unexpected",
        )


def _side(case: store.CaseRow, facts: SendFacts) -> str | None:
    """Which party the sender is (``citizen`` or ``team``), or None for anybody else."""
    if facts.from_id == case.citizen_id and facts.signer_id == case.citizen_id:
        return "citizen"
    if (
        facts.from_id == case.team_id
        and facts.signer_org == case.org_id
        and facts.signer_kind in TEAM_WRITERS
    ):
        return "team"
    return None


def _move(
    case: store.CaseRow, facts: SendFacts, side: str
) -> tuple[transitions.Status | None, transitions.Via]:
    """The status this envelope moves the case to (None: no change), and how."""
    current = case.status
    if facts.kind == "decision":
        if side != "team" or facts.signer_kind != "caseworker":
            raise Forbidden(
                "a decision comes from the case's team, signed by a caseworker of its organisation",
                code="decision-not-allowed",
            )
        if not transitions.allowed(current, "decided", "decision"):
            raise not_allowed(current, f"a case that is {current} cannot be decided")
        return "decided", "decision"
    if facts.kind == "withdrawal":
        if side != "citizen":
            raise Forbidden(
                "a withdrawal is signed by the case's citizen", code="withdrawal-not-allowed"
            )
        if not transitions.allowed(current, "withdrawn", "withdrawal"):
            raise not_allowed(current, f"a case that is {current} cannot be withdrawn")
        return "withdrawn", "withdrawal"
    if facts.kind == "info_request":
        if side != "team":
            raise Forbidden(
                "information requests come from the case's team", code="info-request-not-allowed"
            )
        if current == "info_requested":
            return None, "info_request"
        if not transitions.allowed(current, "info_requested", "info_request"):
            raise not_allowed(current, f"a case that is {current} takes no information request")
        return "info_requested", "info_request"
    if side == "citizen" and transitions.allowed(current, "in_review", "reply"):
        return "in_review", "reply"
    return None, "reply"


async def change_status(
    conn: AsyncConnection,
    case: store.CaseRow,
    target: transitions.Status,
    *,
    via: transitions.Via,
    by_id: str,
    at: int,
    message: tuple[str, str] | None,
) -> list[NewEvent]:
    """Move a (locked) case along the table: update, history row, events.

    The caller checked the move; the conditional update still refuses a case whose status
    changed meanwhile (a lost race shows up as ``transition-not-allowed``).
    """
    if not await store.set_status(conn, case.pk, expected=case.status, status=target, now=at):
        raise not_allowed(case.status, "the case's status changed meanwhile; reload it")
    await store.add_history(
        conn, case_pk=case.pk, status=target, at=at, by_id=by_id, via=via, message=message
    )
    return await case_events(conn, case.id, target, case.reference, (case.citizen_id, case.team_id))


async def case_events(
    conn: AsyncConnection, case_id: str, status: str, reference: str, parties: Iterable[str]
) -> list[NewEvent]:
    """A ``case`` event for every account behind the parties' mailboxes."""
    behind = await accounts_behind(conn, parties)
    accounts = sorted({a for ids in behind.values() for a in ids})
    data = {"case": case_id, "status": status, "reference": reference}
    return [NewEvent(a, "case", dict(data)) for a in accounts]


async def _open(conn: AsyncConnection, facts: SendFacts, case_id: str) -> list[NewEvent]:
    if facts.signer_kind != "citizen" or facts.from_id != facts.signer_id:
        raise Forbidden(
            "applications are signed by a citizen, from its own mailbox",
            code="application-by-citizen-only",
        )
    boxes = await mailboxes(conn, facts.to) if len(facts.to) == 1 else {}
    team = boxes.get(facts.to[0]) if len(facts.to) == 1 else None
    if team is None or team.kind != "team" or team.org_id is None:
        raise BadRequest(
            "an application goes to exactly one team mailbox", code="application-to-one-team"
        )
    if facts.procedure is None or facts.procedure_version is None:
        raise BadRequest(
            "an application that opens a case names its procedure: ?procedure=ID&version=N",
            code="procedure-required",
        )
    org_id = team.org_id
    if not await procedure_store.is_published(
        conn, org_id, facts.procedure, facts.procedure_version
    ):
        raise NotFound(
            "the team's organisation has published no such procedure version",
            code="procedure-not-found",
        )
    reference = await allocate_reference(conn, org_id, facts.accepted)
    case_pk = await store.insert_case(
        conn,
        case_id=case_id,
        org_id=org_id,
        team_id=team.id,
        citizen_id=facts.from_id,
        procedure_id=facts.procedure,
        procedure_version=facts.procedure_version,
        reference=reference,
        status=transitions.INITIAL,
        opened_from=facts.from_id,
        opened_id=facts.message_id,
        now=facts.accepted,
    )
    await store.add_history(
        conn,
        case_pk=case_pk,
        status=transitions.INITIAL,
        at=facts.accepted,
        by_id=facts.signer_id,
        via=transitions.OPENED_VIA,
        message=(facts.from_id, facts.message_id),
    )
    return await case_events(
        conn, case_id, transitions.INITIAL, reference, (facts.from_id, team.id)
    )


async def allocate_reference(conn: AsyncConnection, org_id: str, at: int) -> str:
    """The organisation's next reference number at instant ``at`` (in the caller's
    transaction): its pattern (or the default), the year in its time zone, the next free
    running number of that year's counter."""
    pattern = references.parse(await store.get_pattern(conn, org_id) or references.DEFAULT_PATTERN)
    year = references.year_at(at, references.zone(await store.org_time_zone(conn, org_id)))
    for _ in range(MAX_REFERENCE_ATTEMPTS):
        seq = await store.next_number(conn, org_id, pattern.counter_year(year))
        reference = pattern.format(year, seq)
        # only an earlier pattern can have produced the same text: skip such numbers
        if not await store.reference_taken(conn, org_id, reference):
            return reference
    raise Conflict(  # pragma: no cover - needs a thousand colliding references
        "no free reference number; the organisation should change its pattern",
        code="reference-unavailable",
    )
