"""The delivery hooks against a real database (both backends), called as the send path,
the fetch route and the notification workers call them: in the caller's transaction."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import date

import pytest
from delivery.dbworld import RECEIPT_PK, RECEIPT_SEED, DbWorld, db_world
from sqlalchemy import select

from postbox.crypto.encoding import parse_canonical
from postbox.crypto.receipts import verify_delivery_chain
from postbox.mailbox.db.schema import delivery_clocks, delivery_events
from postbox.mailbox.delivery import hooks, store
from postbox.mailbox.delivery.clock import Calendar

BERLIN = Calendar()
T0 = 1_767_261_600_000  # 2026-01-01T10:00:00Z, a Thursday
DAY = 86_400_000


@pytest.fixture
async def w(db_url: str) -> AsyncIterator[DbWorld]:
    async with db_world(db_url, T0) as world:
        yield world


async def _send(
    w: DbWorld, *, kind: str = "decision", to: str | None = None
) -> tuple[int, str, bytes]:
    rcpt = to or w.citizens[0]
    pk, mid, digest = await w.message(
        from_id=w.team, signer=w.caseworkers[0], to=[rcpt], kind=kind, accepted=T0
    )
    async with w.db.write() as conn:
        events = await hooks.on_send(
            conn,
            message_pk=pk,
            message_id=mid,
            from_id=w.team,
            digest=digest,
            kind=kind,
            to=[rcpt],
            from_is_team=True,
            accepted=T0,
            receipt_seed=RECEIPT_SEED,
        )
    assert events == []
    return pk, mid, digest


async def _chain(w: DbWorld, pk: int) -> list[dict[str, object]]:
    async with w.db.read() as conn:
        return [parse_canonical(e.signed.encode()) for e in await store.chain(conn, pk)]


async def _fetch(w: DbWorld, pk: int, mailbox: str, reader: str, at: int) -> list[object]:
    async with w.db.write() as conn:
        return list(
            await hooks.on_fetch(
                conn,
                message_pk=pk,
                mailbox_id=mailbox,
                reader_id=reader,
                at=at,
                receipt_seed=RECEIPT_SEED,
            )
        )


async def test_decision_to_a_citizen_is_made_available_and_starts_the_clock(w: DbWorld) -> None:
    pk, mid, digest = await _send(w)
    chain = await _chain(w, pk)
    record = verify_delivery_chain(chain, RECEIPT_PK, message=mid, digest=digest)
    assert record.available == T0
    assert [e["event"] for e in record.events] == ["available"]
    assert record.events[0]["by"] is None
    async with w.db.read() as conn:
        clock = await store.clock_of(conn, pk)
    assert clock is not None
    assert (clock.rule_id, clock.mailbox_id, clock.org_id) == ("de-vwvfg-41-2a", w.team, w.org)
    assert (clock.time_zone, clock.country, clock.subdivision) == ("Europe/Berlin", "DE", None)
    # § 41 (2a): 10 days after the notification (none recorded: the provision stands in)
    assert clock.deadline == BERLIN.start_of(date(2026, 1, 12))


async def test_other_messages_get_no_delivery_record(w: DbWorld) -> None:
    # a citizen's application to the team
    pk, mid, digest = await w.message(
        from_id=w.citizens[0], signer=w.citizens[0], to=[w.team], kind="application", accepted=T0
    )
    # the team writing to a colleague (no citizen among the recipients)
    pk2, mid2, digest2 = await w.message(
        from_id=w.team, signer=w.caseworkers[0], to=[w.caseworkers[1]], accepted=T0
    )
    async with w.db.write() as conn:
        for p, m, d, f, team, to in (
            (pk, mid, digest, w.citizens[0], False, [w.team]),
            (pk2, mid2, digest2, w.team, True, [w.caseworkers[1]]),
        ):
            got = await hooks.on_send(
                conn,
                message_pk=p,
                message_id=m,
                from_id=f,
                digest=d,
                kind="decision",
                to=to,
                from_is_team=team,
                accepted=T0,
                receipt_seed=RECEIPT_SEED,
            )
            assert got == []
    assert await _chain(w, pk) == []
    assert await _chain(w, pk2) == []
    assert await _fetch(w, pk, w.team, w.caseworkers[0], T0 + 1) == []


async def test_a_plain_message_is_made_available_without_a_clock(w: DbWorld) -> None:
    pk, _mid, _ = await _send(w, kind="message")
    assert [e["delivery"]["event"] for e in await _chain(w, pk)] == ["available"]  # type: ignore[index]
    async with w.db.read() as conn:
        assert await store.clock_of(conn, pk) is None


async def test_first_fetch_by_the_citizen_records_retrieved_once(w: DbWorld) -> None:
    pk, mid, digest = await _send(w)
    # the sending team's own fetch, a mailbox the reader does not own: nothing
    assert await _fetch(w, pk, w.team, w.caseworkers[0], T0 + 1) == []
    assert await _fetch(w, pk, w.team, w.citizens[0], T0 + 1) == []
    # a citizen who is not a recipient: nothing
    assert await _fetch(w, pk, w.citizens[1], w.citizens[1], T0 + 1) == []
    first = await _fetch(w, pk, w.citizens[0], w.citizens[0], T0 + 2 * DAY)
    assert sorted(e.account_id for e in first) == sorted(w.caseworkers)  # type: ignore[attr-defined]
    assert {e.type for e in first} == {"delivery"}  # type: ignore[attr-defined]
    assert first[0].data == {"from": w.team, "id": mid, "event": "retrieved"}  # type: ignore[attr-defined]
    assert await _fetch(w, pk, w.citizens[0], w.citizens[0], T0 + 3 * DAY) == []
    record = verify_delivery_chain(await _chain(w, pk), RECEIPT_PK, message=mid, digest=digest)
    assert record.retrieved == {w.citizens[0]: T0 + 2 * DAY}
    async with w.db.read() as conn:
        clock = await store.clock_of(conn, pk)
    assert clock is not None and clock.retrieved == T0 + 2 * DAY


async def test_concurrent_first_fetches_record_one_retrieval(w: DbWorld) -> None:
    pk, mid, digest = await _send(w)
    results = await asyncio.gather(
        *(_fetch(w, pk, w.citizens[0], w.citizens[0], T0 + DAY + i) for i in range(8))
    )
    assert sum(1 for r in results if r) == 1
    async with w.db.read() as conn:
        rows = (
            await conn.execute(
                select(delivery_events.c.event).where(delivery_events.c.message_pk == pk)
            )
        ).all()
    assert sorted(r[0] for r in rows) == ["available", "retrieved"]
    verify_delivery_chain(await _chain(w, pk), RECEIPT_PK, message=mid, digest=digest)


async def test_notified_is_recorded_once_per_mailbox_and_moves_the_deadline(w: DbWorld) -> None:
    pk, mid, digest = await _send(w)
    notified_at = T0 + DAY + 3_600_000  # the next day
    async with w.db.write() as conn:
        got = await hooks.record_notified(
            conn, message_pk=pk, mailbox_id=w.citizens[0], at=notified_at, receipt_seed=RECEIPT_SEED
        )
        again = await hooks.record_notified(
            conn,
            message_pk=pk,
            mailbox_id=w.citizens[0],
            at=notified_at + 1,
            receipt_seed=RECEIPT_SEED,
        )
    assert {e.data["event"] for e in got} == {"notified"}
    assert again == []
    record = verify_delivery_chain(await _chain(w, pk), RECEIPT_PK, message=mid, digest=digest)
    assert record.notified == {w.citizens[0]: notified_at}
    async with w.db.read() as conn:
        row = (
            await conn.execute(
                select(delivery_clocks.c.notified, delivery_clocks.c.deadline).where(
                    delivery_clocks.c.message_pk == pk
                )
            )
        ).one()
    assert row.notified == notified_at
    assert row.deadline == BERLIN.start_of(date(2026, 1, 13))


async def test_notified_without_a_record_is_ignored(w: DbWorld) -> None:
    pk, _mid, _d = await w.message(
        from_id=w.citizens[0], signer=w.citizens[0], to=[w.team], kind="application", accepted=T0
    )
    async with w.db.write() as conn:
        got = await hooks.record_notified(
            conn, message_pk=pk, mailbox_id=w.team, at=T0, receipt_seed=RECEIPT_SEED
        )
    assert got == []
