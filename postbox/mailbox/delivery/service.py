"""Delivery records, read receipts, the legal clock's views and the overdue job.

One transaction per call. Access: a message's delivery record and read receipts exist only
for the accounts that act for its sending mailbox or for a mailbox still holding it (a
recipient); for everyone else they are 404 ``message-not-found``. A read receipt is
accepted from the reader itself, for a recipient mailbox it acts for, signed by its
*current* identity key (key directory), about the stored digest; the server countersigns
it with the receipt key on arrival. Per (message, mailbox, reader) the first receipt is
kept: sending a valid one again answers 200 with the stored pair.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Final, cast

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from postbox.crypto import shapes
from postbox.crypto.certs import SignedCert
from postbox.crypto.encoding import DIGEST_BYTES, b64d, cj, parse_canonical
from postbox.crypto.errors import CryptoError
from postbox.crypto.primitives import equal
from postbox.crypto.receipts import (
    SIGNED_READ_SHAPE,
    SignedRead,
    sign_countersign,
    verify_read,
)
from postbox.keys.directory import Directory
from postbox.mailbox.access import Principal
from postbox.mailbox.clock import Clock
from postbox.mailbox.db.engine import Database
from postbox.mailbox.delivery import store
from postbox.mailbox.delivery.clock import Calendar, CalendarError, compute
from postbox.mailbox.delivery.hooks import calendar_of, settings_for
from postbox.mailbox.delivery.rules import Rule, RuleBook
from postbox.mailbox.errors import BadRequest, NotFound
from postbox.mailbox.events.store import NewEvent, append
from postbox.mailbox.http import check_shape, malformed
from postbox.mailbox.mailboxes.store import accounts_behind, acting_for, may_act_for, members_of
from postbox.mailbox.orgs.service import existing_org, require_admin, require_staff

log = logging.getLogger("postbox.delivery")

#: a read receipt's ``read`` may be this far ahead of the server's clock (client clocks)
CLOCK_SKEW_MS: Final = 5 * 60 * 1000
DEFAULT_LIMIT: Final = 50
MAX_LIMIT: Final = 200
#: how many overdue decisions one job round marks (the rest follow in the next rounds)
JOB_BATCH: Final = 200
MAX_ZONE_CHARS: Final = 64
MAX_SUBDIVISION_CHARS: Final = 8
MAX_RULE_CHARS: Final = 64

Wake = Callable[[Collection[str]], Awaitable[None]]


def message_not_found() -> NotFound:
    return NotFound("no such message for the caller", code="message-not-found")


def mailbox_not_found() -> NotFound:
    return NotFound("no such mailbox for the caller", code="mailbox-not-found")


def _is_id(value: str) -> bool:
    try:
        shapes.ID(value, "id")
    except CryptoError:
        return False
    return True


def _iso(day: date | None) -> str | None:
    return None if day is None else day.isoformat()


def clock_json(row: store.ClockRow, rule: Rule, now: int) -> dict[str, Any]:
    """The clock state served with a delivery record (``deadline`` is the last day a
    retrieval is in time; ``deadline_ends`` the instant that day ends)."""
    state = compute(
        rule.computation,
        calendar_of(row),
        available=row.available,
        notified=row.notified,
        retrieved=row.retrieved,
        now=now,
    )
    return {
        "rule": rule.id,
        "family": rule.family,
        "source": rule.citation,
        "reference": rule.reference,
        "time_zone": row.time_zone,
        "available": row.available,
        "notified": row.notified,
        "retrieved": row.retrieved,
        "deemed": _iso(state.deemed),
        "deadline": _iso(state.deadline_day),
        "deadline_ends": state.deadline,
        "overdue": state.overdue,
        "notify_by": _iso(state.notify_by),
        "notified_late": state.notified_late,
    }


@dataclass(frozen=True)
class SetLegalSettings:
    time_zone: str
    country: str
    subdivision: str | None
    decision_rule: str

    @classmethod
    def from_json(cls, body: Any) -> SetLegalSettings:
        check_shape(
            shapes.obj(
                {
                    "time_zone": shapes.string(MAX_ZONE_CHARS),
                    "country": shapes.string(2),
                    "subdivision": shapes.nullable(shapes.string(MAX_SUBDIVISION_CHARS)),
                    "decision_rule": shapes.string(MAX_RULE_CHARS),
                }
            ),
            body,
            "legal settings",
        )
        return cls(body["time_zone"], body["country"], body["subdivision"], body["decision_rule"])


def _settings_json(s: store.LegalSettings) -> dict[str, Any]:
    return {
        "org": s.org_id,
        "time_zone": s.time_zone,
        "country": s.country,
        "subdivision": s.subdivision,
        "decision_rule": s.decision_rule,
        "updated": s.updated,
    }


@dataclass(frozen=True)
class Visible:
    facts: store.MessageFacts
    sender: bool  # the caller acts for the sending mailbox
    recipient_boxes: tuple[str, ...]  # recipient mailboxes (holding it) the caller acts for


class DeliveryService:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        directory: Directory,
        receipt_seed: bytes,
        rules: RuleBook,
        wake: Wake,
    ) -> None:
        self._db = db
        self._clock = clock
        self._directory = directory
        self._seed = receipt_seed
        self.rules = rules
        self._wake = wake

    # --- rules and settings -------------------------------------------------------------------
    def legal_rules(self) -> dict[str, Any]:
        return {"caveat": self.rules.caveat, "rules": [dict(r.raw) for r in self.rules.rules]}

    async def get_settings(self, who: Principal, org_id: str) -> dict[str, Any]:
        require_staff(who, org_id)
        async with self._db.read() as conn:
            await existing_org(conn, org_id)
            return _settings_json(await settings_for(conn, org_id))

    def _check_settings(self, cmd: SetLegalSettings) -> None:
        calendar = Calendar(cmd.time_zone, cmd.country, cmd.subdivision)
        try:
            calendar.zone  # noqa: B018 - resolving it is the check
        except CalendarError as exc:
            raise BadRequest(str(exc), code="invalid-time-zone") from exc
        try:
            if cmd.subdivision == "":
                raise CalendarError("subdivision: a code or null")
            calendar.check()
        except CalendarError as exc:
            raise BadRequest(str(exc), code="invalid-holiday-calendar") from exc
        versions = self.rules.families.get(cmd.decision_rule)
        if not versions:
            raise BadRequest("no such rule family", code="unknown-rule")
        if versions[0].jurisdiction != cmd.country or not any(
            "decision" in r.kinds for r in versions
        ):
            raise BadRequest(
                "the rule does not govern decisions in this country", code="rule-not-applicable"
            )

    async def put_settings(
        self, who: Principal, org_id: str, cmd: SetLegalSettings
    ) -> dict[str, Any]:
        require_admin(who, org_id)
        self._check_settings(cmd)
        now = self._clock()
        settings = store.LegalSettings(
            org_id, cmd.time_zone, cmd.country, cmd.subdivision, cmd.decision_rule, now
        )
        async with self._db.write() as conn:
            await existing_org(conn, org_id)
            await store.put_legal_settings(conn, settings, now)
        return _settings_json(settings)

    # --- delivery records ---------------------------------------------------------------------
    async def _visible(
        self, conn: AsyncConnection, who: Principal, from_id: str, message_id: str
    ) -> Visible:
        if not (_is_id(from_id) and _is_id(message_id)):
            raise message_not_found()
        facts = await store.message_by_address(conn, from_id, message_id)
        if facts is None:
            raise message_not_found()
        acting = set(await acting_for(conn, who.account_id))
        holding = await store.entry_mailboxes(conn, facts.pk)
        sender = facts.from_id in acting
        boxes = tuple(m for m in holding if m in acting and m != facts.from_id)
        if not sender and not boxes:
            raise message_not_found()
        return Visible(facts, sender, boxes)

    def _clock_of(self, row: store.ClockRow | None, now: int) -> dict[str, Any] | None:
        if row is None:
            return None
        rule = self.rules.by_id.get(row.rule_id)
        if rule is None:
            # a rule version removed from rules.json; versions must be ended, not deleted
            log.error("delivery clock names the unknown rule %s", row.rule_id)
            return None
        return clock_json(row, rule, now)

    async def delivery(self, who: Principal, from_id: str, message_id: str) -> dict[str, Any]:
        """``{"events": [signed delivery…], "clock": {…} | null}``."""
        now = self._clock()
        async with self._db.read() as conn:
            seen = await self._visible(conn, who, from_id, message_id)
            chain = await store.chain(conn, seen.facts.pk)
            clock = await store.clock_of(conn, seen.facts.pk)
        return {
            "events": [parse_canonical(e.signed.encode()) for e in chain],
            "clock": self._clock_of(clock, now),
        }

    # --- read receipts ------------------------------------------------------------------------
    async def _check_read(
        self, conn: AsyncConnection, who: Principal, seen: Visible, signed: SignedRead
    ) -> None:
        read = signed["read"]
        if read["reader"] != who.account_id:
            raise BadRequest("the reader must be the caller", code="reader-mismatch")
        if read["mailbox"] not in seen.recipient_boxes:
            raise BadRequest(
                "the mailbox is not a recipient of this message that the caller acts for",
                code="not-a-recipient",
            )
        digest = b64d(read["digest"], DIGEST_BYTES)
        if read["message"] != seen.facts.id or not equal(digest, seen.facts.digest):
            raise BadRequest(
                "the read receipt is about another message or digest", code="receipt-mismatch"
            )
        now = self._clock()
        if not seen.facts.accepted - CLOCK_SKEW_MS <= read["read"] <= now + CLOCK_SKEW_MS:
            raise BadRequest(
                "read must lie between the message's acceptance and now",
                code="invalid-read-time",
            )
        record = await self._directory.current_identity(conn, who.account_id)
        if record is None or record.kid != signed["kid"] or not record.usable_at(now):
            raise BadRequest(
                "not signed by the reader's current identity key", code="unknown-reader-key"
            )
        try:
            verify_read(signed, cast(SignedCert, record.served)["cert"])
        except CryptoError as exc:
            raise BadRequest(str(exc), code="invalid-read-receipt") from exc

    async def post_read(
        self, who: Principal, from_id: str, message_id: str, body: Any
    ) -> tuple[bool, dict[str, Any]]:
        """Store and countersign a read receipt; ``(created, {"read","countersign"})``."""
        try:
            shapes.check(SIGNED_READ_SHAPE, body, "signed read receipt")
        except CryptoError as exc:
            raise malformed(str(exc)) from exc
        signed = cast(SignedRead, body)
        async with self._db.write() as conn:
            seen = await self._visible(conn, who, from_id, message_id)
            await self._check_read(conn, who, seen, signed)
            mailbox = signed["read"]["mailbox"]
            existing = await store.read_of(conn, seen.facts.pk, mailbox, who.account_id)
            if existing is not None:
                return False, _read_json(existing)
            now = self._clock()
            countersign = sign_countersign(signed, received=now, receipt_seed=self._seed)
            stored = store.StoredRead(
                mailbox, who.account_id, cj(signed).decode(), cj(countersign).decode(), now
            )
            try:
                async with conn.begin_nested():
                    await store.insert_read(conn, seen.facts.pk, stored)
            except IntegrityError:
                # the same reader's receipt arrived concurrently: answer with the kept one
                existing = await store.read_of(conn, seen.facts.pk, mailbox, who.account_id)
                if existing is None:  # pragma: no cover - the constraint names this row
                    raise
                return False, _read_json(existing)
            readers = (await accounts_behind(conn, [seen.facts.from_id]))[seen.facts.from_id]
            data = {"from": seen.facts.from_id, "id": seen.facts.id, "mailbox": mailbox}
            await append(conn, [NewEvent(a, "read", data) for a in readers], now)
        await self._wake(readers)
        return True, _read_json(stored)

    async def reads(self, who: Principal, from_id: str, message_id: str) -> dict[str, Any]:
        """The sender's mailbox sees every receipt; a recipient those of its mailboxes."""
        async with self._db.read() as conn:
            seen = await self._visible(conn, who, from_id, message_id)
            only = None if seen.sender else seen.recipient_boxes
            rows = await store.reads_of(conn, seen.facts.pk, only)
        return {"reads": [_read_json(r) for r in rows]}

    # --- overdue decisions --------------------------------------------------------------------
    async def overdue(
        self, who: Principal, mailbox_id: str, limit: int, before: int | None
    ) -> dict[str, Any]:
        """Decisions sent from ``mailbox_id`` that were not retrieved in time (newest
        first; ``next`` pages on)."""
        if not _is_id(mailbox_id):
            raise mailbox_not_found()
        now = self._clock()
        async with self._db.read() as conn:
            if not await may_act_for(conn, who.account_id, mailbox_id):
                raise mailbox_not_found()
            rows = await store.overdue_of(conn, mailbox_id, now, limit + 1, before)
        page, more = rows[:limit], len(rows) > limit
        items = []
        for row, message_id in page:
            items.append(
                {"from": row.mailbox_id, "id": message_id, "clock": self._clock_of(row, now)}
            )
        return {"overdue": items, "next": str(page[-1][0].message_pk) if more else None}

    async def mark_overdue(self, limit: int = JOB_BATCH) -> int:
        """One round of the overdue job: mark decisions whose retrieval deadline passed
        and append one ``delivery`` event ``{"event": "overdue"}`` to the sending team's
        members (once per decision, also with several server processes)."""
        now = self._clock()
        woken: set[str] = set()
        marked = 0
        async with self._db.write() as conn:
            due = await store.due_clocks(conn, now, limit)
            if not due:
                return 0
            members = await members_of(conn, {c.mailbox_id for c in due})
            new: list[NewEvent] = []
            for c in due:
                if not await store.mark_overdue(conn, c.message_pk, now):
                    continue
                marked += 1
                facts = await store.message_by_pk(conn, c.message_pk)
                if facts is None:  # pragma: no cover - the foreign key keeps it
                    continue
                data = {"from": c.mailbox_id, "id": facts.id, "event": "overdue"}
                for account in members.get(c.mailbox_id, []):
                    new.append(NewEvent(account, "delivery", data))
                    woken.add(account)
            await append(conn, new, now)
        if woken:
            await self._wake(woken)
        return marked

    async def overdue_job(self, interval_s: float) -> None:
        """Run :meth:`mark_overdue` every ``interval_s`` seconds, until cancelled."""
        while True:
            while await self.mark_overdue() == JOB_BATCH:
                pass
            await asyncio.sleep(interval_s)


def _read_json(r: store.StoredRead) -> dict[str, Any]:
    return {
        "read": parse_canonical(r.signed_read.encode()),
        "countersign": parse_canonical(r.countersign.encode()),
    }


__all__: Sequence[str] = ["DeliveryService", "SetLegalSettings", "clock_json"]
