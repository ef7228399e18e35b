"""Home position and mission: a home marker linked to the aircraft, and the mission as an ATAK
route (the shape of ATAK-CIV's takcot/examples/Route.cot), from synthetic MAVLink streams."""

from __future__ import annotations

from lxml import etree

from accord.bridges.simulator import Fleet
from accord.cot.model import CotEvent
from accord.cot.xml import decode_xml, encode_xml
from tests.bridges.test_mavlink import LAT, LON, T0, Sender, bridge, feed

PX4, ARDUPILOT = 12, 3
WAYPOINT, DO_CHANGE_SPEED, RTL = 16, 178, 20
GLOBAL_RELATIVE_ALT_INT, LOCAL_NED = 6, 1
ROUTE_LINK_ATTRS = {"uid", "callsign", "type", "point", "remarks", "relation"}


def item(s: Sender, seq: int, lat: float, lon: float, *, target: int = 1,
         command: int = WAYPOINT, frame: int = GLOBAL_RELATIVE_ALT_INT,
         mission_type: int = 0) -> bytes:  # fmt: skip
    return s.mav.mission_item_int_encode(
        target, 1, seq, frame, command, 0, 1, 0, 0, 0, 0, round(lat * 1e7), round(lon * 1e7),
        50.0, mission_type,
    ).pack(s.mav)  # fmt: skip


def count(s: Sender, n: int, *, target: int = 1, mission_type: int = 0) -> bytes:
    return s.mav.mission_count_encode(target, 1, n, mission_type).pack(s.mav)


def home(s: Sender, lat: float = LAT, lon: float = LON, msl: float = 500.0) -> bytes:
    return s.mav.home_position_encode(
        round(lat * 1e7), round(lon * 1e7), int(msl * 1000), 0, 0, 0, [1, 0, 0, 0], 0, 0, 0
    ).pack(s.mav)


def of_type(events: list[CotEvent], kind: str) -> list[CotEvent]:
    return [e for e in events if e.type == kind]


def detail(event: CotEvent) -> etree._Element:
    return etree.fromstring(f"<detail>{event.detail.xml}</detail>")


def waypoints(route: CotEvent) -> list[tuple[str, str]]:
    return [
        (link.get("callsign", ""), link.get("point", ""))
        for link in detail(route).findall("link")
        if link.get("relation") == "c"
    ]


def test_a_mission_uploaded_by_a_gcs_becomes_one_route_when_complete() -> None:
    b = bridge()
    vehicle, gcs = Sender(1), Sender(255, 190)
    feed(b, vehicle.heartbeat(autopilot=PX4), gcs.heartbeat(mav_type=6, autopilot=8))
    assert feed(b, count(gcs, 4)) == []
    assert feed(b, item(gcs, 0, 46.95, 7.45)) == []
    assert feed(b, item(gcs, 1, 0, 0, command=DO_CHANGE_SPEED)) == []  # a command, no place
    assert feed(b, item(gcs, 2, 46.96, 7.46)) == []
    events = feed(b, item(gcs, 3, 46.97, 7.44))  # the last item: complete
    (route,) = of_type(events, "b-m-r")
    assert route.uid == "org.test.1.mission"
    assert decode_xml(encode_xml(route)) == route  # the core's own decoder takes it
    assert waypoints(route) == [("WP1", "46.95,7.45"), ("WP2", "46.96,7.46"),
                                ("WP3", "46.97,7.44")]  # fmt: skip
    root = detail(route)
    for link in root.findall("link"):
        assert set(link.attrib) == ROUTE_LINK_ATTRS
        assert link.get("type") == "b-m-p-w"
    attr = root.find("link_attr")
    assert attr is not None
    assert attr.get("method") == "Flying"
    assert root.find("__routeinfo/__navcues") is not None
    contact = root.find("contact")
    assert contact is not None
    assert contact.get("callsign") == "test-1 mission"
    assert (route.point.lat, route.point.lon) == (46.95, 7.45)  # not 0,0: area filters work
    # The vehicle echoing the same items back: no second route.
    assert of_type(feed(b, count(vehicle, 4, target=255)), "b-m-r") == []
    again = [item(vehicle, seq, *p, target=255) for seq, p in
             enumerate([(46.95, 7.45), (0, 0), (46.96, 7.46), (46.97, 7.44)])]  # fmt: skip
    again[1] = item(vehicle, 1, 0, 0, target=255, command=DO_CHANGE_SPEED)
    assert of_type(feed(b, *again), "b-m-r") == []


