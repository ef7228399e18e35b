"""The MAVLink bridge, message by message: each mapping rule of reference §A7 on synthetic
MAVLink 2 built with pymavlink's encoder, and bad input of every kind."""

from __future__ import annotations

import math

import pytest
from lxml import etree
from pymavlink.dialects.v20 import ardupilotmega as mavlink

from accord.bridges.mavlink import INT32_MAX, MavlinkBridge
from accord.bridges.simulator import quaternion
from accord.bridges.uas import FeedSettings
from accord.cot.model import UNKNOWN_VALUE, CotEvent
from accord.cot.xml import decode_xml, encode_xml

T0 = 1_700_000_000_000
LAT, LON = 46.95, 7.45


class Sender:
    """One MAVLink component: frames for the bridge."""

    def __init__(self, sysid: int = 1, compid: int = 1) -> None:
        self.mav = mavlink.MAVLink(None, srcSystem=sysid, srcComponent=compid)

    def heartbeat(self, mav_type: int = 2, autopilot: int = 3, armed: bool = True) -> bytes:
        return self.mav.heartbeat_encode(mav_type, autopilot, 128 if armed else 0, 0, 4).pack(
            self.mav
        )

    def position(
        self, lat: float = LAT, lon: float = LON, msl: float = 600.0, vn: float = 0, ve: float = 0
    ) -> bytes:
        return self.mav.global_position_int_encode(
            0, round(lat * 1e7), round(lon * 1e7), int(msl * 1000), 100_000,
            int(vn * 100), int(ve * 100), 0, 65535,
        ).pack(self.mav)  # fmt: skip

    def gps(self, fix: int = 3, msl: float = 600.0, ellipsoid: float = 0.0, h_acc: int = 0,
            v_acc: int = 0, eph: int = 65535, epv: int = 65535) -> bytes:  # fmt: skip
        return self.mav.gps_raw_int_encode(
            0, fix, round(LAT * 1e7), round(LON * 1e7), int(msl * 1000), eph, epv, 0, 0, 10,
            int(ellipsoid * 1000), h_acc, v_acc,
        ).pack(self.mav)  # fmt: skip

    def attitude(self, yaw_deg: float) -> bytes:
        return self.mav.attitude_encode(0, 0.0, 0.0, math.radians(yaw_deg), 0, 0, 0).pack(self.mav)

    def gimbal(self, pitch: float, yaw: float, flags: int) -> bytes:
        q = quaternion(0.0, pitch, yaw)
        return self.mav.gimbal_device_attitude_status_encode(0, 0, 0, flags, q, 0, 0, 0, 0).pack(
            self.mav
        )

    def fov(self, lat_image: int, lon_image: int, alt_image_mm: int = 480_000) -> bytes:
        return self.mav.camera_fov_status_encode(
            0, round(LAT * 1e7), round(LON * 1e7), 600_000, lat_image, lon_image, alt_image_mm,
            [1, 0, 0, 0], 66.9, 41.6,
        ).pack(self.mav)  # fmt: skip


def bridge(**settings: object) -> MavlinkBridge:
    return MavlinkBridge(FeedSettings("test", org="org", **settings))  # type: ignore[arg-type]


def feed(b: MavlinkBridge, *frames: bytes, at: int = T0) -> list[CotEvent]:
    return b.receive_datagram(b"".join(frames), at)


def aircraft(events: list[CotEvent]) -> CotEvent:
    (found,) = [e for e in events if e.type.startswith("a-")]
    return found


def sensor(event: CotEvent) -> dict[str, str]:
    root = etree.fromstring(f"<detail>{event.detail.xml}</detail>")
    el = root.find("sensor")
    assert el is not None
    return dict(el.attrib)


def test_a_quadrotor_becomes_a_rotary_wing_track_with_a_stable_uid_and_callsign() -> None:
    v = Sender(sysid=7)
    ev = aircraft(feed(bridge(), v.heartbeat(mav_type=2), v.position()))
    assert (ev.uid, ev.type, ev.detail.contact and ev.detail.contact.callsign) == (
        "org.test.7", "a-f-A-M-H-Q", "test-7",
    )  # fmt: skip
    assert (ev.point.lat, ev.point.lon) == (LAT, LON)
    assert ev.stale - ev.time == 3000


