"""MAVLink feeds: thin asyncio adapters that move bytes into a :class:`MavlinkBridge` and the
events it returns into the hub, as a party that receives nothing (like UDP input).

Kinds: ``udp`` listens; ``udpout`` sends a GCS heartbeat to the vehicle (or router) every second
so that it learns where to send, then reads its replies; ``tcp`` connects and reconnects with
back-off; ``serial`` reads a serial device (a telemetry radio, an autopilot's USB port) with
pyserial-asyncio-fast and, when it cannot be opened or disappears (unplugged), logs it, counts it
in ``link_errors`` and tries again with back-off, never touching the other feeds; ``tlog``
replays a telemetry log at ``speed`` times real time. Each runs one ticker that judges link
loss once every ``TICK_S``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import serial
import serial_asyncio_fast

from accord.bridges.mavlink import MavlinkBridge, gcs_heartbeat
from accord.bridges.tlog import decode_tlog
from accord.cot.model import CotEvent
from accord.domain.contacts import Party
from accord.domain.views import DroneFeedView, Sample

log = logging.getLogger("accord.feeds")

TICK_S = 0.5
RECONNECT_MIN_S, RECONNECT_MAX_S = 1.0, 30.0
READ_BYTES = 65536
RECEIVE_BUFFER_BYTES = 4 * 1024 * 1024


# /metrics name, BridgeCounters field, help.
_COUNTERS = (
    ("drone_bytes_total", "bytes_in", "MAVLink bytes received"),
    ("drone_messages_total", "messages", "MAVLink messages parsed"),
    ("drone_bad_data_total", "bad_data", "Bad frames skipped: CRC failures, bad lengths"),
    ("drone_truncated_total", "truncated", "Partial frames at the end of a datagram"),
    ("drone_unknown_messages_total", "unknown", "Messages with ids outside the dialect"),
    ("drone_ignored_components_total", "ignored_components",
     "Heartbeats and vehicle messages of ground stations and non-owning components"),
    ("drone_conflicts_total", "conflicts", "Heartbeats of a second vehicle claiming a system id"),
    ("drone_events_total", "events", "Events emitted (aircraft, aim points, alerts, routes)"),
    ("drone_links_lost_total", "links_lost", "Link-lost alerts raised (heartbeat stopped)"),
)  # fmt: skip


class Router(Protocol):
    """What a feed needs of the hub (feeds and server are sibling adapters)."""

    def submit(self, sender: Party, event: CotEvent) -> bool: ...


def wall_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Feed:
    """One running feed: its bridge, its party in the hub, its tasks and transport."""

    name: str
    bridge: MavlinkBridge
    hub: Router
    party: Party
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    transport: asyncio.BaseTransport | None = None
    bound: tuple[str, int] | None = None  # udp: the address actually listened on
    kind: str = ""
    where: str = ""  # address, or file or device path
    adhoc: bool = False  # added by the admin API, not from the configuration
    link_errors: int = 0  # tcp, serial: could not connect or open, or the link broke

    def view(self) -> DroneFeedView:
        vehicles = self.bridge.vehicles.values()
        return DroneFeedView(
            self.name,
            self.kind,
            self.where,
            self.adhoc,
            self.bound[1] if self.bound is not None else None,
            len(vehicles),
            sum(1 for v in vehicles if not v.link_lost),
            {**self.bridge.counters.snapshot(), "link_errors": self.link_errors},
        )

    def samples(self) -> list[Sample]:
        """This feed's numbers for /metrics (the feed is a :class:`MetricsSource`)."""
        c, labels = self.bridge.counters, (("feed", self.name),)
        view = self.view()
        values = [
            (name, "counter", help, float(getattr(c, attr))) for name, attr, help in _COUNTERS
        ]
        values += [
            ("drone_link_errors_total", "counter",
             "TCP or serial links that could not be opened or broke", float(self.link_errors)),
            ("drone_vehicles", "gauge", "Vehicles seen on the feed", float(view.vehicles)),
            ("drone_vehicles_live", "gauge", "Vehicles heard within the link timeout",
             float(view.vehicles_live)),
        ]  # fmt: skip
        return [Sample(n, k, h, v, labels) for n, k, h, v in values]  # type: ignore[arg-type]

    def submit(self, events: Iterable[CotEvent]) -> None:
        for event in events:
            self.hub.submit(self.party, event)

    async def ticker(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            self.submit(self.bridge.tick(wall_ms()))

    def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        if self.transport is not None:
            self.transport.close()


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, feed: Feed) -> None:
        self.feed = feed

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.feed.submit(self.feed.bridge.receive_datagram(data, wall_ms()))

    def error_received(self, exc: Exception) -> None:
        log.warning("%s: UDP error: %s", self.feed.name, exc)


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


