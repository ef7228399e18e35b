"""Drone bridge load: one Accord process bridging N simulated vehicles (MAVLink 2 over UDP at
``--rate`` Hz) while routing to ``--clients`` TCP clients.

Measures the server's CPU (from /proc) over the same window without and with the drone load,
and, in this process, the bridge's own parse+map time per MAVLink message.

    .venv/bin/python benchmarks/drones.py --vehicles 200 --rate 10 --clients 100 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from accord.bridges.mavlink import MavlinkBridge
from accord.bridges.simulator import Fleet
from accord.bridges.uas import FeedSettings
from procstat import CLK_TCK, proc_cpu_ticks


def free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bridge_cost(vehicles: int, rate: float, seconds: float) -> tuple[float, int, int]:
    """(µs per message, messages, events) of the pure bridge on the simulator's stream."""
    fleet = Fleet(vehicles)
    bridge = MavlinkBridge(FeedSettings("bench"))
    datagrams = [
        (int(tick / rate * 1000), b"".join(frames))
        for tick in range(int(seconds * rate))
        for frames in fleet.frames(tick / rate)
    ]
    start = time.process_time()
    for now, data in datagrams:
        bridge.receive_datagram(data, 1_700_000_000_000 + now)
    spent = time.process_time() - start
    messages = bridge.counters.messages
    return spent / messages * 1e6, messages, bridge.counters.events


async def clients(port: int, count: int, stop: asyncio.Event, received: list[int]) -> None:
    async def one() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while not stop.is_set():
                try:
                    data = await asyncio.wait_for(reader.read(65536), 0.5)
                except TimeoutError:
                    continue
                if not data:
                    return
                received[0] += data.count(b"</event>")
        finally:
            writer.close()

    await asyncio.gather(*(one() for _ in range(count)))


async def fly(port: int, vehicles: int, rate: float, seconds: float) -> int:
    fleet = Fleet(vehicles)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    sent = 0
    start = time.monotonic()
    for tick in range(int(seconds * rate)):
        for frames in fleet.frames(tick / rate):
            sock.sendto(b"".join(frames), ("127.0.0.1", port))
            sent += len(frames)
        await asyncio.sleep(max(0.0, start + (tick + 1) / rate - time.monotonic()))
    sock.close()
    return sent


async def window(pid: int, seconds: float, work: asyncio.Future[object] | None) -> float:
    """Server CPU (fraction of one core) over ``seconds``."""
    ticks, t0 = proc_cpu_ticks(pid), time.monotonic()
    if work is not None:
        await work
    else:
        await asyncio.sleep(seconds)
    return (proc_cpu_ticks(pid) - ticks) / CLK_TCK / (time.monotonic() - t0)


async def main_async(args: argparse.Namespace) -> None:
    tcp, feed = free_port(socket.SOCK_STREAM), free_port(socket.SOCK_DGRAM)
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "accord.toml"
        config.write_text(
            f'data_dir = "{tmp}/data"\ntcp_port = {tcp}\ntls_port = 0\nudp_port = 0\n'
            'https_port = 0\nenroll_port = 0\narchive = false\nlog_level = "warning"\n'
            f'[[drone_feeds]]\nname = "bench"\nkind = "udp"\naddress = "127.0.0.1:{feed}"\n'
        )
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        server = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "accord", "serve", "--config", str(config), env=env
        )
        try:
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", tcp), 0.2).close()
                    break
                except OSError:
                    await asyncio.sleep(0.1)
            stop, received = asyncio.Event(), [0]
            readers = asyncio.ensure_future(clients(tcp, args.clients, stop, received))
            await asyncio.sleep(1.0)
            idle = await window(server.pid, args.seconds, None)
            work = asyncio.ensure_future(fly(feed, args.vehicles, args.rate, args.seconds))
            loaded = await window(server.pid, args.seconds, work)
            sent = work.result()
            await asyncio.sleep(0.5)
            stop.set()
            await readers
        finally:
            server.terminate()
            await server.wait()
    per_msg, messages, events = bridge_cost(args.vehicles, args.rate, 5.0)
    msg_rate = sent / args.seconds
    print(f"server CPU, {args.clients} clients, no drones: {idle * 100:.1f} % of one core")
    print(
        f"server CPU, {args.clients} clients, {args.vehicles} vehicles at {args.rate:g} Hz "
        f"({msg_rate:,.0f} MAVLink msg/s): {loaded * 100:.1f} % of one core"
    )
    print(f"drone load alone: {(loaded - idle) * 100:.1f} % of one core")
    print(f"events delivered to clients: {received[0]:,} ({received[0] / args.seconds:,.0f}/s)")
    print(
        f"bridge parse+map (in process): {per_msg:.1f} µs per message "
        f"({messages:,} msgs -> {events:,} events); at {msg_rate:,.0f} msg/s = "
        f"{per_msg * msg_rate / 1e4:.1f} % of one core"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vehicles", type=int, default=200)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=20.0)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
