"""Soak: many clients come and go while traffic flows; nothing is lost, nothing leaks.

CI runs the short form; ``RUN_SLOW=1`` runs the long one (minutes, thousands of clients).
"""

from __future__ import annotations

import asyncio
import os
import random

import pytest

from accord.cot.xml import encode_xml
from tests.conftest import ServerFactory
from tests.e2e.clients import CotClient, sa
from tests.waiting import wait_until

LONG = os.environ.get("RUN_SLOW") == "1"
ROUNDS = 20 if LONG else 3
CLIENTS = 200 if LONG else 40
EVENTS_PER_CLIENT = 20 if LONG else 5


@pytest.mark.slow
@pytest.mark.timeout(900 if LONG else 60)
async def test_clients_churn_under_traffic_without_loss_or_leak(make_server: ServerFactory) -> None:
    server = await make_server(input_rate=0)
    watcher = await CotClient.connect(server.port("tcp"))
    await watcher.expect_silence(0.1)
    rng = random.Random(7)
    for round_no in range(ROUNDS):
        clients = [await CotClient.connect(server.port("tcp")) for _ in range(CLIENTS)]
        # everyone talks at once, in a shuffled order, each with its own uid
        sends = []
        for index, client in enumerate(clients):
            uid = f"SOAK-{round_no}-{index}"
            burst = b"".join(
                encode_xml(sa(uid, f"S{round_no}-{index}", lat=n / 100))
                for n in range(EVENTS_PER_CLIENT)
            )
            sends.append(client.send(burst))
        rng.shuffle(sends)
        await asyncio.gather(*sends)
        # half leave politely, half vanish; the watcher hears one delete per client
        for index, client in enumerate(clients):
            if index % 2:
                await client.close()
            else:
                client.writer.transport.abort()
        received = []
        async with asyncio.timeout(30):
            for _ in range(CLIENTS * (EVENTS_PER_CLIENT + 1)):
                received.append(await watcher.recv())
        deletes = [e for e in received if e.type == "t-x-d-d"]
        assert len(deletes) == CLIENTS
        assert len({e.uid for e in received if e.type != "t-x-d-d"}) == CLIENTS
        await wait_until(lambda: server.running.hub.session_count == 1, what="all but one left")
    counters = server.counters
    assert counters.malformed == 0
    assert counters.queue_dropped == 0
    assert counters.sessions_closed == ROUNDS * CLIENTS
    assert len(server.running.hub.roster) == 1  # only the watcher is left
    assert counters.events_in == ROUNDS * CLIENTS * EVENTS_PER_CLIENT
