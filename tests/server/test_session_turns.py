"""A client's burst is handled a bounded number of events per event-loop turn, losing nothing."""

from __future__ import annotations

import asyncio
import itertools
import socket

from accord.cot.connection import Limits
from accord.cot.xml import encode_xml
from accord.domain.groups import ANONYMOUS
from accord.server.census import Census
from accord.server.session import EVENTS_PER_TURN, SessionSettings, StreamSession
from tests.e2e.clients import marker
from tests.server.fakes import Clock
from tests.server.test_hub import join, make_hub
from tests.waiting import wait_until

BURST = 640  # ten turns' worth


async def test_a_burst_is_handled_a_turn_at_a_time_in_order_and_whole() -> None:
    loop = asyncio.get_running_loop()
    hub = make_hub(Clock(0))
    _, sink = join(hub, "listener")
    settings = SessionSettings(
        transport="tcp",
        negotiate=False,
        limits=Limits(),
        send_queue_events=1000,
        blocked_timeout_s=10.0,
        write_buffer_bytes=1 << 20,
        input_rate=0.0,
        input_burst=0.0,
    )
    session = StreamSession(hub, settings, lambda transport: (ANONYMOUS, None), Census())
    ours, theirs = socket.socketpair()
    theirs.setblocking(False)
    uids = [f"burst-{i}" for i in range(BURST)]
    burst = b"".join(encode_xml(marker(uid)) for uid in uids)

    # A callback that runs once per loop turn counts what the hub delivered by then.
    counts: list[int] = []

    def tick() -> None:
        counts.append(len(sink.flushed))
        if len(sink.flushed) < BURST:
            loop.call_soon(tick)

    transport, _ = await loop.connect_accepted_socket(lambda: session, ours)
    try:
        loop.call_soon(tick)
        await loop.sock_sendall(theirs, burst)  # as fast as the socket takes it
        await wait_until(lambda: len(sink.flushed) >= BURST, what="the whole burst delivered")
        steps = [after - before for before, after in itertools.pairwise(counts)]
        # Other sessions, links and timers got turns in between.
        assert max(steps, default=BURST) <= EVENTS_PER_TURN
        assert counts[0] <= EVENTS_PER_TURN
        assert [item.event.uid for item in sink.flushed] == uids
        assert transport.is_reading()  # resumed once the burst was drained
    finally:
        transport.close()
        theirs.close()
