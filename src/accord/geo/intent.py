"""Flight intents: a drone's mission (an ATAK route) as a 4D volume, compared before flight.

Pure. A route event (``b-m-r``, one ``<link point="lat,lon">`` per waypoint, as the MAVLink
bridge sends a mission) becomes an :class:`Intent`: a corridor ``corridor_m`` either side of
its legs, flown at ``speed_mps`` from when the route was first seen, each leg's time window
widened by ``margin_s`` (a plan is not a schedule). Two intents *conflict* when two of their
legs come within both corridors of each other while their windows overlap
(:func:`intersect`, with where and when). The own drone's live track leaving its own intent's
corridor is *non-conforming* (:func:`off_corridor_m`).

A route re-sent unchanged keeps its first-seen time; a changed one starts afresh.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

from accord.cot.errors import MalformedEvent
from accord.cot.model import CotEvent
from accord.cot.xml import parse_fragment
from accord.geo.enu import Plane
from accord.geo.fence import FenceError, coordinate

ROUTE_TYPE = "b-m-r"
MAX_WAYPOINTS = 1000
CORRIDOR_M = 50.0  # either side of a leg
SPEED_MPS = 10.0  # planned ground speed when the mission says none
MARGIN_S = 120.0  # each leg's window is widened by this either side


@dataclass(frozen=True, slots=True)
class Intent:
    uid: str  # the route's uid
    name: str  # its callsign ("sim-1 mission")
    waypoints: tuple[tuple[float, float], ...]
    start_s: float
    corridor_m: float = CORRIDOR_M
    speed_mps: float = SPEED_MPS
    margin_s: float = MARGIN_S

    def legs(self, plane: Plane) -> list[tuple[tuple[float, float], tuple[float, float], float]]:
        """Each leg as (from, to) in ``plane`` and the time it starts (s)."""
        points = [plane.project(lat, lon) for lat, lon in self.waypoints]
        out, t = [], self.start_s
        for a, b in itertools.pairwise(points):
            out.append((a, b, t))
            t += math.dist(a, b) / self.speed_mps
        return out

    @property
    def end_s(self) -> float:
        plane = Plane(*self.waypoints[0])
        legs = self.legs(plane)
        if not legs:
            return self.start_s
        a, b, t = legs[-1]
        return t + math.dist(a, b) / self.speed_mps


def waypoints_of(event: CotEvent) -> tuple[tuple[float, float], ...]:
    """The route's waypoints; FenceError (a counted reason) when they are bad."""
    try:
        root = parse_fragment(f"<detail>{event.detail.xml}</detail>")
    except MalformedEvent:
        raise FenceError("bad detail") from None
    points = []
    for link in root.findall("link"):
        text = link.get("point")
        if text is None:
            continue
        parts = text.split(",")
        try:
            lat, lon = float(parts[0]), float(parts[1])
        except (ValueError, IndexError):
            raise FenceError("coordinate not a number") from None
        points.append(coordinate(lat, lon))
    if len(points) > MAX_WAYPOINTS:
        raise FenceError("too many waypoints")
    if len(points) < 2:
        raise FenceError("fewer than 2 waypoints")
    return tuple(points)


Xy = tuple[float, float]


def _to_segment(p: Xy, q1: Xy, q2: Xy) -> tuple[float, Xy]:
    """Distance from p to segment q1-q2 and the nearest point on it."""
    dx, dy = q2[0] - q1[0], q2[1] - q1[1]
    length2 = dx * dx + dy * dy
    f = 0.0 if length2 == 0 else ((p[0] - q1[0]) * dx + (p[1] - q1[1]) * dy) / length2
    f = max(0.0, min(1.0, f))
    q = (q1[0] + f * dx, q1[1] + f * dy)
    return math.dist(p, q), q


def _closest(a1: Xy, a2: Xy, b1: Xy, b2: Xy) -> tuple[float, Xy]:
    """Distance between segments a and b, and a point between them where they are closest."""
    candidates = []
    for p, q1, q2 in ((a1, b1, b2), (a2, b1, b2), (b1, a1, a2), (b2, a1, a2)):
        d, q = _to_segment(p, q1, q2)
        candidates.append((d, ((p[0] + q[0]) / 2, (p[1] + q[1]) / 2)))
    d, point = min(candidates)
    if _cross_segments(a1, a2, b1, b2):
        # Where they cross: a1 + s (a2 - a1), with s from the two cross products.
        rx, ry = a2[0] - a1[0], a2[1] - a1[1]
        qx, qy = b2[0] - b1[0], b2[1] - b1[1]
        s = ((b1[0] - a1[0]) * qy - (b1[1] - a1[1]) * qx) / (rx * qy - ry * qx)
        return 0.0, (a1[0] + s * rx, a1[1] + s * ry)
    return d, point


def _cross_segments(a1: Xy, a2: Xy, b1: Xy, b2: Xy) -> bool:
    def side(o: Xy, p: Xy, q: Xy) -> float:
        return (p[0] - o[0]) * (q[1] - o[1]) - (p[1] - o[1]) * (q[0] - o[0])

    return side(b1, b2, a1) * side(b1, b2, a2) < 0 and side(a1, a2, b1) * side(a1, a2, b2) < 0


@dataclass(frozen=True, slots=True)
class Meeting:
    """Where (lat, lon) and when (from, to, s) two intents meet."""

    lat: float
    lon: float
    from_s: float
    to_s: float
    distance_m: float


def intersect(a: Intent, b: Intent) -> Meeting | None:
    """The first place and time the two intents' volumes overlap, or None."""
    plane = Plane(*a.waypoints[0])
    reach = a.corridor_m + b.corridor_m
    found: Meeting | None = None
    for a1, a2, ta in a.legs(plane):
        la = math.dist(a1, a2) / a.speed_mps
        for b1, b2, tb in b.legs(plane):
            lb = math.dist(b1, b2) / b.speed_mps
            lo = max(ta - a.margin_s, tb - b.margin_s)
            hi = min(ta + la + a.margin_s, tb + lb + b.margin_s)
            if lo > hi:
                continue
            d, (x, y) = _closest(a1, a2, b1, b2)
            if d > reach:
                continue
            if found is None or lo < found.from_s:
                lat, lon = plane.inverse(x, y)
                found = Meeting(lat, lon, lo, hi, d)
    return found


def off_corridor_m(intent: Intent, lat: float, lon: float) -> float:
    """How far outside its corridor a position is (0 inside)."""
    plane = Plane(*intent.waypoints[0])
    p = plane.project(lat, lon)
    nearest = min(_to_segment(p, a1, a2)[0] for a1, a2, _ in intent.legs(plane))
    return max(0.0, nearest - intent.corridor_m)
