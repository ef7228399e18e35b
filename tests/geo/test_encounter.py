"""One sample of a pair: DAIDALUS's level from t_in, early alerting, widening, CPA point."""

from __future__ import annotations

import dataclasses
import math

import pytest

from accord.geo.config import SeparationConfig
from accord.geo.encounter import evaluate, raw_level
from accord.geo.enu import EARTH_RADIUS_M
from accord.geo.track import Track

CONFIG = SeparationConfig()
M_PER_DEG = EARTH_RADIUS_M * math.pi / 180.0
LAT, LON = 38.55, 68.78


def east_of(metres: float, **kw: object) -> Track:
    lon = LON + metres / (M_PER_DEG * math.cos(math.radians(LAT)))
    track = Track("b", 0.0, LAT, lon, 100.0, track_deg=270.0, speed_mps=10.0)
    return dataclasses.replace(track, **kw)


OWN = Track("a", 0.0, LAT, LON, 100.0, 90.0, 10.0, own=True)


@pytest.mark.parametrize(
    ("t_in", "held", "level"),
    [
        (None, (False, False, False), 0),
        (0.0, (False, False, False), 3),
        (24.9, (False, False, False), 2),
        (25.0, (False, False, False), 1),  # strictly below the alerting time
        (30.0, (False, True, False), 2),  # warning already shown: kept below 35 s
        (35.0, (False, True, False), 1),
        (44.9, (False, False, False), 1),
        (45.0, (False, False, False), 0),
        (50.0, (True, False, False), 1),  # caution kept below 55 s
        (55.0, (True, False, False), 0),
    ],
)
def test_levels_from_time_to_loss(
    t_in: float | None, held: tuple[bool, bool, bool], level: int
) -> None:
    assert raw_level(t_in, CONFIG, held) == level


def test_head_on_pair_at_one_kilometre() -> None:
    # closing at 20 m/s: entry when 150 m apart, 42.5 s from now
    enc = evaluate(OWN, east_of(1000.0), 0.0, CONFIG)
    assert enc.t_in_s == pytest.approx(42.5, abs=0.01)
    assert enc.t_out_s == pytest.approx(57.5, abs=0.01)
    assert enc.cpa_s == pytest.approx(50.0, abs=0.01)
    assert enc.cpa_m == pytest.approx(0.0, abs=0.5)
    assert enc.horizontal_m == pytest.approx(1000.0, abs=0.01)
    assert enc.raw_level == 1
    assert not enc.loss
    # the closest approach is 500 m east of the ownship's position now
    cpa_lat, cpa_lon = enc.cpa_point()
    assert cpa_lat == pytest.approx(LAT, abs=1e-6)
    assert (cpa_lon - LON) * M_PER_DEG * math.cos(math.radians(LAT)) == pytest.approx(
        500.0, abs=0.5
    )


def test_both_tracks_are_dead_reckoned_to_the_same_instant() -> None:
    # the intruder's report is 10 s older than the ownship's: it is 100 m further west now
    other = dataclasses.replace(east_of(1100.0), time_s=-10.0, track_deg=270.0)
    config = dataclasses.replace(CONFIG, max_age_s=20.0, age_accel_mps2=0.0)
    enc = evaluate(OWN, other, 0.0, config)
    assert enc.horizontal_m == pytest.approx(1000.0, abs=0.05)


def test_uncertainty_widens_the_cylinder_for_both_tracks() -> None:
    own = dataclasses.replace(OWN, ce_m=10.0, le_m=5.0)
    other = east_of(1000.0, ce_m=20.0, le_m=9999999.0)
    enc = evaluate(own, other, 0.0, CONFIG)
    assert enc.volume_h_m == pytest.approx(150.0 + 2 * 10.0 + 2 * 20.0)
    assert enc.volume_v_m == pytest.approx(30.0 + 2 * 5.0 + 2 * 20.0)
    assert enc.t_in_s == pytest.approx((1000.0 - 210.0) / 20.0, abs=0.01)


def test_vertical_separation_keeps_a_pair_clear() -> None:
    enc = evaluate(OWN, east_of(1000.0, alt_m=131.0), 0.0, CONFIG)
    assert enc.t_in_s is None
    assert enc.raw_level == 0
    assert enc.vertical_m == pytest.approx(31.0)
