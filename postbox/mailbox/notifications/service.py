"""The notification worker: claim a batch, record identities, send, record outcomes.

One round (:meth:`NotificationService.run_once`) is three steps and two transactions:

1. **Claim** (one write transaction): up to ``batch`` due outbox rows become ``sending``
   until ``now + claim``; rows whose account has no verified address (or is disabled) are
   closed as ``skipped``, rows whose message is gone as ``dropped``; every other row gets
   its Message-ID if it has none yet. The commit makes the identity durable *before* any
   SMTP attempt, so every retry — and a resend after a crash — carries the same one.
2. **Send** outside any transaction, through one sink session (one SMTP connection).
3. **Record** (one write transaction): sent rows become ``sent`` and the delivery record
   gets its ``notified`` event (:func:`postbox.mailbox.delivery.hooks.record_notified`, with
   its live events appended last); failed rows go back to ``pending`` with exponential
   backoff and jitter, or to ``dead`` after ``max_attempts``; a permanent refusal (a 5xx
   reply to RCPT or DATA, see :func:`permanent`) goes to ``dead`` at once. Live connections
   are woken after the commit.

SMTP is at-least-once: a crash between the server's acceptance of a mail and step 3's
commit leaves the row ``sending``; once the claim expires another worker sends it again,
with the same Message-ID (docs/operations.md, "Notifications").
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any, Final

import aiosmtplib

from postbox.mailbox.clock import Clock
from postbox.mailbox.db.engine import Database
from postbox.mailbox.delivery.hooks import record_notified
from postbox.mailbox.events import store as events_store
from postbox.mailbox.events.store import NewEvent
from postbox.mailbox.notifications import store
from postbox.mailbox.notifications.mail import Notice, compose, deep_link, new_mail_id
from postbox.mailbox.notifications.sinks import Sink
from postbox.mailbox.orgs.service import display_name

log = logging.getLogger("postbox.notifications")

MAX_LIST: Final = 1000


@dataclass(frozen=True)
class MailConfig:
    origin: str  # the web client's origin (deep links)
    host: str  # the Message-ID domain
    sender: str  # the From address
    batch: int = 100
    max_attempts: int = 8
    backoff_ms: int = 60_000
    backoff_cap_ms: int = 6 * 3600_000
    claim_ms: int = 300_000
    poll_s: float = 2.0


@dataclass(frozen=True)
class Job:
    """A claimed notification that is to be sent."""

    pk: int
    account_id: str
    message_pk: int
    attempts: int  # before this one
    mail_id: str
    lease: int
    mailbox_id: str | None  # for the delivery record
    notice: Notice


@dataclass(frozen=True)
class Batch:
    now: int
    lease: int
    jobs: tuple[Job, ...]
    claimed: int
    skipped: int
    dropped: int


@dataclass
class Report:
    claimed: int = 0
    sent: int = 0
    retried: int = 0
    dead: int = 0
    skipped: int = 0
    dropped: int = 0
    sent_ids: list[str] = field(default_factory=list)


def _codes(exc: BaseException) -> list[int]:
    """The SMTP reply codes of a failure (one per refused recipient; none for a timeout or
    a dropped connection)."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        return [r.code for r in exc.recipients]
    code = getattr(exc, "code", None)
    return [code] if isinstance(code, int) else []


def _error_name(exc: BaseException) -> str:
    """A failure's class and SMTP code: never the server's text (it may echo addresses)."""
    codes = _codes(exc)
    return type(exc).__name__ + (f" {codes[0]}" if codes else "")


def permanent(exc: BaseException) -> bool:
    """Whether retrying cannot help: an address no header can hold, or a 5xx reply to this
    mail's RCPT or DATA (550 mailbox unavailable, 553 bad address, 554 rejected …).

    Everything else is temporary: 4xx replies, timeouts, refused or dropped connections, and
    5xx replies outside one mail's transaction (connect, AUTH, MAIL FROM), which are the
    server's or our configuration's fault and would otherwise kill every notification."""
    if isinstance(exc, ValueError):
        return True
    refusals = (
        aiosmtplib.SMTPRecipientsRefused,
        aiosmtplib.SMTPRecipientRefused,
        aiosmtplib.SMTPDataError,
    )
    if isinstance(exc, refusals):
        codes = _codes(exc)
        return bool(codes) and all(500 <= c < 600 for c in codes)
    return False


