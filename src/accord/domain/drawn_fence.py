"""A geofence drawn on the web map, made into the shape ATAK draws (``u-d-f``).

The browser sends ``{"op": "fence", "name", "trigger", "points": [[lat, lon], ...]}``;
:func:`to_fence` checks it and builds a ``u-d-f`` polygon (``<link point="lat,lon"/>`` per
vertex, in order) with ``<__geofence trigger=...>``, authored by the web session's
:class:`~accord.domain.geochat.Sender`. The hub routes it like any event of that session (to
the user's groups), and the coordination monitor takes it as a fence (``accord.geo.fence``
``from_event``, which also refuses a self-intersecting ring). Pure: ``now`` and the id are
passed in.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from accord.cot.made import made_event
from accord.cot.model import CotEvent, Point, iso_from_ms
from accord.cot.xml import escape_attr
from accord.domain.geochat import WEB_SA_TYPE, Sender

FENCE_TYPE = "u-d-f"
TRIGGERS = ("Entry", "Exit", "Both")
MIN_VERTICES = 3
MAX_VERTICES = 200  # a zone a person clicks; the monitor's own limit is higher
MAX_NAME_CHARS = 80
FENCE_STALE_MS = 365 * 24 * 3600 * 1000  # a drawn zone stays until it is deleted
FENCE_COLOUR = "-1761607936"  # ATAK's ARGB int: a translucent red (0x97FF0000)


class FenceRefused(ValueError):
    """A drawn fence that cannot be sent; says why."""


def _vertex(point: object) -> tuple[float, float]:
    if not isinstance(point, (list, tuple)) or len(point) != 2:
        raise FenceRefused("a vertex is not [lat, lon]")
    lat, lon = point
    if isinstance(lat, bool) or isinstance(lon, bool):
        raise FenceRefused("a coordinate is not a number")
    if not isinstance(lat, (int, float)) or not isinstance(lon, (int, float)):
        raise FenceRefused("a coordinate is not a number")
    lat, lon = float(lat), float(lon)
    if not (math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90 and -180 <= lon <= 180):
        raise FenceRefused("a coordinate is out of range")
    return lat, lon


def to_fence(
    sender: Sender,
    name: object,
    trigger: object,
    points: object,
    now_ms: int,
    fence_id: str,
) -> CotEvent:
    """The ``u-d-f`` of a drawn fence; FenceRefused when a value is not what it must be."""
    if not isinstance(name, str) or not name.strip():
        raise FenceRefused("a fence needs a name")
    name = name.strip()
    if len(name) > MAX_NAME_CHARS:
        raise FenceRefused(f"name longer than {MAX_NAME_CHARS} characters")
    if trigger not in TRIGGERS:
        raise FenceRefused(f"trigger is not one of {', '.join(TRIGGERS)}")
    if not isinstance(points, Sequence) or isinstance(points, (str, bytes)):
        raise FenceRefused("points is not a list")
    if not MIN_VERTICES <= len(points) <= MAX_VERTICES:
        raise FenceRefused(f"a fence has {MIN_VERTICES} to {MAX_VERTICES} vertices")
    vertices = [_vertex(p) for p in points]
    if len(set(vertices)) < MIN_VERTICES:
        raise FenceRefused(f"a fence has {MIN_VERTICES} distinct vertices")
    lat = sum(v[0] for v in vertices) / len(vertices)
    lon = sum(v[1] for v in vertices) / len(vertices)
    a = escape_attr
    links = "".join(f'<link point="{v[0]:.7f},{v[1]:.7f}"/>' for v in vertices)
    detail = (
        f'<contact callsign="{a(name)}"/>'
        f'<creator uid="{a(sender.uid)}" callsign="{a(sender.callsign)}" type="{WEB_SA_TYPE}"'
        f' time="{iso_from_ms(now_ms)}"/>'
        f"{links}"
        f'<__geofence trigger="{trigger}" monitor="All" elevationMonitored="false"'
        ' tracking="false" boundingSphere="0"/>'
        f'<strokeColor value="{FENCE_COLOUR}"/><strokeWeight value="3.0"/>'
        f'<fillColor value="{FENCE_COLOUR}"/><labels_on value="true"/>'
    )
    return made_event(
        f"fence.{sender.uid}.{fence_id}",
        FENCE_TYPE,
        Point(lat, lon),
        detail,
        now_ms=now_ms,
        stale_ms=FENCE_STALE_MS,
        how="h-e",
    )
