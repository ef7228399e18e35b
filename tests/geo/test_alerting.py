"""DAIDALUS's alerting logic: M of N, seeding, persistence, restart after a gap, off."""

from __future__ import annotations

from accord.geo.alerting import AlertFilter, new_filter
from accord.geo.config import SeparationConfig

CONFIG = SeparationConfig()  # 2 of 4, hysteresis 5 s, persistence 4 s


def run(raws: list[int], config: SeparationConfig = CONFIG, dt: float = 1.0) -> list[int]:
    state, shown = new_filter(config), []
    for i, raw in enumerate(raws):
        state = state.apply(raw, i * dt)
        shown.append(state.shown())
    return shown


def test_a_level_present_at_the_first_sample_shows_at_once() -> None:
    assert run([2, 2, 2]) == [2, 2, 2]


def test_a_new_level_shows_one_sample_after_it_appears() -> None:
    assert run([0, 0, 1, 1, 1]) == [0, 0, 0, 1, 1]


def test_a_single_positive_sample_is_not_shown() -> None:
    assert run([0, 0, 3, 0, 0, 0]) == [0, 0, 0, 0, 0, 0]


def test_the_highest_level_that_m_samples_reach_is_shown() -> None:
    assert run([0, 0, 1, 3, 2, 0, 0, 0, 0, 0]) == [0, 0, 0, 1, 2, 2, 2, 2, 0, 0]


def test_a_raised_level_is_held_for_the_persistence_time() -> None:
    # raised at t=3 (2 of 4), the raw level drops at t=4: M of N alone would keep it to t=5,
    # persistence keeps it until 4 s after it was raised
    shown = run([0, 0, 2, 2, 0, 0, 0, 0, 0, 0])
    assert shown == [0, 0, 0, 2, 2, 2, 2, 0, 0, 0]


def test_a_gap_longer_than_the_hysteresis_time_restarts_the_history() -> None:
    state = new_filter(CONFIG).apply(0, 0.0).apply(0, 1.0)
    state = state.apply(2, 7.0)  # 6 s later: seeded with M copies, shows at once
    assert state.shown() == 2
    kept = new_filter(CONFIG).apply(0, 0.0).apply(0, 1.0).apply(2, 5.0)
    assert kept.shown() == 0


def test_a_sample_at_or_before_the_last_one_restarts_the_history() -> None:
    state = new_filter(CONFIG).apply(0, 0.0).apply(0, 1.0).apply(1, 1.0)
    assert state.shown() == 1


def test_holds_says_whether_a_level_was_shown_at_an_earlier_sample() -> None:
    state = new_filter(CONFIG).apply(1, 0.0)
    assert state.holds(1, 1.0)
    assert not state.holds(2, 1.0)
    assert not state.holds(1, 0.0)


def test_with_m_and_n_zero_the_raw_level_is_shown() -> None:
    raw = SeparationConfig(alerting_m=0, alerting_n=0, hysteresis_s=0.0, persistence_s=0.0)
    assert run([0, 3, 0, 1, 2, 0], raw) == [0, 3, 0, 1, 2, 0]


def test_three_of_four_needs_three_samples_at_a_level() -> None:
    three = SeparationConfig(alerting_m=3, alerting_n=4, persistence_s=0.0)
    assert run([1, 1, 0, 0, 0, 0], three) == [1, 1, 0, 0, 0, 0]  # seeded with 3 ones
    assert run([0, 0, 0, 2, 2, 1, 0], three) == [0, 0, 0, 0, 0, 1, 1]


def test_the_state_is_a_value() -> None:
    before = new_filter(CONFIG).apply(1, 0.0)
    after = before.apply(0, 1.0)
    assert isinstance(after, AlertFilter)
    assert before.last_time == 0.0
    assert after.last_time == 1.0
