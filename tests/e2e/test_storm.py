"""A mass join over real sockets (issue 13 §1): N clients connect at once, one SA each.

Short form by default (300 clients, more than a newcomer is replayed inline, so most catch up
from the SA log); ``RUN_SLOW=1`` runs 2,000. Asserted: every client gets the SA of every other
uid, pings are answered throughout, and no session's pending work grows past the number of uids
(SAs are never queued per session: a session behind reads the latest of each from the log).
Speeds are the benchmark's business (benchmarks/storm.py), not this test's.
"""

from __future__ import annotations

import asyncio
import os
import re
import time

import pytest

from accord.cot.xml import encode_xml
from tests.conftest import Server
from tests.e2e.clients import marker, sa

N = 2000 if os.environ.get("RUN_SLOW") == "1" else 300
DEADLINE_S = 300.0 if N > 300 else 90.0
UID_RE = re.compile(rb'<event [^>]*?uid="storm-(\d+)"')
PING = encode_xml(marker("storm-ping", type_="t-x-c-t"))


class Reader(asyncio.Protocol):
    """Writes its SA on connect, then collects the uids of the SAs it is sent."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.seen: set[bytes] = set()
        self.tail = b""
        self.pongs = 0
        self.transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        transport.write(encode_xml(sa(f"storm-{self.index}", f"S{self.index}")))  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        data = self.tail + data
        cut = data.rfind(b"</event>") + len(b"</event>")
        self.tail = data[cut:] if cut >= len(b"</event>") else data
        self.seen.update(UID_RE.findall(data, 0, cut))
        self.pongs += data.count(b"t-x-c-t-r")


@pytest.mark.timeout(int(DEADLINE_S) + 60)
async def test_mass_join_everyone_gets_every_sa_and_pings_are_answered(server: Server) -> None:
    loop = asyncio.get_running_loop()
    port = server.port("tcp")
    _, pinger = await loop.create_connection(lambda: Reader(-1), "127.0.0.1", port)
    readers = [Reader(i) for i in range(N)]
    hub, census = server.running.hub, server.running.census
    most_queued = most_behind = 0

    async def connect(reader: Reader) -> None:
        await loop.create_connection(lambda: reader, "127.0.0.1", port)

    start = time.monotonic()
    connecting = asyncio.gather(*(connect(r) for r in readers))
    pings_sent = 0
    async with asyncio.timeout(DEADLINE_S):
        while not all(len(r.seen) >= N - 1 for r in readers):
            if pinger.pongs == pings_sent:  # one ping in flight at a time, answered throughout
                pings_sent += 1
                pinger.transport.write(PING)  # type: ignore[union-attr]
            most_queued = max([most_queued, *(s.queued_events for s in census._live.values())])
            most_behind = max(most_behind, hub.behind)
            await asyncio.sleep(0.05)
    await connecting
    elapsed = time.monotonic() - start
    for r in readers:
        assert len(r.seen) == N - 1, (r.index, N - 1 - len(r.seen))
        assert str(r.index).encode() not in r.seen  # no echo
    assert pings_sent > 1
    async with asyncio.timeout(10):
        while pinger.pongs < pings_sent:
            await asyncio.sleep(0.01)
    assert most_queued <= N  # bounded by uids (and in fact no SA is ever queued)
    assert server.counters.queue_dropped == 0
    print(f"{N} clients: all SAs in {elapsed:.1f} s, {pings_sent} pings, {most_behind} behind")
    for r in [pinger, *readers]:
        if r.transport is not None:
            r.transport.close()
