"""Serial drone feeds on pseudo-terminals: MAVLink written to the master reaches clients; a
device that disappears is counted and retried, and the feed recovers when it comes back."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from accord.bridges.simulator import Fleet
from accord.config import ConfigError, DroneFeed, parse_drone_feeds
from accord.feeds import mavlink as feeds
from tests.conftest import Server, ServerFactory
from tests.e2e.clients import CotClient
from tests.waiting import wait_until


class Device:
    """A serial device at a stable path (like /dev/serial/by-id/…): a symlink to a pty."""

    def __init__(self, link: Path) -> None:
        self.link = link
        self.master = -1
        self.plug()

    def plug(self) -> None:
        master, slave = os.openpty()
        self.master = master
        target = os.ttyname(slave)
        os.close(slave)  # the feed opens the slave by its path
        tmp = self.link.with_suffix(".new")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(target)
        tmp.replace(self.link)

    def unplug(self) -> None:
        os.close(self.master)
        self.master = -1

    async def fly(self, fleet: Fleet, seconds: float, rate_hz: float = 10.0) -> None:
        for tick in range(int(seconds * rate_hz)):
            for frames in fleet.frames(tick / rate_hz):
                os.write(self.master, b"".join(frames))
            await asyncio.sleep(1 / rate_hz)  # the telemetry rate of a real vehicle


async def test_a_serial_feed_survives_its_device_disappearing(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    device = Device(tmp_path / "ttyRADIO")
    feed = DroneFeed(name="radio", kind="serial", path=str(device.link), baud=57600, org="org")
    udp = DroneFeed(name="other", kind="udp", address="127.0.0.1:0", org="org")
    server: Server = await make_server(drone_feeds=(feed, udp))
    runner = server.running.feeds["radio"]
    client = await CotClient.connect(server.port("tcp"))
    await client.expect_silence(0.1)
    try:
        await device.fly(Fleet(1), 1.0)
        event = await client.recv_until(lambda e: e.uid == "org.radio.1", timeout=3.0)
        assert event.type.startswith("a-f-A-M")
        assert runner.link_errors == 0
        device.unplug()
        await wait_until(lambda: runner.link_errors >= 1, what="the unplugged device noticed")
        assert "other" in server.running.feeds  # the other feed is untouched
        device.plug()  # back, at the same path
        before = runner.bridge.counters.messages

        async def heard_again() -> bool:  # the feed reopens the device after its back-off
            await device.fly(Fleet(1), 0.3)
            return runner.bridge.counters.messages > before

        await wait_until(heard_again, timeout_s=feeds.RECONNECT_MIN_S + 10, what="heard again")
        assert runner.view().counters["link_errors"] >= 1
    finally:
        if device.master >= 0:
            device.unplug()


async def test_a_missing_device_at_start_is_waited_for_not_fatal(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    feed = DroneFeed(name="absent", kind="serial", path=str(tmp_path / "ttyNONE"))
    server = await make_server(drone_feeds=(feed,))
    runner = server.running.feeds["absent"]
    await wait_until(lambda: runner.link_errors >= 1, what="the missing device counted")
    assert runner.view().kind == "serial"
    assert runner.view().where == str(tmp_path / "ttyNONE")


def test_a_serial_table_needs_a_path_and_a_whole_baud_rate() -> None:
    (feed,) = parse_drone_feeds([{"name": "r", "kind": "serial", "path": "/dev/ttyUSB0"}], "t")
    assert (feed.path, feed.baud) == ("/dev/ttyUSB0", 57600)
    (fast,) = parse_drone_feeds(
        [{"name": "r", "kind": "serial", "path": "/dev/ttyACM0", "baud": 921600}], "t"
    )
    assert fast.baud == 921600
    for table, said in [
        ({"name": "r", "kind": "serial"}, "needs path"),
        ({"name": "r", "kind": "serial", "path": "/dev/x", "baud": 57600.5}, "whole number"),
        ({"name": "r", "kind": "serial", "path": "/dev/x", "baud": 0}, "whole number"),
    ]:
        with pytest.raises(ConfigError, match=said):
            parse_drone_feeds([table], "t")
