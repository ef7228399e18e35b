"""How long a base takes to catch up after its uplink was cut (issue 17, leaf nodes).

A main NATS server in JetStream domain ``hub`` that accepts leaf nodes, a base's leaf in domain
``base1`` attached through a TCP link that is cut and healed, an Accord node on each side (the
base's with ``hub_domain = "hub"``). While cut, N SAs of N uids are stored on each side (as the
base node and the main node would have published them: the latest-SA stream of each domain);
then the link is healed and the time is taken until the base node's catch-up has finished
(every one of the base's N republished, every one of the main side's N delivered to its hub).

    flock /tmp/accord-bench.lock .venv/bin/python -m benchmarks.leaf_catchup --uids 100 1000
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import nats
from tests.cluster.test_leaf import CuttableLink
from tests.waiting import wait_until

from accord.app import start
from accord.cluster.leaf import ConfiguredNats, hub_conf, leaf_conf
from accord.cluster.natsd import free_port, specs
from accord.cluster.subjects import Route, encode_headers, sa_stream, sa_subject
from accord.config import ClusterConfig, Config
from accord.cot.model import CotEvent, Point, WireFormat
from accord.cot.xml import encode_xml

ORG = "bench"
GROUP = "Blue"


async def _store(url: str, node: str, uids: int) -> None:
    """``uids`` SAs published as ``node`` would have, into the stream of the server at url."""
    conn = await nats.connect(url)
    try:
        js = conn.jetstream()
        now = int(time.time() * 1000)
        for n in range(uids):
            uid = f"{node}-{n}"
            event = CotEvent(
                uid=uid, type="a-f-G-U-C", how="m-g", time=now, start=now,
                stale=now + 300_000, point=Point(1.0, 2.0, 3.0, 4.0, 5.0),
            )  # fmt: skip
            route = Route(node, f"{uuid.uuid4().hex[:12]}.{n}", WireFormat.XML, frozenset({GROUP}))
            await js.publish(
                sa_subject(ORG, GROUP, uid), encode_xml(event), headers=encode_headers(route)
            )
    finally:
        await conn.close()


async def _count(url: str, domain: str | None, prefix: str) -> int:
    conn = await nats.connect(url)
    try:
        info = await conn.jetstream(domain=domain).stream_info(
            sa_stream(ORG), subjects_filter=f"accord.{ORG}.sa.>"
        )
        return sum(1 for s in info.state.subjects or {} if prefix in s)
    finally:
        await conn.close()


async def run_one(uids: int, root: Path) -> dict[str, float]:
    (hub_spec,) = specs(["hub1"], root / "nats")
    leaf_port = free_port()
    hub = ConfiguredNats(
        hub_spec, hub_conf(hub_spec, domain="hub", leaf_port=leaf_port, peers=[], advertise=False)
    )
    link = CuttableLink(leaf_port)
    await link.start()
    (leaf_spec,) = specs(["leaf1"], root / "nats")
    remote = [f"nats-leaf://127.0.0.1:{link.port}"]
    leaf = ConfiguredNats(leaf_spec, leaf_conf(leaf_spec, domain="base1", remotes=remote))
    await hub.start()
    await leaf.start()
    off = {"https_port": 0, "enroll_port": 0, "udp_port": 0, "tls_port": 0, "tcp_port": 0,
           "drone_port": 0, "archive": False}  # fmt: skip
    main_node = await start(
        Config(data_dir=root / "h", cluster=ClusterConfig((hub_spec.url,), "node-h", ORG), **off),
        any_port=True,
    )
    on_leaf = ClusterConfig((leaf_spec.url,), "node-b", ORG, hub_domain="hub")
    base_node = await start(Config(data_dir=root / "b", cluster=on_leaf, **off), any_port=True)
    catch = base_node.cluster_leaf
    try:
        await wait_until(lambda: catch.completed >= 1, what="the first catch-up, at start")
        link.cut()
        await wait_until(lambda: not catch.watch.up, what="the cut seen")
        await _store(leaf_spec.url, "node-b", uids)
        await _store(hub_spec.url, "node-h", uids)
        republished, delivered = catch.republished, catch.delivered
        healed = time.perf_counter()
        link.heal()
        await wait_until(lambda: catch.watch.up, timeout_s=60, what="the heal seen")
        seen_up = time.perf_counter()
        await wait_until(lambda: catch.completed >= 2, timeout_s=600, what="caught up")
        done = time.perf_counter()
        assert catch.republished - republished == uids, catch.view()
        assert catch.delivered - delivered == uids, catch.view()
        assert await _count(hub_spec.url, None, "node-b") == uids
        return {
            "uids": uids,
            "link_up_s": seen_up - healed,
            "catch_up_s": done - seen_up,
            "total_s": done - healed,
        }
    finally:
        await base_node.close(grace_s=1.0)
        await main_node.close(grace_s=1.0)
        await leaf.stop()
        await hub.stop()
        await link.close()


async def main(sizes: list[int]) -> None:
    for uids in sizes:
        root = Path(tempfile.mkdtemp(prefix="accord-leaf-bench-"))
        try:
            row = await run_one(uids, root)
        finally:
            shutil.rmtree(root, ignore_errors=True)
        print(
            f"{uids:6d} uids each side: heal -> probe up {row['link_up_s']:.2f} s, "
            f"catch-up {row['catch_up_s']:.2f} s ({row['catch_up_s'] / uids * 1e3:.2f} ms/uid "
            f"pair), total {row['total_s']:.2f} s"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--uids", type=int, nargs="+", default=[100, 1000])
    args = parser.parse_args()
    print(f"load average: {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")
    asyncio.run(main(args.uids))
