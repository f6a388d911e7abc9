"""Cases for their parties: listing, one case with its history and timeline, status changes,
and the organisation's reference pattern.

Who sees a case: its citizen, and the current members of its team (caseworkers and
connectors). Everybody else — another citizen, a caseworker of another team or
organisation, an org admin — gets ``404 case-not-found``, exactly as for a case that does
not exist. Cases are opened and moved by signed envelopes in the send path
(:mod:`postbox.mailbox.cases.effects`); here a team member moves a case along the
``status`` moves of :mod:`postbox.mailbox.cases.transitions` (server metadata), never to
``decided`` or ``withdrawn``.

Every method runs one transaction; events of a status change are woken after it committed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncConnection

from postbox.crypto import shapes
from postbox.mailbox.access import Principal
from postbox.mailbox.cases import references, store, transitions
from postbox.mailbox.cases.effects import TEAM_WRITERS, case_not_found, change_status, not_allowed
from postbox.mailbox.clock import Clock
from postbox.mailbox.db.engine import Database
from postbox.mailbox.errors import BadRequest, Conflict, Forbidden, NotFound
from postbox.mailbox.events import store as event_store
from postbox.mailbox.http import check_shape
from postbox.mailbox.mailboxes.store import acting_for, may_act_for
from postbox.mailbox.orgs.service import existing_org, require_admin

DEFAULT_LIMIT: Final = 50
MAX_LIMIT: Final = 200
#: the timeline shows at most this many of the case's newest messages
MAX_TIMELINE: Final = 200

Wake = Callable[[Collection[str]], Awaitable[None]]


# --- commands ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CaseQuery:
    mailbox: str | None
    status: str | None
    limit: int
    before: int | None


@dataclass(frozen=True)
class SetStatus:
    status: transitions.Status

    @classmethod
    def from_json(cls, body: Any) -> SetStatus:
        check_shape(shapes.obj({"status": shapes.enum(*transitions.STATUSES)}), body, "body")
        return cls(body["status"])


@dataclass(frozen=True)
class SetPattern:
    pattern: str

    @classmethod
    def from_json(cls, body: Any) -> SetPattern:
        check_shape(shapes.obj({"pattern": shapes.string()}), body, "body")
        try:
            references.parse(body["pattern"])
        except references.PatternError as exc:
            raise BadRequest(f"pattern: {exc}", code="invalid-pattern") from exc
        return cls(body["pattern"])


# --- views ---------------------------------------------------------------------------------------
def case_json(row: store.CaseRow) -> dict[str, Any]:
    return {
        "case": row.id,
        "org": row.org_id,
        "team": row.team_id,
        "citizen": row.citizen_id,
        "procedure": {"id": row.procedure_id, "version": row.procedure_version},
        "reference": row.reference,
        "status": row.status,
        "opened": {"from": row.opened_from, "id": row.opened_id},
        "created": row.created,
        "updated": row.updated,
    }


def history_json(row: store.HistoryRow) -> dict[str, Any]:
    message = None
    if row.message_from is not None and row.message_id is not None:
        message = {"from": row.message_from, "id": row.message_id}
    return {
        "status": row.status,
        "at": row.at,
        "by": row.by_id,
        "via": row.via,
        "message": message,
        "label": transitions.label(row.via),
    }


@dataclass(frozen=True)
class CasePage:
    cases: list[store.CaseRow]
    next: str | None

    def to_json(self) -> dict[str, Any]:
        return {"cases": [case_json(c) for c in self.cases], "next": self.next}


@dataclass(frozen=True)
class CaseDetail:
    case: store.CaseRow
    history: list[store.HistoryRow]
    messages: list[store.CaseMessageRow]
    moves: list[str]  # where the caller may move it with POST …/status (empty: citizen)

    def to_json(self) -> dict[str, Any]:
        return {
            **case_json(self.case),
            "history": [history_json(h) for h in self.history],
            "messages": [
                {
                    "from": m.from_id,
                    "id": m.id,
                    "kind": m.kind,
                    "signer": m.signer_id,
                    "accepted": m.accepted,
                }
                for m in self.messages
            ],
            "moves": self.moves,
        }


def _pattern_json(org_id: str, pattern: str | None) -> dict[str, Any]:
    return {
        "org": org_id,
        "pattern": pattern or references.DEFAULT_PATTERN,
        "default": pattern is None,
    }


class CaseService:
    """``app[CASES]``: what a case's parties see and do outside the send path."""

    def __init__(self, db: Database, clock: Clock, wake: Wake) -> None:
        self._db = db
        self._clock = clock
        self._wake = wake

    async def _visible(
        self, conn: AsyncConnection, who: Principal, case_id: str, *, lock: bool = False
    ) -> tuple[store.CaseRow, str]:
        """The case and the mailbox through which the caller sees it (its own or the team)."""
        case = await store.get_case(conn, case_id, lock=lock)
        if case is None:
            raise case_not_found()
        if who.kind == "citizen" and case.citizen_id == who.account_id:
            return case, who.account_id
        if (
            who.kind in TEAM_WRITERS
            and who.org_id == case.org_id
            and await may_act_for(conn, who.account_id, case.team_id)
        ):
            return case, case.team_id
        raise case_not_found()

    async def list(self, who: Principal, query: CaseQuery) -> CasePage:
        async with self._db.read() as conn:
            mine = await acting_for(conn, who.account_id)
            if query.mailbox is not None:
                if query.mailbox not in mine:
                    raise NotFound(
                        "the mailbox filter names no mailbox of yours",
                        code="case-mailbox-not-found",
                    )
                mine = [query.mailbox]
            citizen = who.account_id if who.kind == "citizen" and who.account_id in mine else None
            teams = [m for m in mine if m != who.account_id] if who.kind in TEAM_WRITERS else []
            rows = await store.list_cases(
                conn,
                citizen_id=citizen,
                team_ids=teams,
                status=query.status,
                before=query.before,
                limit=query.limit + 1,
            )
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        return CasePage(rows, str(rows[-1].pk) if more and rows else None)

    async def get(self, who: Principal, case_id: str) -> CaseDetail:
        async with self._db.read() as conn:
            case, via = await self._visible(conn, who, case_id)
            return await self._detail(conn, case, via)

    async def _detail(self, conn: AsyncConnection, case: store.CaseRow, via: str) -> CaseDetail:
        moves: list[str] = []
        if via == case.team_id:
            moves = list(transitions.targets(case.status, "status"))
        return CaseDetail(
            case,
            await store.history(conn, case.pk),
            await store.case_messages(conn, case.id, via, MAX_TIMELINE),
            moves,
        )

    async def set_status(self, who: Principal, case_id: str, cmd: SetStatus) -> CaseDetail:
        """A team member's status change along the table (server metadata)."""
        now = self._clock()
        async with self._db.write() as conn:
            case, via = await self._visible(conn, who, case_id, lock=True)
            if via != case.team_id:
                raise Forbidden(
                    "only members of the case's team change its status",
                    code="status-by-team-only",
                )
            target = cmd.status
            if target == case.status:
                raise Conflict(
                    f"the case is {target} already",
                    code="status-unchanged",
                    extra={"case_status": case.status},
                )
            if target in transitions.SIGNED_ONLY:
                raise Conflict(
                    f"{target} is reached only through a signed envelope "
                    f"({'decision' if target == 'decided' else 'withdrawal'})",
                    code="signed-envelope-required",
                    extra={"case_status": case.status},
                )
            if not transitions.allowed(case.status, target, "status"):
                raise not_allowed(
                    case.status, f"a case that is {case.status} cannot become {target}"
                )
            events = await change_status(
                conn, case, target, via="status", by_id=who.account_id, at=now, message=None
            )
            await event_store.append(conn, events, now)
            updated = await store.get_case(conn, case_id)
            assert updated is not None
            detail = await self._detail(conn, updated, via)
        await self._wake(sorted({e.account_id for e in events}))
        return detail

    # --- reference patterns --------------------------------------------------------------------
    async def pattern(self, who: Principal, org_id: str) -> dict[str, Any]:
        require_admin(who, org_id)
        async with self._db.read() as conn:
            await existing_org(conn, org_id)
            return _pattern_json(org_id, await store.get_pattern(conn, org_id))

    async def set_pattern(self, who: Principal, org_id: str, cmd: SetPattern) -> dict[str, Any]:
        require_admin(who, org_id)
        now = self._clock()
        async with self._db.write() as conn:
            await existing_org(conn, org_id)
            await store.put_pattern(
                conn, org_id, pattern=cmd.pattern, now=now, by_id=who.account_id
            )
            return _pattern_json(org_id, cmd.pattern)
