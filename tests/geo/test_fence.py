"""Geofences: shapes from ATAK events and GeoJSON, bad shapes refused, breaches on crossing."""

from __future__ import annotations

import dataclasses
import math

import pytest

from accord.cot.model import CotEvent, Detail, Point
from accord.cot.xml import detail_from_xml, parse_fragment
from accord.geo.cot import breach_event
from accord.geo.fence import (
    MAX_VERTICES,
    Fence,
    FenceError,
    FenceMonitor,
    from_event,
    from_geojson,
    polygon,
)

NOW_MS = 1_700_000_000_000
LAT, LON = 47.0, 7.0
DLAT = 100 / 111_320  # 100 m
DLON = 100 / (111_320 * math.cos(math.radians(LAT)))
SQUARE = [(LAT - DLAT, LON - DLON), (LAT - DLAT, LON + DLON), (LAT + DLAT, LON + DLON),
          (LAT + DLAT, LON - DLON)]  # fmt: skip


def shape(kind: str, detail: str, point: Point | None = None) -> CotEvent:
    return CotEvent(
        uid="F1", type=kind, how="h-e", time=NOW_MS, start=NOW_MS, stale=NOW_MS + 10**7,
        point=point or Point(LAT, LON), detail=detail_from_xml(detail),
    )  # fmt: skip


def links(points: list[tuple[float, float]]) -> str:
    return "".join(f'<link point="{lat},{lon}"/>' for lat, lon in points)


GEOFENCE = '<__geofence trigger="Both" minElevation="0" maxElevation="500"/>'


def test_a_drawn_polygon_with_a_geofence_detail_is_a_fence() -> None:
    fence = from_event(shape("u-d-f", f'<contact callsign="Zone"/>{links(SQUARE)}{GEOFENCE}'))
    assert fence is not None
    assert (fence.uid, fence.name, fence.trigger) == ("F1", "Zone", "both")
    assert (fence.min_alt_m, fence.max_alt_m) == (0.0, 500.0)
    assert len(fence.vertices) == 4
    assert fence.contains(LAT, LON, 100.0)
    assert not fence.contains(LAT, LON, 600.0)  # above the band
    assert not fence.contains(LAT, LON, -10.0)  # below it
    assert fence.contains(LAT, LON, None)  # no altitude: the band is not judged
    assert not fence.contains(LAT + 2 * DLAT, LON, 100.0)
    assert not fence.contains(LAT + 0.5 * DLAT, LON + 1.5 * DLON, 100.0)  # inside the reach


def test_a_circle_and_a_rectangle_are_fences_and_a_plain_shape_is_not() -> None:
    circle = from_event(
        shape("u-d-c-c", '<shape><ellipse major="50" minor="50" angle="360"/></shape>'
              '<__geofence trigger="Exit" elevationMonitored="false" maxElevation="5"/>')
    )  # fmt: skip
    assert circle is not None
    assert circle.trigger == "exit"
    assert circle.max_alt_m is None  # elevation not monitored: no band
    assert circle.contains(LAT + 0.4 * DLAT, LON, 1000.0)
    assert not circle.contains(LAT + 0.6 * DLAT, LON, 1000.0)
    rectangle = from_event(shape("u-d-r", links(SQUARE) + "<__geofence/>"))
    assert rectangle is not None
    assert rectangle.trigger == "entry"  # the default
    assert rectangle.name == "F1"  # no callsign: named by its uid
    assert from_event(shape("u-d-f", links(SQUARE))) is None  # no __geofence
    assert from_event(shape("u-d-f", links(SQUARE) + "<__geofenced/>")) is None
    assert from_event(shape("b-m-p-s-m", "<__geofence/>")) is None


