"""Archiving's cost to routing, measured inside one process (steady on a shared machine).

The hub routes SAs from 100 parties to 100 sinks that frame every write as a socket would be
given it (no socket: the kernel's share would only dilute the ratio). Each round routes one
SA per party (one loop turn), then lets the loop run. With archiving on, the real SQLite
store is written by its thread as in production, and the clock stops only once everything
is in the database, so the result is the sustained rate with the history kept up to date.

    python benchmarks/archive_hub.py [--rounds 300] [--reps 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import uvloop

from accord.cot.model import CotEvent, Point, WireFormat
from accord.cot.outgoing import Outgoing
from accord.cot.xml import decode_xml, detail_from_xml, encode_xml
from accord.domain.groups import Membership
from accord.domain.metrics import Counters
from accord.server.history import HistoryRules, HistoryWriter
from accord.server.hub import Hub
from accord.store.opening import open_store

PARTIES = 100
T0 = 1_780_000_000_000


class FramingSink:
    """Takes everything and builds the bytes a socket write would get."""

    wire_format = WireFormat.XML

    def __init__(self) -> None:
        self.bytes = 0

    def send(self, items: list[Outgoing], data: bytes | None = None) -> int:
        if data is None:
            data = b"".join(i.frame(self.wire_format) for i in items)
        self.bytes += len(data)
        return len(items)

    def close(self, reason: str, *, abort: bool = False) -> None:
        pass


def sa(i: int, n: int) -> CotEvent:
    detail = detail_from_xml(
        f'<contact callsign="U{i}" endpoint="*:-1:stcp"/><__group name="Cyan" role="Team Member"/>'
        '<takv device="Pixel" platform="ATAK-CIV" os="34" version="5.5"/>'
    )
    t = T0 + n * 1000
    event = CotEvent(f"uid-{i}", "a-f-G-U-C", "m-g", t, t, t + 60_000,
                     Point(48 + i * 1e-3, 11 + n * 1e-4, 500.0, 5.0, 9.0), detail)  # fmt: skip
    return decode_xml(encode_xml(event))  # as received: with its raw bytes


async def run(rounds: int, archive: bool) -> tuple[float, float, int]:
    counters = Counters()
    clock = iter(range(T0, T0 + 10**12, 7))
    hub = Hub(counters, wall_ms=lambda: next(clock), new_uid=lambda: "x")
    store = None
    if archive:
        store = await open_store("", Path(tempfile.mkdtemp(prefix="bench-archive-")))
        writer = HistoryWriter(store, HistoryRules(), counters, wall_ms=lambda: T0)
        hub.recorder = writer
        task = asyncio.get_running_loop().create_task(writer.run())
    parties = []
    for i in range(PARTIES):
        party = hub.new_party(Membership.both(["A"]), f"p{i}")
        hub.attach(party, FramingSink())
        parties.append(party)
    events = [[sa(i, n) for i in range(PARTIES)] for n in range(rounds)]
    await asyncio.sleep(0)
    wall, cpu = time.perf_counter(), time.process_time()
    for batch in events:
        for party, event in zip(parties, batch, strict=True):
            hub.submit(party, event)
        await asyncio.sleep(0)  # the turn ends: the hub flushes, the writer may run
    if archive:
        await writer.flush()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if store is not None:
        task.cancel()
        stats = await store.history_stats()
        assert stats.events == rounds * PARTIES, stats
        await store.close()
    return wall, cpu, counters.events_delivered


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=300, help="SAs per party")
    p.add_argument("--reps", type=int, default=5, help="off/on pairs")
    args = p.parse_args()
    results: dict[bool, list[tuple[float, float, int]]] = {False: [], True: []}
    for _ in range(args.reps):
        for archive in (False, True):
            results[archive].append(uvloop.run(run(args.rounds, archive)))
    events = args.rounds * PARTIES
    rows = {}
    for archive, runs in results.items():
        wall = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        rows[archive] = (events / wall, runs[0][2] / wall, cpu / events * 1e6)
    off, on = rows[False], rows[True]
    print("| archiving | routed events/s | deliveries/s | CPU µs per routed event |")
    print("|---|---|---|---|")
    for name, row in (("off", off), ("on (SQLite, flushed)", on)):
        print(f"| {name} | {row[0]:,.0f} | {row[1]:,.0f} | {row[2]:.1f} |")
    print(f"\nthroughput on/off: {on[0] / off[0]:.3f}; CPU per event on/off: {on[2] / off[2]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