def test_fixed_wing_and_affiliation_come_from_mav_type_and_config() -> None:
    v = Sender()
    ev = aircraft(feed(bridge(affiliation="n"), v.heartbeat(mav_type=1), v.position()))
    assert ev.type == "a-n-A-M-F-Q"


def test_ground_stations_and_non_vehicle_components_never_become_tracks() -> None:
    b = bridge()
    gcs, camera = Sender(255, 190), Sender(1, 100)
    events = feed(b, gcs.heartbeat(mav_type=6, autopilot=8), gcs.position())
    events += feed(b, camera.heartbeat(mav_type=30, autopilot=8), camera.position())
    assert events == []
    assert b.vehicles == {}
    assert b.counters.ignored_components == 2


def test_hae_comes_from_alt_ellipsoid_never_from_msl() -> None:
    v = Sender()
    b = bridge()
    feed(b, v.heartbeat(), v.gps(msl=600.0, ellipsoid=648.5))
    ev = aircraft(feed(b, v.position(msl=610.0)))
    # The fused MSL height plus the GPS's own undulation (648.5 - 600).
    assert ev.point.hae == pytest.approx(658.5)


def test_msl_only_uses_the_geoid_model_and_without_one_hae_is_unknown() -> None:
    v = Sender()
    modelled = MavlinkBridge(FeedSettings("g"), geoid=lambda lat, lon: 49.25)
    ev = aircraft(feed(modelled, v.heartbeat(), v.gps(msl=600.0), v.position(msl=600.0)))
    assert ev.point.hae == pytest.approx(649.25)
    bare = aircraft(feed(bridge(), v.heartbeat(), v.gps(msl=600.0), v.position(msl=600.0)))
    assert bare.point.hae == UNKNOWN_VALUE  # never the MSL height


def test_ce_le_from_accuracy_else_dilution_and_inflated_below_3d() -> None:
    v = Sender()
    good = aircraft(feed(bridge(), v.heartbeat(), v.gps(h_acc=1500, v_acc=2500), v.position()))
    assert (good.point.ce, good.point.le) == (1.5, 2.5)
    dop = aircraft(feed(bridge(), v.heartbeat(), v.gps(eph=120, epv=200), v.position()))
    assert (dop.point.ce, dop.point.le) == (pytest.approx(6.0), pytest.approx(10.0))
    poor = aircraft(feed(bridge(), v.heartbeat(), v.gps(fix=2, h_acc=1500), v.position()))
    assert poor.point.ce >= 500.0
    assert poor.point.le == UNKNOWN_VALUE
    nofix = aircraft(feed(bridge(), v.heartbeat(), v.gps(fix=1), v.position()))
    assert nofix.point.ce >= 500.0


def test_track_course_and_speed_come_from_the_velocity() -> None:
    v = Sender()
    ev = aircraft(feed(bridge(), v.heartbeat(), v.position(vn=-3.0, ve=-4.0)))
    root = etree.fromstring(f"<d>{ev.detail.xml}</d>")
    track = root.find("track")
    assert track is not None
    assert float(track.get("speed", "")) == pytest.approx(5.0)
    assert float(track.get("course", "")) == pytest.approx(233.130102, abs=1e-4)


def test_gimbal_yaw_in_the_vehicle_frame_adds_the_vehicle_yaw() -> None:
    v, g = Sender(), Sender(1, 154)
    frames = (v.heartbeat(), v.attitude(90.0), g.gimbal(-45.0, 30.0, 32), v.position())
    s = sensor(aircraft(feed(bridge(), *frames)))
    assert float(s["azimuth"]) == pytest.approx(120.0, abs=1e-3)
    assert float(s["elevation"]) == pytest.approx(-45.0, abs=1e-3)