@pytest.mark.parametrize(
    ("kind", "detail", "reason"),
    [
        ("u-d-f", links(SQUARE[:2]) + GEOFENCE, "fewer than 3 vertices"),
        ("u-d-f", links([SQUARE[0], SQUARE[2], SQUARE[1], SQUARE[3]]) + GEOFENCE,
         "self-intersecting polygon"),
        ("u-d-f", links([(LAT, LON), (91.0, LON), (LAT, LON + 1)]) + GEOFENCE,
         "coordinate out of range"),
        ("u-d-f", links([(LAT, LON), (math.nan, LON), (LAT, LON + 1)]) + GEOFENCE,
         "coordinate not a number"),
        ("u-d-f", '<link point="x,y"/>' + GEOFENCE, "coordinate not a number"),
        ("u-d-f", links(SQUARE) + '<__geofence trigger="Sideways"/>', "unknown trigger"),
        ("u-d-f", links(SQUARE) + '<__geofence minElevation="high"/>', "altitude not a number"),
        ("u-d-f", links(SQUARE) + '<__geofence minElevation="inf"/>', "altitude not a number"),
        ("u-d-c-c", "<__geofence/>", "bad radius"),
        ("u-d-c-c", '<shape><ellipse major="-3"/></shape><__geofence/>', "bad radius"),
    ],
)  # fmt: skip
def test_bad_shapes_are_refused_with_a_reason(kind: str, detail: str, reason: str) -> None:
    with pytest.raises(FenceError, match=reason):
        from_event(shape(kind, detail))


def test_too_many_vertices_and_a_broken_detail_are_refused() -> None:
    ring = [
        (LAT + DLAT * math.sin(2 * math.pi * i / (MAX_VERTICES + 1)),
         LON + DLON * math.cos(2 * math.pi * i / (MAX_VERTICES + 1)))
        for i in range(MAX_VERTICES + 1)
    ]  # fmt: skip
    with pytest.raises(FenceError, match="too many vertices"):
        polygon(ring)
    broken = dataclasses.replace(shape("u-d-f", ""), detail=Detail(xml="<__geofence"))
    with pytest.raises(FenceError, match="bad detail"):
        from_event(broken)


def test_a_closed_ring_loses_its_repeated_vertex_and_links_without_points_are_skipped() -> None:
    assert len(polygon([*SQUARE, SQUARE[0]])) == 4
    fence = from_event(shape("u-d-f", '<link uid="x"/>' + links(SQUARE) + "<__geofence/>"))
    assert fence is not None
    assert len(fence.vertices) == 4


def geojson(props: dict[str, object], geometry: dict[str, object] | None = None) -> dict:  # type: ignore[type-arg]
    ring = [[lon, lat] for lat, lon in SQUARE]
    return {
        "type": "FeatureCollection",
        "features": [{
            "type": "Feature", "properties": props,
            "geometry": geometry or {"type": "Polygon", "coordinates": [ring]},
        }],
    }  # fmt: skip


