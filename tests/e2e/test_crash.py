"""Kill -9 under load, then restart: nothing acknowledged is lost and nothing is torn."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable
from pathlib import Path

from accord.store.opening import open_store
from accord.store.records import HistoryQuery, to_event
from tests.e2e.clients import CotClient, sa
from tests.e2e.conftest import Served


async def pump(client: CotClient, uid: str, stop: asyncio.Event) -> int:
    sent = 0
    with contextlib.suppress(ConnectionError, OSError):
        while not stop.is_set():
            await client.send(sa(uid, uid, lat=(sent % 1800) / 20 - 45, lon=sent % 180))
            sent += 1
            if sent % 20 == 0:
                await asyncio.sleep(0.005)
    return sent


async def test_kill_9_while_archiving_leaves_a_clean_database(
    serve: Callable[..., Served], tmp_path: Path
) -> None:
    data = tmp_path / "data"
    served = serve(data_dir=data)
    clients = [await CotClient.connect(served.tcp) for _ in range(6)]
    stop = asyncio.Event()
    pumps = [asyncio.create_task(pump(c, f"CRASH-{i}", stop)) for i, c in enumerate(clients)]
    await asyncio.sleep(1.5)
    os.kill(served.proc.pid, signal.SIGKILL)  # mid-write: the clients are still sending
    served.proc.wait(10)
    stop.set()
    sent = sum(await asyncio.gather(*pumps))
    assert sent > 100

    store = await open_store("", data)  # runs SQLite's quick_check: refuses a damaged file
    try:
        rows, query = [], HistoryQuery(limit=1000)
        while True:
            page = await store.history(query)
            rows += page.events
            if page.next is None:
                break
            query = HistoryQuery(limit=1000, after=page.next)
        assert rows, "nothing was archived before the kill"
        for row in rows:  # every row whole: its payload decodes to the event its columns name
            event = to_event(row)
            assert (event.uid, event.time, event.point.lat) == (row.uid, row.time_ms, row.lat)
        latest = await store.latest("CRASH-0")
        assert latest is not None
    finally:
        await store.close()

    for client in clients:
        await client.close()
    again = serve(data_dir=data)  # and the server starts on it again
    newcomer = await CotClient.connect(again.tcp)
    replayed = {e.uid for e in await newcomer.expect_silence(0.5)}
    await newcomer.close()
    assert replayed == {f"CRASH-{i}" for i in range(6)}
