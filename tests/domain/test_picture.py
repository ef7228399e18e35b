"""What the web map is given of an event: symbol code, footprint, release, chat, text."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accord.cot.xml import decode_xml
from accord.domain.picture import (
    UNKNOWN_RANGE_M,
    WEDGE_ARC_POINTS,
    bearing_deg,
    destination,
    distance_m,
    sidc_of,
    to_feature,
    wedge,
)

NOW = 1_796_000_000_000
HOSTILE = "<img src=x onerror=alert(1)>\"'&</script>"


def event(
    type_: str, detail: str, *, lat: float = 48.0, lon: float = 11.0, ce: float = 5.0
) -> bytes:
    return (
        f'<event version="2.0" uid="U-1" type="{type_}" how="m-g" time="2026-12-02T17:00:00Z"'
        ' start="2026-12-02T17:00:00Z" stale="2026-12-02T17:00:10Z">'
        f'<point lat="{lat}" lon="{lon}" hae="500" ce="{ce}" le="9999999"/>'
        f"<detail>{detail}</detail></event>"
    ).encode()


@pytest.mark.parametrize(
    ("cot_type", "sidc"),
    [
        ("a-f-G-U-C-I", "SFGPUCI--------"),
        ("a-h-A-M-F-Q", "SHAPMFQ--------"),
        ("a-n-G", "SNGP-----------"),
        ("a-u-S-X", "SUSPX----------"),
        ("a-f-A-M-H-Q", "SFAPMHQ--------"),
    ],
)
def test_an_atom_type_gives_its_2525_symbol_code(cot_type: str, sidc: str) -> None:
    assert sidc_of(cot_type) == sidc
    assert len(sidc) == 15


def test_markers_routes_and_chat_have_no_symbol_code() -> None:
    assert sidc_of("b-m-p-s-p-i") is None
    assert sidc_of("b-m-r") is None
    assert sidc_of("a") is None


def test_a_sensor_footprint_reaches_its_true_range_across_its_field_of_view() -> None:
    ring = wedge(48.0, 11.0, 90.0, 40.0, 800.0)
    assert ring[0] == ring[-1] == [11.0, 48.0]  # closed at the sensor
    arc = ring[1:-1]
    assert len(arc) == WEDGE_ARC_POINTS + 1
    for lon, lat in arc:
        assert distance_m(48.0, 11.0, lat, lon) == pytest.approx(800.0, rel=1e-6)
    assert bearing_deg(48.0, 11.0, arc[0][1], arc[0][0]) == pytest.approx(70.0, abs=0.01)
    assert bearing_deg(48.0, 11.0, arc[-1][1], arc[-1][0]) == pytest.approx(110.0, abs=0.01)


@given(
    st.floats(-80, 80),
    st.floats(-179, 179),
    st.floats(0, 360, exclude_max=True),
    st.floats(1, 50_000),
)
def test_destination_and_distance_agree(
    lat: float, lon: float, bearing: float, dist: float
) -> None:
    plat, plon = destination(lat, lon, bearing, dist)
    assert distance_m(lat, lon, plat, plon) == pytest.approx(dist, rel=1e-6, abs=1e-3)


def test_a_drone_gives_its_footprint_telemetry_and_video() -> None:
    detail = (
        '<contact callsign="HAWK-1"/><track course="45" speed="12"/>'
        '<sensor elevation="-30" north="270" roll="0" range="1200" azimuth="90" model="EO"'
        ' fov="30" type="r-e" version="0.6"/>'
        '<__video sensor="HAWK-1" spi="HAWK-1.SPI1" url="rtsp://10.0.0.5:8554/hawk"/>'
        '<status battery="76"/><vehicle type="MAVLink" voltage="15.20"'
        ' flightTimeRemaining="900"/><_radio rssi="100" gps="true"/><remarks>armed</remarks>'
    )
    feature = to_feature(decode_xml(event("a-f-A-M-H-Q", detail)), NOW)
    assert feature["op"] == "put"
    assert feature["callsign"] == "HAWK-1"
    assert feature["course"] == 45.0
    assert feature["speed"] == 12.0
    sensor = feature["sensor"]
    assert sensor["azimuth"] == 90.0
    assert sensor["range"] == 1200.0
    assert sensor["range_known"]
    far = sensor["footprint"][1 + WEDGE_ARC_POINTS // 2]
    assert distance_m(48.0, 11.0, far[1], far[0]) == pytest.approx(1200.0, rel=1e-6)
    assert bearing_deg(48.0, 11.0, far[1], far[0]) == pytest.approx(90.0, abs=0.01)
    assert feature["video"] == "rtsp://10.0.0.5:8554/hawk"
    assert feature["telemetry"] == {
        "battery_pct": 76.0,
        "voltage": 15.2,
        "flight_time_remaining_s": 900.0,
        "link": "ok",
    }


def test_a_sensor_without_range_is_drawn_short_and_says_so() -> None:
    detail = '<sensor azimuth="10" fov="20"/>'
    sensor = to_feature(decode_xml(event("a-f-A-M-H-Q", detail)), NOW)["sensor"]
    assert sensor["range"] == UNKNOWN_RANGE_M
    assert not sensor["range_known"]


def test_an_aim_point_links_to_its_aircraft_and_a_route_gives_its_points() -> None:
    spi = to_feature(
        decode_xml(event("b-m-p-s-p-i", '<link uid="D-1" type="a-f-A" relation="p-p"/>')), NOW
    )
    assert spi["link"] == {"uid": "D-1", "relation": "p-p", "type": "a-f-A"}
    route = to_feature(
        decode_xml(
            event(
                "b-m-r",
                '<link uid="w1" point="48.1,11.1,0" relation="c"/>'
                '<link uid="w2" point="48.2,11.2" relation="c"/><link point="bad"/>',
            )
        ),
        NOW,
    )
    assert route["route"] == [[11.1, 48.1], [11.2, 48.2]]


def test_a_partner_item_carries_its_release_and_the_precision_it_was_released_at() -> None:
    mark = '<__release policy="coarse" rule="blur-1km" partner="north" version="3"'
    with_precision = to_feature(
        decode_xml(event("a-f-G-U-C", mark + ' precision_m="1000"/>', ce=1414.0)), NOW
    )
    assert with_precision["release"] == {
        "partner": "north",
        "organisation": "north",
        "policy": "coarse",
        "rule": "blur-1km",
        "version": "3",
        "precision_m": 1000.0,
    }
    without = to_feature(decode_xml(event("a-f-G-U-C", mark + "/>", ce=1414.0)), NOW)
    assert without["release"]["precision_m"] == 1414.0  # ce when the marking has no precision
    assert to_feature(decode_xml(event("a-f-G-U-C", "")), NOW)["release"] is None


def test_a_geochat_message_is_a_chat_item() -> None:
    detail = (
        '<__chat id="All Chat Rooms" chatroom="All Chat Rooms" senderCallsign="ALPHA">'
        '<chatgrp id="All Chat Rooms" uid0="ANDROID-1" uid1="All Chat Rooms"/></__chat>'
        '<remarks source="BAO.F.ATAK.ANDROID-1" time="2026-12-02T17:00:00Z">Roger</remarks>'
    )
    feature = to_feature(decode_xml(event("b-t-f", detail, lat=0, lon=0)), NOW)
    assert feature["op"] == "chat"
    assert (feature["room"], feature["from"], feature["from_uid"], feature["text"]) == (
        "All Chat Rooms",
        "ALPHA",
        "ANDROID-1",
        "Roger",
    )


def test_a_delete_names_the_item_it_removes() -> None:
    detail = '<link uid="ANDROID-7" relation="p-p" type="a-f-G"/><__forcedelete/>'
    assert to_feature(decode_xml(event("t-x-d-d", detail)), NOW) == {
        "op": "delete",
        "uid": "ANDROID-7",
    }


def test_hostile_text_stays_text_in_the_feature() -> None:
    escaped = HOSTILE.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;")
    detail = f'<contact callsign="{escaped}"/><remarks>{escaped}</remarks>'
    feature = to_feature(decode_xml(event("a-f-G-U-C", detail)), NOW)
    assert feature["callsign"] == HOSTILE
    assert feature["remarks"] == HOSTILE
    assert json.loads(json.dumps(feature))["callsign"] == HOSTILE  # plain JSON strings


def test_a_sensor_without_a_usable_azimuth_points_along_the_course_or_is_not_drawn() -> None:
    along = '<track course="45" speed="10"/><sensor azimuth="north" range="abc" fov="30"/>'
    feature = to_feature(decode_xml(event("a-f-A-M-H-Q", along)), NOW)
    assert feature["sensor"]["azimuth"] == 45  # the unreadable azimuth gives way to the course
    assert feature["sensor"]["range"] == UNKNOWN_RANGE_M  # an unreadable range is unknown
    nowhere = '<sensor azimuth="north" fov="30"/>'
    assert to_feature(decode_xml(event("a-f-A-M-H-Q", nowhere)), NOW).get("sensor") is None


def test_a_chat_names_its_sender_from_the_remarks_source_and_a_bare_b_t_f_is_no_chat() -> None:
    detail = (
        '<__chat id="All Chat Rooms" chatroom="All Chat Rooms" senderCallsign="BRAVO"/>'
        '<remarks source="BAO.F.ATAK.ANDROID-2">Copy</remarks>'
    )
    feature = to_feature(decode_xml(event("b-t-f", detail, lat=0, lon=0)), NOW)
    assert (feature["op"], feature["from_uid"], feature["text"]) == ("chat", "ANDROID-2", "Copy")
    bare = to_feature(decode_xml(event("b-t-f", "<remarks>x</remarks>")), NOW)
    assert bare["op"] != "chat"


def test_an_event_whose_detail_does_not_parse_is_still_drawn_or_deleted_by_its_uid() -> None:
    import dataclasses

    put = decode_xml(event("a-f-G-U-C", '<contact callsign="A"/>'))
    broken = dataclasses.replace(put, detail=dataclasses.replace(put.detail, xml="<unclosed"))
    feature = to_feature(broken, NOW)
    assert (feature["op"], feature["uid"]) == ("put", "U-1")
    gone = decode_xml(event("t-x-d-d", "<link uid='X'/>"))
    gone = dataclasses.replace(gone, detail=dataclasses.replace(gone.detail, xml="<unclosed"))
    assert to_feature(gone, NOW) == {"op": "delete", "uid": "U-1"}
    chat = decode_xml(event("b-t-f", '<__chat chatroom="All" senderCallsign="A"/>'))
    chat = dataclasses.replace(chat, detail=dataclasses.replace(chat.detail, xml="<unclosed"))
    drawn = to_feature(chat, NOW)  # no chat can be read from it: drawn as the item it is
    assert (drawn["op"], drawn["uid"], drawn["type"]) == ("put", "U-1", "b-t-f")
