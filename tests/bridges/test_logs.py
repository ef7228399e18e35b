"""Real MAVLink logs (``shared/data/mavlink``) through the bridge, and the element shapes of
what it emits against the UAS Tool captures (``shared/data/captures/uas-tool``)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from lxml import etree
from pymavlink.dialects.v20 import ardupilotmega as mavlink

from accord.bridges.mavlink import MavlinkBridge
from accord.bridges.simulator import Fleet
from accord.bridges.tlog import decode_tlog, encode_record
from accord.bridges.uas import FeedSettings
from accord.cot.model import CotEvent
from accord.cot.xml import decode_xml, encode_xml
from tests.cot.samples import UAS_TOOL_DIR

LOGS = Path(__file__).resolve().parents[3] / "shared" / "data" / "mavlink"


def replay(name: str, **settings: object) -> tuple[MavlinkBridge, list[tuple[int, CotEvent]]]:
    bridge = MavlinkBridge(FeedSettings(name, **settings))  # type: ignore[arg-type]
    out: list[tuple[int, CotEvent]] = []
    for record in decode_tlog((LOGS / name).read_bytes()):
        now = record.time_us // 1000
        out += [(now, e) for e in bridge.receive_datagram(record.frame, now)]
        out += [(now, e) for e in bridge.tick(now)]
    return bridge, out


@pytest.mark.parametrize(
    "name", ["ardusub-small.tlog", "dronekit-flight.tlog", "uavlogviewer-vtol.tlog"]
)
def test_each_log_replays_without_error_and_every_event_decodes(name: str) -> None:
    bridge, events = replay(name)
    assert events
    assert bridge.counters.messages > 10_000
    for _, event in events:
        assert decode_xml(encode_xml(event)) == event


def test_vtol_positions_are_the_logs_own_and_the_count_follows_the_rate_limit() -> None:
    # A link timeout longer than the log's heartbeat gaps (up to 4.2 s), so that only the
    # rate limit decides what is sent; link loss has its own tests.
    rate_ms = 500
    _, events = replay("uavlogviewer-vtol.tlog", rate_hz=2.0, link_timeout_ms=60_000)
    # The log's own positions, read independently, and the rate rule applied to them.
    expected: list[tuple[int, float, float]] = []
    parser = mavlink.MAVLink(None)
    last: int | None = None
    heartbeat_seen = False
    for record in decode_tlog((LOGS / "uavlogviewer-vtol.tlog").read_bytes()):
        now = record.time_us // 1000
        for msg in parser.parse_buffer(record.frame) or []:
            if msg.get_type() == "HEARTBEAT":
                heartbeat_seen = True
            position = msg.get_type() == "GLOBAL_POSITION_INT" and heartbeat_seen and msg.lat
            if position and (last is None or now - last >= rate_ms):
                last = now
                expected.append((now, msg.lat / 1e7, msg.lon / 1e7))
    aircraft = [(now, e) for now, e in events if e.type == "a-f-A-M-F-Q"]
    assert len(aircraft) == len(expected)
    assert len(expected) > 100
    for (now, event), (when, lat, lon) in zip(aircraft, expected, strict=True):
        assert event.time == now == when
        assert event.point.lat == pytest.approx(lat, abs=1e-7)
        assert event.point.lon == pytest.approx(lon, abs=1e-7)
    # ...and never more often than the rate allows.
    times = [e.time for _, e in aircraft]
    assert min(b - a for a, b in itertools.pairwise(times)) >= rate_ms


def test_ardusub_with_five_components_is_one_track() -> None:
    bridge, events = replay("ardusub-small.tlog")
    assert {e.uid for _, e in events if e.type.startswith("a-")} == {"accord.ardusub-small.tlog.1"}
    assert list(bridge.vehicles) == [1]
    assert bridge.counters.ignored_components > 0  # the GCS, camera and companion heartbeats


def test_a_tlog_cut_anywhere_yields_whole_records_only() -> None:
    data = (LOGS / "uavlogviewer-vtol.tlog").read_bytes()[:5000]
    whole = list(decode_tlog(data))
    assert whole
    assert list(decode_tlog(data[:-3])) == whole[: len(list(decode_tlog(data[:-3])))]
    assert encode_record(whole[0].time_us, whole[0].frame) == data[: 8 + len(whole[0].frame)]


def _shape(el: etree._Element) -> dict[str, set[str]]:
    return {child.tag: set(child.attrib) for child in el if isinstance(child.tag, str)}


def test_emitted_elements_have_the_uas_tool_shapes() -> None:
    captured: dict[str, set[str]] = {}
    for path in sorted(UAS_TOOL_DIR.glob("*.xml")):
        detail = etree.fromstring(path.read_bytes()).find("detail")
        assert detail is not None
        for tag, attrs in _shape(detail).items():
            captured.setdefault(tag, set()).update(attrs)
    fleet = Fleet(2)
    bridge = MavlinkBridge(FeedSettings("shape", video_url="rtsp://video/1"))
    events: list[CotEvent] = []
    for tick in range(12):
        for frames in fleet.frames(tick * 0.1):
            events += bridge.receive_datagram(b"".join(frames), 1_700_000_000_000 + tick * 100)
    ours: dict[str, set[str]] = {}
    for event in events:
        if event.type == "b-m-r":
            continue  # its waypoint links have ATAK's route shape (tests/bridges/test_mission)
        detail = etree.fromstring(encode_xml(event)).find("detail")
        assert detail is not None
        for tag, attrs in _shape(detail).items():
            ours.setdefault(tag, set()).update(attrs)
    for tag in ("sensor", "__video", "link", "track", "contact"):
        assert ours[tag] == captured[tag], tag
    spatial = etree.fromstring(encode_xml(events[-2])).find("detail/spatial")
    assert spatial is not None
    assert [c.tag for c in spatial] == ["attitude", "spin"]
    # <vehicle> and <_radio> use the UAS Tool's names where they mean the same thing.
    assert ours["vehicle"] <= captured["vehicle"]
    assert ours["_radio"] == captured["_radio"]
