"""Closed-form loss of separation for a cylinder, and CPA, against hand-worked cases."""

from __future__ import annotations

import math

import pytest

from accord.geo.cylinder import Relative, cpa, violation_interval

H, V, T = 150.0, 30.0, 60.0


def test_head_on_enters_when_the_gap_closes_to_h() -> None:
    # 1000 m apart, closing at 20 m/s, 20 m lateral offset, same altitude
    rel = Relative(1000.0, 20.0, 0.0, -20.0, 0.0, 0.0)
    t_in, t_out = violation_interval(rel, H, V, T) or (None, None)
    x_edge = math.sqrt(H * H - 20.0 * 20.0)
    assert t_in == pytest.approx((1000.0 - x_edge) / 20.0)
    assert t_out == pytest.approx((1000.0 + x_edge) / 20.0)
    assert cpa(rel) == pytest.approx((50.0, 20.0))


def test_inside_now_is_entry_at_zero() -> None:
    rel = Relative(100.0, 0.0, 10.0, 5.0, 0.0, 0.0)
    interval = violation_interval(rel, H, V, T)
    assert interval == pytest.approx((0.0, 10.0))


def test_horizontal_and_vertical_must_both_hold() -> None:
    # horizontally through the middle, but 40 m above all the time: no loss
    assert violation_interval(Relative(500.0, 0.0, 40.0, -10.0, 0.0, 0.0), H, V, T) is None
    # vertically inside all the time, horizontally never within H
    assert violation_interval(Relative(500.0, 200.0, 0.0, -10.0, 0.0, 0.0), H, V, T) is None


def test_a_climb_enters_the_vertical_band_later_than_the_horizontal() -> None:
    # horizontally inside from t = 0, 90 m below and closing 3 m/s vertically: in at 20 s
    rel = Relative(0.0, 50.0, -90.0, 0.0, 0.0, 3.0)
    assert violation_interval(rel, H, V, T) == pytest.approx((20.0, 40.0))


def test_entry_beyond_the_lookahead_is_no_conflict_and_the_exit_is_capped() -> None:
    assert violation_interval(Relative(2000.0, 0.0, 0.0, -20.0, 0.0, 0.0), H, V, T) is None
    interval = violation_interval(Relative(1300.0, 0.0, 0.0, -20.0, 0.0, 0.0), H, V, T)
    assert interval == pytest.approx((57.5, 60.0))


def test_no_relative_motion_is_inside_forever_or_never() -> None:
    assert violation_interval(Relative(10.0, 0.0, 0.0, 0.0, 0.0, 0.0), H, V, T) == (0.0, T)
    assert violation_interval(Relative(151.0, 0.0, 0.0, 0.0, 0.0, 0.0), H, V, T) is None


def test_a_tangent_pass_and_a_past_conflict_are_no_conflict() -> None:
    assert violation_interval(Relative(-500.0, 150.0, 0.0, 10.0, 0.0, 0.0), H, V, T) is None
    # diverging: the interval lies before now
    assert violation_interval(Relative(400.0, 0.0, 0.0, 10.0, 0.0, 0.0), H, V, T) is None


def test_diverging_pairs_have_their_cpa_now() -> None:
    assert cpa(Relative(300.0, 400.0, 0.0, 3.0, 4.0, 0.0)) == pytest.approx((0.0, 500.0))
    assert cpa(Relative(300.0, 400.0, 0.0, 0.0, 0.0, 0.0)) == pytest.approx((0.0, 500.0))


def test_roots_stay_accurate_when_closing_from_far_away() -> None:
    # 50 km away at 300 m/s: the stable formula keeps the entry time to the microsecond
    rel = Relative(50_000.0, 0.0, 0.0, -300.0, 0.0, 0.0)
    interval = violation_interval(rel, H, V, 1000.0)
    assert interval is not None
    assert interval[0] == pytest.approx((50_000.0 - H) / 300.0, abs=1e-6)
    rel = Relative(-50_000.0, 0.0, 0.0, 300.0, 0.0, 0.0)
    interval = violation_interval(rel, H, V, 1000.0)
    assert interval is not None
    assert interval[0] == pytest.approx((50_000.0 - H) / 300.0, abs=1e-6)
