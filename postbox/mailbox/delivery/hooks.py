"""What the send path, the fetch route and the notification workers call, in THEIR
transaction: the server-signed delivery record (PROTOCOL.md §8) and the legal clock.

* :func:`on_send` — an authority message (``from`` a team, to at least one citizen) gets
  its ``available`` event (``at`` = the accepted time of the submission receipt, ``by``
  null); when the sending organisation's rule governs the message's kind (decisions), its
  legal clock starts. Other messages get nothing.
* :func:`on_fetch` — the first fetch of such a message by a recipient citizen's
  authenticated client, through the citizen's own mailbox, appends ``retrieved`` (``by`` =
  the citizen). Idempotent: later fetches, other readers and the sender's own mailbox add
  nothing.
* :func:`record_notified` — the notifications issue calls it when the notice about a
  message went out to a mailbox: appends ``notified`` once per mailbox.

Every append locks the message row first (PostgreSQL ``FOR UPDATE``; SQLite has one writer)
so concurrent fetches in several processes cannot both extend the chain; the primary key
(message, seq) and the unique (message, event, by) back that up. The hooks return live
events (type ``delivery``, ``{"from","id","event"}``) for the sending team's members; the
caller appends them with ``events.store.append`` and wakes the bus after its commit.
``available`` needs no live event of its own: the ``message`` event announces it.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncConnection

from postbox.crypto.encoding import cj, parse_canonical
from postbox.crypto.receipts import DeliveryEventName, SignedDelivery, sign_delivery
from postbox.mailbox.delivery import store
from postbox.mailbox.delivery.clock import Calendar, compute
from postbox.mailbox.delivery.rules import DEFAULT_FAMILY, Rule, default_rules
from postbox.mailbox.events.store import NewEvent
from postbox.mailbox.mailboxes.store import mailboxes, members_of

DEFAULT_TIME_ZONE = "Europe/Berlin"
DEFAULT_COUNTRY = "DE"


async def settings_for(conn: AsyncConnection, org_id: str) -> store.LegalSettings:
    """The organisation's legal settings, or the defaults (Berlin, Germany, § 41 (2a))."""
    found = await store.legal_settings_of(conn, org_id)
    if found is not None:
        return found
    return store.LegalSettings(
        org_id, DEFAULT_TIME_ZONE, DEFAULT_COUNTRY, None, DEFAULT_FAMILY, None
    )


def calendar_of(row: store.ClockRow) -> Calendar:
    return Calendar(row.time_zone, row.country, row.subdivision)


def _deadline(rule: Rule, calendar: Calendar, available: int, notified: int | None) -> int | None:
    now = max(available, notified or 0)
    state = compute(
        rule.computation, calendar, available=available, notified=notified, retrieved=None, now=now
    )
    return state.deadline


async def on_send(
    conn: AsyncConnection,
    *,
    message_pk: int,
    message_id: str,
    from_id: str,
    digest: bytes,
    kind: str,
    to: Sequence[str],
    from_is_team: bool,
    accepted: int,
    receipt_seed: bytes,
) -> list[NewEvent]:
    """Start the delivery record (and for decisions the legal clock) of an accepted message.

    Call inside the message's transaction (or savepoint) after its row exists.
    """
    if not from_is_team:
        return []
    boxes = await mailboxes(conn, [from_id, *to])
    team = boxes.get(from_id)
    if team is None or team.kind != "team" or team.org_id is None:
        return []
    if not any(boxes[m].role == "citizen" for m in to if m in boxes):
        return []
    signed = sign_delivery(
        message=message_id,
        digest=digest,
        event="available",
        at=accepted,
        by=None,
        previous=None,
        receipt_seed=receipt_seed,
    )
    await store.append_delivery(
        conn, message_pk, 0, "available", None, accepted, cj(signed).decode()
    )
    settings = await settings_for(conn, team.org_id)
    calendar = Calendar(settings.time_zone, settings.country, settings.subdivision)
    rule = default_rules().for_message(settings.decision_rule, kind, calendar.day_of(accepted))
    if rule is not None:
        await store.insert_clock(
            conn,
            store.ClockRow(
                message_pk=message_pk,
                mailbox_id=from_id,
                org_id=team.org_id,
                rule_id=rule.id,
                time_zone=settings.time_zone,
                country=settings.country,
                subdivision=settings.subdivision,
                available=accepted,
                notified=None,
                retrieved=None,
                deadline=_deadline(rule, calendar, accepted, None),
                overdue=None,
            ),
        )
    return []


