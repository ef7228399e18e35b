"""Areas, distances and grid cells."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accord.policy.geo import (
    M_PER_DEG,
    _in_ring,
    _unwrapped,
    contains,
    distance_m,
    grid_cell,
    in_polygon,
)
from accord.policy.model import Circle, Polygon

SQUARE = Polygon(((47.1, 7.9), (47.1, 8.2), (46.9, 8.2), (46.9, 7.9)))
# A box from 170 E to 170 W across the antimeridian, written in the natural order.
DATELINE = Polygon(((-10.0, 170.0), (-10.0, -170.0), (10.0, -170.0), (10.0, 170.0)))


def test_one_degree_of_latitude_is_about_111_km() -> None:
    assert distance_m(0, 0, 1, 0) == pytest.approx(M_PER_DEG)
    assert distance_m(0, 0, 1, 0) == pytest.approx(111_195, abs=1)


def test_distance_across_the_antimeridian_is_short() -> None:
    assert distance_m(0, 179.99, 0, -179.99) == pytest.approx(0.02 * M_PER_DEG)


@pytest.mark.parametrize(
    ("lat", "lon", "inside"),
    [(47.0, 8.0, True), (47.2, 8.0, False), (47.0, 8.3, False), (46.95, 7.91, True)],
)
def test_points_in_and_out_of_a_polygon(lat: float, lon: float, inside: bool) -> None:
    assert in_polygon(lat, lon, SQUARE) is inside


@pytest.mark.parametrize(
    ("lat", "lon", "inside"),
    [
        (0.0, 180.0, True),
        (0.0, -180.0, True),
        (0.0, 175.0, True),
        (0.0, -175.0, True),
        (0.0, 0.0, False),
        (0.0, 165.0, False),
        (0.0, -165.0, False),
        (11.0, 179.0, False),
    ],
)
def test_a_polygon_across_the_antimeridian(lat: float, lon: float, inside: bool) -> None:
    assert in_polygon(lat, lon, DATELINE) is inside


def test_a_circle_holds_points_within_its_radius() -> None:
    base = Circle(47.0, 8.0, 500.0)
    assert contains(base, 47.0, 8.0)
    assert contains(base, 47.004, 8.0)  # ~445 m north
    assert not contains(base, 47.005, 8.0)  # ~556 m north


def test_a_circle_across_the_antimeridian() -> None:
    assert contains(Circle(0.0, 180.0, 1000.0), 0.0, -179.995)


def test_a_grid_cell_holds_its_point_and_is_about_the_size_asked() -> None:
    cell = grid_cell(47.0123, 8.0456, 100.0)
    assert cell.south <= 47.0123 < cell.north
    assert cell.west <= 8.0456 < cell.east
    assert distance_m(cell.south, cell.lon, cell.north, cell.lon) == pytest.approx(100, rel=0.01)
    assert distance_m(cell.south, cell.west, cell.south, cell.east) == pytest.approx(100, rel=0.01)
    assert cell.radius_m == pytest.approx(70.7, rel=0.02)


def test_nearby_points_snap_to_the_same_centre() -> None:
    a = grid_cell(47.01231, 8.04561, 1000.0)
    b = grid_cell(47.01232, 8.04562, 1000.0)
    assert (a.lat, a.lon) == (b.lat, b.lon)


def test_cells_at_the_poles_and_the_antimeridian_stay_in_range() -> None:
    for lat, lon in ((90.0, 180.0), (-90.0, -180.0), (89.9999, 0.0), (0.0, 180.0)):
        cell = grid_cell(lat, lon, 5000.0)
        assert -90.0 <= cell.lat <= 90.0
        assert -180.0 <= cell.lon <= 180.0
        assert distance_m(lat, lon, cell.lat, cell.lon) <= cell.radius_m


_lat = st.floats(-90, 90)
_lon = st.floats(-180, 180)


@given(lat=_lat, lon=_lon, clat=_lat, clon=_lon, radius=st.floats(0, 3e7))
def test_the_circle_latitude_precheck_never_changes_the_answer(
    lat: float, lon: float, clat: float, clon: float, radius: float
) -> None:
    circle = Circle(clat, clon, radius)
    assert contains(circle, lat, lon) == (distance_m(lat, lon, clat, clon) <= radius)


@given(
    lat=_lat,
    lon=_lon,
    vertices=st.lists(st.tuples(_lat, _lon), min_size=3, max_size=8),
)
def test_the_polygon_latitude_and_longitude_bounds_never_change_the_answer(
    lat: float, lon: float, vertices: list[tuple[float, float]]
) -> None:
    polygon = Polygon(tuple(vertices))
    ring = _unwrapped(polygon.vertices)
    plain = any(_in_ring(lat, lon + shift, ring) for shift in (0.0, 360.0, -360.0))
    assert in_polygon(lat, lon, polygon) == plain
    assert in_polygon(lat, lon, polygon) == plain  # the cached ring gives the same
