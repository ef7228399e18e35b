"""decide(): which rule decides, deny by default, always_withhold first, delay, rate limit."""

from __future__ import annotations

from dataclasses import replace

import pytest

from accord.cot.model import Point
from accord.policy import apply
from accord.policy.apply import (
    ALWAYS_RULE,
    DEFAULT_RULE,
    VALIDITY_RULE,
    Delay,
    Outcome,
    PolicyState,
    Release,
    Withhold,
    decide,
)
from accord.policy.parse import decode_policy
from tests.policy.helpers import ELSEWHERE, IN_BASE, IN_REGION, NOW_MS, event, policy


def released(decision: object) -> Release:
    assert isinstance(decision, Release), decision
    return decision


def withheld(decision: object) -> Withhold:
    assert isinstance(decision, Withhold), decision
    return decision


def test_an_empty_policy_denies_everything() -> None:
    deny = decode_policy('name = "deny"\npartner = "x"\n')
    state = PolicyState()
    decision = withheld(decide(event(), deny, NOW_MS, state))
    assert decision.rule == DEFAULT_RULE
    assert state.counters.get(DEFAULT_RULE, Outcome.WITHHOLD) == 1


def test_an_event_no_rule_matches_is_withheld() -> None:
    assert withheld(decide(event("a-n-G"), policy(), NOW_MS, PolicyState())).rule == DEFAULT_RULE


@pytest.mark.parametrize(
    ("type_", "rule"),
    [
        ("a-f-A-M-H-Q", "uas"),
        ("a-f-A-M-H-Q-r", "uas"),
        ("a-f-G-U-C", None),  # delayed, see below
        ("a-h-G", "hostile"),
    ],
)
def test_type_globs_pick_the_rule(type_: str, rule: str | None) -> None:
    decision = decide(event(type_), policy(), NOW_MS, PolicyState())
    if rule is None:
        assert isinstance(decision, Delay)
    else:
        assert released(decision).rule == rule


def test_a_f_star_matches_every_friendly_type_and_nothing_else() -> None:
    p = decode_policy('name = "n"\npartner = "p"\n[[rule]]\nname = "f"\ntypes = ["a-f-*"]\n')
    for t in ("a-f-G", "a-f-A-M-H-Q", "a-f-G-U-C-I"):
        assert isinstance(decide(event(t), p, NOW_MS, PolicyState()), Release)
    for t in ("a-h-G", "a-f", "b-a-f-G"):
        assert isinstance(decide(event(t), p, NOW_MS, PolicyState()), Withhold)


def test_areas_and_not_areas_use_the_original_position() -> None:
    p = policy()
    assert released(decide(event(point=IN_REGION), p, NOW_MS, PolicyState())).rule == "uas"
    # In the base (inside the region too): not_area stops the rule; nothing else matches.
    assert withheld(decide(event(point=IN_BASE), p, NOW_MS, PolicyState())).rule == DEFAULT_RULE
    assert withheld(decide(event(point=ELSEWHERE), p, NOW_MS, PolicyState())).rule == DEFAULT_RULE


def test_a_withhold_rule_stops_later_rules() -> None:
    p = policy()
    decision = withheld(decide(event("a-h-G", IN_BASE), p, NOW_MS, PolicyState()))
    assert decision.rule == "hostile-in-base"
    assert released(decide(event("a-h-G", ELSEWHERE), p, NOW_MS, PolicyState())).rule == "hostile"


def test_max_age_is_measured_from_the_event_time() -> None:
    p = policy()
    old = event(time_ms=NOW_MS - 11_000)
    assert withheld(decide(old, p, NOW_MS, PolicyState())).rule == DEFAULT_RULE
    young = event(time_ms=NOW_MS - 10_000)
    assert released(decide(young, p, NOW_MS, PolicyState())).rule == "uas"


def test_always_withhold_beats_every_rule() -> None:
    p = decode_policy(
        'name = "n"\npartner = "p"\n[area.all]\npolygon = [[-80, -179], [-80, 179], [80, 179],'
        ' [80, -179]]\n[always_withhold]\ntypes = ["b-t-f*"]\n[[rule]]\nname = "everything"\n'
    )
    decision = withheld(decide(event("b-t-f"), p, NOW_MS, PolicyState()))
    assert decision.rule == ALWAYS_RULE
    assert isinstance(decide(event("b-t-x"), p, NOW_MS, PolicyState()), Release)


def test_always_withheld_areas_beat_every_rule() -> None:
    p = decode_policy(
        'name = "n"\npartner = "p"\n[area.base]\ncircle = {lat = 47, lon = 8, radius_m = 500}\n'
        '[always_withhold]\nareas = ["base"]\n[[rule]]\nname = "everything"\n'
    )
    assert withheld(decide(event(point=IN_BASE), p, NOW_MS, PolicyState())).rule == ALWAYS_RULE
    assert isinstance(decide(event(point=IN_REGION), p, NOW_MS, PolicyState()), Release)


