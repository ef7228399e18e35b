"""The added latency of a cross-node hop (issue 17): one SA from a client on node A to a client
on node B, through a 3-node NATS cluster (A on n1, B on n2: the event crosses a NATS route),
against the same SA between two clients of one node.

Both Accord nodes run in this one process and event loop (as in the tests), so the cross-node
figure includes two hubs sharing one core; the NATS servers are separate processes. On a shared
machine, read the two rows as a ratio within one run.

    .venv/bin/python benchmarks/cluster_hop.py --events 300 --rate 20
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from accord.app import start
from accord.cluster.natsd import NatsProcess, specs
from accord.config import ClusterConfig, Config
from accord.cot.framing import XmlSplitter
from accord.cot.model import CotEvent, Point
from accord.cot.xml import decode_xml, encode_xml


def _sa(uid: str, n: int) -> CotEvent:
    now = int(time.time() * 1000)
    return CotEvent(
        uid=uid, type="a-f-G-U-C", how="m-g", time=now, start=now, stale=now + 300_000,
        point=Point(float(n % 80), 1.0, 1.0, 1.0, 1.0),
    )  # fmt: skip


async def _client(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def _measure(send_port: int, recv_port: int, events: int, rate: float) -> list[float]:
    _, w_send = await _client(send_port)
    r_recv, w_recv = await _client(recv_port)
    w_recv.write(encode_xml(_sa("RECEIVER-" + uuid.uuid4().hex, 0)))
    await w_recv.drain()
    uid = "SENDER-" + uuid.uuid4().hex
    sent: dict[int, float] = {}
    took: list[float] = []
    splitter = XmlSplitter()

    async def read() -> None:
        while len(took) < events:
            data = await r_recv.read(65536)
            if not data:
                return
            splitter.feed(data)
            while (frame := splitter.next_frame()) is not None:
                event = decode_xml(frame)
                if event.uid == uid and int(event.time) in sent:
                    took.append((time.perf_counter() - sent.pop(int(event.time))) * 1000)

    reader = asyncio.create_task(read())
    # Warm-up: until the receiver's node has subscribed and one event arrived.
    while not took:
        event = _sa(uid, 0)
        sent[event.time] = time.perf_counter()
        w_send.write(encode_xml(event))
        await w_send.drain()
        await asyncio.sleep(0.2)
    took.clear()
    sent.clear()
    for n in range(events):
        event = _sa(uid, n)  # 1/rate apart: each has its own time (ms), the key
        sent[event.time] = time.perf_counter()
        w_send.write(encode_xml(event))
        await w_send.drain()
        await asyncio.sleep(1 / rate)
    await asyncio.wait_for(reader, 10)
    w_send.close()
    w_recv.close()
    return took


async def main(events: int, rate: float) -> None:
    root = Path(tempfile.mkdtemp(prefix="accord-cluster-bench-"))
    nodes = [
        NatsProcess(s, peers) for peers in [specs(["n1", "n2", "n3"], root / "nats")] for s in peers
    ]
    try:
        await asyncio.gather(*(n.start() for n in nodes))
        base = {"https_port": 0, "enroll_port": 0, "udp_port": 0, "tls_port": 0, "drone_port": 0,
                "archive": False}  # fmt: skip
        on_a = ClusterConfig((nodes[0].spec.url,), "a")
        on_b = ClusterConfig((nodes[1].spec.url,), "b")
        a = await start(Config(data_dir=root / "a", cluster=on_a, **base), any_port=True)
        shutil.copytree(root / "a" / "pki", root / "b" / "pki")  # one CA: or B may not join
        b = await start(Config(data_dir=root / "b", cluster=on_b, **base), any_port=True)
        try:
            same = await _measure(a.ports["tcp"], a.ports["tcp"], events, rate)
            cross = await _measure(a.ports["tcp"], b.ports["tcp"], events, rate)
        finally:
            await a.close(grace_s=1.0)
            await b.close(grace_s=1.0)
        for name, took in (("same node", same), ("cross node (NATS route)", cross)):
            q = statistics.quantiles(took, n=100)
            print(f"{name:26s} n={len(took):4d} p50 {q[49]:.3f} ms  p99 {q[98]:.3f} ms")
        added = statistics.median(cross) - statistics.median(same)
        print(f"added by the cross-node hop: p50 {added:.3f} ms")
    finally:
        await asyncio.gather(*(n.stop() for n in nodes))
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument("--rate", type=float, default=20.0)
    args = parser.parse_args()
    asyncio.run(main(args.events, args.rate))
