"""End-to-end separation alert latency: simulated drones on collision courses through a real
server (MAVLink UDP feed -> hub -> monitor -> alert -> a TCP client), on loopback.

``--pairs`` head-on pairs (default 20, 40 drones), each pair over its own point 2 km from the
next, meeting ``--meet`` seconds in; every drone reports at 2 Hz (the bridge's rate). A plain
XML TCP client (what pytak reads) records when each frame arrives. For each separation alert
(``b-a-o-c`` with ``__separation``) the latency is its arrival minus the arrival of the
newest report of either of its two drones before it (client side, wall clock), and the
alert's ``time`` minus that report's ``time`` (server side: tap, monitor, event building).
Only level changes count: an active alert re-sent every 10 s is no answer to a report.
Numbers on a shared machine are ratios within one run.

    .venv/bin/python benchmarks/coordination.py [--pairs 20] [--meet 20] [--seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import tempfile
import time
from pathlib import Path

from accord.app import start
from accord.bridges.simulator import Fleet, encounter, offset
from accord.config import Config, DroneFeed
from accord.cot.framing import XmlSplitter
from accord.cot.xml import decode_xml

ORIGIN = (46.95, 7.45)


async def run(pairs: int, meet_s: float, seconds: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        feed = DroneFeed(name="sim", kind="udp", address="127.0.0.1:0", org="bench")
        config = Config(
            data_dir=Path(tmp), bind="127.0.0.1", drone_port=0, drone_feeds=(feed,),
            archive=False, tls_port=0, https_port=0, enroll_port=0, udp_port=0,
        )  # fmt: skip
        running = await start(config, any_port=True)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", running.ports["tcp"])
            vehicles = []
            for i in range(pairs):
                centre = offset(*ORIGIN, 0.0, 2000.0 * i)
                ids = (2 * i + 1, 2 * i + 2)
                vehicles += encounter("headon", centre, meet_s=meet_s, sysids=ids)
            fleet = Fleet(vehicles=tuple(vehicles))
            arrivals: list[tuple[float, bytes]] = []

            async def read() -> None:
                splitter = XmlSplitter()
                while data := await reader.read(65536):
                    now = time.time()
                    splitter.feed(data)
                    while (frame := splitter.next_frame()) is not None:
                        arrivals.append((now, frame))

            reading = asyncio.create_task(read())
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            port = running.ports["drone:sim"]
            loop = asyncio.get_running_loop()
            began = loop.time()
            while (t := loop.time() - began) < seconds:
                for frames in fleet.frames(t):
                    sock.sendto(b"".join(frames), ("127.0.0.1", port))
                await asyncio.sleep(0.1)
            sock.close()
            await asyncio.sleep(0.5)
            reading.cancel()
            writer.close()
        finally:
            await running.close(grace_s=2.0)
    client_ms, server_ms = [], []
    last: dict[str, tuple[float, int]] = {}  # uid -> (arrival, event time) of its last report
    shown: dict[str, str] = {}  # alert uid -> level last received
    for arrived, frame in arrivals:
        if b"t-x-takp" in frame:
            continue
        event = decode_xml(frame)
        if event.type.startswith("a-"):
            last[event.uid] = (arrived, event.time)
        elif event.type == "b-a-o-c" and "<__separation" in event.detail.xml:
            mark = event.detail.xml.split("<__separation", 1)[1]
            level = mark.split(' level="', 1)[1].split('"', 1)[0]
            if shown.get(event.uid) == level:
                continue  # a refresh (re-sent before its stale time), not a change
            shown[event.uid] = level
            pair = [mark.split(f' {k}="', 1)[1].split('"', 1)[0] for k in ("a", "b")]
            reports = [last[uid] for uid in pair if uid in last]
            if reports:
                newest = max(reports)
                client_ms.append((arrived - newest[0]) * 1000)
                server_ms.append(event.time - newest[1])
    if not client_ms:
        print("no alerts received")
        return

    def summary(values: list[float]) -> str:
        ordered = sorted(values)
        p = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
        return f"p50 {statistics.median(ordered):.1f} / p99 {p:.1f} / max {ordered[-1]:.1f} ms"

    print(f"{pairs} pairs ({2 * pairs} drones at 2 Hz), {len(client_ms)} alerts")
    print(f"  client: alert arrival - the pair's last report arrival: {summary(client_ms)}")
    print(f"  server: alert time - that report's time:               {summary(server_ms)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--meet", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    asyncio.run(run(args.pairs, args.meet, args.seconds))


if __name__ == "__main__":
    main()
