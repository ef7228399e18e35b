"""The spatial index: neighbours found, far tracks not; moves, removal, antimeridian, poles."""

from __future__ import annotations

import math
import random

import pytest

from accord.geo.grid import M_PER_DEG, Grid


def _distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    p1, p2 = math.radians(a[0]), math.radians(b[0])
    dl = math.radians(b[1] - a[1])
    h = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * M_PER_DEG * 180 / math.pi * math.asin(min(1.0, math.sqrt(h)))


@pytest.mark.parametrize("centre", [(38.55, 68.78), (-60.0, 179.99), (89.9, 0.0), (0.0, -180.0)])
def test_near_finds_every_track_within_the_radius(centre: tuple[float, float]) -> None:
    rng = random.Random(7)
    grid = Grid(2_000.0)
    points: dict[str, tuple[float, float]] = {}
    for i in range(600):
        lat = max(-90.0, min(90.0, centre[0] + rng.uniform(-0.2, 0.2)))
        lon = (centre[1] + rng.uniform(-0.5, 0.5) + 180.0) % 360.0 - 180.0
        points[f"t{i}"] = (lat, lon)
        grid.put(f"t{i}", lat, lon)
    found = set(grid.near(*centre, 5_000.0))
    within = {uid for uid, p in points.items() if _distance_m(centre, p) <= 5_000.0}
    assert within
    assert within <= found
    # and it is a neighbourhood, not everything
    assert len(found) < len(points)


def test_put_moves_and_remove_forgets() -> None:
    grid = Grid(1_000.0)
    grid.put("a", 10.0, 10.0)
    grid.put("a", 10.0, 10.0)  # same cell: nothing changes
    assert list(grid.near(10.0, 10.0, 100.0)) == ["a"]
    grid.put("a", 11.0, 10.0)
    assert list(grid.near(10.0, 10.0, 100.0)) == []
    assert list(grid.near(11.0, 10.0, 100.0)) == ["a"]
    assert "a" in grid
    assert len(grid) == 1
    grid.remove("a")
    grid.remove("a")
    assert "a" not in grid
    assert list(grid.near(11.0, 10.0, 100.0)) == []


def test_a_huge_radius_covers_whole_rows() -> None:
    grid = Grid(50_000.0)
    grid.put("far", 0.0, 179.0)
    assert list(grid.near(0.0, -179.0, 20_000_000.0)) == ["far"]


def test_cell_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="must be greater than 0"):
        Grid(0.0)
