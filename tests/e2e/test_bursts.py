"""Bursts from well-behaved machine clients arrive (issue 12 §1); abuse is dropped, and said."""

from __future__ import annotations

import asyncio
import configparser
import logging

import pytest

from accord.cot.xml import encode_xml
from tests.conftest import Server, ServerFactory
from tests.e2e.clients import CotClient, marker

pytak = pytest.importorskip("pytak")

BURST = 2000
DEADLINE_S = 30.0


async def test_pytak_burst_of_2000_sas_reaches_a_reader_and_history(server: Server) -> None:
    watcher = await CotClient.connect(server.port("tcp"))
    parser = configparser.ConfigParser()
    parser["pytak"] = {"COT_URL": f"tcp://127.0.0.1:{server.port('tcp')}"}
    _, writer = await pytak.protocol_factory(parser["pytak"])
    history = server.running.history_writer
    assert history is not None
    archived_before = server.counters.archived
    try:
        events = [
            pytak.gen_cot(lat=1.0 + i / 10_000, lon=2.0, uid=f"feed-{i}", cot_type="a-n-A-C-F")
            for i in range(BURST)
        ]
        writer.write(b"".join(events))  # all at once, as a gateway writes
        await writer.drain()
        seen: set[str] = set()
        async with asyncio.timeout(DEADLINE_S):
            while len(seen) < BURST:
                seen.add((await watcher.recv(DEADLINE_S)).uid)
        assert seen == {f"feed-{i}" for i in range(BURST)}
        assert server.counters.rate_limited == 0
        await history.flush()
        assert server.counters.archived - archived_before == BURST
    finally:
        writer.close()


async def test_abuse_over_the_limit_is_dropped_and_logged_once_when_it_starts(
    make_server: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    server = await make_server(input_rate=5.0, input_burst=10.0)
    flooder = await CotClient.connect(server.port("tcp"))
    watcher = await CotClient.connect(server.port("tcp"))
    with caplog.at_level(logging.WARNING, logger="accord.session"):
        await flooder.send(b"".join(encode_xml(marker(f"flood-{i}")) for i in range(100)))
        async with asyncio.timeout(DEADLINE_S):
            while server.counters.rate_limited + server.counters.events_in < 100:
                await asyncio.sleep(0.01)
    await watcher.expect_silence(0.1)
    lines = [r.getMessage() for r in caplog.records if "over the rate limit" in r.getMessage()]
    assert len(lines) == 1  # at the start, then at most once a minute
    assert "limiting starts" in lines[0]
    assert "limit 5/s" in lines[0]
    assert server.counters.rate_limited >= 80