def test_geojson_zones_have_a_name_band_and_time_window() -> None:
    (fence,) = from_geojson(
        geojson({"name": "Airfield", "trigger": "both", "min_alt_m": 0, "max_alt_m": 150,
                 "start": "2023-11-14T22:00:00Z", "end": "2023-11-14T23:00:00Z"}),
        "zones.geojson",
    )  # fmt: skip
    assert (fence.uid, fence.name, fence.trigger) == ("zones.geojson#0", "Airfield", "both")
    assert (fence.min_alt_m, fence.max_alt_m) == (0.0, 150.0)
    assert fence.active(NOW_MS / 1000)  # 22:13:20
    assert not fence.active(NOW_MS / 1000 - 3600)
    assert not fence.active(NOW_MS / 1000 + 3600)
    (plain,) = from_geojson(geojson({}), "z")
    assert (plain.name, plain.trigger, plain.start_s, plain.min_alt_m) == (
        "zone 1",
        "entry",
        None,
        None,
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"type": "Feature"}, "not a GeoJSON FeatureCollection"),
        (geojson({}, {"type": "Point", "coordinates": [7, 47]}), "only Polygon geometries"),
        (geojson({}, {"type": "Polygon", "coordinates": [[[7, 47]]]}), "fewer than 3"),
        (geojson({}, {"type": "Polygon", "coordinates": "x"}), "not a Polygon feature"),
        (geojson({"trigger": "never"}), "unknown trigger"),
    ],
)
def test_bad_geojson_names_the_feature(data: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(FenceError, match=message) as info:
        from_geojson(data, "zones.geojson")
    assert "zones.geojson" in str(info.value)


def test_entry_exit_and_both_report_what_their_trigger_asks() -> None:
    monitor = FenceMonitor()
    for trigger in ("entry", "exit", "both"):
        monitor.put(Fence(uid=trigger, name=trigger, trigger=trigger, vertices=tuple(SQUARE)))
    outside, inside = (LAT + 3 * DLAT, LON), (LAT, LON)
    assert monitor.check("T", *outside, 100.0, 0.0) == []
    entered = monitor.check("T", *inside, 100.0, 1.0)
    assert {(b.fence.uid, b.kind) for b in entered} == {("entry", "entry"), ("both", "entry")}
    assert monitor.check("T", *inside, 100.0, 2.0) == []  # still inside: nothing new
    left = monitor.check("T", *outside, 100.0, 3.0)
    assert {(b.fence.uid, b.kind) for b in left} == {("exit", "exit"), ("both", "exit")}
    monitor.check("T", *inside, 100.0, 4.0)
    monitor.forget("T")  # gone: the next sight inside is an entry again
    assert len(monitor.check("T", *inside, 100.0, 5.0)) == 2


def test_a_redrawn_or_removed_fence_and_file_fences_replaced() -> None:
    monitor = FenceMonitor()
    monitor.put(Fence(uid="f.geojson#0", name="a", vertices=tuple(SQUARE)))
    monitor.put(Fence(uid="drawn", name="b", vertices=tuple(SQUARE)))
    monitor.replace_file_fences([Fence(uid="f.geojson#0", name="new", vertices=tuple(SQUARE))],
                                "f.geojson#")  # fmt: skip
    assert monitor.fences["f.geojson#0"].name == "new"
    assert "drawn" in monitor.fences
    assert monitor.remove("drawn")
    assert not monitor.remove("drawn")


def test_bad_positions_are_dropped_and_counted() -> None:
    monitor = FenceMonitor()
    monitor.put(Fence(uid="f", name="f", vertices=tuple(SQUARE)))
    assert monitor.check("T", math.nan, LON, 0.0, 0.0) == []
    assert monitor.check("T", 95.0, LON, 0.0, 0.0) == []
    assert monitor.dropped["bad position"] == 2


def test_a_breach_alert_links_to_the_track_and_names_fence_and_partners() -> None:
    monitor = FenceMonitor()
    monitor.put(Fence(uid="FENCE", name="No-fly", vertices=tuple(SQUARE)))
    (breach,) = monitor.check("DRONE", LAT, LON, 100.0, 0.0)
    event = breach_event(
        breach, origin="org-a", track_type="a-f-A-M-H-Q", track_callsign="Hawk 2",
        track_partner="org-b", fence_partner="", now_ms=NOW_MS,
    )  # fmt: skip
    assert event.type == "b-a-g"
    root = parse_fragment(f"<detail>{event.detail.xml}</detail>")
    mark = root.find("__breach")
    assert mark is not None
    assert dict(mark.attrib) == {
        "fence": "FENCE", "name": "No-fly", "track": "DRONE", "kind": "entry",
        "track_partner": "org-b", "fence_partner": "", "origin": "org-a",
    }  # fmt: skip
    emergency = root.find("emergency")
    assert emergency is not None
    assert emergency.text == "Hawk 2 entered No-fly"
    link = root.find("link")
    assert link is not None
    assert (link.get("uid"), link.get("relation")) == ("DRONE", "p-p")
    left = dataclasses.replace(breach, kind="exit")
    assert "Hawk 2 left No-fly" in breach_event(
        left, origin="o", track_type="a", track_callsign="Hawk 2", track_partner="",
        fence_partner="", now_ms=NOW_MS,
    ).detail.xml  # fmt: skip
