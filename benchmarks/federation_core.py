"""CPU per event of one partner link's hot path, without I/O: what bounds benchmarks/federation.py.

.venv/bin/python -m benchmarks.federation_core [N] [--profile] [--gc]

The releasing side (A): the client's XML decoded as the session does, then the link's
``LinkConnection.release`` under the 5-rule policy of benchmarks/federation.py with the sharing
ledger appending, and its stream messages made (``accordBatch``). The receiving side (B): those
messages received (decoded, deduplicated, journalled in B's mirror). No sockets, no gRPC, no
store writes: the numbers are the loop's own work per event, in µs. ``--gc`` adds the time the
cyclic garbage collector took, per generation (it runs inside the phases above).
"""

from __future__ import annotations

import asyncio
import cProfile
import gc
import pstats
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.federation import POLICY
from tests.e2e.clients import sa
from tests.federation.link_pair import A, B, partner

from accord.cot.outgoing import Outgoing
from accord.cot.xml import decode_xml, encode_xml
from accord.federation.connection import FEATURES, LinkConnection, Seen
from accord.federation.gate import PolicyGate
from accord.federation.journal import LedgerJournal
from accord.federation.outbox import Outbox
from accord.ledger.note import Signer
from accord.policy import decode_policy
from accord.store.opening import open_store


class GcTime:
    """Seconds the collector spent, and collections, per generation (gc.callbacks)."""

    def __init__(self) -> None:
        self.seconds: dict[int, float] = {}
        self.runs: Counter[int] = Counter()
        self._start = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._start = time.process_time()
        else:
            gen = info["generation"]
            self.seconds[gen] = self.seconds.get(gen, 0.0) + time.process_time() - self._start
            self.runs[info["generation"]] += 1


async def main(n: int, profile: bool, gc_time: bool = False) -> None:
    collector = GcTime()
    if gc_time:
        gc.callbacks.append(collector)
    with tempfile.TemporaryDirectory() as tmp:
        store = await open_store("", Path(tmp))
        wall = int(time.time() * 1000)

        def journal() -> LedgerJournal:
            return LedgerJournal(store, Signer.generate("x"), b"s" * 32, wall_ms=lambda: wall)

        ja, jb = journal(), journal()
        policy = decode_policy(POLICY.replace('partner = "org-b"', f'partner = "{B.name}"'))
        org_b = partner(B, address="127.0.0.1:1")
        gate = PolicyGate({B.name: policy}, key=b"k" * 32)
        outbox = Outbox(store, ja, wall_ms=lambda: wall)
        a = LinkConnection(
            org_b, "outgoing", gate=gate, journal=ja, own=A, seen=Seen(), now_s=0, outbox=outbox
        )
        b = LinkConnection(
            partner(A), "incoming", gate=PolicyGate({}), journal=jb, own=B, seen=Seen(), now_s=0
        )
        a.hello(FEATURES, 0.0)
        b.hello(FEATURES, 0.0)
        a.resend([])  # the store holds nothing to resend: the queue is the stream
        frames = [encode_xml(sa(f"u-{i}", "burst", lat=10.0, lon=20.0)) for i in range(n)]
        try:  # the collector policy a server sets once started (accord.app.serve)
            from accord.server.memory import settle_collector
        except ImportError:  # a tree from before it
            print("collector: Python's defaults")
        else:
            frozen = settle_collector()
            print(f"collector: {frozen} objects frozen, thresholds {gc.get_threshold()}")
        prof = cProfile.Profile() if profile else None
        if prof:
            prof.enable()
        t0 = time.process_time()
        events = [decode_xml(f) for f in frames]
        t1 = time.process_time()
        taken = 0
        messages: list[bytes] = []
        for i in range(0, n, 64):  # the hub hands over a burst at a time, the writer drains
            taken += a.release([Outgoing(e) for e in events[i : i + 64]], wall)
            if i % 512 == 448:
                messages += a.messages()
        while chunk := a.messages():
            messages += chunk
        t2 = time.process_time()
        got = sum(len(b.receive(m, wall)) for m in messages)
        t3 = time.process_time()
        if prof:
            prof.disable()
        await store.close()
    us = 1e6 / n
    print(f"{n} SAs: released {taken}, {len(messages)} messages, received {got}")
    print(f"A: decode {(t1 - t0) * us:.1f} us/event, release+encode {(t2 - t1) * us:.1f} us/event")
    print(f"B: receive {(t3 - t2) * us:.1f} us/event")
    if gc_time:
        gc.callbacks.remove(collector)
        for gen in sorted(collector.runs):
            print(f"gc generation {gen}: {collector.runs[gen]} collections, "
                  f"{collector.seconds[gen] * us:.1f} us/event")  # fmt: skip
    if prof:
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("n", nargs="?", type=int, default=20_000, help="SAs")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of the run")
    parser.add_argument("--gc", action="store_true", help="time the garbage collector")
    args = parser.parse_args()
    asyncio.run(main(args.n, args.profile, args.gc))