async def start_udp(feed: Feed, address: str, *, send_first: bool) -> None:
    loop = asyncio.get_running_loop()
    host, port = split_address(address)
    if send_first:
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Datagrams(feed), remote_addr=(host, port)
        )
        feed.tasks.append(loop.create_task(_announce(feed, transport)))
    else:
        # Bound here rather than by create_datagram_endpoint: uvloop leaves a transport
        # behind when its own bind fails, and a busy port is a normal case (the default feed).
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.bind((host, port))
            # A fleet's ticks arrive as bursts of one datagram per vehicle: with the default
            # buffer a burst of 200 overflows it and whole heartbeats are lost.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER_BYTES)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        transport, _ = await loop.create_datagram_endpoint(lambda: _Datagrams(feed), sock=sock)
        feed.bound = transport.get_extra_info("sockname")[:2]
    feed.transport = transport
    feed.tasks.append(loop.create_task(feed.ticker()))


async def _announce(feed: Feed, transport: asyncio.DatagramTransport) -> None:
    heartbeat = gcs_heartbeat()
    while True:
        transport.sendto(heartbeat)
        await asyncio.sleep(1.0)


async def start_tcp(feed: Feed, address: str) -> None:
    loop = asyncio.get_running_loop()
    feed.tasks.append(loop.create_task(_tcp(feed, *split_address(address))))
    feed.tasks.append(loop.create_task(feed.ticker()))


async def _tcp(feed: Feed, host: str, port: int) -> None:
    delay = RECONNECT_MIN_S
    while True:
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError as exc:
            feed.link_errors += 1
            log.warning("%s: cannot reach %s:%d (%s); retry in %.0f s", feed.name, host, port,
                        exc.strerror or exc, delay)  # fmt: skip
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_S)
            continue
        log.info("%s: connected to %s:%d", feed.name, host, port)
        delay = RECONNECT_MIN_S
        try:
            writer.write(gcs_heartbeat())
            while data := await reader.read(READ_BYTES):
                feed.submit(feed.bridge.receive_data(data, wall_ms()))
            log.warning("%s: %s:%d closed the connection", feed.name, host, port)
        except OSError as exc:
            log.warning("%s: connection to %s:%d lost: %s", feed.name, host, port, exc)
        finally:
            writer.close()
        feed.link_errors += 1
        await asyncio.sleep(delay)


async def start_serial(feed: Feed, path: str, baud: int) -> None:
    """Read ``path``; a device that is missing now is waited for, not an error."""
    loop = asyncio.get_running_loop()
    feed.tasks.append(loop.create_task(_serial(feed, path, baud)))
    feed.tasks.append(loop.create_task(feed.ticker()))


async def _serial(feed: Feed, path: str, baud: int) -> None:
    delay = RECONNECT_MIN_S
    while True:
        try:
            reader, writer = await serial_asyncio_fast.open_serial_connection(
                url=path, baudrate=baud
            )
        except (OSError, serial.SerialException, ValueError) as exc:
            feed.link_errors += 1
            log.warning("%s: cannot open %s (%s); retry in %.0f s", feed.name, path,
                        getattr(exc, "strerror", None) or exc, delay)  # fmt: skip
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_S)
            continue
        log.info("%s: reading %s at %d baud", feed.name, path, baud)
        delay = RECONNECT_MIN_S
        try:
            while data := await reader.read(READ_BYTES):
                feed.submit(feed.bridge.receive_data(data, wall_ms()))
            log.warning("%s: %s closed", feed.name, path)
        except (OSError, serial.SerialException) as exc:
            log.warning("%s: %s lost (%s); retry in %.0f s", feed.name, path, exc, delay)
        finally:
            with contextlib.suppress(OSError, serial.SerialException):
                writer.close()
        feed.link_errors += 1
        await asyncio.sleep(delay)


async def start_tlog(feed: Feed, path: Path, speed: float) -> None:
    data = await asyncio.to_thread(path.read_bytes)  # OSError: the caller names the file
    loop = asyncio.get_running_loop()
    feed.tasks.append(loop.create_task(_replay(feed, data, speed)))
    feed.tasks.append(loop.create_task(feed.ticker()))


async def _replay(feed: Feed, data: bytes, speed: float) -> None:
    """Send each record when its turn comes at ``speed``; events carry the wall time."""
    start = time.monotonic()
    first: int | None = None
    count = 0
    for record in decode_tlog(data):
        if first is None:
            first = record.time_us
        due = start + (record.time_us - first) / 1e6 / speed
        delay = due - time.monotonic()
        if delay > 0.001:
            await asyncio.sleep(delay)
        feed.submit(feed.bridge.receive_datagram(record.frame, wall_ms()))
        count += 1
        if count % 2000 == 0:
            await asyncio.sleep(0)  # a log replayed as fast as possible must not starve the loop
    log.info("%s: replay finished (%d records)", feed.name, count)
