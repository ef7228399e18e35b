"""Events/s across one partner link on loopback and the latency it adds (p50).

.venv/bin/python -m benchmarks.federation [N]
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


async def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        a, b = Org(Path(tmp), "ORG-A"), Org(Path(tmp), "ORG-B")
        from accord.app import start

        b.running = await start(config(b, (a.partner(),), input_rate=0), any_port=True)
        a.running = await start(config(a, (b.partner(dial=b),), input_rate=0), any_port=True)
        await wait_up(a, "ORG-B")
        alice = await CotClient.connect(a.running.ports["tcp"])
        bob = await CotClient.connect(b.running.ports["tcp"])
        await asyncio.sleep(0.2)
        latencies = []
        for _ in range(200):  # one at a time: latency
            uid = new_uid()
            t0 = time.perf_counter()
            await alice.send(sa(uid, "alice"))
            await bob.recv_until(lambda e, uid=uid: e.uid == uid)
            latencies.append((time.perf_counter() - t0) * 1000)
        uids = [new_uid() for _ in range(n)]
        t0 = time.perf_counter()
        for uid in uids:
            await alice.send(sa(uid, "alice"))
        await bob.recv_until(lambda e: e.uid == uids[-1], timeout=120)
        rate = n / (time.perf_counter() - t0)
        p50 = statistics.median(latencies)
        print(f"{rate:.0f} events/s across the link; p50 {p50:.2f} ms (TCP A -> link -> TCP B)")
        await a.running.close(1)
        await b.running.close(1)


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 5000))
