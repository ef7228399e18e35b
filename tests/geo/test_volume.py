"""Uncertainty widens the volume: k x sigma, unknown is not zero, age, staleness, precision."""

from __future__ import annotations

import dataclasses

import pytest

from accord.geo.config import SeparationConfig
from accord.geo.enu import Plane
from accord.geo.track import Track
from accord.geo.volume import at, horizontal_base_m, vertical_base_m

CONFIG = SeparationConfig(k_sigma=2.0, unknown_ce_m=20.0, unknown_le_m=15.0)
BARE = Track("a", 100.0, 38.55, 68.78, 120.0, 90.0, 10.0, 2.0)
PLANE = Plane(38.55, 68.78)


def test_no_errors_given_is_the_bare_cylinder() -> None:
    state = at(BARE, PLANE, 100.0, CONFIG)
    assert (state.widen_h_m, state.widen_v_m) == (0.0, 0.0)
    assert (state.x, state.y, state.z) == pytest.approx((0.0, 0.0, 120.0), abs=1e-9)


def test_ce_and_le_are_one_sigma_times_k() -> None:
    track = dataclasses.replace(BARE, ce_m=5.0, le_m=4.0)
    assert horizontal_base_m(track, CONFIG) == 10.0
    assert vertical_base_m(track, CONFIG) == 8.0


def test_unknown_errors_are_not_zero() -> None:
    track = dataclasses.replace(BARE, ce_m=9999999.0, le_m=9999999.0)
    assert horizontal_base_m(track, CONFIG) == 40.0
    assert vertical_base_m(track, CONFIG) == 30.0


def test_release_precision_replaces_the_inflated_ce() -> None:
    # coarsened to a 100 m cell: ce was raised to the cell's size; counted once, as a bound
    coarse = dataclasses.replace(BARE, ce_m=100.0, precision_m=100.0)
    assert horizontal_base_m(coarse, CONFIG) == 100.0  # not 100 + 2 x 100
    # a ce larger than the precision was not made by the coarsening: it counts as well
    poor = dataclasses.replace(BARE, ce_m=150.0, precision_m=100.0)
    assert horizontal_base_m(poor, CONFIG) == 100.0 + 300.0
    unknown = dataclasses.replace(BARE, ce_m=9999999.0, precision_m=9999999.0)
    assert horizontal_base_m(unknown, CONFIG) == 20.0


def test_a_report_is_dead_reckoned_and_its_volume_grows_with_age() -> None:
    state = at(BARE, PLANE, 104.0, CONFIG)  # 4 s old, flying east at 10 m/s, climbing 2
    assert (state.x, state.y, state.z) == pytest.approx((40.0, 0.0, 128.0), abs=1e-6)
    assert state.widen_h_m == pytest.approx(0.5 * 2.0 * 16.0)
    assert state.widen_v_m == pytest.approx(0.5 * 1.0 * 16.0)


def test_a_stale_report_loses_its_velocity_and_becomes_a_disc() -> None:
    state = at(BARE, PLANE, 110.0, CONFIG)  # 10 s old > max_age_s 5
    assert (state.vx, state.vy, state.vz) == (0.0, 0.0, 0.0)
    assert (state.x, state.y) == pytest.approx((0.0, 0.0), abs=1e-9)
    assert state.widen_h_m == pytest.approx(10.0 * 10.0)
    assert state.widen_v_m == pytest.approx(2.0 * 10.0)


def test_no_usable_speed_is_a_disc_growing_at_the_assumed_speed() -> None:
    track = dataclasses.replace(BARE, speed_mps=9999999.0)
    state = at(track, PLANE, 102.0, CONFIG)
    assert (state.vx, state.vy) == (0.0, 0.0)
    assert state.widen_h_m == pytest.approx(2.0 * CONFIG.unknown_speed_mps)
