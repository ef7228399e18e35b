"""Drones end to end: simulator -> MAVLink UDP feed -> hub -> a TCP client, on OS-picked ports."""

from __future__ import annotations

import asyncio
import configparser
import socket
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from accord.bridges.simulator import Fleet
from accord.config import DroneFeed
from accord.cot.model import CotEvent
from accord.cot.xml import decode_xml
from tests.conftest import Server, ServerFactory
from tests.e2e.clients import CotClient
from tests.e2e.conftest import Served
from tests.waiting import next_turn, wait_until

LOGS = Path(__file__).resolve().parents[3] / "shared" / "data" / "mavlink"


def udp_feed(**extra: object) -> DroneFeed:
    return DroneFeed(
        name="sim", kind="udp", address="127.0.0.1:0", org="org",
        video_url="rtsp://video.example/sim", **extra,  # type: ignore[arg-type]
    )  # fmt: skip


async def fly(server: Server, fleet: Fleet, seconds: float, *, rate_hz: float = 10.0) -> None:
    port = server.port("drone:sim")
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    try:
        for tick in range(int(seconds * rate_hz)):
            for frames in fleet.frames(tick / rate_hz):
                sock.sendto(b"".join(frames), ("127.0.0.1", port))
            await asyncio.sleep(1 / rate_hz)  # the telemetry rate of a real vehicle
    finally:
        sock.close()


async def collect(client: CotClient, seconds: float) -> list[CotEvent]:
    return await client.expect_silence(seconds)


async def test_simulated_vehicles_reach_a_tcp_client_with_sensor_spi_and_video(
    make_server: ServerFactory,
) -> None:
    server = await make_server(drone_feeds=(udp_feed(),))
    client = await CotClient.connect(server.port("tcp"))
    await client.expect_silence(0.1)
    await fly(server, Fleet(3), 1.5)
    got = await collect(client, 0.5)
    aircraft = {e.uid for e in got if e.type.startswith("a-f-A-M")}
    assert aircraft == {"org.sim.1", "org.sim.2", "org.sim.3"}
    spis = [e for e in got if e.type == "b-m-p-s-p-i"]
    assert {e.uid for e in spis} == {f"org.sim.{n}.SPI1" for n in (1, 2, 3)}
    last = [e for e in got if e.uid == "org.sim.1"][-1]
    assert "<sensor " in last.detail.xml
    assert 'url="rtsp://video.example/sim"' in last.detail.xml
    assert last.point.hae != 9999999.0  # the simulated GPS reports alt_ellipsoid
    # 2 Hz per vehicle at most, though the simulator sends 10 Hz.
    per_vehicle = [e for e in got if e.uid == "org.sim.2"]
    assert 2 <= len(per_vehicle) <= 4


async def test_garbage_flood_on_the_feed_port_leaves_the_vehicles_flowing(
    make_server: ServerFactory,
) -> None:
    server = await make_server(drone_feeds=(udp_feed(),))
    client = await CotClient.connect(server.port("tcp"))
    await client.expect_silence(0.1)
    port = server.port("drone:sim")
    junk = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for i in range(2000):
            junk.sendto(bytes([0xFD, 0x40, i % 256]) + b"\xaa" * (i % 300), ("127.0.0.1", port))
            if i % 200 == 0:
                await next_turn()  # let the feed read what the socket buffer holds
        # The flood may overrun the socket buffer and take the first heartbeat with it: a
        # vehicle is drawn from its next one (1 Hz).
        await fly(server, Fleet(2), 2.3)
    finally:
        junk.close()
    got = await collect(client, 0.5)
    assert {e.uid for e in got if e.type.startswith("a-")} == {"org.sim.1", "org.sim.2"}
    counters = server.running.feeds["sim"].bridge.counters
    assert counters.bad_data + counters.truncated >= 100


