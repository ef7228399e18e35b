"""The tangent plane: DAIDALUS's sphere, exact projection, its derivative and its inverse."""

from __future__ import annotations

import math

import pytest

from accord.geo.enu import EARTH_RADIUS_M, Plane


def test_one_arc_minute_north_is_one_nautical_mile_on_daidalus_sphere() -> None:
    plane = Plane(38.55, 68.78)
    x, y = plane.project(38.55 + 1 / 60, 68.78)
    assert x == pytest.approx(0.0, abs=1e-9)
    # orthographic: R sin(1') is 1852 m less 0.01 mm
    assert y == pytest.approx(EARTH_RADIUS_M * math.sin(math.radians(1 / 60)), rel=1e-12)
    assert y == pytest.approx(1852.0, abs=0.01)


def test_the_centre_projects_to_the_origin() -> None:
    assert Plane(-33.9, 151.2).project(-33.9, 151.2) == pytest.approx((0.0, 0.0), abs=1e-9)


@pytest.mark.parametrize(("lat", "lon"), [(38.56, 68.80), (-45.0, 179.99), (0.0, -0.02)])
def test_inverse_returns_the_projected_point(lat: float, lon: float) -> None:
    plane = Plane(round(lat, 1), round(lon, 1) if abs(lon) < 179 else 179.98)
    back = plane.inverse(*plane.project(lat, lon))
    assert back == pytest.approx((lat, lon), abs=1e-9)


def test_velocity_is_the_derivative_of_the_projection_along_the_motion() -> None:
    plane = Plane(38.55, 68.78)
    lat, lon, track, speed = 38.57, 68.81, 37.0, 25.0
    vx, vy = plane.project_velocity(lat, lon, track, speed)
    # move a short way along the track on the sphere and project both ends
    dt = 0.01
    north = speed * math.cos(math.radians(track)) * dt
    east = speed * math.sin(math.radians(track)) * dt
    lat2 = lat + math.degrees(north / EARTH_RADIUS_M)
    lon2 = lon + math.degrees(east / (EARTH_RADIUS_M * math.cos(math.radians(lat))))
    (x1, y1), (x2, y2) = plane.project(lat, lon), plane.project(lat2, lon2)
    assert vx == pytest.approx((x2 - x1) / dt, abs=1e-5)
    assert vy == pytest.approx((y2 - y1) / dt, abs=1e-5)
    assert math.hypot(vx, vy) == pytest.approx(speed, rel=1e-4)


def test_velocity_at_the_centre_is_track_and_speed_unchanged() -> None:
    vx, vy = Plane(10.0, 20.0).project_velocity(10.0, 20.0, 90.0, 12.0)
    assert (vx, vy) == pytest.approx((12.0, 0.0), abs=1e-12)
