"""The legal clock: pure date arithmetic over rules that are data (see ``rules.json``).

A rule says, for one legal source and one validity period, when an authority's message is
*deemed notified* (bekannt gegeben / zugestellt) and until when it must be retrieved. The
functions here turn the instants of a delivery record (provision, notification, first
retrieval; Unix milliseconds) into legal *days* in the organisation's time zone and back,
count calendar or working days (Monday to Friday without the public holidays of the
organisation's country and federal state; Saturdays are not working days), and apply a
rule. Nothing here touches the database or the wall clock: ``now`` is an argument.

Day counting follows §§ 187 (1), 188 (1) BGB / § 31 (1) VwVfG: the day of the event is not
counted ("the 3rd day after provision" is provision day + 3); a period of N days after an
event ends at the end of its last day, i.e. at local midnight starting the next day, which
is where :func:`compute` puts the ``deadline`` instant.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import holidays

Count = Literal["calendar", "working"]
DeadlineAnchor = Literal["notification", "provision"]

ONE_DAY = timedelta(days=1)


class CalendarError(ValueError):
    """An unknown time zone, country or federal state."""


@dataclass(frozen=True, slots=True)
class DayCount:
    """``days`` days after an event's day (0: that day itself), calendar or working days."""

    days: int
    count: Count = "calendar"


@dataclass(frozen=True, slots=True)
class RetrievalDeadline:
    """Retrieval must happen within ``period`` after ``anchor``; otherwise the message is
    *not notified* (the caseworker must use another channel)."""

    period: DayCount
    anchor: DeadlineAnchor


@dataclass(frozen=True, slots=True)
class Computation:
    """How a rule computes the deemed day (the earliest of the candidates that exist).

    ``after_provision`` / ``after_notification`` / ``after_retrieval``: a candidate day
    counted from that event (absent events give no candidate). ``roll_to_working_day``
    moves a deemed day that is not a working day to the next one. ``notify_by``: the day
    by which the notification must have gone out, counted from provision.
    """

    after_provision: DayCount | None = None
    after_notification: DayCount | None = None
    after_retrieval: DayCount | None = None
    roll_to_working_day: bool = False
    retrieval_deadline: RetrievalDeadline | None = None
    notify_by: DayCount | None = None


@dataclass(frozen=True, slots=True)
class Calendar:
    """Where days are counted: an IANA time zone, an ISO country and an optional subdivision
    (German Land, Austrian Bundesland) whose public holidays are not working days."""

    time_zone: str = "Europe/Berlin"
    country: str = "DE"
    subdivision: str | None = None

    def check(self) -> None:
        """Raise :class:`CalendarError` unless zone, country and subdivision are known."""
        _zone(self.time_zone)
        _holidays(self.country, self.subdivision)

    @property
    def zone(self) -> ZoneInfo:
        return _zone(self.time_zone)

    def day_of(self, at: int) -> date:
        """The local calendar day an instant (Unix ms) falls on."""
        return datetime.fromtimestamp(at / 1000, tz=UTC).astimezone(self.zone).date()

    def start_of(self, day: date) -> int:
        """The instant (Unix ms) local midnight starts ``day`` (zoneinfo resolves DST)."""
        local = datetime.combine(day, time(0, 0), tzinfo=self.zone)
        return int(local.timestamp()) * 1000

    def is_holiday(self, day: date) -> bool:
        return day in _holidays(self.country, self.subdivision)

    def is_working_day(self, day: date) -> bool:
        return day.weekday() < 5 and not self.is_holiday(day)

    def next_working_day(self, day: date) -> date:
        """``day`` itself if it is a working day, else the next one."""
        while not self.is_working_day(day):
            day += ONE_DAY
        return day

    def add(self, day: date, period: DayCount) -> date:
        """The day ``period.days`` (calendar or working) days after ``day``."""
        if period.count == "calendar" or period.days == 0:
            return day + timedelta(days=period.days)
        left = period.days
        while left > 0:
            day += ONE_DAY
            if self.is_working_day(day):
                left -= 1
        return day


