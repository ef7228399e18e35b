"""Bytes on the bus per event against the number of nodes that need it (issue 17).

One NATS server with JetStream, four Accord nodes on it (in this process, as in the tests). A
client on node 0 sends SAs; receivers of its group are connected to m of the other three
nodes (m = 0..3), the rest have no session. For each m, the NATS server's own counters
(``/varz``: messages and bytes in and out) are read before and after ``--events`` SAs, and
divided by the events: what the bus carried for each event, against m. The SA's frame size
(as received, which is what is published) is printed for scale. A broadcast design (every
event to every node, as the official TAK Server does) would send 3 copies out whatever m is.

    flock /tmp/accord-bench.lock .venv/bin/python benchmarks/cluster_bytes.py --events 500
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from accord.app import Running, start
from accord.cluster.natsd import NatsProcess, specs
from accord.config import ClusterConfig, Config
from accord.cot.model import CotEvent, Detail, Point
from accord.cot.xml import detail_from_xml, encode_xml

NODES = 4


def _sa(uid: str, n: int, callsign: str) -> CotEvent:
    now = int(time.time() * 1000)
    detail: Detail = detail_from_xml(
        f'<contact callsign="{callsign}" endpoint="*:-1:stcp"/>'
        '<__group name="Cyan" role="Team Member"/><status battery="88"/>'
        '<takv device="Pixel 8" platform="ATAK-CIV" os="34" version="5.5.0"/>'
        '<track course="90.0" speed="1.2"/>'
    )
    return CotEvent(
        uid=uid, type="a-f-G-U-C", how="m-g", time=now, start=now, stale=now + 300_000,
        point=Point(50.0 + n * 1e-5, 8.0, 100.0, 5.0, 5.0), detail=detail,
    )  # fmt: skip


async def _varz(nats: NatsProcess) -> dict[str, int]:
    v = await nats.monitor("varz")
    return {k: int(v[k]) for k in ("in_msgs", "in_bytes", "out_msgs", "out_bytes")}  # type: ignore[call-overload]


async def _until(condition: Callable[[], bool], timeout_s: float = 20.0) -> None:
    for _ in range(int(timeout_s / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise TimeoutError("the nodes' interest did not settle")


async def _drain(reader: asyncio.StreamReader, until: bytes, count: int) -> None:
    seen = 0
    buf = b""
    while seen < count:
        data = await reader.read(65536)
        if not data:
            return
        buf += data
        seen += buf.count(until)
        buf = buf[-len(until) :]


async def run(events: int, rate: float) -> list[dict[str, Any]]:
    root = Path(tempfile.mkdtemp(prefix="accord-bytes-bench-"))
    nats = NatsProcess(specs(["n1"], root / "nats")[0], [])
    await nats.start()
    nodes: list[Running] = []
    rows = []
    try:
        base = {"https_port": 0, "enroll_port": 0, "udp_port": 0, "tls_port": 0, "drone_port": 0,
                "archive": False}  # fmt: skip
        for i in range(NODES):
            cluster = ClusterConfig((nats.spec.url,), f"node{i}", "bench")
            config = Config(data_dir=root / f"d{i}", cluster=cluster, **base)
            nodes.append(await start(config, any_port=True))
        _, w_send = await asyncio.open_connection("127.0.0.1", nodes[0].ports["tcp"])
        uid = "SENDER-" + uuid.uuid4().hex[:8]
        size = len(encode_xml(_sa(uid, 0, "SENDER")))
        for m in range(NODES):
            receivers = [
                await asyncio.open_connection("127.0.0.1", nodes[1 + j].ports["tcp"])
                for j in range(m)
            ]
            for j, (_, w) in enumerate(receivers):
                w.write(encode_xml(_sa(f"RECV-{m}-{j}", 0, f"R{j}")))
                await w.drain()
            # Until every receiving node subscribed (and no other node did).
            want = {f"node{1 + j}" for j in range(m)}
            await _until(
                lambda want=want: (
                    {n.cluster.node for n in nodes[1:] if n.cluster._interest.groups} == want
                )
            )
            await asyncio.sleep(0.5)  # the subscriptions reach the server
            before = await _varz(nats)
            published = nodes[0].cluster.published
            marker = f'uid="{uid}"'.encode()
            drains = [asyncio.ensure_future(_drain(r, marker, events)) for r, _ in receivers]
            for n in range(events):
                w_send.write(encode_xml(_sa(uid, n + 1, "SENDER")))
                await w_send.drain()
                await asyncio.sleep(1 / rate)
            if drains:
                await asyncio.wait_for(asyncio.gather(*drains), 30)
            await asyncio.sleep(0.5)
            after = await _varz(nats)
            d = {k: after[k] - before[k] for k in before}
            rows.append(
                {
                    "m": m,
                    "published": nodes[0].cluster.published - published,
                    "in_msgs": d["in_msgs"] / events,
                    "in_bytes": d["in_bytes"] / events,
                    "out_msgs": d["out_msgs"] / events,
                    "out_bytes": d["out_bytes"] / events,
                    "frame": size,
                }
            )
            for _, w in receivers:
                w.close()
            await _until(lambda: not any(n.cluster._interest.groups for n in nodes[1:]))
        w_send.close()
    finally:
        for node in nodes:
            await node.close(grace_s=1.0)
        await nats.stop()
        shutil.rmtree(root, ignore_errors=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--rate", type=float, default=200.0)
    a = parser.parse_args()
    rows = asyncio.run(run(a.events, a.rate))
    print(f"SA frame as received: {rows[0]['frame']} bytes; {a.events} events per row")
    print("| nodes that need it | published per event | NATS in msgs / bytes per event | "
          "NATS out msgs / bytes per event |")  # fmt: skip
    print("|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['m']} | {r['published'] / a.events:.2f} | {r['in_msgs']:.2f} / "
            f"{r['in_bytes']:.0f} | {r['out_msgs']:.2f} / {r['out_bytes']:.0f} |"
        )


if __name__ == "__main__":
    main()
