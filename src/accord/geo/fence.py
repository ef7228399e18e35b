"""Geofences: zones drawn in ATAK or agreed in a GeoJSON file, and which tracks breach them.

Pure: shapes are read from events (:func:`from_event`) or a GeoJSON document
(:func:`from_geojson`); :class:`FenceMonitor` is fed track positions and ``now`` and returns
:class:`Breach` values. The server does not rely on clients' own geofence monitoring (clients
differ, reference drones-federation §B6); ``<__geofence>`` only says that a shape is a fence.

Shapes: ``u-d-f`` (a polygon: ``<link point="lat,lon"/>`` per vertex, in order), ``u-d-r`` (a
rectangle: its four corners the same way) and ``u-d-c-c`` (a circle: ``<shape><ellipse major>``
metres around the event's point), each with ``<__geofence trigger="Entry|Exit|Both"
elevationMonitored minElevation maxElevation>`` (metres, compared with the track's hae).
GeoJSON: a FeatureCollection of Polygon features with properties ``name``, ``trigger``,
``min_alt_m``/``max_alt_m`` and ``start``/``end`` (ISO times: the fence applies only then).

Bad shapes (too many vertices, a self-intersecting polygon, NaN or out-of-range coordinates, a
radius that is no number) are refused with a reason the caller counts.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from accord.cot.errors import MalformedEvent
from accord.cot.model import UNKNOWN_THRESHOLD, CotEvent, ms_from_iso
from accord.cot.xml import parse_fragment
from accord.geo.enu import Plane

FENCE_TYPES = frozenset({"u-d-f", "u-d-r", "u-d-c-c"})
GEOFENCE_TAG = "__geofence"
MAX_VERTICES = 1000  # more is no zone a person drew; checking self-intersection is O(n^2)
MAX_RADIUS_M = 100_000.0
TRIGGERS = ("entry", "exit", "both")


class FenceError(ValueError):
    """A shape that cannot be a fence; the message is the counted reason."""


@dataclass(frozen=True, slots=True)
class Fence:
    """A zone: a polygon (``vertices``, lat/lon degrees) or a circle (``centre``, radius m)."""

    uid: str
    name: str
    trigger: str = "entry"  # entry, exit or both
    vertices: tuple[tuple[float, float], ...] = ()
    centre: tuple[float, float] | None = None
    radius_m: float = 0.0
    min_alt_m: float | None = None
    max_alt_m: float | None = None
    start_s: float | None = None  # the fence applies from ...
    end_s: float | None = None  # ... until
    author: str = ""  # uid of whoever drew it ("" for a file's)
    plane: Plane = field(init=False, compare=False, repr=False)
    _xy: tuple[tuple[float, float], ...] = field(init=False, compare=False, repr=False)
    _reach_m: float = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        origin = self.centre if self.centre is not None else self.vertices[0]
        plane = Plane(*origin)
        xy = tuple(plane.project(lat, lon) for lat, lon in self.vertices)
        reach = self.radius_m if self.centre is not None else max(math.hypot(*p) for p in xy)
        object.__setattr__(self, "plane", plane)
        object.__setattr__(self, "_xy", xy)
        object.__setattr__(self, "_reach_m", reach)

    def active(self, now_s: float) -> bool:
        return (self.start_s is None or now_s >= self.start_s) and (
            self.end_s is None or now_s <= self.end_s
        )

    def contains(self, lat: float, lon: float, alt_m: float | None) -> bool:
        """Whether a position is inside (the altitude band only when both are known)."""
        if alt_m is not None and alt_m < UNKNOWN_THRESHOLD:
            if self.min_alt_m is not None and alt_m < self.min_alt_m:
                return False
            if self.max_alt_m is not None and alt_m > self.max_alt_m:
                return False
        x, y = self.plane.project(lat, lon)
        if math.hypot(x, y) > self._reach_m:
            return False
        if self.centre is not None:
            return True
        inside = False
        points = self._xy
        for (x1, y1), (x2, y2) in zip(points, points[1:] + points[:1], strict=True):
            if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
                inside = not inside
        return inside


# -- reading shapes ----------------------------------------------------------------------------
def coordinate(lat: float, lon: float) -> tuple[float, float]:
    if not (math.isfinite(lat) and math.isfinite(lon)):
        raise FenceError("coordinate not a number")
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        raise FenceError("coordinate out of range")
    return (lat, lon)


def _cross(o: tuple[float, float], a: tuple[float, float], b: tuple[float, float]) -> float:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def _segments_cross(
    p1: tuple[float, float],
    p2: tuple[float, float],
    q1: tuple[float, float],
    q2: tuple[float, float],
) -> bool:
    d1, d2 = _cross(q1, q2, p1), _cross(q1, q2, p2)
    d3, d4 = _cross(p1, p2, q1), _cross(p1, p2, q2)
    return d1 * d2 < 0 and d3 * d4 < 0


def polygon(vertices: Sequence[tuple[float, float]]) -> tuple[tuple[float, float], ...]:
    """Checked vertices (a closing repeat of the first one dropped); FenceError otherwise."""
    points = [coordinate(lat, lon) for lat, lon in vertices]
    if len(points) > 1 and points[0] == points[-1]:
        points.pop()
    if len(points) > MAX_VERTICES:
        raise FenceError("too many vertices")
    if len(points) < 3:
        raise FenceError("fewer than 3 vertices")
    plane = Plane(*points[0])
    xy = [plane.project(lat, lon) for lat, lon in points]
    n = len(xy)
    for i in range(n):
        for j in range(i + 2, n):
            if i == 0 and j == n - 1:
                continue  # adjacent through the closing edge
            if _segments_cross(xy[i], xy[(i + 1) % n], xy[j], xy[(j + 1) % n]):
                raise FenceError("self-intersecting polygon")
    return tuple(points)


def _float(text: str | None) -> float | None:
    if text is None or text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        raise FenceError("altitude not a number") from None
    if not math.isfinite(value):
        raise FenceError("altitude not a number")
    return value


def _trigger(text: str) -> str:
    trigger = text.strip().lower() or "entry"
    if trigger not in TRIGGERS:
        raise FenceError("unknown trigger")
    return trigger


def from_event(event: CotEvent) -> Fence | None:
    """The fence a shape event declares, None if it is no fence; FenceError if it is bad."""
    if event.type not in FENCE_TYPES or GEOFENCE_TAG not in event.detail.xml:
        return None
    try:
        root = parse_fragment(f"<detail>{event.detail.xml}</detail>")
    except MalformedEvent:
        raise FenceError("bad detail") from None
    mark = root.find(GEOFENCE_TAG)
    if mark is None:
        return None
    band = mark.get("elevationMonitored", "true").lower() != "false"
    low = _float(mark.get("minElevation")) if band else None
    high = _float(mark.get("maxElevation")) if band else None
    contact = root.find("contact")
    name = contact.get("callsign", event.uid) if contact is not None else event.uid
    common: dict[str, Any] = {
        "uid": event.uid, "name": name, "trigger": _trigger(mark.get("trigger", "")),
        "min_alt_m": low, "max_alt_m": high,
    }  # fmt: skip
    if event.type == "u-d-c-c":
        ellipse = root.find("shape/ellipse")
        radius = _float(ellipse.get("major")) if ellipse is not None else None
        if radius is None or not 0 < radius <= MAX_RADIUS_M:
            raise FenceError("bad radius")
        centre = coordinate(event.point.lat, event.point.lon)
        return Fence(centre=centre, radius_m=radius, **common)
    points: list[tuple[float, float]] = []
    for link in root.findall("link"):
        text = link.get("point")
        if text is None:
            continue
        parts = text.split(",")
        try:
            points.append((float(parts[0]), float(parts[1])))
        except (ValueError, IndexError):
            raise FenceError("coordinate not a number") from None
    return Fence(vertices=polygon(points), **common)


def from_geojson(data: Mapping[str, Any], source: str) -> list[Fence]:
    """The agreed zones of a GeoJSON FeatureCollection; FenceError names the feature."""
    if data.get("type") != "FeatureCollection" or not isinstance(data.get("features"), list):
        raise FenceError(f"{source}: not a GeoJSON FeatureCollection")
    fences = []
    for index, feature in enumerate(data["features"]):
        where = f"{source}: features[{index}]"
        try:
            geometry = feature["geometry"]
            props = feature.get("properties") or {}
            if geometry["type"] != "Polygon":
                raise FenceError("only Polygon geometries are zones")
            ring = [(float(lat), float(lon)) for lon, lat, *_ in geometry["coordinates"][0]]
            name = str(props.get("name", f"zone {index + 1}"))
            window = [
                ms_from_iso(str(props[key])) / 1000 if key in props else None
                for key in ("start", "end")
            ]
            fences.append(
                Fence(
                    uid=f"{source}#{index}",
                    name=name,
                    trigger=_trigger(str(props.get("trigger", "entry"))),
                    vertices=polygon(ring),
                    min_alt_m=_float(str(props["min_alt_m"])) if "min_alt_m" in props else None,
                    max_alt_m=_float(str(props["max_alt_m"])) if "max_alt_m" in props else None,
                    start_s=window[0],
                    end_s=window[1],
                )
            )
        except FenceError as exc:
            raise FenceError(f"{where}: {exc}") from None
        except (KeyError, IndexError, TypeError, ValueError, AttributeError):
            raise FenceError(f"{where}: not a Polygon feature with [lon, lat] positions") from None
    return fences


# -- monitoring --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Breach:
    """Track ``track`` entered or left fence ``fence`` (what its trigger asks to report)."""

    fence: Fence
    track: str
    kind: str  # "entry" or "exit"
    lat: float
    lon: float


class FenceMonitor:
    """Which track is inside which fence; see the module docstring."""

    def __init__(self) -> None:
        self.fences: dict[str, Fence] = {}
        self._inside: dict[str, set[str]] = {}  # fence uid -> tracks inside
        self.dropped: Counter[str] = Counter()

    def put(self, fence: Fence) -> None:
        """Add or replace a fence (a redrawn shape: who is inside is judged again)."""
        self.fences[fence.uid] = fence
        self._inside.pop(fence.uid, None)

    def replace_file_fences(self, fences: Iterable[Fence], prefix: str = "") -> None:
        """Drop the fences whose uid starts with ``prefix`` (a file's) and put ``fences``."""
        for uid in [u for u in self.fences if prefix and u.startswith(prefix)]:
            self.remove(uid)
        for fence in fences:
            self.put(fence)

    def remove(self, uid: str) -> bool:
        self._inside.pop(uid, None)
        return self.fences.pop(uid, None) is not None

    def check(
        self, track: str, lat: float, lon: float, alt_m: float | None, now_s: float
    ) -> list[Breach]:
        """A new position of ``track``: the breaches it makes."""
        if not all(math.isfinite(v) for v in (lat, lon, now_s)) or abs(lat) > 90 or abs(lon) > 180:
            self.dropped["bad position"] += 1
            return []
        breaches = []
        for uid, fence in self.fences.items():
            inside_now = fence.active(now_s) and fence.contains(lat, lon, alt_m)
            inside = self._inside.setdefault(uid, set())
            was = track in inside
            if inside_now == was:
                continue
            if inside_now:
                inside.add(track)
                kind = "entry"
            else:
                inside.discard(track)
                kind = "exit"
            if fence.trigger in (kind, "both"):
                breaches.append(Breach(fence, track, kind, lat, lon))
        return breaches

    def forget(self, track: str) -> None:
        for inside in self._inside.values():
            inside.discard(track)
