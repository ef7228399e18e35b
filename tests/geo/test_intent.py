"""Flight intents: a mission's corridor and time window, meetings of two, conformance."""

from __future__ import annotations

import dataclasses
import math

import pytest

from accord.cot.model import CotEvent, Detail, Point
from accord.cot.xml import detail_from_xml, parse_fragment
from accord.geo.cot import Pair, conformance_event, intent_conflict_event
from accord.geo.fence import FenceError
from accord.geo.intent import MAX_WAYPOINTS, Intent, intersect, off_corridor_m, waypoints_of

LAT, LON = 47.0, 7.0
M_LAT = 1 / 111_320
M_LON = 1 / (111_320 * math.cos(math.radians(LAT)))
T0 = 1_700_000_000.0


def at(north_m: float, east_m: float) -> tuple[float, float]:
    return (LAT + north_m * M_LAT, LON + east_m * M_LON)


def route(points: list[tuple[float, float]]) -> CotEvent:
    links = "".join(
        f'<link uid="r.{i}" point="{lat},{lon}"/>' for i, (lat, lon) in enumerate(points)
    )
    return CotEvent(
        uid="R1", type="b-m-r", how="h-e", time=0, start=0, stale=1, point=Point(LAT, LON),
        detail=detail_from_xml(f'<link uid="x"/>{links}<contact callsign="m"/>'),
    )  # fmt: skip


def test_a_route_gives_its_waypoints_in_order() -> None:
    assert waypoints_of(route([at(0, 0), at(0, 1000)])) == (at(0, 0), at(0, 1000))


@pytest.mark.parametrize(
    ("points", "reason"),
    [([at(0, 0)], "fewer than 2 waypoints"), ([(LAT, 200.0), at(0, 0)], "out of range"),
     ([(math.nan, LON), at(0, 0)], "not a number")],
)  # fmt: skip
def test_bad_routes_are_refused(points: list[tuple[float, float]], reason: str) -> None:
    with pytest.raises(FenceError, match=reason):
        waypoints_of(route(points))


def test_too_many_waypoints_unreadable_points_and_broken_details_are_refused() -> None:
    with pytest.raises(FenceError, match="too many waypoints"):
        waypoints_of(route([at(i, 0) for i in range(MAX_WAYPOINTS + 1)]))
    bad = dataclasses.replace(route([]), detail=detail_from_xml('<link point="a,b"/>'))
    with pytest.raises(FenceError, match="not a number"):
        waypoints_of(bad)
    with pytest.raises(FenceError, match="bad detail"):
        waypoints_of(dataclasses.replace(route([]), detail=Detail(xml="<link")))


def intent(uid: str, points: list[tuple[float, float]], start: float = T0) -> Intent:
    return Intent(uid, uid, tuple(points), start)


def test_the_time_window_comes_from_length_and_speed() -> None:
    leg = intent("A", [at(0, 0), at(0, 1000), at(1000, 1000)])
    assert leg.end_s == pytest.approx(T0 + 200, abs=0.5)  # 2 km at 10 m/s
    assert intent("P", [at(0, 0)]).end_s == T0  # a single point: no legs


def test_crossing_missions_at_the_same_time_meet_where_they_cross() -> None:
    a = intent("A", [at(0, -1000), at(0, 1000)])
    b = intent("B", [at(-1000, 0), at(1000, 0)])
    meeting = intersect(a, b)
    assert meeting is not None
    assert meeting.distance_m == 0.0
    assert (meeting.lat, meeting.lon) == pytest.approx(at(0, 0), abs=5 * M_LAT)
    assert meeting.from_s <= T0 + 100 <= meeting.to_s


def test_missions_apart_in_space_or_time_do_not_meet() -> None:
    a = intent("A", [at(0, -1000), at(0, 1000)])
    assert intersect(a, intent("B", [at(500, -1000), at(500, 1000)])) is None  # 500 m apart
    later = intent("B", [at(-1000, 0), at(1000, 0)], start=T0 + 3600)
    assert intersect(a, later) is None  # an hour later
    near = intent("C", [at(80, -1000), at(80, 1000)])  # corridors of 50 m overlap at 80 m
    meeting = intersect(a, near)
    assert meeting is not None
    assert meeting.distance_m == pytest.approx(80, abs=1)


def test_off_corridor_is_the_distance_beyond_the_corridor() -> None:
    a = intent("A", [at(0, 0), at(0, 1000)])
    assert off_corridor_m(a, *at(30, 500)) == 0.0
    assert off_corridor_m(a, *at(150, 500)) == pytest.approx(100, abs=1)
    assert off_corridor_m(a, *at(0, 1100)) == pytest.approx(50, abs=1)  # past the end
    hover = intent("H", [at(0, 0), at(0, 0)])  # a zero-length leg
    assert off_corridor_m(hover, *at(0, 100)) == pytest.approx(50, abs=1)


def test_the_intent_conflict_alert_names_both_missions_where_and_when() -> None:
    a = Intent("org-a.sim.1.mission", "sim-1 mission", (at(0, -1000), at(0, 1000)), T0)
    b = Intent("p-b", "[ORG-B] sim-2 mission", (at(-1000, 0), at(1000, 0)), T0)
    meeting = intersect(a, b)
    assert meeting is not None
    pair = Pair("k" * 16, "org-a", "b-m-r", a.name, b.name, "org-b")
    event = intent_conflict_event(a, b, meeting, pair, 0)
    assert (event.uid, event.type) == ("intent.org-a." + "k" * 16, "b-a-o-c")
    root = parse_fragment(f"<detail>{event.detail.xml}</detail>")
    mark = root.find("__intent_conflict")
    assert mark is not None
    assert (mark.get("a"), mark.get("b"), mark.get("distance_m")) == (a.uid, "p-b", "0")
    assert mark.get("from", "").endswith("Z")
    emergency = root.find("emergency")
    assert emergency is not None
    assert emergency.text is not None
    assert emergency.text.startswith("Missions sim-1 mission and [ORG-B] sim-2 mission meet near")
    assert "UTC" in emergency.text
    link = root.find("link")
    assert link is not None
    assert dict(link.attrib) == {"uid": a.uid, "type": "b-m-r", "relation": "p-p"}


def test_the_conformance_alert_and_its_cancel() -> None:
    a = intent("M", [at(0, 0), at(0, 1000)])
    alert = conformance_event("D", "a-f-A", "Hawk", a, 120.4, LAT, LON, 0)
    assert (alert.uid, alert.type) == ("D.nonconforming", "b-a-o-c")
    assert '<__conformance track="D" intent="M" off_m="120"/>' in alert.detail.xml
    back = conformance_event("D", "a-f-A", "Hawk", a, None, LAT, LON, 0)
    assert back.type == "b-a-o-can"
    assert '<emergency cancel="true">Hawk</emergency>' in back.detail.xml