async def test_silent_vehicle_goes_stale_at_once_with_a_link_lost_alert(
    make_server: ServerFactory,
) -> None:
    server = await make_server(drone_feeds=(udp_feed(link_timeout_s=1.0),))
    client = await CotClient.connect(server.port("tcp"))
    await client.expect_silence(0.1)
    await fly(server, Fleet(1), 1.2)
    alert = await client.recv_until(lambda e: e.type == "b-a-o-c", timeout=4.0)
    assert alert.uid == "org.sim.1.link-lost"
    assert 'uid="org.sim.1"' in alert.detail.xml
    # The stale aircraft came just before the alert.
    assert server.running.feeds["sim"].bridge.counters.links_lost == 1


async def test_a_tlog_feed_replays_a_real_flight_to_clients(make_server: ServerFactory) -> None:
    feed = DroneFeed(
        name="vtol", kind="tlog", path=str(LOGS / "uavlogviewer-vtol.tlog"), speed=40.0,
        link_timeout_s=30.0,
    )  # fmt: skip
    server = await make_server(drone_feeds=(feed,))
    client = await CotClient.connect(server.port("tcp"))
    event = await client.recv_until(lambda e: e.uid == "accord.vtol.1", timeout=10.0)
    assert event.type == "a-f-A-M-F-Q"
    assert -35.37 < event.point.lat < -35.35


async def simulated_aircraft(
    server: Server, feed: str, *, vehicles: int, seconds: float
) -> set[str]:
    """Run `accord drone simulate` at ``feed``'s port; the aircraft uids a TCP client saw."""
    client = await CotClient.connect(server.port("tcp"))
    await client.expect_silence(0.1)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "accord", "drone", "simulate", "--vehicles", str(vehicles),
        "--udp", f"127.0.0.1:{server.port(feed)}", "--seconds", str(seconds),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await proc.communicate()
    assert proc.returncode == 0, out
    return {e.uid for e in await collect(client, 0.3) if e.type.startswith("a-")}


async def test_the_simulate_command_feeds_a_running_server(make_server: ServerFactory) -> None:
    server = await make_server(drone_feeds=(udp_feed(),))
    uids = await simulated_aircraft(server, "drone:sim", vehicles=2, seconds=1.5)
    assert uids == {"org.sim.1", "org.sim.2"}


async def test_a_pytak_client_receives_the_aircraft_and_its_aim_point(
    make_server: ServerFactory,
) -> None:
    pytak = pytest.importorskip("pytak")
    server = await make_server(drone_feeds=(udp_feed(),))
    parser = configparser.ConfigParser()
    parser["pytak"] = {"COT_URL": f"tcp://127.0.0.1:{server.port('tcp')}"}
    reader, writer = await pytak.protocol_factory(parser["pytak"])
    try:
        hub = server.running.hub
        await wait_until(lambda: hub.session_count == 1, what="attached before the first vehicle")
        await fly(server, Fleet(1), 1.2)
        got: dict[str, CotEvent] = {}
        async with asyncio.timeout(5):
            while not {"org.sim.1", "org.sim.1.SPI1"} <= got.keys():
                frame = await reader.readuntil(b"</event>")  # where pytak splits the stream
                if b"t-x-takp-v" in frame:
                    continue  # pytak never negotiates protobuf
                event = decode_xml(frame[frame.index(b"<event") :])
                got[event.uid] = event
    finally:
        writer.close()
    assert got["org.sim.1"].type == "a-f-A-M-H-Q"
    assert "<sensor " in got["org.sim.1"].detail.xml
    spi = got["org.sim.1.SPI1"]
    assert spi.type == "b-m-p-s-p-i"
    assert 'uid="org.sim.1"' in spi.detail.xml  # the p-p link to the aircraft


async def test_without_feeds_configured_the_default_feed_takes_the_simulator(
    make_server: ServerFactory,
) -> None:
    server = await make_server(drone_port=14550)  # any_port: the OS picks the actual port
    uids = await simulated_aircraft(server, "drone:mavlink", vehicles=1, seconds=1.2)
    assert uids == {"accord.mavlink.1"}


def test_a_busy_drone_port_only_turns_the_default_feed_off(
    serve: Callable[..., Served],
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("127.0.0.1", 0))
        port = busy.getsockname()[1]
        served = serve("--drone-port", str(port))
        assert served.proc.poll() is None  # started all the same
        log = served.text()
        assert f"127.0.0.1:{port}" in log
        assert "default drone feed is off" in log
