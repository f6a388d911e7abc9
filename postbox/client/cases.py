"""Cases (Vorgänge) as their parties see them: list, show with history, set the status.

The server knows a case's status and history as metadata; the legally effective changes
(``decided``, ``withdrawn``) come only from signed envelopes, which the messages part of
the client sends and verifies. History entries are labelled accordingly (``label`` is
``signed`` or ``server metadata``), and a client shows that label with each status.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Final

from postbox.client.errors import ProtocolViolation, UsageError
from postbox.client.http import segment
from postbox.client.session import Session

STATUSES: Final = ("submitted", "in_review", "info_requested", "decided", "closed", "withdrawn")
#: statuses reached only through a signed envelope (decision, withdrawal)
SIGNED_ONLY: Final = ("decided", "withdrawn")


@dataclass(frozen=True)
class HistoryEntry:
    status: str
    at: int
    by: str
    via: str
    message: tuple[str, str] | None  # the envelope (from, id) behind it
    label: str  # "signed" | "server metadata"


@dataclass(frozen=True)
class Case:
    id: str
    org: str
    team: str
    citizen: str
    procedure: str
    procedure_version: int
    reference: str
    status: str
    opened: tuple[str, str]
    created: int
    updated: int
    history: tuple[HistoryEntry, ...] = ()
    #: the case's messages in the caller's mailbox: (from, id, kind, signer, accepted)
    messages: tuple[tuple[str, str, str, str, int], ...] = ()
    #: statuses the caller may set with :meth:`Cases.set_status`
    moves: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, body: Any) -> Case:
        try:
            history = tuple(
                HistoryEntry(
                    h["status"],
                    int(h["at"]),
                    h["by"],
                    h["via"],
                    None if h["message"] is None else (h["message"]["from"], h["message"]["id"]),
                    h["label"],
                )
                for h in body.get("history", [])
            )
            messages = tuple(
                (m["from"], m["id"], m["kind"], m["signer"], int(m["accepted"]))
                for m in body.get("messages", [])
            )
            return cls(
                id=body["case"],
                org=body["org"],
                team=body["team"],
                citizen=body["citizen"],
                procedure=body["procedure"]["id"],
                procedure_version=int(body["procedure"]["version"]),
                reference=body["reference"],
                status=body["status"],
                opened=(body["opened"]["from"], body["opened"]["id"]),
                created=int(body["created"]),
                updated=int(body["updated"]),
                history=history,
                messages=messages,
                moves=tuple(body.get("moves", ())),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ProtocolViolation(f"unexpected case answer: {exc!r}") from exc


@dataclass(frozen=True)
class CasePage:
    cases: tuple[Case, ...]
    next: str | None


class Cases:
    """``client.cases``: the caller's cases (a citizen's own; a team member's teams')."""

    def __init__(self, session: Session) -> None:
        self.session = session

    async def page(
        self,
        *,
        mailbox: str | None = None,
        status: str | None = None,
        limit: int | None = None,
        before: str | None = None,
    ) -> CasePage:
        if status is not None and status not in STATUSES:
            raise UsageError(f"unknown status {status!r}; one of {', '.join(STATUSES)}")
        params: dict[str, str | int] = {}
        for name, value in (
            ("mailbox", mailbox),
            ("status", status),
            ("limit", limit),
            ("before", before),
        ):
            if value is not None:
                params[name] = value
        answer = await self.session.call("GET", "/api/v1/cases", params=params)
        if not isinstance(answer, dict) or not isinstance(answer.get("cases"), list):
            raise ProtocolViolation("GET /cases: unexpected answer")
        nxt = answer.get("next")
        return CasePage(
            tuple(Case.from_json(c) for c in answer["cases"]), nxt if isinstance(nxt, str) else None
        )

    async def list(
        self, *, mailbox: str | None = None, status: str | None = None, page_size: int = 100
    ) -> AsyncIterator[Case]:
        """Every matching case, newest first, page by page."""
        before: str | None = None
        while True:
            page = await self.page(mailbox=mailbox, status=status, limit=page_size, before=before)
            for case in page.cases:
                yield case
            if page.next is None:
                return
            before = page.next

    async def show(self, case: str) -> Case:
        """One case with its history and timeline."""
        return Case.from_json(await self.session.call("GET", f"/api/v1/cases/{segment(case)}"))

    async def set_status(self, case: str, status: str) -> Case:
        """Move a case along the status table (team members; server metadata)."""
        if status in SIGNED_ONLY:
            raise UsageError(
                f"{status} is set only by a signed envelope: send a "
                f"{'decision' if status == 'decided' else 'withdrawal'}"
            )
        if status not in STATUSES:
            raise UsageError(f"unknown status {status!r}; one of {', '.join(STATUSES)}")
        answer = await self.session.call(
            "POST", f"/api/v1/cases/{segment(case)}/status", {"status": status}
        )
        return Case.from_json(answer)

    # --- the organisation's reference pattern (org admins) -------------------------------------
    async def pattern(self, org: str) -> str:
        """The organisation's reference pattern (its default when it has set none)."""
        answer = await self.session.call("GET", f"/api/v1/orgs/{segment(org)}/case-pattern")
        if not isinstance(answer, dict) or not isinstance(answer.get("pattern"), str):
            raise ProtocolViolation("GET /orgs/{org}/case-pattern: unexpected answer")
        return str(answer["pattern"])

    async def set_pattern(self, org: str, pattern: str) -> str:
        """Set the pattern new cases' reference numbers follow, e.g. ``ABH-{year}-{seq:6}``."""
        answer = await self.session.call(
            "PUT", f"/api/v1/orgs/{segment(org)}/case-pattern", {"pattern": pattern}
        )
        if not isinstance(answer, dict) or answer.get("pattern") != pattern:
            raise ProtocolViolation("PUT /orgs/{org}/case-pattern: unexpected answer")
        return pattern
