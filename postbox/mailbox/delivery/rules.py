"""Legal delivery rules as data: load and validate ``rules.json`` (shipped in the package).

Each rule is one legal source in one validity period: ``id`` (unique), ``family`` (what an
organisation selects, e.g. ``de-vwvfg-41-2``; the version valid on a message's provision
day applies), ``jurisdiction`` (ISO country; its holiday calendar counts working days),
``title`` per language, ``source`` (``citation`` and a URL-free ``reference``),
``summary``, ``valid_from``/``valid_until`` (ISO dates, inclusive, ``null`` = open),
``kinds`` (message kinds it governs) and ``computation`` (see
:class:`~postbox.mailbox.delivery.clock.Computation`). The file is validated completely at
server start (:func:`default_rules`), so a broken rule file stops the server instead of
mis-computing a legal date.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from importlib import resources
from typing import Any, Final, cast, get_args

from postbox.mailbox.delivery.clock import (
    Computation,
    Count,
    DayCount,
    DeadlineAnchor,
    RetrievalDeadline,
)

MESSAGE_KINDS: Final = frozenset(
    {"message", "application", "info_request", "decision", "withdrawal", "fitconnect"}
)
_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
_COUNTRY = re.compile(r"[A-Z]{2}")
_MAX_DAYS = 366


class RuleFileError(ValueError):
    """The rule file breaks its schema; the message says where."""


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    family: str
    jurisdiction: str
    title: Mapping[str, str]
    citation: str
    reference: str
    summary: str
    valid_from: date | None
    valid_until: date | None
    kinds: tuple[str, ...]
    computation: Computation
    raw: Mapping[str, Any]  # the rule exactly as in the file, for GET /legal-rules

    def valid_on(self, day: date) -> bool:
        return (self.valid_from is None or self.valid_from <= day) and (
            self.valid_until is None or day <= self.valid_until
        )


@dataclass(frozen=True)
class RuleBook:
    caveat: str
    rules: tuple[Rule, ...]

    @functools.cached_property
    def by_id(self) -> Mapping[str, Rule]:
        return {r.id: r for r in self.rules}

    @functools.cached_property
    def families(self) -> Mapping[str, tuple[Rule, ...]]:
        result: dict[str, list[Rule]] = {}
        for r in self.rules:
            result.setdefault(r.family, []).append(r)
        return {f: tuple(rs) for f, rs in result.items()}

    def version(self, family: str, day: date) -> Rule | None:
        """The version of ``family`` in force on ``day`` (``None``: none is)."""
        for r in self.families.get(family, ()):
            if r.valid_on(day):
                return r
        return None

    def for_message(self, family: str, kind: str, day: date) -> Rule | None:
        """The rule that governs a message of ``kind`` provided on ``day``, if any."""
        rule = self.version(family, day)
        return rule if rule is not None and kind in rule.kinds else None


# --- parsing -------------------------------------------------------------------------------
def _obj(value: Any, where: str, keys: Sequence[str]) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise RuleFileError(f"{where}: an object is needed")
    if set(value) != set(keys):
        missing = sorted(set(keys) - set(value))
        extra = sorted(set(value) - set(keys))
        raise RuleFileError(f"{where}: missing {missing}, unknown {extra}")
    return cast(Mapping[str, Any], value)


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise RuleFileError(f"{where}: a non-empty string is needed")
    if "://" in value:
        raise RuleFileError(f"{where}: sources are URL-free")
    return value


def _name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise RuleFileError(f"{where}: lower-case letters, digits and '-' (at most 64)")
    return value


def _date(value: Any, where: str) -> date | None:
    if value is None:
        return None
    try:
        if not isinstance(value, str) or len(value) != 10:
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError as e:
        raise RuleFileError(f"{where}: an ISO date YYYY-MM-DD or null is needed") from e


def _days(value: Any, where: str) -> DayCount | None:
    if value is None:
        return None
    v = _obj(value, where, ("days", "count"))
    days, count = v["days"], v["count"]
    if isinstance(days, bool) or not isinstance(days, int) or not 0 <= days <= _MAX_DAYS:
        raise RuleFileError(f"{where}.days: an integer 0…{_MAX_DAYS} is needed")
    if count not in get_args(Count):
        raise RuleFileError(f"{where}.count: one of {get_args(Count)}")
    return DayCount(days, cast(Count, count))


def _computation(value: Any, where: str) -> Computation:
    keys = (
        "after_provision",
        "after_notification",
        "after_retrieval",
        "roll_to_working_day",
        "retrieval_deadline",
        "notify_by",
    )
    v = _obj(value, where, keys)
    deadline: RetrievalDeadline | None = None
    if v["retrieval_deadline"] is not None:
        d = _obj(
            v["retrieval_deadline"], f"{where}.retrieval_deadline", ("days", "count", "anchor")
        )
        period = _days({"days": d["days"], "count": d["count"]}, f"{where}.retrieval_deadline")
        if d["anchor"] not in get_args(DeadlineAnchor):
            raise RuleFileError(f"{where}.retrieval_deadline.anchor: notification | provision")
        assert period is not None
        deadline = RetrievalDeadline(period, cast(DeadlineAnchor, d["anchor"]))
    if not isinstance(v["roll_to_working_day"], bool):
        raise RuleFileError(f"{where}.roll_to_working_day: true or false")
    computation = Computation(
        after_provision=_days(v["after_provision"], f"{where}.after_provision"),
        after_notification=_days(v["after_notification"], f"{where}.after_notification"),
        after_retrieval=_days(v["after_retrieval"], f"{where}.after_retrieval"),
        roll_to_working_day=v["roll_to_working_day"],
        retrieval_deadline=deadline,
        notify_by=_days(v["notify_by"], f"{where}.notify_by"),
    )
    if (
        computation.after_provision is None
        and computation.after_notification is None
        and computation.after_retrieval is None
    ):
        raise RuleFileError(f"{where}: at least one way to be deemed notified is needed")
    return computation


def _rule(value: Any, where: str) -> Rule:
    keys = (
        "id",
        "family",
        "jurisdiction",
        "title",
        "source",
        "summary",
        "valid_from",
        "valid_until",
        "kinds",
        "computation",
    )
    v = _obj(value, where, keys)
    rule_id = _name(v["id"], f"{where}.id")
    where = f"rule {rule_id}"
    if not isinstance(v["jurisdiction"], str) or not _COUNTRY.fullmatch(v["jurisdiction"]):
        raise RuleFileError(f"{where}.jurisdiction: an ISO 3166 country code")
    title = v["title"]
    if not isinstance(title, dict) or "en" not in title:
        raise RuleFileError(f"{where}.title: an object of languages with at least 'en'")
    for lang, text in title.items():
        _text(text, f"{where}.title.{lang}")
    source = _obj(v["source"], f"{where}.source", ("citation", "reference"))
    kinds = v["kinds"]
    if (
        not isinstance(kinds, list)
        or not kinds
        or len(set(kinds)) != len(kinds)
        or not set(kinds) <= MESSAGE_KINDS
    ):
        raise RuleFileError(f"{where}.kinds: distinct message kinds of {sorted(MESSAGE_KINDS)}")
    valid_from = _date(v["valid_from"], f"{where}.valid_from")
    valid_until = _date(v["valid_until"], f"{where}.valid_until")
    if valid_from is not None and valid_until is not None and valid_until < valid_from:
        raise RuleFileError(f"{where}: valid_until is before valid_from")
    return Rule(
        id=rule_id,
        family=_name(v["family"], f"{where}.family"),
        jurisdiction=v["jurisdiction"],
        title=dict(title),
        citation=_text(source["citation"], f"{where}.source.citation"),
        reference=_text(source["reference"], f"{where}.source.reference"),
        summary=_text(v["summary"], f"{where}.summary"),
        valid_from=valid_from,
        valid_until=valid_until,
        kinds=tuple(kinds),
        computation=_computation(v["computation"], f"{where}.computation"),
        raw=value,
    )


def _overlap(a: Rule, b: Rule) -> bool:
    a_from, b_from = a.valid_from or date.min, b.valid_from or date.min
    a_until, b_until = a.valid_until or date.max, b.valid_until or date.max
    return a_from <= b_until and b_from <= a_until


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for k, v in pairs:
        if k in result:
            raise RuleFileError(f"duplicate member {k!r}")
        result[k] = v
    return result


def parse_rules(text: str | bytes) -> RuleBook:
    """Parse and validate a rule file; :class:`RuleFileError` names the first problem."""
    try:
        doc = json.loads(text, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as e:
        raise RuleFileError(f"not JSON: {e}") from e
    top = _obj(doc, "rule file", ("v", "caveat", "rules"))
    if top["v"] != 1:
        raise RuleFileError("rule file: v must be 1")
    if not isinstance(top["rules"], list) or not top["rules"]:
        raise RuleFileError("rule file: rules must be a non-empty list")
    rules = tuple(_rule(r, f"rules[{i}]") for i, r in enumerate(top["rules"]))
    seen: dict[str, Rule] = {}
    for r in rules:
        if r.id in seen:
            raise RuleFileError(f"rule {r.id}: id used twice")
        seen[r.id] = r
    book = RuleBook(_text(top["caveat"], "rule file: caveat"), rules)
    for family, versions in book.families.items():
        if len({r.jurisdiction for r in versions}) != 1:
            raise RuleFileError(f"family {family}: versions of different jurisdictions")
        for i, a in enumerate(versions):
            for b in versions[i + 1 :]:
                if _overlap(a, b):
                    raise RuleFileError(f"family {family}: {a.id} and {b.id} overlap in time")
    return book


@functools.cache
def default_rules() -> RuleBook:
    """The rule file shipped in this package (parsed once per process)."""
    text = resources.files("postbox.mailbox.delivery").joinpath("rules.json").read_text("utf-8")
    return parse_rules(text)


#: what an organisation without legal settings uses
DEFAULT_FAMILY: Final = "de-vwvfg-41-2a"
