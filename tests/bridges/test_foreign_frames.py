"""Intact frames of messages this dialect defines differently are not bad frames.

The dronekit flight log sends message id 142 with a 5-byte payload once a second (an older
ArduPilot message; today's 142 is RESOURCE_REQUEST): every one failed our CRC_EXTRA and
``accord status`` showed about one bad frame per second of a clean log.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pymavlink.dialects.v20 import ardupilotmega as mavlink

from accord.bridges.mavlink import MavlinkBridge
from accord.bridges.tlog import decode_tlog, foreign_definition
from accord.bridges.uas import FeedSettings

LOGS = Path(__file__).resolve().parents[3] / "shared" / "data" / "mavlink"
OLD_142 = bytes.fromhex("fe0500ff008effffffff016537")  # from dronekit-flight.tlog


def test_an_intact_frame_of_another_definition_is_recognised() -> None:
    assert foreign_definition(OLD_142)
    mav = mavlink.MAVLink(None, srcSystem=1, srcComponent=1)
    ours = mav.heartbeat_encode(2, 3, 0, 0, 4).pack(mav)
    assert foreign_definition(ours)  # (our own definition is one of the 256)


def test_a_damaged_frame_is_not() -> None:
    damaged = bytearray(OLD_142)
    damaged[7] ^= 0x10  # a payload bit flipped on the way
    assert not foreign_definition(damaged)
    assert not foreign_definition(OLD_142[:-1])  # cut short
    assert not foreign_definition(b"\x00" + OLD_142[1:])  # no magic byte


def test_the_bridge_counts_them_as_unknown_and_damage_as_bad() -> None:
    bridge = MavlinkBridge(FeedSettings("t"))
    bridge.receive_datagram(OLD_142, 0)
    damaged = bytearray(OLD_142)
    damaged[7] ^= 0x10
    bridge.receive_datagram(bytes(damaged), 0)
    assert (bridge.counters.unknown, bridge.counters.bad_data) == (1, 1)


@pytest.mark.parametrize(
    ("name", "unknown"), [("dronekit-flight.tlog", 1314), ("uavlogviewer-vtol.tlog", 0)]
)
def test_replaying_a_clean_log_yields_no_bad_frames(name: str, unknown: int) -> None:
    bridge = MavlinkBridge(FeedSettings(name))
    for record in decode_tlog((LOGS / name).read_bytes()):
        bridge.receive_datagram(record.frame, record.time_us // 1000)
    assert bridge.counters.bad_data == 0
    assert bridge.counters.truncated == 0
    assert bridge.counters.unknown == unknown
