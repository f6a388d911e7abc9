"""The legal clock's pure functions, table-driven: day counting in the organisation's time
zone (DST switch days), working days and holidays (federal states, Austria), year ends,
retrieval before and after the deemed day, deadlines, and the validity switch of 2025."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from postbox.mailbox.delivery.clock import (
    Calendar,
    CalendarError,
    Computation,
    DayCount,
    RetrievalDeadline,
    compute,
)
from postbox.mailbox.delivery.rules import default_rules

BERLIN = Calendar("Europe/Berlin", "DE", None)
BAVARIA = Calendar("Europe/Berlin", "DE", "BY")
VIENNA = Calendar("Europe/Vienna", "AT", None)
RULES = default_rules()


def local(text: str, zone: str = "Europe/Berlin") -> int:
    """A local wall-clock time (ISO, no offset) as Unix ms."""
    return int(datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).timestamp() * 1000)


def utc(text: str) -> int:
    return local(text, "UTC")


def d(text: str) -> date:
    return date.fromisoformat(text)


# --- calendar --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("instant", "day"),
    [
        (utc("2026-01-01T10:00"), "2026-01-01"),
        (utc("2025-12-31T23:30"), "2026-01-01"),  # CET: already the new year in Berlin
        (utc("2026-03-28T23:30"), "2026-03-29"),  # 00:30 CET on the spring-forward day
        (utc("2026-03-29T21:59"), "2026-03-29"),  # 23:59 CEST
        (utc("2026-03-29T22:00"), "2026-03-30"),  # midnight CEST
        (utc("2026-10-24T22:30"), "2026-10-25"),  # 00:30 CEST on the fall-back day
        (utc("2026-10-25T22:59"), "2026-10-25"),  # 23:59 CET
        (utc("2026-10-25T23:00"), "2026-10-26"),
    ],
)
def test_day_of_counts_local_days(instant: int, day: str) -> None:
    assert BERLIN.day_of(instant) == d(day)


@pytest.mark.parametrize(
    ("day", "start"),
    [
        ("2026-01-12", utc("2026-01-11T23:00")),  # CET
        ("2026-03-29", utc("2026-03-28T23:00")),  # the switch day starts in CET
        ("2026-03-30", utc("2026-03-29T22:00")),  # the day after starts in CEST
        ("2026-10-25", utc("2026-10-24T22:00")),  # starts in CEST
        ("2026-10-26", utc("2026-10-25T23:00")),  # the 25th had 25 hours
    ],
)
def test_start_of_a_day_resolves_dst(day: str, start: int) -> None:
    assert BERLIN.start_of(d(day)) == start
    assert BERLIN.day_of(start) == d(day)
    assert BERLIN.day_of(start - 1) == d(day) - (d("2026-01-02") - d("2026-01-01"))


@pytest.mark.parametrize(
    ("calendar", "day", "days", "expected"),
    [
        (BERLIN, "2026-01-05", 1, "2026-01-06"),  # Epiphany is no holiday in Berlin
        (BAVARIA, "2026-01-05", 1, "2026-01-07"),  # but in Bavaria
        (BERLIN, "2026-01-02", 1, "2026-01-05"),  # Friday → Monday (Saturday is no working day)
        (BERLIN, "2026-04-02", 1, "2026-04-07"),  # Good Friday, Easter Monday
        (BERLIN, "2026-12-23", 2, "2026-12-28"),  # 24th, then Christmas days and the weekend
        (BERLIN, "2026-12-31", 1, "2027-01-04"),  # New Year, then the weekend
        (BAVARIA, "2026-06-03", 1, "2026-06-05"),  # Corpus Christi in Bavaria
        (BERLIN, "2026-06-03", 1, "2026-06-04"),
        (VIENNA, "2026-12-07", 1, "2026-12-09"),  # 8 December in Austria
        (VIENNA, "2026-10-23", 1, "2026-10-27"),  # Friday; Monday 26 October is the national day
        (BERLIN, "2026-01-05", 0, "2026-01-05"),  # 0 days: that day itself
    ],
)
def test_working_days_skip_weekends_and_holidays(
    calendar: Calendar, day: str, days: int, expected: str
) -> None:
    assert calendar.add(d(day), DayCount(days, "working")) == d(expected)


def test_calendar_days_ignore_holidays_and_cross_the_year() -> None:
    assert BAVARIA.add(d("2025-12-28"), DayCount(10, "calendar")) == d("2026-01-07")
    assert BERLIN.add(d("2028-02-27"), DayCount(3)) == d("2028-03-01")  # a leap year


@pytest.mark.parametrize(
    "calendar",
    [
        Calendar("Europe/Nowhere", "DE", None),
        Calendar("Europe/Berlin", "XX", None),
        Calendar("Europe/Berlin", "DE", "XX"),
        Calendar("Europe/Berlin", "de", None),
    ],
)
def test_unknown_calendars_are_refused(calendar: Calendar) -> None:
    with pytest.raises(CalendarError):
        calendar.check()


# --- the shipped rules ------------------------------------------------------------------------
VWVFG_41_2A = RULES.by_id["de-vwvfg-41-2a"].computation
OZG_9 = RULES.by_id["de-ozg-9"].computation
ZUSTG = RULES.by_id["at-zustg-35-6"].computation

PROVIDED = local("2026-01-01T10:00")  # a Thursday (a holiday)
NEVER = None


@pytest.mark.parametrize(
    ("case", "notified", "retrieved", "now", "deemed", "deadline_day", "overdue"),
    [
        (
            "retrieved on day 4",
            NEVER,
            local("2026-01-04T09:00"),
            local("2026-02-01T00:00"),
            "2026-01-05",
            "2026-01-11",
            False,
        ),
        (
            "retrieved on the provision day",
            NEVER,
            local("2026-01-01T23:59"),
            local("2026-01-02T00:00"),
            "2026-01-02",
            "2026-01-11",
            False,
        ),
        (
            "retrieved on the last day",
            NEVER,
            local("2026-01-11T23:59:59.999"),
            local("2026-01-12T08:00"),
            "2026-01-12",
            "2026-01-11",
            False,
        ),
        (
            "retrieved one ms late",
            NEVER,
            local("2026-01-12T00:00"),
            local("2026-01-12T08:00"),
            None,
            "2026-01-11",
            True,
        ),
        (
            "not yet retrieved, in time",
            NEVER,
            NEVER,
            local("2026-01-11T23:59:59.999"),
            None,
            "2026-01-11",
            False,
        ),
        (
            "not retrieved in time",
            NEVER,
            NEVER,
            local("2026-01-12T00:00"),
            None,
            "2026-01-11",
            True,
        ),
        (
            "the notification anchors the deadline",
            local("2026-01-02T07:00"),
            NEVER,
            local("2026-01-12T12:00"),
            None,
            "2026-01-12",
            False,
        ),
        (
            "retrieval after now is not counted",
            NEVER,
            local("2026-01-05T00:00"),
            local("2026-01-04T00:00"),
            None,
            "2026-01-11",
            False,
        ),
    ],
)
def test_vwvfg_41_2a(
    case: str,
    notified: int | None,
    retrieved: int | None,
    now: int,
    deemed: str | None,
    deadline_day: str,
    overdue: bool,
) -> None:
    state = compute(
        VWVFG_41_2A, BERLIN, available=PROVIDED, notified=notified, retrieved=retrieved, now=now
    )
    assert state.deemed == (None if deemed is None else d(deemed)), case
    assert state.deadline_day == d(deadline_day), case
    assert state.deadline == BERLIN.start_of(d(deadline_day) + (d("2026-01-02") - d("2026-01-01")))
    assert state.overdue is overdue, case


def test_vwvfg_41_2a_across_the_spring_dst_switch() -> None:
    provided = local("2026-03-20T12:00")
    # the 10 days end on 30 March, in summer time: the deadline is 22:00 UTC, not 23:00
    state = compute(
        VWVFG_41_2A, BERLIN, available=provided, notified=None, retrieved=None, now=provided
    )
    assert state.deadline_day == d("2026-03-30")
    assert state.deadline == utc("2026-03-30T22:00")
    # 00:30 local on the switch day is still the 28th in UTC: the local day counts
    retrieved = utc("2026-03-28T23:30")
    early = compute(
        VWVFG_41_2A,
        BERLIN,
        available=local("2026-03-27T12:00"),
        notified=None,
        retrieved=retrieved,
        now=retrieved,
    )
    assert early.deemed == d("2026-03-30")


def test_vwvfg_41_2a_across_the_year_end() -> None:
    provided = local("2025-12-28T16:00")
    state = compute(
        VWVFG_41_2A, BERLIN, available=provided, notified=None, retrieved=None, now=provided
    )
    assert state.deadline_day == d("2026-01-07")
    retrieved = local("2025-12-31T20:00")
    state = compute(
        VWVFG_41_2A, BERLIN, available=provided, notified=None, retrieved=retrieved, now=retrieved
    )
    assert state.deemed == d("2026-01-01")


@pytest.mark.parametrize(
    ("retrieved", "deemed"),
    [
        (NEVER, "2026-01-04"),  # the 3rd day after provision (a Sunday: no roll)
        (local("2026-01-02T08:00"), "2026-01-02"),  # retrieved earlier: that day
        (local("2026-01-01T11:00"), "2026-01-01"),  # retrieved on the provision day
        (local("2026-01-04T08:00"), "2026-01-04"),  # on the deemed day itself
        (local("2026-01-06T08:00"), "2026-01-04"),  # later retrieval changes nothing
    ],
)
def test_ozg_9(retrieved: int | None, deemed: str) -> None:
    now = local("2026-02-01T00:00")
    state = compute(OZG_9, BERLIN, available=PROVIDED, notified=None, retrieved=retrieved, now=now)
    assert state.deemed == d(deemed)
    assert (state.deadline, state.overdue) == (None, False)
    assert state.notify_by == d("2026-01-01")


@pytest.mark.parametrize(
    ("notified", "late"),
    [(local("2026-01-01T23:59"), False), (local("2026-01-02T00:01"), True)],
)
def test_ozg_9_notification_must_go_out_on_the_provision_day(notified: int, late: bool) -> None:
    now = local("2026-02-01T00:00")
    state = compute(OZG_9, BERLIN, available=PROVIDED, notified=notified, retrieved=None, now=now)
    assert state.notified_late is late


@pytest.mark.parametrize(
    ("notified", "retrieved", "deemed"),
    [
        ("2026-12-04T10:00", None, "2026-12-07"),  # Friday → Monday
        ("2026-12-07T10:00", None, "2026-12-09"),  # Monday; the 8th is a holiday
        ("2026-12-24T10:00", None, "2026-12-28"),  # Christmas, St Stephen's day, weekend
        ("2026-12-31T10:00", None, "2027-01-04"),  # New Year's day, weekend
        ("2026-12-04T10:00", "2026-12-05T09:00", "2026-12-05"),  # retrieved earlier
        ("2026-12-04T10:00", "2026-12-10T09:00", "2026-12-07"),  # retrieved later
        (None, None, None),  # no notice sent: not served (yet)
    ],
)
def test_zustg_first_working_day_after_the_notice(
    notified: str | None, retrieved: str | None, deemed: str | None
) -> None:
    provided = local("2026-12-01T09:00", "Europe/Vienna")
    state = compute(
        ZUSTG,
        VIENNA,
        available=provided,
        notified=None if notified is None else local(notified, "Europe/Vienna"),
        retrieved=None if retrieved is None else local(retrieved, "Europe/Vienna"),
        now=local("2027-02-01T00:00", "Europe/Vienna"),
    )
    assert state.deemed == (None if deemed is None else d(deemed))


@pytest.mark.parametrize(
    ("provided", "rule", "deemed"),
    [
        ("2024-12-30T12:00", "de-vwvfg-41-2-until-2024", "2025-01-02"),
        ("2024-12-31T23:59", "de-vwvfg-41-2-until-2024", "2025-01-03"),
        ("2025-01-01T00:00", "de-vwvfg-41-2-from-2025", "2025-01-05"),
        ("2026-05-04T08:00", "de-vwvfg-41-2-from-2025", "2026-05-08"),
    ],
)
def test_the_2025_switch_from_the_3rd_to_the_4th_day(provided: str, rule: str, deemed: str) -> None:
    at = local(provided)
    chosen = RULES.for_message("de-vwvfg-41-2", "decision", BERLIN.day_of(at))
    assert chosen is not None and chosen.id == rule
    state = compute(chosen.computation, BERLIN, available=at, notified=None, retrieved=None, now=at)
    assert state.deemed == d(deemed)


def test_a_rule_governs_only_its_kinds() -> None:
    assert RULES.for_message("de-vwvfg-41-2a", "message", d("2026-01-01")) is None
    assert RULES.for_message("no-such-family", "decision", d("2026-01-01")) is None


@pytest.mark.parametrize(
    ("calendar", "provided", "deemed"),
    [
        (BERLIN, "2026-01-01T10:00", "2026-01-05"),  # Sunday → Monday
        (BAVARIA, "2026-01-03T10:00", "2026-01-07"),  # Epiphany in Bavaria → Wednesday
        (BERLIN, "2026-01-03T10:00", "2026-01-06"),  # a working day in Berlin
    ],
)
def test_roll_to_the_next_working_day(calendar: Calendar, provided: str, deemed: str) -> None:
    rule = Computation(after_provision=DayCount(3), roll_to_working_day=True)
    at = local(provided)
    state = compute(rule, calendar, available=at, notified=None, retrieved=None, now=at)
    assert state.deemed == d(deemed)


def test_a_working_day_deadline_from_the_provision() -> None:
    rule = Computation(
        after_retrieval=DayCount(0),
        retrieval_deadline=RetrievalDeadline(DayCount(2, "working"), "provision"),
    )
    at = local("2026-12-23T10:00")  # Wednesday; 24th Thursday; then Christmas and a weekend
    state = compute(
        rule, BERLIN, available=at, notified=local("2026-12-29T00:00"), retrieved=None, now=at
    )
    assert state.deadline_day == d("2026-12-28")
    assert state.deadline == BERLIN.start_of(d("2026-12-29"))
