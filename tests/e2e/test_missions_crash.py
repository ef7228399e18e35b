"""Kill -9 while clients edit a mission, then restart: every acknowledged change is there,
once, in order, and the mission's state agrees with its change log."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from pathlib import Path

import httpx

from accord.missions.codec import decode_change, decode_mission
from accord.store.opening import open_store
from tests.e2e.conftest import Served
from tests.e2e.test_crash import https_client

M = "/Marti/api/missions"


async def add_until(
    http: httpx.AsyncClient, prefix: str, stop: asyncio.Event, acked: list[str]
) -> None:
    n = 0
    try:
        while not stop.is_set():
            uid = f"{prefix}-{n}"
            n += 1
            answer = await http.put(f"{M}/crash/contents", json={"uids": [uid]})
            if answer.status_code == 200:
                acked.append(uid)
    except (httpx.HTTPError, OSError):
        return  # killed mid-request: that edit was never acknowledged


async def test_kill_9_while_editing_a_mission_loses_no_acknowledged_change(
    serve: Callable[..., Served], tmp_path: Path
) -> None:
    data = tmp_path / "data"
    served = serve(data_dir=data)
    first = https_client(data, served.https, tmp_path)
    made = await first.put(f"{M}/crash", params={"creatorUid": "A-1"})
    assert made.status_code == 201, made.text
    stop = asyncio.Event()
    acked: list[str] = []
    clients = [https_client(data, served.https, tmp_path) for _ in range(3)]
    tasks = [asyncio.create_task(add_until(c, f"u{i}", stop, acked)) for i, c in enumerate(clients)]
    async with asyncio.timeout(30):
        while len(acked) < 30:
            await asyncio.sleep(0.01)
    os.kill(served.proc.pid, signal.SIGKILL)  # mid-edit: clients still sending
    served.proc.wait(10)
    stop.set()
    await asyncio.gather(*tasks)
    for c in (first, *clients):
        await c.aclose()

    store = await open_store("", data)
    try:
        (row,) = await store.missions()
        contents = await store.mission_contents(row.guid)
        mission = decode_mission(row.doc, [(c.key, c.doc) for c in contents])
        changes = await store.mission_changes(row.guid)
    finally:
        await store.close()
    assert set(acked) <= set(mission.items)  # nothing acknowledged is lost
    assert [c.seq for c in changes] == list(range(1, len(changes) + 1))
    assert mission.change_count == len(changes)  # state and log were written together
    added = [decode_change(c.doc).item for c in changes[1:]]
    assert sorted(i.uid for i in added if i is not None) == sorted(mission.items)  # once each

    again = serve(data_dir=data)  # and the server starts on it and serves it
    http = https_client(data, again.https, tmp_path)
    try:
        got = (await http.get(f"{M}/crash")).json()["data"][0]
        assert {u["data"] for u in got["uids"]} == set(mission.items)
    finally:
        await http.aclose()