def test_a_changed_item_sends_the_route_again_and_a_cleared_mission_deletes_it() -> None:
    b = bridge()
    vehicle = Sender(1)
    feed(b, vehicle.heartbeat(autopilot=PX4))
    feed(b, count(vehicle, 2, target=255), item(vehicle, 0, 46.95, 7.45, target=255))
    (first,) = of_type(feed(b, item(vehicle, 1, 46.96, 7.46, target=255)), "b-m-r")
    (changed,) = of_type(feed(b, item(vehicle, 1, 46.98, 7.46, target=255)), "b-m-r")
    assert waypoints(changed)[1] == ("WP2", "46.98,7.46")
    (gone,) = feed(b, count(vehicle, 0, target=255))
    assert gone.type == "t-x-d-d"
    link = detail(gone).find("link")
    assert link is not None
    assert link.get("uid") == first.uid
    assert link.get("type") == "b-m-r"
    assert detail(gone).find("__forcedelete") is not None


def test_ardupilot_item_zero_is_home_and_other_lists_are_not_the_mission() -> None:
    b = bridge()
    vehicle, gcs = Sender(1), Sender(255, 190)
    feed(b, vehicle.heartbeat(autopilot=ARDUPILOT))
    events = feed(
        b, count(gcs, 3), item(gcs, 0, 46.90, 7.40), item(gcs, 1, 46.95, 7.45),
        item(gcs, 2, 1.0, 2.0, frame=LOCAL_NED),  # not a place on the globe
    )  # fmt: skip
    (route,) = of_type(events, "b-m-r")
    assert waypoints(route) == [("WP1", "46.95,7.45")]
    # A geofence (mission_type 1) and items for a vehicle never heard of change nothing.
    fence = [count(gcs, 1, mission_type=1), item(gcs, 0, 10.0, 10.0, mission_type=1)]
    stranger = [count(gcs, 1, target=9), item(gcs, 0, 10.0, 10.0, target=9)]
    assert feed(b, *fence, *stranger) == []
    assert b.vehicles.keys() == {1}


def test_home_becomes_a_marker_linked_to_the_aircraft_sent_when_it_moves() -> None:
    b = bridge()
    vehicle = Sender(1)
    feed(b, vehicle.heartbeat(autopilot=PX4), vehicle.gps(msl=600.0, ellipsoid=648.0))
    (marker,) = feed(b, home(vehicle, msl=500.0))
    assert marker.type == "b-m-p-w"
    assert marker.uid == "org.test.1.home"
    assert (marker.point.lat, marker.point.lon) == (LAT, LON)
    assert marker.point.hae == 548.0  # MSL + the GPS's own undulation, never MSL
    link = detail(marker).find("link")
    assert link is not None
    assert (link.get("uid"), link.get("relation")) == ("org.test.1", "p-p")
    assert link.get("type") == "a-f-A-M-H-Q"
    assert decode_xml(encode_xml(marker)) == marker
    assert feed(b, home(vehicle, msl=500.0)) == []  # unchanged: not sent again
    (moved,) = feed(b, home(vehicle, lat=LAT + 0.001, msl=500.0))
    assert moved.point.lat == LAT + 0.001
    assert feed(b, home(vehicle, lat=0.0, lon=0.0)) == []  # not set: ignored


def test_home_and_route_are_sent_again_every_minute_while_the_vehicle_flies() -> None:
    b = bridge()
    vehicle = Sender(1)
    feed(b, vehicle.heartbeat(autopilot=PX4), home(vehicle))
    feed(b, count(vehicle, 1, target=255), item(vehicle, 0, 46.96, 7.46, target=255))
    kinds = [e.type for e in feed(b, vehicle.position(), at=T0 + 30_000)]
    assert "b-m-r" not in kinds
    assert "b-m-p-w" not in kinds
    later = T0 + 61_000
    kinds = [e.type for e in feed(b, vehicle.heartbeat(), vehicle.position(), at=later)]
    assert kinds.count("b-m-r") == 1
    assert kinds.count("b-m-p-w") == 1


def test_the_simulator_reports_home_and_its_mission() -> None:
    b = bridge()
    events: list[CotEvent] = []
    for frames in Fleet(2).frames(0.0):
        events += feed(b, *frames)
    assert {e.uid for e in of_type(events, "b-m-p-w")} == {"org.test.1.home", "org.test.2.home"}
    routes = of_type(events, "b-m-r")
    assert {e.uid for e in routes} == {"org.test.1.mission", "org.test.2.mission"}
    assert all(len(waypoints(r)) == 4 for r in routes)  # item 0 is home (ArduPilot)
