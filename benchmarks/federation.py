"""Events/s across one partner link on loopback and the latency it adds (p50), with A releasing
under a 5-rule policy and both sides keeping the sharing ledger.

.venv/bin/python -m benchmarks.federation [N] [--share-all] [--reps R]

Each server runs in its own process (as two organisations' servers would), the clients in this
one. Three measurements: p50 of one SA at a time from a TCP client on A to a TCP client on A
(direct local delivery, the baseline), the same to a TCP client on B across the link, and
bursts of N SAs (pre-encoded, written at once) from A's client until B's client has the last
one (read as raw bytes, so that the measuring client is not what bounds the rate). Received
counts, ledger sizes and each server's CPU time per event are printed so that a drop cannot
hide and the cost is visible.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import statistics
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import uvloop
from tests.e2e.clients import CotClient, new_uid, sa
from tests.federation.test_link_e2e import Org, config

from accord.config import Config
from accord.cot.xml import encode_xml

AREA = "[[-60.0, -60.0], [-60.0, 60.0], [60.0, 60.0], [60.0, -60.0]]"
POLICY = f"""
name = "bench"
partner = "org-b"
[area.world]
polygon = {AREA}
[area.base]
circle = {{ lat = 50.0, lon = 50.0, radius_m = 500 }}
[always_withhold]
types = ["b-t-f*", "t-*"]
areas = ["base"]
[[rule]]
name = "drones"
types = ["a-f-A-M-H-Q*"]
grid_m = 100
altitude_m = 10
[[rule]]
name = "detections"
types = ["a-h-A*", "a-u-A*"]
delay_s = 30
[[rule]]
name = "spi"
types = ["b-m-p-s-p-i"]
not_areas = ["base"]
grid_m = 10
[[rule]]
name = "ground-sa"
types = ["a-f-G*"]
areas = ["world"]
grid_m = 100
strip = ["__group"]
[[rule]]
name = "rest"
action = "withhold"
"""


def _server(cfg: Config, conn: Connection) -> None:
    """A child process: one server, answering "stats" and "stop" on ``conn``."""
    from accord.app import start

    async def main() -> None:
        running = await start(cfg, any_port=True)
        try:  # what `accord serve` does once started (accord.app.serve)
            from accord.server.memory import settle_collector
        except ImportError:  # a tree from before the collector policy
            pass
        else:
            settle_collector()
        conn.send(dict(running.ports))
        loop = asyncio.get_running_loop()
        while await loop.run_in_executor(None, conn.recv) != "stop":
            fed, ledger, gate = running.federation, running.ledger, running.gate
            assert fed is not None
            assert ledger is not None
            conn.send(
                {
                    "links": {f"{v.partner}:{v.direction}": v for v in fed.links()},
                    "ledger": {
                        p: (ledger.size(p, "out"), ledger.size(p, "in")) for p in ("ORG-A", "ORG-B")
                    },
                    "unrecorded": ledger.unrecorded,
                    "decisions": gate.decisions("ORG-B") if gate is not None else {},
                }
            )
        await running.close(5)

    profile = os.environ.get("ACCORD_BENCH_PROFILE")  # a directory: one cProfile dump per server
    if not profile:
        uvloop.run(main())
        return
    import cProfile

    with cProfile.Profile() as prof:
        uvloop.run(main())
    prof.dump_stats(Path(profile) / f"{cfg.data_dir.name}.prof")


class Child:
    def __init__(self, cfg: Config) -> None:
        self.conn, theirs = mp.Pipe()
        self.proc = mp.get_context("spawn").Process(target=_server, args=(cfg, theirs))
        self.proc.start()
        self.ports: dict[str, int] = self.conn.recv()

    def stats(self) -> dict[str, Any]:
        self.conn.send("stats")
        stats: dict[str, Any] = self.conn.recv()
        return stats

    def cpu_s(self) -> tuple[float, float]:
        """(whole process, busiest thread) CPU seconds so far: the busiest is the event loop."""
        tick = os.sysconf("SC_CLK_TCK")

        def used(stat: str) -> float:
            fields = Path(stat).read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / tick

        threads = [used(f"/proc/{self.proc.pid}/task/{t}/stat")
                   for t in os.listdir(f"/proc/{self.proc.pid}/task")]  # fmt: skip
        return used(f"/proc/{self.proc.pid}/stat"), max(threads)

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        self.conn.send("stop")
        self.proc.join(30)


async def p50(sender: CotClient, receiver: CotClient, rounds: int) -> float:
    latencies = []
    for _ in range(rounds):
        uid = new_uid()
        t0 = time.perf_counter()
        await sender.send(sa(uid, "alice"))
        await receiver.recv_until(lambda e, uid=uid: e.uid == uid)
        latencies.append((time.perf_counter() - t0) * 1000)
    return statistics.median(latencies)


async def burst(alice: CotClient, bob: asyncio.StreamReader, n: int, tag: str) -> tuple[int, float]:
    """Write N SAs at once on A; count them arriving on B. Returns (received, seconds)."""
    data = b"".join(encode_xml(sa(f"{tag}-{i}", "burst", lat=10.0, lon=20.0)) for i in range(n))
    marker = f'uid="{tag}-'.encode()
    got, tail = 0, b""
    t0 = t_last = time.perf_counter()
    alice.writer.write(data)
    while got < n:
        try:
            chunk = await asyncio.wait_for(bob.read(1 << 20), 15)
        except TimeoutError:
            break  # 15 s without any: some were lost
        if not chunk:
            break
        buf = tail + chunk
        got += buf.count(marker)
        tail = buf[-(len(marker) - 1) :]
        t_last = time.perf_counter()
    return got, t_last - t0


async def main(n: int, share_all: bool, reps: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        a, b = Org(Path(tmp), "ORG-A"), Org(Path(tmp), "ORG-B")
        policy = Path(tmp) / "policy.toml"
        policy.write_text(POLICY)
        server_b = Child(config(b, (a.partner(),), input_rate=0))
        b.running = type("Ports", (), {"ports": server_b.ports})()  # for b.partner(dial=b)
        partner_b = (
            b.partner(dial=b)
            if share_all
            else b.partner(dial=b, share_all=False, policy_file=str(policy))
        )
        server_a = Child(config(a, (partner_b,), input_rate=0))
        try:
            for _ in range(300):
                if server_a.stats()["links"]["ORG-B:outgoing"].state == "up":
                    break
                await asyncio.sleep(0.1)
            alice = await CotClient.connect(server_a.ports["tcp"])
            carol = await CotClient.connect(server_a.ports["tcp"])  # local receiver on A
            bob = await CotClient.connect(server_b.ports["tcp"])
            await asyncio.sleep(0.3)
            local = await p50(alice, carol, 200)
            linked = await p50(alice, bob, 200)
            await carol.close()
            await bob.close()  # it would decode every event of the bursts in this process
            bob_reader, bob_writer = await asyncio.open_connection(
                "127.0.0.1", server_b.ports["tcp"]
            )
            await asyncio.sleep(0.3)
            rates, cpu_a, cpu_b, main_a, main_b = [], [], [], [], []
            for rep in range(reps):
                before = server_a.cpu_s(), server_b.cpu_s()
                got, seconds = await burst(alice, bob_reader, n, f"burst{rep}")
                after = server_a.cpu_s(), server_b.cpu_s()
                rates.append(got / seconds)
                us = 1e6 / n
                cpu_a.append((after[0][0] - before[0][0]) * us)
                main_a.append((after[0][1] - before[0][1]) * us)
                cpu_b.append((after[1][0] - before[1][0]) * us)
                main_b.append((after[1][1] - before[1][1]) * us)
                print(
                    f"burst {rep}: {got} of {n} in {seconds:.2f} s = {got / seconds:,.0f} events/s"
                    f"; RSS A {server_a.rss_mib():.0f} MiB, B {server_b.rss_mib():.0f} MiB"
                )
                await asyncio.sleep(1.0)
            print(f"policy: {'none (share_all)' if share_all else '5 rules'}; ledger on; "
                  f"{n} SAs x {reps}")  # fmt: skip
            rate = statistics.median(rates)
            print(f"events/s across the link to a client on B: median {rate:,.0f} "
                  f"(min {min(rates):,.0f}, max {max(rates):,.0f})")  # fmt: skip
            print(f"CPU per event: A {statistics.median(cpu_a):.0f} us (event loop thread "
                  f"{statistics.median(main_a):.0f}), B {statistics.median(cpu_b):.0f} us "
                  f"({statistics.median(main_b):.0f})")  # fmt: skip
            print(f"p50 direct local delivery {local:.2f} ms; across the link {linked:.2f} ms; "
                  f"added {linked - local:.2f} ms")  # fmt: skip
            await asyncio.sleep(1.0)
            stats_a, stats_b = server_a.stats(), server_b.stats()
            print(f"decisions at A: {stats_a['decisions']}")
            link_a = stats_a["links"]["ORG-B:outgoing"]
            print(f"link A->B: {link_a.events_out} events in {link_a.messages_out} messages, "
                  f"extensions {', '.join(link_a.extensions)}")  # fmt: skip
            print(f"ledger A out {stats_a['ledger']['ORG-B'][0]} entries, B in "
                  f"{stats_b['ledger']['ORG-A'][1]}, unrecorded {stats_a['unrecorded']}/"
                  f"{stats_b['unrecorded']}")  # fmt: skip
            bob_writer.close()
        finally:
            server_a.stop()
            server_b.stop()


if __name__ == "__main__":
    import argparse
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(relativeCreated)6d %(name)s %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("n", nargs="?", type=int, default=20_000, help="SAs per burst")
    parser.add_argument("--share-all", action="store_true", help="no policy: share_all")
    parser.add_argument("--reps", type=int, default=3, help="bursts (the median is reported)")
    args = parser.parse_args()
    uvloop.run(main(args.n, args.share_all, args.reps))
