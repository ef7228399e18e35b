"""What the web map is shown of alerts and shapes, beside :mod:`accord.domain.picture`.

:func:`alert_fields` adds to a feature what the alert list and the map's overlays need, read
from the CoT the coordination monitor makes (``accord.geo.cot``) and the shapes ATAK draws:

- ``"alert"``: for a separation alert (``b-a-o-c`` with ``<__separation>``), an intent or
  conformance alert (``b-a-o-c`` with ``<__intent_conflict>``/``<__conformance>``), a geofence
  breach (``b-a-g`` with ``<__breach>``) and their cancels (``b-a-o-can``, same uid):
  ``{kind: separation|breach|intent, text, level, pair: [uids], cancel, partner, origin}``;
- ``"shape"``: ``{"polygon": [[lon, lat], ...]}`` (``u-d-f``, ``u-d-r``: ``<link point>``
  vertices) or ``{"circle_m": r}`` (``u-d-c-c``: ``<shape><ellipse major>`` around the point),
  with ``"conflict": true`` for a separation alert's conflict zone (``<__conflict>``);
- ``"fence"``: ``{"trigger", "name"}`` when the shape carries ``<__geofence>``.

It runs for every event a web session is handed, so any other type returns ``{}`` before any
parsing. A value that is not what it should be leaves its field out; nothing here raises.
Pure (the layers below ``accord.geo``: the tag names are the wire's, repeated here).
"""

from __future__ import annotations

import math
from typing import Any

from lxml import etree

from accord.cot.errors import MalformedEvent
from accord.cot.model import CotEvent
from accord.cot.xml import parse_fragment

ALERT_TYPE = "b-a-o-c"
CANCEL_TYPE = "b-a-o-can"
BREACH_TYPE = "b-a-g"
POLYGON_TYPES = frozenset({"u-d-f", "u-d-r"})
CIRCLE_TYPE = "u-d-c-c"
ALERT_TYPES = frozenset({ALERT_TYPE, CANCEL_TYPE, BREACH_TYPE})
SHAPE_TYPES = POLYGON_TYPES | {CIRCLE_TYPE}
MAX_SHAPE_VERTICES = 1000  # as a fence may have (accord.geo.fence.MAX_VERTICES)
MAX_CIRCLE_M = 100_000.0
MAX_ALERT_TEXT_CHARS = 500
MAX_NAME_CHARS = 120
MAX_UID_CHARS = 200


def _cut(value: str | None, limit: int) -> str:
    return (value or "")[:limit]


def _alert(event: CotEvent, detail: etree._Element) -> dict[str, Any] | None:
    emergency = detail.find("emergency")
    separation = detail.find("__separation")
    breach = detail.find("__breach")
    conflict = detail.find("__conflict")
    intent = detail.find("__intent_conflict")
    if intent is None:
        intent = detail.find("__conformance")
    link = detail.find("link")
    own = link.get("uid", "") if link is not None else ""
    text = (emergency.text or "").strip() if emergency is not None else ""
    cancel = event.type == CANCEL_TYPE or (
        emergency is not None and emergency.get("cancel", "").lower() == "true"
    )
    kind: str
    level = ""
    pair: list[str] = []
    partner = origin = ""
    if breach is not None:
        kind = "breach"
        pair = [breach.get("track", "") or own]
        partner = breach.get("track_partner", "") or breach.get("fence_partner", "")
        origin = breach.get("origin", "")
        level = "breach"
    elif separation is not None or conflict is not None:
        kind = "separation"
        if separation is not None:
            level = separation.get("level", "")
            pair = [separation.get("a", ""), separation.get("b", "")]
        else:
            pair = [own]
        if conflict is not None:
            partner, origin = conflict.get("partner", ""), conflict.get("origin", "")
    elif intent is not None:
        kind = "intent"
        pair = [intent.get("a", "") or own, intent.get("b", "")]
        level = "intent"
    elif event.type == BREACH_TYPE:
        kind, level, pair = "breach", "breach", [own]
    elif emergency is not None:
        kind, pair = "separation", [own]  # an alert without our machine detail (ATAK's own)
    else:
        return None
    if not text:
        remarks = detail.find("remarks")
        text = (remarks.text or "").strip() if remarks is not None else ""
    return {
        "kind": kind,
        "text": _cut(text, MAX_ALERT_TEXT_CHARS),
        "level": _cut(level, 20),
        "pair": [_cut(uid, MAX_UID_CHARS) for uid in pair if uid],
        "cancel": cancel,
        "partner": _cut(partner, MAX_NAME_CHARS),
        "origin": _cut(origin, MAX_NAME_CHARS),
    }


def _coordinate(lat: float, lon: float) -> bool:
    return math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90 and -180 <= lon <= 180


def _shape(event: CotEvent, detail: etree._Element) -> dict[str, Any] | None:
    if event.type == CIRCLE_TYPE:
        ellipse = detail.find("shape/ellipse")
        if ellipse is None:
            return None
        try:
            radius = float(ellipse.get("major", ""))
        except ValueError:
            return None
        if not (math.isfinite(radius) and 0 < radius <= MAX_CIRCLE_M):
            return None
        return {"circle_m": radius}
    ring: list[list[float]] = []
    for link in detail.iter("link"):
        point = link.get("point")
        if point is None:
            continue
        parts = point.split(",")
        try:
            lat, lon = float(parts[0]), float(parts[1])
        except (ValueError, IndexError):
            return None
        if not _coordinate(lat, lon) or len(ring) >= MAX_SHAPE_VERTICES:
            return None
        ring.append([lon, lat])
    if len(ring) < 3:
        return None
    if ring[0] != ring[-1]:
        ring.append(ring[0])  # GeoJSON rings are closed
    return {"polygon": ring}


def _fence(event: CotEvent, detail: etree._Element) -> dict[str, Any] | None:
    mark = detail.find("__geofence")
    if mark is None:
        return None
    contact = detail.find("contact")
    name = contact.get("callsign", "") if contact is not None else ""
    return {
        "trigger": _cut(mark.get("trigger", "") or "Entry", 20),
        "name": _cut(name or event.uid, MAX_NAME_CHARS),
    }


def alert_fields(event: CotEvent) -> dict[str, Any]:
    """The alert, shape and fence fields of one event's feature; ``{}`` for other types."""
    kind = event.type
    if kind not in ALERT_TYPES and kind not in SHAPE_TYPES:
        return {}
    try:
        detail = parse_fragment(f"<detail>{event.detail.xml}</detail>")
    except MalformedEvent:
        return {}
    fields: dict[str, Any] = {}
    if kind in ALERT_TYPES:
        alert = _alert(event, detail)
        if alert is not None:
            fields["alert"] = alert
        return fields
    shape = _shape(event, detail)
    if shape is None:
        return fields
    if detail.find("__conflict") is not None:
        shape["conflict"] = True  # a separation alert's conflict zone, not a drawn shape
    fields["shape"] = shape
    fence = _fence(event, detail)
    if fence is not None:
        fields["fence"] = fence
    return fields
