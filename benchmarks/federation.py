"""Events/s across one partner link on loopback and the latency it adds (p50), with A releasing
under a 5-rule policy and both sides keeping the sharing ledger.

.venv/bin/python -m benchmarks.federation [N] [--share-all]

Three measurements: p50 of one SA at a time from a TCP client on A to a TCP client on A (direct
local delivery, the baseline), the same to a TCP client on B across the link, and a burst of N
SAs (pre-encoded, written at once) from A's client until B's client has the last one; received
count and ledger sizes are printed so a drop cannot hide.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import uvloop
from tests.e2e.clients import CotClient, new_uid, sa
from tests.federation.test_link_e2e import Org, config, wait_up

from accord.app import start
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


async def p50(sender: CotClient, receiver: CotClient, rounds: int) -> float:
    latencies = []
    for _ in range(rounds):
        uid = new_uid()
        t0 = time.perf_counter()
        await sender.send(sa(uid, "alice"))
        await receiver.recv_until(lambda e, uid=uid: e.uid == uid)
        latencies.append((time.perf_counter() - t0) * 1000)
    return statistics.median(latencies)


async def main(n: int, share_all: bool = False) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        a, b = Org(Path(tmp), "ORG-A"), Org(Path(tmp), "ORG-B")
        policy = Path(tmp) / "policy.toml"
        policy.write_text(POLICY)
        b.running = await start(config(b, (a.partner(),), input_rate=0), any_port=True)
        partner_b = (
            b.partner(dial=b)
            if share_all
            else b.partner(dial=b, share_all=False, policy_file=str(policy))
        )
        a.running = await start(config(a, (partner_b,), input_rate=0), any_port=True)
        await wait_up(a, "ORG-B")
        alice = await CotClient.connect(a.running.ports["tcp"])
        carol = await CotClient.connect(a.running.ports["tcp"])  # local receiver on A
        bob = await CotClient.connect(b.running.ports["tcp"])
        await asyncio.sleep(0.2)
        local = await p50(alice, carol, 200)
        linked = await p50(alice, bob, 200)
        uids = [new_uid() for _ in range(n)]
        burst = b"".join(encode_xml(sa(uid, "alice", lat=10.0, lon=20.0)) for uid in uids)
        got = 0
        wanted = set(uids)
        link_b = b.link("ORG-A")
        before = link_b.events_in

        async def link_done() -> float:  # when B's link has let all of them in
            while link_b.events_in - before < n:  # noqa: ASYNC110 - a counter, polled each ms
                await asyncio.sleep(0.001)
            return time.perf_counter()

        t0 = t_last = time.perf_counter()
        link_task = asyncio.create_task(link_done())
        alice.writer.write(burst)
        while True:  # until the last one, or 15 s without any (then some were dropped)
            try:
                e = await bob.recv(timeout=15)
            except TimeoutError:
                break
            if e.uid in wanted:
                got += 1
                t_last = time.perf_counter()
            if e.uid == uids[-1]:
                break
        rate = got / max(t_last - t0, 1e-9)
        link_rate = n / (await asyncio.wait_for(link_task, 30) - t0)
        print(f"policy: {'none (share_all)' if share_all else '5 rules'}; ledger on; {n} SAs")
        print(f"{link_rate:.0f} events/s into B's hub across the link; {rate:.0f} events/s "
              f"to the (Python, XML-decoding) client on B ({got} of {n} received)")  # fmt: skip
        print(f"p50 direct local delivery {local:.2f} ms; across the link {linked:.2f} ms; "
              f"added {linked - local:.2f} ms")  # fmt: skip
        gate, ledger_a, ledger_b = a.running.gate, a.running.ledger, b.running.ledger
        assert gate is not None
        assert ledger_a is not None
        assert ledger_b is not None
        print(f"decisions at A: {gate.decisions('ORG-B')}")
        await asyncio.sleep(0.5)
        print(f"ledger A out {ledger_a.size('ORG-B', 'out')} entries, B in "
              f"{ledger_b.size('ORG-A', 'in')}, unrecorded {ledger_a.unrecorded}/"
              f"{ledger_b.unrecorded}")  # fmt: skip
        await a.running.close(5)
        await b.running.close(5)


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(relativeCreated)6d %(name)s %(message)s")
    uvloop.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 5000, "--share-all" in sys.argv))
