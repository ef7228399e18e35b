"""Geometry for release rules on a spherical Earth: areas, distances, grid cells.

A sphere of the IUGG mean radius is accurate to ~0.5 % against WGS-84, far below the grid
sizes (tens to thousands of metres) a release policy works with, and it keeps every function
here a few lines of closed-form arithmetic.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

from accord.policy.model import Circle, Polygon, Shape

EARTH_RADIUS_M = 6_371_008.8  # IUGG mean radius
M_PER_DEG = EARTH_RADIUS_M * math.pi / 180.0  # along a meridian, ~111 195 m


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle (haversine) distance in metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


@functools.lru_cache(maxsize=256)
def _unwrapped(vertices: tuple[tuple[float, float], ...]) -> tuple[tuple[float, float], ...]:
    # An edge never spans more than 180 degrees of longitude: a jump larger than that crosses
    # the antimeridian, so the next vertex is moved by 360 to keep the ring continuous.
    out = [vertices[0]]
    for lat, lon in vertices[1:]:
        prev = out[-1][1]
        while lon - prev > 180.0:
            lon -= 360.0
        while lon - prev < -180.0:
            lon += 360.0
        out.append((lat, lon))
    return tuple(out)


def _in_ring(lat: float, lon: float, ring: tuple[tuple[float, float], ...]) -> bool:
    # Even-odd ray casting in the (lon, lat) plane.
    inside = False
    j = len(ring) - 1
    for i in range(len(ring)):
        yi, xi = ring[i]
        yj, xj = ring[j]
        if (yi > lat) != (yj > lat) and lon < (xj - xi) * (lat - yi) / (yj - yi) + xi:
            inside = not inside
        j = i
    return inside


# Per polygon (held by its entry, so that its id is not reused while cached): the unwrapped
# ring, its latitude bounds and the longitude shifts whose images of the point can fall inside
# it. Hashing the vertex tuple for an lru_cache cost more than the ray casting of a small
# polygon.
_RINGS: dict[
    int, tuple[Polygon, tuple[tuple[float, float], ...], float, float, tuple[float, ...]]
] = {}
MAX_CACHED_POLYGONS = 1024


def _ring(
    polygon: Polygon,
) -> tuple[tuple[tuple[float, float], ...], float, float, tuple[float, ...]]:
    hit = _RINGS.get(id(polygon))
    if hit is None or hit[0] is not polygon:
        if len(_RINGS) >= MAX_CACHED_POLYGONS:
            _RINGS.clear()
        ring = _unwrapped(polygon.vertices)
        lats = [lat for lat, _ in ring]
        lons = [lon for _, lon in ring]
        # A point's longitude is in [-180, 180]; its image shifted by s can be inside only
        # if lon + s can reach the ring's longitude span: a ring within [-180, 180] (most)
        # needs the point itself only.
        west, east = min(lons), max(lons)
        shifts = tuple(s for s in (0.0, 360.0, -360.0) if west <= 180.0 + s and east >= s - 180.0)
        hit = _RINGS[id(polygon)] = (polygon, ring, min(lats), max(lats), shifts)
    return hit[1], hit[2], hit[3], hit[4]


def in_polygon(lat: float, lon: float, polygon: Polygon) -> bool:
    """Whether the point lies inside; edges are straight in lat/lon (rhumb-like, not geodesic)."""
    ring, south, north, shifts = _ring(polygon)
    if lat < south or lat >= north:
        return False  # no edge crosses the point's latitude: the ray casting says outside
    # The unwrapped ring may extend past +-180; test the point at each of its images.
    if len(shifts) == 1:
        return _in_ring(lat, lon, ring)
    return any(_in_ring(lat, lon + shift, ring) for shift in shifts)


# Slack on the latitude pre-check of a circle, far beyond any rounding of the haversine.
_CIRCLE_SLACK_M = 1.0


def in_circle(lat: float, lon: float, circle: Circle) -> bool:
    # The great-circle distance is at least the distance along the meridian: a point farther
    # north or south than the radius is outside, without the trigonometry.
    if abs(lat - circle.lat) * M_PER_DEG > circle.radius_m + _CIRCLE_SLACK_M:
        return False
    return distance_m(lat, lon, circle.lat, circle.lon) <= circle.radius_m


def contains(shape: Shape, lat: float, lon: float) -> bool:
    if isinstance(shape, Circle):
        return in_circle(lat, lon, shape)
    return in_polygon(lat, lon, shape)


class Cell(NamedTuple):
    """One grid cell: bounds and centre in degrees, and the farthest a point in it can be (a
    tuple: one is made per coarsened release, and a frozen dataclass cost twice as much)."""

    south: float
    west: float
    north: float
    east: float
    lat: float
    lon: float
    radius_m: float  # centre-to-corner distance: the largest error snapping can introduce


def _divisions(span_deg: float, size_deg: float) -> int:
    return max(1, math.floor(span_deg / size_deg))


def grid_cell(lat: float, lon: float, size_m: float) -> Cell:
    """The cell of a grid about ``size_m`` metres wide that holds the point.

    Rows divide 180 degrees of latitude evenly; each row divides 360 degrees of longitude
    evenly, with cells at least ``size_m`` wide at the row's equator-side edge. The grid is fixed
    (no origin at the point), so repeated reports of one position always snap alike and do not
    average out.
    """
    rows, dlat = _rows(size_m)
    row = min(rows - 1, math.floor((lat + 90.0) / dlat))
    south, north, cols, radius = _row(size_m, row)
    dlon = 360.0 / cols
    col = min(cols - 1, math.floor((lon + 180.0) / dlon))
    west = -180.0 + col * dlon
    east = west + dlon
    clat, clon = (south + north) / 2, (west + east) / 2
    return Cell(south, west, north, east, clat, clon, radius)


@functools.lru_cache(maxsize=64)
def _rows(size_m: float) -> tuple[int, float]:
    rows = _divisions(180.0, size_m / M_PER_DEG)
    return rows, 180.0 / rows


@functools.lru_cache(maxsize=4096)
def _row(size_m: float, row: int) -> tuple[float, float, int, float]:
    """South, north, columns and centre-to-corner radius of one row of cells: every cell of a
    row has the same shape, so this is the same for each (and cached: it is the costly part)."""
    _, dlat = _rows(size_m)
    south = -90.0 + row * dlat
    north = south + dlat
    widest = math.cos(math.radians(min(abs(south), abs(north)) if south * north > 0 else 0.0))
    cols = _divisions(360.0, size_m / (M_PER_DEG * max(widest, 1e-12)))
    dlon = 360.0 / cols
    clat = (south + north) / 2
    radius = max(distance_m(clat, 0.0, y, x) for y in (south, north) for x in (-dlon / 2, dlon / 2))
    # A point on an edge midway between corners is never farther than a corner in these
    # small cells; near a pole a cell may hold the pole itself.
    if north >= 90.0 or south <= -90.0:
        radius = max(radius, distance_m(clat, 0.0, 90.0 if north >= 90.0 else -90.0, 0.0))
    return south, north, cols, radius
