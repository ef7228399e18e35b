"""explain(): a trace a person can follow."""

from __future__ import annotations

from accord.policy.explain import explain
from tests.policy.helpers import ELSEWHERE, IN_BASE, NOW_MS, event, policy


def test_the_trace_lists_each_rule_tried_and_why_it_did_not_match() -> None:
    text = explain(event(point=IN_BASE), policy(), NOW_MS)
    assert "rule uas: point inside not_area base" in text
    assert "rule spi: type a-f-A-M-H-Q matches none of b-m-p-s-p-i" in text
    assert "=> default: no rule matches: deny by default" in text
    assert "decision: WITHHOLD ((default))" in text


def test_a_release_shows_the_transforms_and_the_frame() -> None:
    text = explain(event("a-h-G", ELSEWHERE), policy(), NOW_MS)
    assert "=> rule hostile: matches" in text
    assert "decision: RELEASE by rule hostile" in text
    assert "  - pseudonymise uid" in text
    assert text.splitlines()[-1].startswith("<event ")


def test_always_withhold_is_shown_as_deciding() -> None:
    text = explain(event("b-t-f"), policy(), NOW_MS)
    assert "=> always_withhold: type b-t-f is always withheld" in text