@functools.cache
def _zone(name: str) -> ZoneInfo:
    if name not in _zone_names():
        raise CalendarError(f"unknown time zone {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as e:  # pragma: no cover - listed above
        raise CalendarError(f"unknown time zone {name!r}") from e


@functools.cache
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones())


@functools.cache
def _holidays(country: str, subdivision: str | None) -> holidays.HolidayBase:
    # Only listed codes reach the package (never arbitrary strings); one expanding
    # calendar per (country, subdivision): years load on first use.
    known = _supported().get(country)
    if known is None or (subdivision is not None and subdivision not in known):
        raise CalendarError(f"no holiday calendar for {country}/{subdivision}")
    try:
        return holidays.country_holidays(country, subdiv=subdivision)
    except (NotImplementedError, KeyError) as e:  # pragma: no cover - listed above
        raise CalendarError(f"no holiday calendar for {country}/{subdivision}") from e


@functools.cache
def _supported() -> dict[str, tuple[str, ...]]:
    return {c: tuple(subs) for c, subs in holidays.list_supported_countries().items()}


@dataclass(frozen=True, slots=True)
class ClockState:
    """A rule applied to a delivery record at ``now``.

    ``deemed``: the deemed-notification day known so far (``None``: not (yet) notified;
    for a provision-based rule it is the latest possible day until a retrieval makes it
    earlier). ``deadline_day``: the last day on which a retrieval is in time, ``deadline``
    the instant that day ends (Unix ms). ``overdue``: the message was not retrieved in time
    (the deadline passed without retrieval, or the retrieval came late): it is *not*
    notified and the caseworker must use another channel. ``notify_by``: the last day the
    notification may go out; ``notified_late`` when the recorded one went out after it.
    """

    deemed: date | None
    deadline_day: date | None
    deadline: int | None
    overdue: bool
    notify_by: date | None
    notified_late: bool


def compute(
    computation: Computation,
    calendar: Calendar,
    *,
    available: int,
    notified: int | None,
    retrieved: int | None,
    now: int,
) -> ClockState:
    """Apply a rule's computation to the record's instants (pure).

    Only events up to ``now`` count (an instant after ``now`` is treated as absent), so a
    clock can be evaluated for any moment.
    """
    if notified is not None and notified > now:
        notified = None
    if retrieved is not None and retrieved > now:
        retrieved = None
    provision_day = calendar.day_of(available)

    deadline_day: date | None = None
    deadline: int | None = None
    late = False
    rd = computation.retrieval_deadline
    if rd is not None:
        # Without a recorded notification the provision stands in: the notification is
        # queued in the message's own transaction, so it cannot precede the provision, and
        # counting from the provision alerts no later than the rule requires.
        anchor = notified if rd.anchor == "notification" and notified is not None else available
        deadline_day = calendar.add(calendar.day_of(anchor), rd.period)
        deadline = calendar.start_of(deadline_day + ONE_DAY)
        late = retrieved >= deadline if retrieved is not None else now >= deadline

    candidates: list[date] = []
    if not late:
        if computation.after_provision is not None:
            candidates.append(calendar.add(provision_day, computation.after_provision))
        if computation.after_notification is not None and notified is not None:
            day = calendar.day_of(notified)
            candidates.append(calendar.add(day, computation.after_notification))
        if computation.after_retrieval is not None and retrieved is not None:
            day = calendar.day_of(retrieved)
            candidates.append(calendar.add(day, computation.after_retrieval))
    deemed = min(candidates) if candidates else None
    if deemed is not None and computation.roll_to_working_day:
        deemed = calendar.next_working_day(deemed)

    notify_by: date | None = None
    notified_late = False
    if computation.notify_by is not None:
        notify_by = calendar.add(provision_day, computation.notify_by)
        notified_late = notified is not None and calendar.day_of(notified) > notify_by
    return ClockState(deemed, deadline_day, deadline, late, notify_by, notified_late)