class NotificationService:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        config: MailConfig,
        sink: Sink,
        receipt_seed: bytes,
        wake: Callable[[Collection[str]], Awaitable[None]],
        rng: random.Random | None = None,
    ) -> None:
        self._db = db
        self._clock = clock
        self.config = config
        self.sink = sink
        self._receipt_seed = receipt_seed
        self._wake = wake
        self._rng = rng or random.SystemRandom()

    # --- the worker ------------------------------------------------------------------------------
    def backoff(self, attempts: int) -> int:
        """Delay (ms) after the ``attempts``-th failure: doubling from ``backoff_ms``, capped,
        with "equal jitter" (between half and all of it), so retries of a burst spread out."""
        c = self.config
        delay: int = min(c.backoff_cap_ms, c.backoff_ms * 2 ** min(attempts - 1, 40))
        return delay // 2 + int(self._rng.uniform(0, delay / 2))

    async def claim(self) -> Batch:
        """Step 1 (see the module doc): claim due rows, commit their Message-IDs."""
        c = self.config
        now = self._clock()
        lease = now + c.claim_ms
        async with self._db.write() as conn:
            claimed = await store.claim(conn, now=now, until=lease, limit=c.batch)
            if not claimed:
                return Batch(now, lease, (), 0, 0, 0)
            people = await store.recipients(conn, [r.account_id for r in claimed])
            refs = await store.message_refs(
                conn, [r.message_pk for r in claimed if r.message_pk is not None]
            )
            pairs = [(r.message_pk, r.account_id) for r in claimed if r.message_pk in refs]
            boxes = await store.notified_mailboxes(
                conn, [(m, a) for m, a in pairs if m is not None]
            )
            skipped: list[int] = []
            dropped: list[int] = []
            new_ids: dict[int, str] = {}
            jobs: list[Job] = []
            for row in claimed:
                person = people.get(row.account_id)
                ref = None if row.message_pk is None else refs.get(row.message_pk)
                if ref is None:
                    dropped.append(row.pk)
                    continue
                if person is None or not person.active or person.address is None:
                    skipped.append(row.pk)
                    continue
                mail_id = row.mail_id or new_ids.setdefault(row.pk, new_mail_id(c.host))
                org_name = ref.notification_name or (
                    display_name(ref.org_names, person.language) if ref.org_names else None
                )
                notice = Notice(
                    mail_id=mail_id,
                    to=person.address,
                    sender=c.sender,
                    language=person.language,
                    org_name=org_name,
                    link=deep_link(c.origin, ref.from_id, ref.id),
                    date=now,
                )
                mailbox = boxes.get((ref.pk, row.account_id))
                jobs.append(
                    Job(
                        row.pk,
                        row.account_id,
                        ref.pk,
                        row.attempts,
                        mail_id,
                        lease,
                        mailbox,
                        notice,
                    )
                )
            await store.set_mail_ids(conn, new_ids)
            await store.finish(
                conn, skipped, state="skipped", now=now, reason="no-verified-address"
            )
            await store.finish(conn, dropped, state="dropped", now=now, reason="message-gone")
        if skipped or dropped:
            log.info(
                "notifications: %d skipped (no verified address), %d dropped (message gone)",
                len(skipped),
                len(dropped),
            )
        return Batch(now, lease, tuple(jobs), len(claimed), len(skipped), len(dropped))

    async def _send(self, batch: Batch) -> dict[int, BaseException | None]:
        """Step 2: one sink session for the batch; the outcome of each job."""
        outcomes: dict[int, BaseException | None] = {}
        mails: list[tuple[Job, EmailMessage]] = []
        for job in batch.jobs:
            try:
                mails.append((job, compose(job.notice)))
            except ValueError as exc:  # an address no header can hold
                outcomes[job.pk] = exc
        if not mails:
            return outcomes
        try:
            async with self.sink.session() as session:
                for job, msg in mails:
                    try:
                        await session.send(msg, sender=self.config.sender, to=job.notice.to)
                        outcomes[job.pk] = None
                    except (aiosmtplib.SMTPServerDisconnected, ConnectionError):
                        raise
                    except (aiosmtplib.SMTPException, OSError) as exc:
                        outcomes[job.pk] = exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            # no connection, or it broke: every mail not yet sent failed with it
            log.warning("notifications: %s; %s", _error_name(exc), self.sink.describe())
            for job, _msg in mails:
                outcomes.setdefault(job.pk, exc)
        return outcomes

    async def _record(
        self, batch: Batch, outcomes: dict[int, BaseException | None], report: Report
    ) -> None:
        """Step 3: one transaction for the whole batch's outcomes."""
        now = max(self._clock(), batch.now)
        sent = [j for j in batch.jobs if j.pk in outcomes and outcomes[j.pk] is None]
        failures: list[store.Failure] = []
        for job in batch.jobs:
            exc = outcomes.get(job.pk)
            if exc is None:
                continue
            attempts = job.attempts + 1
            dead = permanent(exc) or attempts >= self.config.max_attempts
            failures.append(
                store.Failure(
                    pk=job.pk,
                    lease=job.lease,
                    attempts=attempts,
                    dead=dead,
                    next_attempt=now if dead else now + self.backoff(attempts),
                    error=_error_name(exc),
                )
            )
        new: list[NewEvent] = []
        async with self._db.write() as conn:
            await store.finish(conn, [j.pk for j in sent], state="sent", now=now, reason=None)
            await store.record_failures(conn, failures, now)
            for job in sent:
                new.extend(
                    await record_notified(
                        conn,
                        message_pk=job.message_pk,
                        mailbox_id=job.mailbox_id,
                        at=now,
                        receipt_seed=self._receipt_seed,
                    )
                )
            await events_store.append(conn, new, now)  # last write (see its docstring)
        if new:
            await self._wake({e.account_id for e in new})
        report.sent += len(sent)
        report.sent_ids.extend(j.notice.mail_id for j in sent)
        report.dead += sum(f.dead for f in failures)
        report.retried += sum(not f.dead for f in failures)
        for f in failures:
            if f.dead:
                log.warning(
                    "notification %d is dead after %d attempts: %s", f.pk, f.attempts, f.error
                )

    async def run_once(self) -> Report:
        """One batch: claim, send, record (see the module doc)."""
        batch = await self.claim()
        report = Report(claimed=batch.claimed, skipped=batch.skipped, dropped=batch.dropped)
        if batch.jobs:
            outcomes = await self._send(batch)
            await self._record(batch, outcomes, report)
        return report

    async def run_forever(self) -> None:
        """Batches back to back while there is work; otherwise look every ``poll_s``."""
        while True:
            report = await self.run_once()
            if report.claimed < self.config.batch:
                await asyncio.sleep(self.config.poll_s)

    # --- the operator ----------------------------------------------------------------------------
    async def listing(self, state: str | None, limit: int = MAX_LIST) -> dict[str, Any]:
        """Counts per state and the oldest rows (of one state of ``store.STATES``, or all)."""
        async with self._db.read() as conn:
            rows = await store.listing(conn, state, max(1, min(limit, MAX_LIST)))
            counts = await store.counts(conn)
        return {"counts": counts, "notifications": [r.to_json() for r in rows]}

    async def retry(self, pks: Sequence[int] | None) -> list[int]:
        """Dead notifications (``pks``, or all with None) go out again, same Message-IDs."""
        async with self._db.write() as conn:
            return await store.revive_dead(conn, pks, now=self._clock())

    async def set_address(self, account_id: str, address: str | None, *, verified: bool) -> bool:
        """Set an account's notification address (verification by link comes later)."""
        async with self._db.write() as conn:
            return await store.set_address(conn, account_id, address, verified=verified)
