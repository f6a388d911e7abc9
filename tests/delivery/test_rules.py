"""The rule file: what ships, and that a broken rule file is refused with a precise reason."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import date
from importlib import resources
from typing import Any

import pytest

from postbox.mailbox.delivery.clock import DayCount
from postbox.mailbox.delivery.hooks import DEFAULT_COUNTRY
from postbox.mailbox.delivery.rules import RuleFileError, default_rules, parse_rules

SHIPPED: dict[str, Any] = json.loads(
    resources.files("postbox.mailbox.delivery").joinpath("rules.json").read_text("utf-8")
)


def test_the_shipped_rules() -> None:
    book = default_rules()
    assert {"de-vwvfg-41-2a", "de-ozg-9", "de-vwvfg-41-2", "at-zustg-35-6"} <= set(book.families)
    for rule in book.rules:
        assert rule.citation and rule.reference and rule.summary
        assert "decision" in rule.kinds
    main = book.by_id["de-vwvfg-41-2a"]
    assert main.jurisdiction == DEFAULT_COUNTRY
    assert main.computation.after_retrieval == DayCount(1, "calendar")
    deadline = main.computation.retrieval_deadline
    assert (
        deadline is not None
        and deadline.period == DayCount(10)
        and deadline.anchor == "notification"
    )
    ozg = book.by_id["de-ozg-9"].computation
    assert ozg.after_provision == DayCount(3) and ozg.after_retrieval == DayCount(0)
    assert ozg.notify_by == DayCount(0)
    old, new = book.families["de-vwvfg-41-2"]
    assert old.valid_until == date(2024, 12, 31) and new.valid_from == date(2025, 1, 1)
    assert book.by_id["at-zustg-35-6"].computation.after_notification == DayCount(1, "working")
    assert "check" in book.caveat


def _broken(change: Callable[[dict[str, Any]], None]) -> str:
    doc = copy.deepcopy(SHIPPED)
    change(doc)
    return json.dumps(doc)


def _rule(doc: dict[str, Any], i: int = 0) -> dict[str, Any]:
    rule: dict[str, Any] = doc["rules"][i]
    return rule


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda d: d.update(v=2), "v must be 1"),
        (lambda d: d.update(rules=[]), "non-empty"),
        (lambda d: _rule(d).update(extra=1), "unknown ['extra']"),
        (lambda d: _rule(d).pop("kinds"), "missing ['kinds']"),
        (lambda d: _rule(d).update(id="Bad Id"), ".id"),
        (lambda d: _rule(d).update(kinds=["letter"]), ".kinds"),
        (lambda d: _rule(d).update(kinds=[]), ".kinds"),
        (lambda d: _rule(d).update(jurisdiction="Germany"), ".jurisdiction"),
        (lambda d: _rule(d).update(title={"de": "x"}), ".title"),
        (
            lambda d: _rule(d)["source"].update(reference="see https://example.org/vwvfg"),
            "URL-free",
        ),
        (lambda d: _rule(d).update(valid_from="2025-13-01"), "ISO date"),
        (lambda d: _rule(d).update(valid_from="2025-1-1"), "ISO date"),
        (
            lambda d: _rule(d).update(valid_from="2025-01-02", valid_until="2025-01-01"),
            "before valid_from",
        ),
        (lambda d: _rule(d)["computation"].update(after_retrieval=None), "at least one way"),
        (
            lambda d: _rule(d)["computation"].update(
                after_retrieval={"days": -1, "count": "calendar"}
            ),
            ".days",
        ),
        (
            lambda d: _rule(d)["computation"].update(after_retrieval={"days": 1, "count": "bank"}),
            ".count",
        ),
        (
            lambda d: _rule(d)["computation"]["retrieval_deadline"].update(anchor="sending"),
            ".anchor",
        ),
        (lambda d: _rule(d)["computation"].update(roll_to_working_day=1), "true or false"),
        (lambda d: d["rules"].append(copy.deepcopy(_rule(d))), "id used twice"),
        (lambda d: _rule(d, 2).update(valid_until="2025-01-01"), "overlap"),
        (lambda d: _rule(d, 3).update(jurisdiction="AT"), "different jurisdictions"),
    ],
)
def test_a_broken_rule_file_is_refused(
    change: Callable[[dict[str, Any]], None], reason: str
) -> None:
    with pytest.raises(RuleFileError) as caught:
        parse_rules(_broken(change))
    assert reason in str(caught.value)


def test_duplicate_members_and_non_json_are_refused() -> None:
    with pytest.raises(RuleFileError, match="duplicate"):
        parse_rules('{"v":1,"v":1,"caveat":"c","rules":[]}')
    with pytest.raises(RuleFileError, match="not JSON"):
        parse_rules("{")