def test_outside_its_validity_a_policy_releases_nothing() -> None:
    p = replace(policy(), valid_from_ms=NOW_MS + 1, valid_until_ms=NOW_MS + 10)
    assert withheld(decide(event(), p, NOW_MS, PolicyState())).rule == VALIDITY_RULE
    assert released(decide(event(), p, NOW_MS + 5, PolicyState())).rule == "uas"
    assert withheld(decide(event(), p, NOW_MS + 10, PolicyState())).rule == VALIDITY_RULE


def test_a_delayed_rule_holds_the_event_until_its_time_plus_delay() -> None:
    p, state = policy(), PolicyState()
    sa = event("a-f-G-U-C", ELSEWHERE)
    decision = decide(sa, p, NOW_MS, state)
    assert decision == Delay(NOW_MS + 30_000, "ground")
    assert isinstance(decide(sa, p, NOW_MS + 29_999, state), Delay)
    out = released(decide(sa, p, NOW_MS + 30_000, state)).event
    # time and start stay the true ones; stale moves by the delay so the partner sees it live.
    assert (out.time, out.start) == (sa.time, sa.start)
    assert out.stale == sa.stale + 30_000
    assert state.counters.get("ground", Outcome.DELAY) == 2
    assert state.counters.get("ground", Outcome.RELEASE) == 1


def test_the_rate_limit_releases_one_event_per_uid_per_interval() -> None:
    p, state = policy(), PolicyState()
    assert isinstance(decide(event(), p, NOW_MS, state), Release)
    limited = withheld(decide(event(time_ms=NOW_MS + 500), p, NOW_MS + 500, state))
    assert limited.outcome is Outcome.RATE_LIMIT
    # Another uid has its own budget; the first uid is free again after the interval.
    assert isinstance(decide(event(uid="uas-2"), p, NOW_MS + 500, state), Release)
    assert isinstance(decide(event(time_ms=NOW_MS + 1000), p, NOW_MS + 1000, state), Release)
    assert state.counters.get("uas", Outcome.RATE_LIMIT) == 1
    assert state.counters.get("uas", Outcome.RELEASE) == 3


def test_pruning_forgets_only_expired_releases() -> None:
    state = PolicyState(last_release_ms={("r", "a"): 0, ("r", "b"): 900})
    state.prune(1000, 500)
    assert state.last_release_ms == {("r", "b"): 900}


def test_every_decision_is_counted_by_rule_and_outcome() -> None:
    p, state = policy(), PolicyState()
    events = [
        event(),
        event("b-t-f"),
        event("a-n-G"),
        event("a-h-G", IN_BASE),
        event("a-f-G-U-C", ELSEWHERE),
        event(time_ms=NOW_MS),
    ]
    for e in events:
        decide(e, p, NOW_MS, state)
    assert state.counters.total() == len(events)
    assert dict(state.counters.counts) == {
        ("uas", Outcome.RELEASE): 1,
        ("uas", Outcome.RATE_LIMIT): 1,
        (ALWAYS_RULE, Outcome.WITHHOLD): 1,
        (DEFAULT_RULE, Outcome.WITHHOLD): 1,
        ("hostile-in-base", Outcome.WITHHOLD): 1,
        ("ground", Outcome.DELAY): 1,
    }


def test_released_events_are_encoded_afresh() -> None:
    out = released(decide(event(), policy(), NOW_MS, PolicyState())).event
    assert out.raw == b""
    assert out.raw_format is None


def test_pseudonymising_without_any_key_is_an_api_error() -> None:
    p = replace(policy(), secret=None)
    with pytest.raises(ValueError, match="no secret"):
        decide(event(), p, NOW_MS, PolicyState())
    assert isinstance(decide(event(), p, NOW_MS, PolicyState(), key=b"k" * 32), Release)


def test_an_unknown_position_is_still_a_position() -> None:
    # 0,0 is what the UAS Tool sends before GPS lock: it is judged like any other point.
    assert withheld(decide(event(point=Point()), policy(), NOW_MS, PolicyState()))


def test_rule_selection_by_type_stays_bounded_and_decides_as_the_rules_say(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Types come from clients: the per-type table is cleared when full, never grows past it,
    # and a type decided again after a clear is decided the same way.
    monkeypatch.setattr(apply, "TYPE_TABLE_TYPES", 8)
    p = policy()
    state = PolicyState()
    for i in range(50):
        assert withheld(decide(event(f"x-{i}"), p, NOW_MS, state)).rule == DEFAULT_RULE
        assert withheld(decide(event(f"t-x-{i}"), p, NOW_MS, state)).rule == ALWAYS_RULE
        uas = event(f"a-f-A-M-H-Q-{i}", uid=f"uas-{i}")  # a uid each: no rate limit
        assert released(decide(uas, p, NOW_MS, state)).rule == "uas"
        assert len(apply._TYPE_TABLES[id(p)][1]) <= 8
