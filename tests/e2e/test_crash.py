"""Kill -9 under load, then restart: nothing acknowledged is lost and nothing is torn."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import os
import signal
import ssl
from collections.abc import Callable
from pathlib import Path

import httpx

from accord.identity.ca import PkiPaths
from accord.identity.pki import issue_client
from accord.store.opening import open_store
from accord.store.records import HistoryQuery, to_event
from tests.e2e.clients import CotClient, sa
from tests.e2e.conftest import Served
from tests.waiting import wait_until


async def pump(client: CotClient, uid: str, stop: asyncio.Event) -> int:
    sent = 0
    with contextlib.suppress(ConnectionError, OSError):
        while not stop.is_set():
            await client.send(sa(uid, uid, lat=(sent % 1800) / 20 - 45, lon=sent % 180))
            sent += 1
            if sent % 20 == 0:
                await asyncio.sleep(0.005)  # pace the load (~4000 events/s), as a real client does
    return sent


def https_client(data: Path, port: int, tmp_path: Path) -> httpx.AsyncClient:
    pki = PkiPaths(data / "pki")
    files = issue_client(pki, "uploader", tmp_path / "certs", dt.datetime.now(dt.UTC))
    ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
    ctx.load_cert_chain(files.cert, files.key)
    return httpx.AsyncClient(base_url=f"https://127.0.0.1:{port}", verify=ctx, timeout=10)


async def upload_until(
    http: httpx.AsyncClient, stop: asyncio.Event, acknowledged: dict[str, bytes]
) -> None:
    """Upload packages of a few hundred KiB back to back; keep what was answered 200."""
    n = 0
    try:
        while not stop.is_set():
            n += 1
            data = os.urandom(64) * (4096 + n * 97)  # distinct bytes and sizes each time
            digest = hashlib.sha256(data).hexdigest()
            answer = await http.post(
                "/Marti/sync/missionupload",
                params={"hash": digest, "filename": f"p{n}.zip", "creatorUid": "ANDROID-x"},
                files={"assetfile": (f"p{n}.zip", data, "application/x-zip-compressed")},
            )
            if answer.status_code == 200:
                acknowledged[digest] = data
    except (httpx.HTTPError, OSError):
        return  # the server was killed mid-request: that upload was never acknowledged


async def test_kill_9_while_archiving_and_uploading_loses_nothing_acknowledged(
    serve: Callable[..., Served], tmp_path: Path
) -> None:
    data = tmp_path / "data"
    served = serve(data_dir=data)
    clients = [await CotClient.connect(served.tcp) for _ in range(6)]
    stop = asyncio.Event()
    pumps = [asyncio.create_task(pump(c, f"CRASH-{i}", stop)) for i, c in enumerate(clients)]
    acknowledged: dict[str, bytes] = {}
    uploaders = []
    for _ in range(2):
        http = https_client(data, served.https, tmp_path)
        uploaders.append((http, asyncio.create_task(upload_until(http, stop, acknowledged))))
    await wait_until(lambda: acknowledged, timeout_s=60, what="an upload acknowledged")
    # Then let the load run on (a window of time is the behaviour here): the kill must land
    # mid-write, after the server has archived batches that only a restart can show.
    await asyncio.sleep(1.0)
    os.kill(served.proc.pid, signal.SIGKILL)  # mid-write: clients still sending and uploading
    served.proc.wait(10)
    stop.set()
    sent = sum(await asyncio.gather(*pumps))
    for http, task in uploaders:
        await task
        await http.aclose()
    assert sent > 100
    assert acknowledged, "no upload was acknowledged before the kill"

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
    expected = {f"CRASH-{i}" for i in range(6)}
    replayed: set[str] = set()
    while replayed != expected:  # each pump's latest SA, replayed (a missing one times out)
        uid = (await newcomer.recv()).uid
        assert uid in expected, uid
        replayed.add(uid)
    await newcomer.close()
    async with https_client(data, again.https, tmp_path) as http:
        for digest, body in acknowledged.items():  # every 200 is there, byte for byte
            got = await http.get("/Marti/sync/content", params={"hash": digest})
            assert got.status_code == 200, digest
            assert got.content == body
