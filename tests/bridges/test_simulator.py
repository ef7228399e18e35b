"""The simulator's encounter scenarios: two vehicles on a collision course."""

from __future__ import annotations

import math

import pytest

from accord.bridges.simulator import SCENARIOS, Fleet, encounter


@pytest.mark.parametrize("name", SCENARIOS)
def test_an_encounters_two_vehicles_meet_over_the_origin_at_the_meeting_time(name: str) -> None:
    one, two = encounter(name, (46.95, 7.45), meet_s=30.0)
    for vehicle in (one, two):
        lat, lon, *_ = vehicle.state(30.0)
        assert (lat, lon) == pytest.approx((46.95, 7.45))
    assert one.height_at(30.0) == two.height_at(30.0)
    start_gap = math.dist(one.state(0.0)[:2], two.state(0.0)[:2]) * 111_320
    vertical_gap = abs(one.height_at(0.0) - two.height_at(0.0))
    assert start_gap > 100 or vertical_gap > 50  # apart at the start: the alert comes first
    frames = Fleet(vehicles=(one, two)).frames(0.0)
    assert len(frames) == 2
    assert all(frames)


def test_an_unknown_encounter_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(ValueError, match="headon, crossing, overtaking, vertical"):
        encounter("sideways")