async def _append(
    conn: AsyncConnection,
    facts: store.MessageFacts,
    existing: list[store.StoredDelivery],
    event: DeliveryEventName,
    by: str | None,
    at: int,
    receipt_seed: bytes,
) -> int:
    """Sign and store the next event; returns its ``at`` (never before the previous one)."""
    last = existing[-1]
    at = max(at, last.at)
    previous: SignedDelivery = parse_canonical(last.signed.encode())
    signed = sign_delivery(
        message=facts.id,
        digest=facts.digest,
        event=event,
        at=at,
        by=by,
        previous=previous,
        receipt_seed=receipt_seed,
    )
    await store.append_delivery(conn, facts.pk, last.seq + 1, event, by, at, cj(signed).decode())
    return at


async def _team_events(
    conn: AsyncConnection, facts: store.MessageFacts, event: str
) -> list[NewEvent]:
    members = (await members_of(conn, [facts.from_id]))[facts.from_id]
    data = {"from": facts.from_id, "id": facts.id, "event": event}
    return [NewEvent(m, "delivery", data) for m in members]


def _has(existing: list[store.StoredDelivery], event: str, by: str | None) -> bool:
    return any(e.event == event and e.by_id == by for e in existing)


async def on_fetch(
    conn: AsyncConnection,
    *,
    message_pk: int,
    mailbox_id: str,
    reader_id: str,
    at: int,
    receipt_seed: bytes,
) -> list[NewEvent]:
    """Record the first retrieval by a recipient citizen (idempotent; see module doc).

    Cheap when there is nothing to do: one read of the chain, no lock.
    """
    if mailbox_id != reader_id:
        return []
    existing = await store.chain(conn, message_pk)
    if not existing or _has(existing, "retrieved", reader_id):
        return []
    facts = await store.message_by_pk(conn, message_pk, lock=True)
    if facts is None or facts.from_id == mailbox_id:
        return []
    if await store.account_kind(conn, reader_id) != "citizen":
        return []
    if not await store.has_entry(conn, message_pk, mailbox_id):
        return []
    existing = await store.chain(conn, message_pk)  # again, under the lock
    if _has(existing, "retrieved", reader_id):
        return []
    at = await _append(conn, facts, existing, "retrieved", reader_id, at, receipt_seed)
    clock = await store.clock_of(conn, message_pk)
    if clock is not None and clock.retrieved is None:
        await store.update_clock(
            conn, message_pk, notified=clock.notified, retrieved=at, deadline=clock.deadline
        )
    return await _team_events(conn, facts, "retrieved")


async def record_notified(
    conn: AsyncConnection,
    *,
    message_pk: int,
    mailbox_id: str | None,
    at: int,
    receipt_seed: bytes,
) -> list[NewEvent]:
    """Record that the notice about an authority message went out to ``mailbox_id``.

    For the notifications issue's workers, in the transaction that marks the outbox row
    sent. Once per mailbox (idempotent); a message without a delivery record (not an
    authority message) gets nothing. The first notification re-anchors the legal clock's
    retrieval deadline where the rule counts from the notification.
    """
    existing = await store.chain(conn, message_pk)
    if not existing or _has(existing, "notified", mailbox_id):
        return []
    facts = await store.message_by_pk(conn, message_pk, lock=True)
    if facts is None:
        return []
    existing = await store.chain(conn, message_pk)
    if _has(existing, "notified", mailbox_id):
        return []
    at = await _append(conn, facts, existing, "notified", mailbox_id, at, receipt_seed)
    clock = await store.clock_of(conn, message_pk)
    if clock is not None and clock.notified is None:
        rule = default_rules().by_id.get(clock.rule_id)
        deadline = clock.deadline
        if rule is not None:
            deadline = _deadline(rule, calendar_of(clock), clock.available, at)
        await store.update_clock(
            conn, message_pk, notified=at, retrieved=clock.retrieved, deadline=deadline
        )
    return await _team_events(conn, facts, "notified")