def test_gimbal_yaw_in_the_earth_frame_is_already_true() -> None:
    v, g = Sender(), Sender(1, 154)
    for flags in (64, 16):  # YAW_IN_EARTH_FRAME, and the legacy YAW_LOCK
        frames = (v.heartbeat(), v.attitude(90.0), g.gimbal(-45.0, 30.0, flags), v.position())
        assert float(sensor(aircraft(feed(bridge(), *frames)))["azimuth"]) == pytest.approx(
            30.0, abs=1e-3
        )


def test_camera_fov_gives_sensor_fov_range_and_a_linked_aim_point() -> None:
    v, c = Sender(), Sender(1, 100)
    image = (round((LAT + 0.001) * 1e7), round(LON * 1e7))
    events = feed(bridge(), v.heartbeat(), v.gps(ellipsoid=648.0), c.fov(*image), v.position())
    s = sensor(aircraft(events))
    assert float(s["fov"]) == pytest.approx(66.9, abs=1e-4)
    assert float(s["vfov"]) == pytest.approx(41.6, abs=1e-4)
    # 111 m north and 120 m down: the slant distance.
    assert float(s["range"]) == pytest.approx(math.hypot(111.19, 120.0), rel=1e-3)
    (spi,) = [e for e in events if e.type == "b-m-p-s-p-i"]
    assert spi.uid == "org.test.1.SPI1"
    assert spi.point.lat == pytest.approx(LAT + 0.001)
    assert spi.point.hae == pytest.approx(480.0 + 48.0)
    assert 'uid="org.test.1"' in spi.detail.xml
    assert 'relation="p-p"' in spi.detail.xml


@pytest.mark.parametrize(
    ("lat", "lon"), [(INT32_MAX, INT32_MAX), (-(2**31), -(2**31)), (INT32_MAX, 74_500_000)]
)
def test_unknown_or_beyond_horizon_image_centre_gives_no_aim_point(lat: int, lon: int) -> None:
    v, c = Sender(), Sender(1, 100)
    events = feed(bridge(), v.heartbeat(), c.fov(lat, lon), v.position())
    assert [e.type for e in events] == ["a-f-A-M-H-Q"]


def test_nan_quaternion_and_fov_are_skipped() -> None:
    v, g = Sender(), Sender(1, 154)
    nan = float("nan")
    bad = g.mav.gimbal_device_attitude_status_encode(0, 0, 0, 32, [nan] * 4, 0, 0, 0, 0)
    ev = aircraft(feed(bridge(), v.heartbeat(), bad.pack(g.mav), v.position()))
    assert "<sensor" not in ev.detail.xml


def test_video_url_names_the_sensor_and_its_spi() -> None:
    v = Sender()
    ev = aircraft(feed(bridge(video_url="rtsp://cam/1"), v.heartbeat(), v.position()))
    assert '<__video sensor="test-1" spi="test-1.SPI1" url="rtsp://cam/1"/>' in ev.detail.xml


def test_output_is_rate_limited_per_vehicle_but_state_is_kept_at_full_rate() -> None:
    b = bridge(rate_hz=2.0)
    one, two = Sender(1), Sender(2)
    feed(b, one.heartbeat(), two.heartbeat())
    emitted = []
    for tick in range(20):  # 10 Hz for 2 s
        at = T0 + tick * 100
        emitted += feed(b, one.position(lat=LAT + tick * 1e-5), two.position(), at=at)
    by_uid = {uid: [e for e in emitted if e.uid == uid] for uid in ("org.test.1", "org.test.2")}
    assert [len(v) for v in by_uid.values()] == [4, 4]
    assert b.vehicles[1].lat == pytest.approx(LAT + 19e-5)  # the latest, not the last emitted


