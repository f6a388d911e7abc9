"""Sending: ``POST /api/v1/messages`` (PROTOCOL.md §5 "Server accepts", §8 receipts).

:meth:`MessageService.send` does the CPU work in the request's own task — the caller is
the signer, and the signature verifies under the certificate ``sender_kid`` names (kid →
key is immutable, so that lookup is cached) — and then hands the envelope to this
process's group commit (:mod:`postbox.mailbox.db.batch`). A batch reads what all its items
need with a few set-based queries (:mod:`postbox.mailbox.messages.store`), checks each item
against the acceptance rules (:mod:`postbox.mailbox.messages.checks`) and writes the
accepted ones in one transaction:

* the ``messages`` row (the canonical wire bytes as received, the digest, the signed
  submission receipt, the exchange's organisation);
* one ``mailbox_entries`` row per ``rcpt`` mailbox (``sent`` for ``from``, ``inbox`` for the
  others; a team's entry is shared by its members);
* ``message_blobs`` links (``blobs.expires`` cleared: the message keeps the blob);
* the thread (``threads``/``thread_mailboxes``) when the envelope starts one or adds parties;
* ``outbox`` rows: one per account reading a recipient mailbox, except the signer;
* the cases hook (:func:`postbox.mailbox.cases.effects.apply_send`) and the delivery hook
  (:func:`postbox.mailbox.delivery.hooks.on_send`), in the envelope's order;
* ``message`` events for every account reading any ``rcpt`` mailbox, and the hooks' events.

The answer (201 with the receipt, or 200 with the stored receipt for a resend of the same
``(from, id)`` and digest) is given only after the commit; live connections are woken
after it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Final, cast

from sqlalchemy.ext.asyncio import AsyncConnection

from postbox.crypto.certs import Cert, SignedCert
from postbox.crypto.encoding import cj
from postbox.crypto.envelope import Wire, verify_signature
from postbox.crypto.errors import CryptoError
from postbox.crypto.receipts import make_receipt, sign_receipt
from postbox.keys.directory import Directory
from postbox.mailbox.access import Principal
from postbox.mailbox.auth import store as auth_store
from postbox.mailbox.auth.tokens import check_session
from postbox.mailbox.cases.effects import SendFacts, apply_send
from postbox.mailbox.clock import Clock
from postbox.mailbox.db.batch import GroupCommit, write_batch
from postbox.mailbox.db.engine import Database
from postbox.mailbox.delivery.hooks import on_send
from postbox.mailbox.errors import BadRequest, Forbidden, PostboxError, ServiceUnavailable
from postbox.mailbox.events import store as events_store
from postbox.mailbox.events.bus import EventBus
from postbox.mailbox.events.store import NewEvent
from postbox.mailbox.messages import checks, store
from postbox.mailbox.messages.checks import BatchState, Plan, Resend
from postbox.mailbox.messages.commands import SendMessage

log = logging.getLogger("postbox.messages")

#: the notification kind of an outbox row, by header kind
OUTBOX_KINDS: Final = {
    "message": "new_message",
    "application": "application",
    "info_request": "info_request",
    "decision": "decision",
    "withdrawal": "withdrawal",
    "fitconnect": "new_message",
}
#: signing certificates kept in memory by kid (kid → key never changes; currentness is read
#: from the database for every message)
KID_CACHE_MAX: Final = 50_000
#: run the writer on a thread of its own (see ``GroupCommit.run_in_thread``); the benchmark
#: compares both ways
WRITER_THREAD = True
#: how long a client should wait before resending after ``send-retry``
RETRY_AFTER_S: Final = 1


def send_retry() -> ServiceUnavailable:
    """The answer when a batch could not be committed: resending is safe (idempotent)."""
    return ServiceUnavailable(
        "the message could not be stored right now; send the same envelope again",
        code="send-retry",
        headers={"Retry-After": str(RETRY_AFTER_S)},
        extra={"retry_after": RETRY_AFTER_S},
    )


@dataclass(frozen=True)
class Sent:
    """The answer to a send: the signed receipt (canonical JSON) and whether it is new."""

    receipt: bytes
    created: bool  # 201; False: a resend answered with the stored receipt (200)
    wake: tuple[str, ...] = ()
    #: live events to append (once per transaction, last: see ``events.store.append``)
    events: tuple[NewEvent, ...] = ()


@dataclass(frozen=True)
class _Item:
    cmd: SendMessage
    digest: bytes
    who: Principal


class MessageService:
    """``app[MESSAGES]``: the send path and its group commit."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        directory: Directory,
        receipt_seed: bytes,
        max_batch: int,
        writer_db: Callable[[], Database],
        concurrency: int = 1,
        bus: EventBus | None = None,
    ) -> None:
        self._db = db
        self._clock = clock
        self._directory = directory
        self._receipt_seed = receipt_seed
        self._bus = bus
        self._writer_db = writer_db
        self._main_loop: asyncio.AbstractEventLoop | None = None
        self._kids: dict[str, Cert] = {}
        self.commit: GroupCommit[_Item, Sent] = GroupCommit(
            "messages", max_batch=max_batch, retryable=send_retry, concurrency=concurrency
        )

    # --- the request's part --------------------------------------------------------------
    async def send(self, who: Principal, cmd: SendMessage) -> Sent:
        """Check the signer and the signature here, then queue the envelope (see module)."""
        h = cmd.wire["header"]
        if h["signer"] != who.account_id:
            raise Forbidden("the envelope's signer is not the caller", code="signer-not-caller")
        cert = await self._signing_cert(h["sender_kid"])
        if cert is None or cert["subject"] != h["signer"] or cert["use"] != "sign":
            raise BadRequest(
                "sender_kid names no identity certificate of the signer",
                code="unknown-sender-key",
            )
        try:
            digest = verify_signature(cmd.wire, cert)
        except CryptoError as exc:
            raise BadRequest(
                f"signature: {type(exc).__name__}: {exc}", code="invalid-signature"
            ) from exc
        return await self.commit.submit(_Item(cmd, digest, who))

    async def _signing_cert(self, kid: str) -> Cert | None:
        cert = self._kids.get(kid)
        if cert is not None:
            return cert
        async with self._db.read() as conn:
            rec = await self._directory.get(conn, kid)
        if rec is None:
            return None
        cert = cast(SignedCert, rec.served)["cert"]
        if len(self._kids) >= KID_CACHE_MAX:
            self._kids.clear()
        self._kids[kid] = cert
        return cert

    # --- the writer's part ---------------------------------------------------------------
    async def run_writer(self) -> None:
        """The group-commit writer (a background job): its own thread, loop and engine
        (:data:`WRITER_THREAD`), else on the server's loop."""
        self._main_loop = asyncio.get_running_loop()
        if WRITER_THREAD:
            await self.commit.run_in_thread(self._open_writer)
        else:
            await self.commit.run_here(self._open_writer)

    @asynccontextmanager
    async def _open_writer(self) -> AsyncIterator[Callable[[Sequence[_Item]], Any]]:
        """On the writer's loop: its own engine (connections belong to their loop)."""
        db = self._writer_db()
        try:
            yield functools.partial(self._run, db)
        finally:
            await db.dispose()

    async def _run(self, db: Database, items: Sequence[_Item]) -> list[Sent | BaseException]:
        outcomes = await write_batch(
            db, items, self._apply, refusal=PostboxError, finish=self._append_events
        )
        wake: set[str] = set()
        for outcome in outcomes:
            if isinstance(outcome, Sent):
                wake.update(outcome.wake)
        if wake:
            self._wake(wake)
        return outcomes

    async def _append_events(
        self, conn: AsyncConnection, outcomes: Sequence[Sent | BaseException]
    ) -> None:
        new = [e for o in outcomes if isinstance(o, Sent) for e in o.events]
        await events_store.append(conn, new, self._clock())

    def _wake(self, accounts: set[str]) -> None:
        """Wake live connections on the server's loop (the bus lives there), after the
        commit, without waiting for it."""
        bus, loop = self._bus, self._main_loop
        if bus is None or loop is None:
            return
        done = asyncio.run_coroutine_threadsafe(bus.wake(accounts), loop)
        done.add_done_callback(_log_failure)

    async def _apply(
        self, conn: AsyncConnection, items: Sequence[_Item]
    ) -> list[Sent | BaseException]:
        """Check and write ``items`` in the caller's transaction (one batch or one item)."""
        now = self._clock()
        state = await self._load(conn, items, now)
        outcomes: list[Sent | BaseException] = []
        plans: list[tuple[int, _Item, Plan, bytes]] = []
        for item in items:
            try:
                # the route checked only the token: the session is checked here, in the
                # transaction that stores the message (access.session_checked_by_service)
                check_session(state.sessions.get(item.who.session_id), item.who.account_id, now)
                result = checks.check(state, item.cmd.wire, item.digest)
            except PostboxError as exc:
                outcomes.append(exc)
                continue
            if isinstance(result, Resend):
                outcomes.append(Sent(result.receipt, created=False))
                continue
            h = result.header
            receipt = cj(
                sign_receipt(
                    make_receipt(
                        message=h["id"], from_=h["from"], digest=item.digest, accepted=now
                    ),
                    self._receipt_seed,
                )
            )
            checks.record_accepted(state, (h["from"], h["id"]), item.digest, receipt)
            plans.append((len(outcomes), item, result, receipt))
            outcomes.append(Sent(receipt, created=True))  # replaced below with its wake list
        if plans:
            written = await self._write(conn, plans, now)
            for (index, _item, _plan, receipt), (wake, events) in zip(plans, written, strict=True):
                outcomes[index] = Sent(receipt, created=True, wake=wake, events=events)
        return outcomes

    async def _load(self, conn: AsyncConnection, items: Sequence[_Item], now: int) -> BatchState:
        """Every read the batch needs, set-based."""
        headers = [i.cmd.wire["header"] for i in items]
        stored = await store.stored_messages(conn, {(h["from"], h["id"]) for h in headers})
        ids = {h["from"] for h in headers} | {h["signer"] for h in headers}
        ids.update(m for h in headers for m in h["to"])
        boxes, members = await store.boxes(conn, ids)
        subjects = {h["signer"] for h in headers}
        subjects.update(b.id for b in boxes.values() if not b.is_team)
        certs = await store.newest_certs(conn, subjects)
        blob_states = await store.blob_states(conn, {b["id"] for h in headers for b in h["blobs"]})
        threads = await store.thread_states(
            conn, {h["thread"] for h in headers if h["thread"] is not None}
        )
        # citizens a staff member writes to who are not of the staff's organisation: did
        # they write to it before? (one query for the batch, only when needed)
        citizens: set[str] = set()
        orgs: set[str] = set()
        for h in headers:
            signer = boxes.get(h["signer"])
            if signer is None or signer.role == "citizen" or signer.org_id is None:
                continue
            for m in h["to"]:
                box = boxes.get(m)
                if box is not None and box.role == "citizen" and box.org_id != signer.org_id:
                    citizens.add(m)
                    orgs.add(signer.org_id)
        wrote = await store.wrote_to(conn, citizens, orgs)
        sessions = await auth_store.session_states(conn, {i.who.session_id for i in items})
        return BatchState(
            now, stored, boxes, members, certs, blob_states, threads, wrote, sessions=sessions
        )

    async def _write(
        self, conn: AsyncConnection, plans: list[tuple[int, _Item, Plan, bytes]], now: int
    ) -> list[tuple[tuple[str, ...], tuple[NewEvent, ...]]]:
        """Write the accepted envelopes (multi-row inserts) and run the hooks; returns each
        envelope's accounts to wake and its live events (appended by the caller, last).

        Raises on a constraint surprise (another process stored the same ``(from, id)`` or
        used the same blob meanwhile) or a hook's refusal: the caller then applies the
        items one by one (:func:`postbox.mailbox.db.batch.write_batch`).
        """
        message_rows = []
        for _index, item, plan, receipt in plans:
            h = plan.header
            message_rows.append(
                {
                    "id": h["id"],
                    "from_id": h["from"],
                    "signer_id": h["signer"],
                    "org_id": plan.org_id,
                    "kind": h["kind"],
                    "thread_id": h["thread"],
                    "case_id": h["case"],
                    "created": h["created"],
                    "accepted": now,
                    "digest": item.digest,
                    "wire": item.cmd.body,
                    "receipt": receipt.decode("utf-8"),
                    "size": len(item.cmd.body) + plan.blob_bytes,
                }
            )
        pks = await store.insert_messages(conn, message_rows)

        Rows = list[dict[str, Any]]
        entries: Rows = []
        links: Rows = []
        new_threads: Rows = []
        parties: Rows = []
        outbox: Rows = []
        new_events: list[list[NewEvent]] = []
        wakes: list[tuple[str, ...]] = []
        for pk, (_index, _item, plan, _receipt) in zip(pks, plans, strict=True):
            h = plan.header
            readers: set[str] = set()
            notified: set[str] = set()
            mine: list[NewEvent] = []
            new_events.append(mine)
            for entry in h["rcpt"]:
                mailbox = entry["mailbox"]
                folder = "sent" if mailbox == h["from"] else "inbox"
                entries.append(
                    {
                        "mailbox_id": mailbox,
                        "message_pk": pk,
                        "folder": folder,
                        "kind": h["kind"],
                        "thread_id": h["thread"],
                        "case_id": h["case"],
                        "accepted": now,
                        "read": now if folder == "sent" else None,
                        "flagged": False,
                        "moved": None,
                    }
                )
                event = {
                    "mailbox": mailbox,
                    "from": h["from"],
                    "id": h["id"],
                    "kind": h["kind"],
                    "folder": folder,
                }
                for account in plan.readers[mailbox]:
                    readers.add(account)
                    mine.append(NewEvent(account, "message", dict(event)))
                    if folder == "inbox" and account != h["signer"] and account not in notified:
                        notified.add(account)
                        outbox.append(
                            {
                                "account_id": account,
                                "message_pk": pk,
                                "kind": OUTBOX_KINDS[h["kind"]],
                                "created": now,
                                "state": "pending",
                                "attempts": 0,
                                "next_attempt": now,
                                "done": None,
                            }
                        )
            for position, blob in enumerate(h["blobs"]):
                links.append({"blob_id": blob["id"], "message_pk": pk, "position": position})
            if plan.new_thread:
                new_threads.append(
                    {
                        "id": h["thread"],
                        "org_id": plan.org_id,
                        "started_by": h["from"],
                        "created": now,
                    }
                )
            parties.extend({"thread_id": h["thread"], "mailbox_id": m} for m in plan.new_parties)
            wakes.append(tuple(sorted(readers)))

        await store.insert_entries(conn, entries)
        changed = await store.link_blobs(conn, links, now=now)
        if changed:
            # deleted or expired since the batch read it (the one-by-one pass re-reads)
            raise checks.blob_unavailable(changed[0])
        await store.insert_threads(conn, new_threads)
        await store.insert_thread_mailboxes(conn, parties)
        await store.insert_outbox(conn, outbox)

        # The hooks run per envelope, in order, after every row exists; a refusal aborts
        # the batch and the items are then applied one by one, each in its savepoint.
        for n, (pk, (_index, item, plan, _receipt)) in enumerate(zip(pks, plans, strict=True)):
            h = plan.header
            hook_events = await apply_send(
                conn,
                SendFacts(
                    message_pk=pk,
                    message_id=h["id"],
                    from_id=h["from"],
                    signer_id=h["signer"],
                    signer_kind=plan.signer_kind,
                    signer_org=_signer_org(plan),
                    kind=h["kind"],
                    to=tuple(h["to"]),
                    thread_id=h["thread"],
                    case_id=h["case"],
                    accepted=now,
                    procedure=item.cmd.procedure,
                    procedure_version=item.cmd.version,
                ),
            )
            hook_events += await on_send(
                conn,
                message_pk=pk,
                message_id=h["id"],
                from_id=h["from"],
                digest=item.digest,
                kind=h["kind"],
                to=tuple(h["to"]),
                from_is_team=plan.from_is_team,
                accepted=now,
                receipt_seed=self._receipt_seed,
            )
            new_events[n].extend(hook_events)
            wakes[n] = tuple(sorted(set(wakes[n]) | {e.account_id for e in hook_events}))
        return [(w, tuple(e)) for w, e in zip(wakes, new_events, strict=True)]


def _log_failure(done: concurrent.futures.Future[None]) -> None:
    if not done.cancelled() and done.exception() is not None:  # pragma: no cover
        log.error("waking accounts failed: %r", done.exception())


def _signer_org(plan: Plan) -> str | None:
    """The signer's organisation (staff), as the cases hook wants it."""
    return None if plan.signer_kind == "citizen" else plan.org_id


__all__ = ["MessageService", "Sent", "Wire", "send_retry"]
