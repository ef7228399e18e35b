"""``accord serve --workers 2`` with a drone feed: one worker computes the alerts, and a client
on each worker gets each alert event once and one cancel (issue 17)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from pathlib import Path

import pytest

from accord.bridges.simulator import Fleet, encounter
from accord.cluster.natsd import free_port
from accord.config import DroneFeed
from tests.cluster.test_alerts import Recorder
from tests.cluster.test_workers import running_workers
from tests.e2e.test_coordination import ORIGIN
from tests.waiting import wait_until

pytestmark = pytest.mark.timeout(180)


async def fly_to(port: int, fleet: Fleet, seconds: float, rate_hz: float = 10.0) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    start = loop.time()
    try:
        while (t := loop.time() - start) < seconds:
            for frames in fleet.frames(t):
                sock.sendto(b"".join(frames), ("127.0.0.1", port))
            await asyncio.sleep(1 / rate_hz)
    finally:
        sock.close()


async def test_workers_raise_each_alert_once(tmp_path: Path) -> None:
    port = free_port()  # (a TCP port free now: the UDP one of that number almost surely too)
    feed = DroneFeed(name="sim", kind="udp", address=f"127.0.0.1:{port}", org="org")
    async with running_workers(tmp_path / "data", drone_feeds=(feed,)) as cl:
        first = await cl.tcp()
        pid = await cl.pid_of(first)
        second, _ = await cl.on_other_worker(pid, cl.tcp)
        on_first, on_second = Recorder(first), Recorder(second)
        flying = asyncio.create_task(
            fly_to(port, Fleet(vehicles=encounter("headon", ORIGIN, meet_s=5.0, speed=30.0)), 16.0)
        )
        try:
            await wait_until(
                lambda: on_first.cancels() and on_second.cancels(), timeout_s=30, what="cancels"
            )
            await asyncio.sleep(1.0)
        finally:
            flying.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flying
            await on_first.stop()
            await on_second.stop()
    assert on_first.alerts()
    for client in (on_first, on_second):
        assert len({e.uid for e in client.events}) == 1
        assert len(client.cancels()) == 1
    assert [(e.type, e.time) for e in on_first.events] == [
        (e.type, e.time) for e in on_second.events
    ]
