"""What the web map is shown of an event: the parsed feature, as plain JSON-able values.

The browser never parses CoT. For each event the hub hands a web session, :func:`to_feature`
reads what the map draws (position, course, MIL-STD-2525 symbol code, the drone's sensor and
its footprint, links, video, telemetry, the release marking of a partner's item) and the page
renders it with text APIs only (never as HTML). Pure: the event and ``now`` are passed in.

Units: degrees, metres (heights above the WGS-84 ellipsoid), m/s, epoch milliseconds.

:func:`feature_json` is the same feature as the JSON text the web feed sends, the same text
``json.dumps`` makes of :func:`to_feature` (compact separators), built faster for a track's
report (the common case): what comes from its detail is encoded once per distinct detail text,
the rest of the fields are formatted directly.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from accord.cot.errors import MalformedEvent
from accord.cot.model import UNKNOWN_VALUE, CotEvent
from accord.cot.xml import parse_fragment
from accord.domain.picture_alerts import alert_fields
from accord.domain.routing import CHAT_TYPE, DELETE_TYPE

# Mean Earth radius (IUGG): the footprint is a few km wide, far below where the sphere's
# error (<0.5 %) would show on a map.
EARTH_RADIUS_M = 6_371_008.8
# Arc points of a footprint wedge; 16 keep a 60° arc smooth at any zoom the basemap has.
WEDGE_ARC_POINTS = 16
# A sensor without a range is drawn this long so its bearing shows; marked as not true.
UNKNOWN_RANGE_M = 100.0
MAX_TEXT_CHARS = 2000  # remarks and chat text beyond this are cut (a map popup, not a book)
MAX_ROUTE_POINTS = 500
DETAIL_CACHE_SIZE = 8192  # distinct detail texts kept parsed (a picture's SAs repeat theirs)

# CoT affiliation letter -> 2525C standard identity (position 2 of the SIDC).
_AFFILIATION = {
    "f": "F",
    "h": "H",
    "n": "N",
    "u": "U",
    "a": "A",
    "s": "S",
    "j": "J",
    "k": "K",
    "p": "P",
    "o": "U",
    "x": "U",
}
_DIMENSION = {"G": "G", "A": "A", "S": "S", "U": "U", "F": "F", "P": "P", "X": "Z"}


@functools.lru_cache(maxsize=1024)  # a picture has few distinct types
def sidc_of(cot_type: str) -> str | None:
    """The 15-character MIL-STD-2525C symbol code of an atom (``a-f-G-U-C-I`` ->
    ``SFGPUCI----*****``); None for a type that is not an atom (markers, routes, chat)."""
    parts = cot_type.split("-")
    if len(parts) < 3 or parts[0] != "a":
        return None
    affiliation = _AFFILIATION.get(parts[1].lower(), "U")
    dimension = _DIMENSION.get(parts[2].upper(), "Z")
    function = "".join(p for p in parts[3:] if len(p) == 1 and p.isalpha()).upper()
    return "S" + affiliation + dimension + "P" + function[:6].ljust(6, "-") + "-----"


def destination(
    lat: float, lon: float, bearing_deg: float, distance_m: float
) -> tuple[float, float]:
    """The point ``distance_m`` from (lat, lon) along the great circle at ``bearing_deg``
    (true, clockwise from north); (lat, lon) degrees."""
    phi1, lam1 = math.radians(lat), math.radians(lon)
    theta, delta = math.radians(bearing_deg), distance_m / EARTH_RADIUS_M
    sin_phi2 = math.sin(phi1) * math.cos(delta) + math.cos(phi1) * math.sin(delta) * math.cos(theta)
    phi2 = math.asin(max(-1.0, min(1.0, sin_phi2)))
    lam2 = lam1 + math.atan2(
        math.sin(theta) * math.sin(delta) * math.cos(phi1),
        math.cos(delta) - math.sin(phi1) * sin_phi2,
    )
    return math.degrees(phi2), (math.degrees(lam2) + 540.0) % 360.0 - 180.0


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine) in metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def bearing_deg(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Initial great-circle bearing from the first point to the second, 0-360°."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dl = math.radians(lon2 - lon1)
    y = math.sin(dl) * math.cos(p2)
    x = math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl)
    return math.degrees(math.atan2(y, x)) % 360.0


def wedge(
    lat: float, lon: float, azimuth_deg: float, fov_deg: float, range_m: float
) -> list[list[float]]:
    """A sensor's footprint as a closed GeoJSON ring of [lon, lat]: from the sensor out to
    ``range_m`` across ``fov_deg`` centred on ``azimuth_deg``."""
    fov = max(0.5, min(fov_deg, 359.0))
    ring = [[lon, lat]]
    for i in range(WEDGE_ARC_POINTS + 1):
        bearing = azimuth_deg - fov / 2 + fov * i / WEDGE_ARC_POINTS
        plat, plon = destination(lat, lon, bearing, range_m)
        ring.append([plon, plat])
    ring.append([lon, lat])
    return ring


def _num(el: etree._Element | Mapping[str, str] | None, name: str) -> float | None:
    if el is None:
        return None
    text = el.get(name)
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _text(value: str | None, limit: int = MAX_TEXT_CHARS) -> str:
    return (value or "")[:limit]


def _sensor(
    el: Mapping[str, str] | None, lat: float, lon: float, course: float | None
) -> dict[str, Any] | None:
    if el is None:
        return None
    azimuth = _num(el, "azimuth")
    if azimuth is None:
        azimuth = course
    if azimuth is None:
        return None
    fov = _num(el, "fov") or 10.0
    rng = _num(el, "range")
    true_range = rng is not None and rng > 0
    reach = rng if rng is not None and rng > 0 else UNKNOWN_RANGE_M
    return {
        "azimuth": azimuth % 360.0,
        "fov": fov,
        "range": reach,
        "range_known": true_range,
        "elevation": _num(el, "elevation"),
        "model": _text(el.get("model"), 80),
        "footprint": wedge(lat, lon, azimuth, fov, reach),
    }


def _release(el: Mapping[str, str] | None, ce: float | None) -> dict[str, Any] | None:
    if el is None:
        return None
    precision = _num(el, "precision_m")
    if precision is None:
        precision = ce
    return {
        "partner": _text(el.get("partner"), 120),
        "organisation": _text(el.get("organisation") or el.get("partner"), 120),
        "policy": _text(el.get("policy"), 120),
        "rule": _text(el.get("rule"), 200),
        "version": _text(el.get("version"), 40),
        "precision_m": precision,
    }


def _links(detail: etree._Element) -> tuple[dict[str, str] | None, list[list[float]]]:
    parent: dict[str, str] | None = None
    route: list[list[float]] = []
    for link in detail.iter("link"):
        point = link.get("point")
        if point is not None:
            if len(route) < MAX_ROUTE_POINTS:
                try:
                    lat_s, lon_s, *_ = point.split(",")
                    lat, lon = float(lat_s), float(lon_s)
                except ValueError:
                    continue
                if math.isfinite(lat) and math.isfinite(lon):
                    route.append([lon, lat])
        elif parent is None and link.get("uid"):
            parent = {
                "uid": _text(link.get("uid"), 200),
                "relation": _text(link.get("relation"), 20),
                "type": _text(link.get("type"), 60),
            }
    return parent, route


def _chat(event: CotEvent, detail: etree._Element) -> dict[str, Any] | None:
    chat_el = detail.find("__chat")
    remarks = detail.find("remarks")
    if chat_el is None:
        return None
    source = remarks.get("source", "") if remarks is not None else ""
    sender_uid = ""
    group = chat_el.find("chatgrp")
    if group is not None:
        sender_uid = group.get("uid0", "")
    if not sender_uid and source.startswith("BAO.F.ATAK."):
        sender_uid = source[len("BAO.F.ATAK.") :]
    return {
        "room": _text(chat_el.get("chatroom"), 200),
        "room_id": _text(chat_el.get("id"), 200),
        "from": _text(chat_el.get("senderCallsign"), 120),
        "from_uid": _text(sender_uid, 200),
        "text": _text(remarks.text if remarks is not None else ""),
        "time": event.time,
    }


@dataclass(frozen=True, slots=True)
class _DetailFacts:
    """What the map reads of a ``<detail>`` that does not depend on the point: an SA's detail
    mostly repeats from report to report, so it is parsed once per distinct text."""

    course: float | None = None
    speed: float | None = None
    parent: dict[str, str] | None = None
    route: tuple[tuple[float, float], ...] = ()
    video: str | None = None
    telemetry: dict[str, Any] = field(default_factory=dict)
    remarks: str = ""
    sensor: dict[str, str] | None = None  # the attributes of <sensor>
    release: dict[str, str] | None = None  # the attributes of <__release>


@functools.lru_cache(maxsize=DETAIL_CACHE_SIZE)
def _detail_facts(xml: str) -> _DetailFacts:
    """Parsed once per distinct detail text; callers copy what they hand out."""
    try:
        detail = parse_fragment(f"<detail>{xml}</detail>")
    except MalformedEvent:
        return _DetailFacts()
    # The first child of each tag, read in one pass (as ``find`` would, without nine scans).
    first: dict[object, etree._Element] = {}
    for child in detail:
        first.setdefault(child.tag, child)
    track = first.get("track")
    parent, route = _links(detail) if "<link" in xml else (None, [])
    video, remarks = first.get("__video"), first.get("remarks")
    status, vehicle, radio = first.get("status"), first.get("vehicle"), first.get("_radio")
    telemetry: dict[str, Any] = {}
    battery = _num(status, "battery")
    if battery is not None:
        telemetry["battery_pct"] = battery
    voltage = _num(vehicle, "voltage")
    if voltage is not None:
        telemetry["voltage"] = voltage
    remaining = _num(vehicle, "flightTimeRemaining")
    if remaining is not None:
        telemetry["flight_time_remaining_s"] = remaining
    rssi = _num(radio, "rssi")
    if rssi is not None:
        telemetry["link"] = "lost" if rssi <= 0 else "ok"
    sensor, release = first.get("sensor"), first.get("__release")
    return _DetailFacts(
        course=_num(track, "course"),
        speed=_num(track, "speed"),
        parent=parent,
        route=tuple((lon, lat) for lon, lat in route),
        video=_text(video.get("url"), 500) if video is not None else None,
        telemetry=telemetry,
        remarks=_text(remarks.text if remarks is not None else ""),
        sensor={str(k): str(v) for k, v in sensor.attrib.items()} if sensor is not None else None,
        release={str(k): str(v) for k, v in release.attrib.items()}
        if release is not None
        else None,
    )


def to_feature(event: CotEvent, now_ms: int) -> dict[str, Any]:
    """One event as the map's JSON message: ``{"op": "put", ...}`` for an item to draw,
    ``{"op": "delete", "uid"}`` for a ``t-x-d-d``, ``{"op": "chat", ...}`` for GeoChat."""
    if event.type == DELETE_TYPE:
        target = ""
        try:
            root = parse_fragment(f"<detail>{event.detail.xml}</detail>")
            link = root.find("link")
            target = link.get("uid", "") if link is not None else ""
        except MalformedEvent:
            target = ""
        return {"op": "delete", "uid": target or event.uid}
    if event.type == CHAT_TYPE:
        try:
            detail = parse_fragment(f"<detail>{event.detail.xml}</detail>")
        except MalformedEvent:
            detail = etree.Element("detail")
        chat = _chat(event, detail)
        if chat is not None:
            return {"op": "chat", "uid": event.uid, **chat}
    point = event.point
    ce = None if point.ce >= UNKNOWN_VALUE else point.ce
    facts = _detail_facts(event.detail.xml)
    course = facts.course
    contact = event.detail.contact
    return {
        "op": "put",
        "uid": event.uid,
        "type": event.type,
        "how": event.how,
        "sidc": sidc_of(event.type),
        "callsign": _text(contact.callsign if contact else "", 120),
        "lat": point.lat,
        "lon": point.lon,
        "hae": None if point.hae >= UNKNOWN_VALUE else point.hae,
        "ce": ce,
        "course": course,
        "speed": facts.speed,
        "time": event.time,
        "stale": event.stale,
        "stale_in_ms": event.stale - now_ms,
        "sensor": _sensor(facts.sensor, point.lat, point.lon, course),
        "link": dict(facts.parent) if facts.parent is not None else None,
        "route": [list(p) for p in facts.route],
        "video": facts.video,
        "telemetry": dict(facts.telemetry),
        "remarks": facts.remarks,
        "release": _release(facts.release, ce),
        **alert_fields(event),  # alerts, shapes, geofences (accord.domain.picture_alerts)
    }


# The encoder the web feed's JSON uses (compact, no NaN), and its string escaper (the same C
# function json.dumps applies to every string when ensure_ascii is on, as here).
_encode = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
_string = json.encoder.encode_basestring_ascii


def _number(value: float | None) -> str:
    return "null" if value is None else repr(value)  # json writes a number as its repr


@dataclass(frozen=True, slots=True)
class _DetailJson:
    """A detail's part of a ``put`` feature as JSON text: the fields that depend on the detail
    only, encoded once per distinct detail text (:func:`_detail_json`)."""

    facts: _DetailFacts
    motion: str  # "course":..,"speed":..
    rest: str  # "link":..,"route":..,"video":..,"telemetry":..,"remarks":..


@functools.lru_cache(maxsize=DETAIL_CACHE_SIZE)
def _detail_json(xml: str) -> _DetailJson:
    facts = _detail_facts(xml)
    rest = _encode(
        {
            "link": facts.parent,
            "route": [list(p) for p in facts.route],
            "video": facts.video,
            "telemetry": facts.telemetry,
            "remarks": facts.remarks,
        }
    )
    motion = f'"course":{_number(facts.course)},"speed":{_number(facts.speed)}'
    return _DetailJson(facts, motion, rest[1:-1])


def feature_json(event: CotEvent, now_ms: int) -> str:
    """:func:`to_feature` as compact JSON text, exactly as ``json.dumps`` would write it.

    Raises ValueError for a number that is not finite, as ``json.dumps`` with
    ``allow_nan=False`` does (the decoder never makes such an event)."""
    kind = event.type
    point = event.point
    lat, lon, hae, ce = point.lat, point.lon, point.hae, point.ce
    if (
        kind == DELETE_TYPE
        or kind == CHAT_TYPE
        or not math.isfinite(lat + lon + hae + ce)
        or alert_fields(event)  # an alert or a shape: rare, and {} at once for other types
    ):
        return _encode(to_feature(event, now_ms))
    part = _detail_json(event.detail.xml)
    facts = part.facts
    known_ce = None if ce >= UNKNOWN_VALUE else ce
    sensor = _sensor(facts.sensor, lat, lon, facts.course)
    release = _release(facts.release, known_ce)
    contact = event.detail.contact
    sidc = sidc_of(kind)
    return (
        f'{{"op":"put","uid":{_string(event.uid)},"type":{_string(kind)},'
        f'"how":{_string(event.how)},"sidc":{"null" if sidc is None else _string(sidc)},'
        f'"callsign":{_string(_text(contact.callsign if contact else "", 120))},'
        f'"lat":{lat!r},"lon":{lon!r},"hae":{"null" if hae >= UNKNOWN_VALUE else repr(hae)},'
        f'"ce":{_number(known_ce)},{part.motion},"time":{event.time},"stale":{event.stale},'
        f'"stale_in_ms":{event.stale - now_ms},'
        f'"sensor":{"null" if sensor is None else _encode(sensor)},{part.rest},'
        f'"release":{"null" if release is None else _encode(release)}}}'
    )
