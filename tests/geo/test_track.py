"""What makes a track unusable, named; unknown values are kept unknown."""

from __future__ import annotations

import dataclasses

import pytest

from accord.geo.track import Track, track_problem

GOOD = Track("a", 0.0, 38.55, 68.78, 120.0, 90.0, 12.0, 1.0, 5.0, 3.0, None, True)


def test_a_plausible_track_has_no_problem() -> None:
    assert track_problem(GOOD) is None
    assert GOOD.velocity_known


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"lat_deg": float("nan")}, "not a number"),
        ({"speed_mps": float("inf")}, "not a number"),
        ({"ce_m": float("nan")}, "not a number"),
        ({"lat_deg": 91.0}, "coordinates out of range"),
        ({"lon_deg": -180.5}, "coordinates out of range"),
        ({"alt_m": 40_000.0}, "altitude out of range"),
        ({"speed_mps": 900.0}, "absurd speed"),
        ({"speed_mps": -1.0}, "absurd speed"),
        ({"vertical_speed_mps": -200.0}, "absurd vertical speed"),
        ({"ce_m": -1.0}, "error out of range"),
        ({"precision_m": 500_000.0}, "error out of range"),
    ],
)
def test_bad_values_are_named(change: dict[str, float], reason: str) -> None:
    assert track_problem(dataclasses.replace(GOOD, **change)) == reason


def test_unknown_sentinels_are_accepted_as_unknown() -> None:
    track = dataclasses.replace(GOOD, speed_mps=9999999.0, ce_m=9999999.0, le_m=999999.0)
    assert track_problem(track) is None
    assert not track.velocity_known
    assert not dataclasses.replace(GOOD, track_deg=9999999.0).velocity_known
    assert not dataclasses.replace(GOOD, track_deg=None).velocity_known