def test_heartbeat_loss_makes_the_track_stale_at_once_and_raises_an_alert() -> None:
    b = bridge()
    v = Sender()
    feed(b, v.heartbeat(), v.position())
    assert b.tick(T0 + 3000) == []
    lost = b.tick(T0 + 3100)
    ac = aircraft(lost)
    assert ac.stale == ac.time == T0 + 3100
    (alert,) = [e for e in lost if e.type.startswith("b-a")]
    assert alert.type == "b-a-o-c"
    assert 'relation="p-p"' in alert.detail.xml
    assert 'type="a-f-A-M-H-Q"' in alert.detail.xml
    assert b.tick(T0 + 5000) == []  # once
    assert feed(b, v.position(), at=T0 + 5000) == []  # no fresh track while lost
    back = feed(b, v.heartbeat(), at=T0 + 6000)
    assert [e.type for e in back] == ["b-a-o-can"]
    assert b.counters.links_lost == 1


def test_two_vehicles_claiming_one_system_id_keep_the_first_and_count_conflicts() -> None:
    b = bridge()
    first, second = Sender(1, 1), Sender(1, 2)
    feed(b, first.heartbeat(mav_type=2), first.position(lat=10.0))
    for _ in range(5):
        events = feed(b, second.heartbeat(mav_type=1), second.position(lat=20.0), at=T0 + 1000)
        assert events == []
    assert b.vehicles[1].mav_type == 2
    assert b.vehicles[1].lat == 10.0
    assert b.counters.conflicts == 5
    # The owner's heartbeats stop: after the link timeout the other may take the id over.
    b.tick(T0 + 4000)
    feed(b, second.heartbeat(mav_type=1), at=T0 + 4100)
    ev = aircraft(feed(b, second.position(lat=20.0), at=T0 + 4200))
    assert ev.type == "a-f-A-M-F-Q"


def test_same_component_flapping_mav_type_does_not_flap_the_track_type() -> None:
    b = bridge()
    v = Sender()
    types = []
    for i in range(6):
        at = T0 + i * 600
        types += [e.type for e in feed(b, v.heartbeat(mav_type=(2, 1)[i % 2]), v.position(), at=at)]
    assert set(types) == {"a-f-A-M-H-Q"}
    assert b.counters.conflicts == 3


def test_corrupt_truncated_unknown_and_garbage_input_is_counted_and_skipped() -> None:
    b = bridge()
    v, other = Sender(1), Sender(2)
    good = v.position()
    crc = bytearray(good)
    crc[-1] ^= 0xFF
    unknown = bytearray(mavlink.MAVLink(None).heartbeat_encode(2, 3, 0, 0, 4).pack(v.mav))
    unknown[7:10] = (0x39, 0x30, 0x00)  # message id 12345: not in the dialect
    feed(b, v.heartbeat(), other.heartbeat())
    feed(b, bytes(crc))
    feed(b, b"\x00garbage\xff" * 50)
    feed(b, good[:-5])  # truncated
    feed(b, bytes(unknown))
    assert b.counters.bad_data >= 2
    assert b.counters.truncated == 1
    assert b.counters.unknown + b.counters.bad_data >= 3
    events = feed(b, v.position(), other.position(), at=T0 + 1000)
    assert {e.uid for e in events} == {"org.test.1", "org.test.2"}


def test_a_stream_split_at_every_byte_gives_the_same_events() -> None:
    v = Sender()
    data = v.heartbeat() + v.attitude(45.0) + v.position()
    whole = MavlinkBridge(FeedSettings("s")).receive_data(data, T0)
    for cut in range(1, len(data)):
        b = MavlinkBridge(FeedSettings("s"))
        events = b.receive_data(data[:cut], T0) + b.receive_data(data[cut:], T0)
        assert events == whole


def test_events_round_trip_through_the_core_decoder() -> None:
    v, g, c = Sender(), Sender(1, 154), Sender(1, 100)
    events = feed(
        bridge(video_url="rtsp://x/y?a=1&b=2"),
        v.heartbeat(), v.gps(ellipsoid=650.0, h_acc=900, v_acc=1400), v.attitude(10.0),
        g.gimbal(-30.0, 15.0, 32), c.fov(round(LAT * 1e7) + 5000, round(LON * 1e7)),
        v.position(vn=2, ve=2),
    )  # fmt: skip
    assert len(events) == 2
    for event in events:
        assert decode_xml(encode_xml(event)) == event
