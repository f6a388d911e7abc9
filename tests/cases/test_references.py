"""Reference numbers: the pattern syntax, the year in the org's time zone, and atomic
allocation (concurrent transactions, two engines as two server processes, both databases)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from cases.world import CaseWorld, open_case
from sqlalchemy import select
from support.onboard import send

from postbox.mailbox.appkeys import DB
from postbox.mailbox.cases import references, store
from postbox.mailbox.cases.effects import allocate_reference
from postbox.mailbox.db.engine import Database
from postbox.mailbox.db.schema import cases


def ms(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp() * 1000)


# --- syntax ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("pattern", "year", "seq", "reference"),
    [
        ("ABH-{year}-{seq:6}", 2026, 123, "ABH-2026-000123"),
        ("ABH-{year}-{seq:6}", 2026, 1_234_567, "ABH-2026-1234567"),
        ("{seq}", 2026, 7, "7"),
        ("AZ {yy}/{seq:4}", 2031, 42, "AZ 31/0042"),
        ("E.{seq:12}_{year}", 2026, 1, "E.000000000001_2026"),
    ],
)
def test_patterns_format(pattern: str, year: int, seq: int, reference: str) -> None:
    assert references.parse(pattern).format(year, seq) == reference


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "ABC",
        "{seq}{seq:2}",
        "{year}",
        "{seq:0}",
        "{seq:13}",
        "{seq:}",
        "{Seq}",
        "{seq",
        "A{{seq}}",
        "Ä-{seq}",
        "a\tb{seq}",
        "x" * 65,
        "{seq}" + "A" * 59,
        12,
    ],
)
def test_bad_patterns(bad: object) -> None:
    with pytest.raises(references.PatternError):
        references.parse(bad)


def test_counters_follow_the_year_only_when_the_pattern_shows_it() -> None:
    assert references.parse("{year}-{seq}").counter_year(2026) == 2026
    assert references.parse("{yy}-{seq}").counter_year(2026) == 2026
    assert references.parse("X-{seq}").counter_year(2026) == 0


def test_years_are_counted_in_the_orgs_time_zone() -> None:
    berlin = references.zone(None)
    assert str(berlin) == "Europe/Berlin"
    assert references.year_at(ms(2025, 12, 31, 22, 59, 59), berlin) == 2025
    assert references.year_at(ms(2025, 12, 31, 23, 0, 0), berlin) == 2026
    assert references.year_at(ms(2025, 12, 31, 23, 0, 0), references.zone("UTC")) == 2025
    assert str(references.zone("Not/AZone")) == "Europe/Berlin"


# --- allocation through the send path ----------------------------------------------------------
async def test_new_year_in_berlin(case_world: CaseWorld) -> None:
    w = case_world
    old = await open_case(w, accepted=ms(2025, 12, 31, 22, 30))  # 23:30 in Berlin
    new = await open_case(w, accepted=ms(2025, 12, 31, 23, 30))  # 00:30 on New Year's Day
    newer = await open_case(w, accepted=ms(2026, 6, 1))
    assert await refs(w, old, new, newer) == ["2025-000001", "2026-000001", "2026-000002"]


async def test_a_pattern_without_year_counts_on(case_world: CaseWorld) -> None:
    w = case_world
    await put_pattern(w, "V-{seq:3}")
    first = await open_case(w, accepted=ms(2026, 12, 31, 12))
    second = await open_case(w, accepted=ms(2027, 1, 2, 12))
    assert await refs(w, first, second) == ["V-001", "V-002"]


async def test_a_changed_pattern_never_repeats_a_reference(case_world: CaseWorld) -> None:
    w = case_world
    first = await open_case(w)  # default pattern: 2026-000001 (counter of 2026)
    # a pattern without {year} draws from another counter and would say 2026-000001 again
    await put_pattern(w, "2026-{seq:6}")
    second = await open_case(w)
    assert await refs(w, first, second) == ["2026-000001", "2026-000002"]


async def test_concurrent_allocations_are_distinct(case_world: CaseWorld, db_url: str) -> None:
    """Many transactions at once, on the app's engine and on a second engine (a second
    server process): every number is handed out exactly once."""
    w = case_world
    other = Database(db_url)
    try:

        async def allocate(db: Database) -> str:
            async with db.write() as conn:
                reference = await allocate_reference(conn, w.a.org, w.clock.now)
                await asyncio.sleep(0)  # let the others run while this transaction is open
                return reference

        dbs = [w.client.app[DB], other] * 20
        got = await asyncio.gather(*(allocate(db) for db in dbs))
    finally:
        await other.dispose()
    assert sorted(got) == [f"2026-{n:06d}" for n in range(1, 41)]


async def test_concurrent_applications_get_distinct_references(case_world: CaseWorld) -> None:
    w = case_world
    ids = await asyncio.gather(*(open_case(w) for _ in range(12)))
    got = await refs(w, *ids)
    assert sorted(got) == [f"2026-{n:06d}" for n in range(1, 13)]


async def test_a_rolled_back_transaction_gives_its_number_back(case_world: CaseWorld) -> None:
    w = case_world
    db = w.client.app[DB]

    async def allocate_then_fail() -> None:
        async with db.write() as conn:
            assert await store.next_number(conn, w.a.org, 2026) == 1
            raise RuntimeError("roll back")

    with pytest.raises(RuntimeError):
        await allocate_then_fail()
    async with db.write() as conn:
        assert await store.next_number(conn, w.a.org, 2026) == 1
        assert await store.next_number(conn, w.a.org, 2026) == 2
        assert await store.next_number(conn, w.a.org, 2027) == 1
        assert await store.next_number(conn, w.b.org, 2026) == 1


# --- helpers -----------------------------------------------------------------------------------
async def put_pattern(w: CaseWorld, pattern: str) -> None:
    status, body = await send(
        w.client,
        "PUT",
        f"/api/v1/orgs/{w.a.org}/case-pattern",
        {"pattern": pattern},
        who=w.a.admin,
    )
    assert status == 200, body


async def refs(w: CaseWorld, *case_ids: str) -> list[str]:
    async with w.client.app[DB].read() as conn:
        query = select(cases.c.id, cases.c.reference).where(cases.c.id.in_(case_ids))
        rows = {r.id: r.reference for r in await conn.execute(query)}
    return [rows[c] for c in case_ids]
