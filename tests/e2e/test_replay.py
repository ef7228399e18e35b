"""``accord drone replay``: progress while it runs, and a clean log arrives without bad frames."""

from __future__ import annotations

import asyncio
import io
import socket
import sys
from pathlib import Path

from accord.bridges.tlog import Record, decode_tlog
from accord.cli.replay import Progress, heartbeat_vehicle, replay
from tests.conftest import ServerFactory
from tests.waiting import wait_until

LOGS = Path(__file__).resolve().parents[3] / "shared" / "data" / "mavlink"
VTOL = LOGS / "uavlogviewer-vtol.tlog"


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _records() -> list[Record]:
    return list(decode_tlog(VTOL.read_bytes()))


def test_progress_into_a_file_is_a_line_every_few_seconds() -> None:
    records = _records()
    clock, out = FakeClock(), io.StringIO()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))  # to itself: nothing else receives it
        progress = replay(records, sock, sock.getsockname(), 10.0, out, clock=clock,
                          sleep=clock.sleep)  # fmt: skip
    lines = out.getvalue().splitlines()
    # 207.6 s of log at 10x: 20.8 s, a line every 5 s and the last one
    assert len(lines) == 5
    assert lines[0].startswith("0:5")  # 50 s of log after 5 s at 10x
    assert "1 vehicle," in lines[-1]
    assert lines[-1].startswith("3:27 / 3:27 of the log (100 %)")
    assert f"{len(records):,} messages" in lines[-1]
    assert progress.vehicles == {1}
    assert "\r" not in out.getvalue()


def test_progress_on_a_terminal_rewrites_one_line() -> None:
    records = _records()[:3000]
    clock, out = FakeClock(), Terminal()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        replay(records, sock, sock.getsockname(), 1.0, out, clock=clock, sleep=clock.sleep)
    text = out.getvalue()
    assert text.count("\n") == 1  # one line, overwritten in place
    assert text.count("\r\x1b[K") > 10
    assert "msg/s" in text.rsplit("\r\x1b[K", 1)[1]


def test_vehicles_are_the_systems_whose_heartbeat_names_a_vehicle() -> None:
    from pymavlink.dialects.v20 import ardupilotmega as mavlink

    def heartbeat(sysid: int, mav_type: int, v1: bool = False) -> bytes:
        mav = mavlink.MAVLink(None, srcSystem=sysid, srcComponent=1)
        if v1:
            mav.WIRE_PROTOCOL_VERSION = "1.0"
        frame: bytes = mav.heartbeat_encode(mav_type, 3, 0, 0, 4).pack(mav)
        return frame

    assert heartbeat_vehicle(heartbeat(7, 2)) == 7  # quadrotor
    assert heartbeat_vehicle(heartbeat(255, 6)) is None  # a ground station
    assert heartbeat_vehicle(heartbeat(3, 1, v1=True)) == 3  # fixed wing, MAVLink 1
    progress = Progress(records=2, duration_s=1.0)
    progress.add(Record(0, heartbeat(7, 2)), 0.0)
    progress.add(Record(1, heartbeat(255, 6)), 1.0)
    assert "1 vehicle, 2 messages" in progress.line(1.0)


async def test_replaying_a_clean_log_to_a_server_shows_no_bad_frames(
    make_server: ServerFactory,
) -> None:
    server = await make_server(drone_port=14550)  # the default feed, on a port the OS picks
    data_dir = server.config.data_dir
    # No --udp: the command finds the default feed's port in the server's running.json.
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "accord", "drone", "replay", str(VTOL), "--speed", "100",
        "--data-dir", str(data_dir),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await proc.communicate()
    text = out.decode()
    assert proc.returncode == 0, text
    assert f"to 127.0.0.1:{server.port('drone:mavlink')}" in text
    assert "3:27 / 3:27 of the log (100 %), 1 vehicle" in text
    feed = server.running.feeds["mavlink"]
    counters = feed.bridge.counters
    records = len(_records())
    await wait_until(
        lambda: counters.messages + counters.unknown + counters.bad_data >= records,
        what="every record of the log read",
    )
    assert counters.bad_data == 0
    assert counters.truncated == 0
