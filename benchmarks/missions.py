"""Mission API load: S subscribers on one mission, C content changes a second.

Starts ``accord serve`` (its own process, temp data dir, loopback ports), connects S TCP
clients that each send an SA and subscribe over HTTPS, then adds one uid a change at the given
rate (``PUT /Marti/api/missions/bench/contents``) and times, for every subscriber, from the
request's start to the ``t-x-m-c`` naming that uid arriving. Then the store's own cost: the
same changes written straight to a SQLite MissionStore (state + change row per transaction).

    .venv/bin/python benchmarks/missions.py --subscribers 100 --rate 50 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import json
import os
import re
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from accord.identity.ca import PkiPaths
from accord.identity.pki import issue_client
from accord.missions import model
from accord.missions.codec import contents_diff, encode_change, encode_mission
from accord.missions.model import Item
from accord.store.records import MissionChangeRow, MissionContentRow, MissionRow
from accord.store.sqlite import SqliteStore

CONTENT_UID = re.compile(rb"<contentUid>([^<]+)</contentUid>")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sa(uid: str) -> bytes:
    now = dt.datetime.now(dt.UTC)
    t = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    stale = (now + dt.timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return (
        f'<event version="2.0" uid="{uid}" type="a-f-G-U-C" how="m-g" time="{t}" start="{t}" '
        f'stale="{stale}"><point lat="1" lon="2" hae="0" ce="9" le="9"/><detail>'
        f'<contact callsign="{uid}" endpoint="*:-1:stcp"/></detail></event>'
    ).encode()


async def subscriber(
    port: int, uid: str, seen: dict[str, list[float]], ready: asyncio.Event
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(sa(uid))
    await writer.drain()
    ready.set()
    buf = b""
    try:
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                return
            buf += chunk
            now = time.perf_counter()
            for m in CONTENT_UID.finditer(buf):
                seen.setdefault(m.group(1).decode(), []).append(now)
            cut = buf.rfind(b"</event>")
            if cut >= 0:
                buf = buf[cut + 8 :]
    finally:
        writer.close()


async def over_http(args: argparse.Namespace, data: Path, tcp: int, https: int) -> dict[str, float]:
    pki = PkiPaths(data / "pki")
    files = issue_client(pki, "bench", data / "certs", dt.datetime.now(dt.UTC))
    ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
    ctx.load_cert_chain(files.cert, files.key)
    async with httpx.AsyncClient(
        base_url=f"https://127.0.0.1:{https}",
        verify=ctx,
        timeout=httpx.Timeout(60, pool=None),  # requests queue here when the server lags
        limits=httpx.Limits(max_connections=16),
    ) as http:
        made = await http.put("/Marti/api/missions/bench", params={"creatorUid": "BENCH-owner"})
        assert made.status_code == 201, made.text
        seen: dict[str, list[float]] = {}
        uids = [f"BENCH-{i}" for i in range(args.subscribers)]
        tasks = []
        for uid in uids:
            ready = asyncio.Event()
            tasks.append(asyncio.create_task(subscriber(tcp, uid, seen, ready)))
            await ready.wait()
        await asyncio.sleep(1.0)  # let the hub bind every uid
        for uid in uids:
            answer = await http.put("/Marti/api/missions/bench/subscription", params={"uid": uid})
            assert answer.status_code == 201, answer.text
        sent: dict[str, float] = {}
        interval = 1 / args.rate
        total = int(args.rate * args.seconds)
        start = time.perf_counter()
        pending = []
        for n in range(total):
            target = start + n * interval
            delay = target - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            item = f"item-{n}"
            sent[item] = time.perf_counter()
            pending.append(
                asyncio.create_task(
                    http.put("/Marti/api/missions/bench/contents", json={"uids": [item]})
                )
            )
        answers = await asyncio.gather(*pending)
        elapsed = time.perf_counter() - start
        deadline = time.perf_counter() + 10
        expected = total * len(uids)

        def received() -> int:
            return sum(len(v) for v in seen.values())

        while time.perf_counter() < deadline and received() < expected:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        for t in tasks:
            t.cancel()
        lat = sorted(
            (arr - sent[k]) * 1000 for k, arrivals in seen.items() if k in sent for arr in arrivals
        )
        q = statistics.quantiles(lat, n=100) if len(lat) > 100 else [0.0] * 99
        return {
            "changes": total,
            "changes_per_s_offered": args.rate,
            "changes_per_s_done": total / elapsed,
            "ok_answers": sum(1 for a in answers if a.status_code == 200),
            "notices_expected": total * len(uids),
            "notices_received": len(lat),
            "latency_ms_p50": q[49],
            "latency_ms_p99": q[98],
            "latency_ms_max": lat[-1] if lat else 0.0,
        }


async def store_cost(changes: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.db"
        store = await SqliteStore.open(path)
        mission, change = model.create("bench", str(uuid.uuid4()), frozenset({"__ANON__"}), "A", 0)
        for i in range(100):
            mission = model.subscribe(mission, f"BENCH-{i}", "", 0)
        mission = dataclasses.replace(mission, change_count=1)
        await store.create_mission(
            MissionRow(mission.guid, mission.name, encode_mission(mission)),
            [MissionChangeRow(mission.guid, 1, 0, encode_change(change))],
        )
        t0 = time.perf_counter()
        for n in range(changes):
            before = mission
            mission, cs = model.add_items(mission, [Item(f"item-{n}", "A", n)], n)
            seq = mission.change_count + 1
            mission = dataclasses.replace(mission, change_count=seq)
            put, drop = contents_diff(before, mission)  # what the API writes: the new item
            await store.update_mission(
                MissionRow(mission.guid, mission.name, encode_mission(mission)),
                [MissionChangeRow(mission.guid, seq, n, encode_change(cs[0]))],
                [MissionContentRow(mission.guid, k, d) for k, d in put],
                drop,
            )
        elapsed = time.perf_counter() - t0
        await store.close()
        size = path.stat().st_size  # closed: the WAL is checkpointed into the file
        return {
            "store_changes": changes,
            "store_ms_per_change": elapsed * 1000 / changes,
            "store_bytes_per_change": size / (changes + 1),
        }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--subscribers", type=int, default=100)
    p.add_argument("--rate", type=float, default=50.0, help="changes a second")
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--store-changes", type=int, default=2000)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        tcp, https = free_port(), free_port()
        cmd = [sys.executable, "-m", "accord", "serve", "--data-dir", str(data), "--tcp-port",
               str(tcp), "--tls-port", str(free_port()), "--udp-port", "0", "--enroll-port",
               str(free_port()), "--https-port", str(https), "--drone-port", "0"]  # fmt: skip
        log = (Path(tmp) / "serve.log").open("w")
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:  # the server is stopped (its process group) however the run ends
            deadline = time.time() + 30
            while time.time() < deadline:
                try:
                    socket.create_connection(("127.0.0.1", https), timeout=0.2).close()
                    break
                except OSError:
                    time.sleep(0.1)
            result = asyncio.run(over_http(args, data, tcp, https))
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(10)
    result |= asyncio.run(store_cost(args.store_changes))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
