"""History queries over 1,000,000 archived events, on SQLite and on PostgreSQL.

The archive is filled through each store's own ``write_events`` (batches of 5,000, history and
latest, as the archiver writes them), then each query is timed end to end through
``Store.history`` (SQL, transfer and decoding into records): median and p95 of ~50 runs, each
run with a different place and hour.

The events: 1,000 uids moving over a 2° x 2° region (34..36 N, 118..116 W) for 24 h, each
reporting every ~86 s, bouncing off the region's edges at 5-30 m/s; payloads ~300 bytes.

    .venv/bin/python benchmarks/history_query.py             # both backends, print a table
    .venv/bin/python benchmarks/history_query.py --record    # … and append it to RESULTS.md

PostgreSQL: TEST_POSTGRES_URL (a new database is made on that server and dropped after), or a
throwaway server from scripts/postgres.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import math
import os
import platform
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from accord.store.contract import Store
from accord.store.postgres import PostgresStore
from accord.store.records import BBox, HistoryQuery, Payload, StoredEvent
from accord.store.sqlite import SqliteStore

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
T0 = 1_780_000_000_000  # ms
DAY_MS = 86_400_000
HOUR_MS = 3_600_000
SOUTH, WEST, SIZE_DEG = 34.0, -118.0, 2.0
BOX_DEG = 0.1
BATCH = 5_000
GROUPS = ("Cyan", "Red", "Blue", "Green")
M_PER_DEG = 111_320.0


@dataclass(frozen=True)
class Timing:
    name: str
    median_ms: float
    p95_ms: float
    rows: float  # events returned per run, on average


def synthetic_events(total: int, uids: int, seed: int = 1) -> Iterator[list[StoredEvent]]:
    """``total`` events in time order, in batches of BATCH."""
    rng = random.Random(seed)
    reports = total // uids
    period_ms = DAY_MS // reports
    movers = []
    for i in range(uids):
        speed = rng.uniform(5, 30) / M_PER_DEG  # deg/s
        heading = rng.uniform(0, 2 * math.pi)
        movers.append(
            [
                f"ANDROID-{i:06x}",
                rng.uniform(0, SIZE_DEG),  # lat offset in the region
                rng.uniform(0, SIZE_DEG),  # lon offset
                speed * math.cos(heading) * period_ms / 1000,  # deg per report
                speed * math.sin(heading) * period_ms / 1000,
                rng.randrange(period_ms),  # phase: uids do not report in lockstep
                (GROUPS[i % len(GROUPS)],),
            ]
        )
    batch: list[StoredEvent] = []
    for n in range(reports):
        for m in movers:
            uid, dlat, dlon, vlat, vlon, phase, groups = m
            dlat, vlat = _bounce(dlat + vlat, vlat)
            dlon, vlon = _bounce(dlon + vlon, vlon)
            m[1:5] = dlat, dlon, vlat, vlon
            t = T0 + n * period_ms + phase
            lat, lon = SOUTH + dlat, WEST + dlon
            payload = (
                f'<event version="2.0" uid="{uid}" type="a-f-G-U-C" how="m-g" time="{t}" '
                f'start="{t}" stale="{t + 120_000}"><point lat="{lat:.7f}" lon="{lon:.7f}" '
                f'hae="120.0" ce="9.9" le="9.9"/><detail><contact callsign="{uid[-6:]}" '
                f'endpoint="*:-1:stcp"/><__group name="{groups[0]}" role="Team Member"/>'
                "</detail></event>"
            ).encode()
            batch.append(
                StoredEvent(
                    uid=uid,
                    type="a-f-G-U-C",
                    how="m-g",
                    time_ms=t,
                    start_ms=t,
                    stale_ms=t + 120_000,
                    lat=lat,
                    lon=lon,
                    hae=120.0,
                    callsign=uid[-6:],
                    groups=groups,
                    payload=payload,
                    payload_format=Payload.XML,
                )
            )
            if len(batch) == BATCH:
                yield batch
                batch = []
    if batch:
        yield batch


def _bounce(offset: float, velocity: float) -> tuple[float, float]:
    if offset < 0:
        return -offset, -velocity
    if offset > SIZE_DEG:
        return 2 * SIZE_DEG - offset, -velocity
    return offset, velocity


@dataclass(frozen=True)
class Fill:
    events: int
    seconds: float  # wall time spent in write_events
    cpu_s: float  # CPU time of this process (all its threads) spent in write_events

    @property
    def rate(self) -> float:
        return self.events / self.seconds

    @property
    def cpu_us_per_event(self) -> float:
        return self.cpu_s / self.events * 1e6


async def fill(store: Store, total: int, uids: int) -> Fill:
    """Write the events as the archiver would: each batch to history and to latest."""
    seconds = cpu_s = 0.0
    written = 0
    for batch in synthetic_events(total, uids):
        started, started_cpu = time.perf_counter(), time.process_time()
        await store.write_events(batch, batch)
        seconds += time.perf_counter() - started
        cpu_s += time.process_time() - started_cpu
        written += len(batch)
    return Fill(written, seconds, cpu_s)


def queries(runs: int, uids: int, seed: int = 2) -> dict[str, list[HistoryQuery]]:
    rng = random.Random(seed)
    made: dict[str, list[HistoryQuery]] = {"bbox": [], "uid": [], "bbox_day": []}
    for _ in range(runs):
        since = T0 + rng.randrange(DAY_MS - HOUR_MS)
        south = SOUTH + rng.uniform(0, SIZE_DEG - BOX_DEG)
        west = WEST + rng.uniform(0, SIZE_DEG - BOX_DEG)
        box = BBox(south, west, south + BOX_DEG, west + BOX_DEG)
        made["bbox"].append(
            HistoryQuery(bbox=box, since_ms=since, until_ms=since + HOUR_MS, limit=100)
        )
        made["bbox_day"].append(HistoryQuery(bbox=box, limit=100))
        uid = f"ANDROID-{rng.randrange(uids):06x}"
        made["uid"].append(
            HistoryQuery(uid=uid, since_ms=since, until_ms=since + HOUR_MS, limit=100)
        )
    return made


async def time_queries(store: Store, runs: int, uids: int) -> list[Timing]:
    labels = {
        "bbox": f"bbox {BOX_DEG}° x {BOX_DEG}° + 1 h, limit 100",
        "uid": "uid + 1 h, limit 100",
        "bbox_day": f"bbox {BOX_DEG}° x {BOX_DEG}°, whole day, limit 100",
    }
    found = []
    for kind, qs in queries(runs, uids).items():
        await store.history(qs[0])  # warm the statement caches
        times, rows = [], 0
        for q in qs:
            started = time.perf_counter()
            page = await store.history(q)
            times.append((time.perf_counter() - started) * 1000)
            rows += len(page.events)
        times.sort()
        p95 = times[min(len(times) - 1, math.ceil(0.95 * len(times)) - 1)]
        found.append(Timing(labels[kind], statistics.median(times), p95, rows / len(qs)))
    return found


@contextmanager
def postgres_server() -> Iterator[str]:
    """TEST_POSTGRES_URL, or a throwaway server from scripts/postgres for this run."""
    server = os.environ.get("TEST_POSTGRES_URL", "")
    if server:
        yield server
        return
    script = str(HERE.parent / "scripts" / "postgres")
    pg_dir = tempfile.mkdtemp(prefix="accord-pg-bench.")
    try:
        started = subprocess.run(
            [script, "start", pg_dir], check=True, capture_output=True, text=True
        )
        yield started.stdout.strip()
    finally:
        subprocess.run([script, "stop", pg_dir], check=True)


@asynccontextmanager
async def postgres_database(server: str) -> AsyncIterator[str]:
    """A new database on ``server``, dropped after."""
    name = f"accord_bench_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server)
    await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    await admin.close()
    try:
        yield urlunsplit(urlsplit(server)._replace(path=f"/{name}"))
    finally:
        admin = await asyncpg.connect(server)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def measure(
    name: str,
    open_store: Callable[[], Awaitable[Store]],
    after_fill: Callable[[Store], Awaitable[str]],
    args: argparse.Namespace,
) -> tuple[list[Timing], Fill, str]:
    store = await open_store()
    try:
        filled = await fill(store, args.events, args.uids)
        version = await after_fill(store)
        print(
            f"{name}: {filled.events:,} events written in {filled.seconds:.1f} s "
            f"({filled.rate:,.0f} events/s, {filled.cpu_us_per_event:.1f} µs CPU each "
            "in this process)",
            file=sys.stderr,
        )
        return await time_queries(store, args.runs, args.uids), filled, version
    finally:
        await store.close()


async def sqlite_version(store: Store) -> str:
    return f"SQLite {sqlite3.sqlite_version}"


async def postgres_after_fill(store: Store) -> str:
    assert isinstance(store, PostgresStore)
    # What autovacuum would do soon after a load this size; the planner needs the statistics.
    async with store._connection() as conn:
        await conn.execute("VACUUM ANALYZE history")
        version = await conn.fetchval("SHOW server_version")
    return f"PostgreSQL {str(version).split()[0]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--uids", type=int, default=1_000)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--record", action="store_true", help="append to benchmarks/RESULTS.md")
    args = parser.parse_args()
    backends = args.backends.split(",")

    results: dict[str, tuple[list[Timing], Fill, str]] = {}
    if "sqlite" in backends:
        with tempfile.TemporaryDirectory(prefix="accord-bench-") as tmp:
            path = Path(tmp) / "accord.db"
            results["sqlite"] = asyncio.run(
                measure("SQLite", lambda: SqliteStore.open(path), sqlite_version, args)
            )
    if "postgres" in backends:
        with postgres_server() as server:
            results["postgres"] = asyncio.run(measure_postgres(server, args))

    table = report(results, args)
    print(table)
    if args.record:
        heading, _, runs = table.partition("\n\n")
        if heading in RESULTS.read_text(encoding="utf-8"):
            table = runs  # a later run under the same heading
        with RESULTS.open("a", encoding="utf-8") as out:
            out.write("\n" + table)
        print(f"appended to {RESULTS}", file=sys.stderr)


async def measure_postgres(server: str, args: argparse.Namespace) -> tuple[list[Timing], Fill, str]:
    async with postgres_database(server) as url:
        return await measure(
            "PostgreSQL", lambda: PostgresStore.open(url), postgres_after_fill, args
        )


def report(results: dict[str, tuple[list[Timing], Fill, str]], args: argparse.Namespace) -> str:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE
    ).stdout.strip()
    versions = ", ".join(v for _, _, v in results.values())
    lines = [
        "## History queries (1M events)"
        if args.events == 1_000_000
        else f"## History queries ({args.events:,} events)",
        "",
        f"### {now} — accord {commit}",
        "",
        f"{_machine()}, Python {platform.python_version()}, {versions}. "
        f"{args.events:,} events from {args.uids:,} uids over 24 h in a 2° x 2° region, "
        f"filled through `write_events` in batches of {BATCH:,}; each query through "
        f"`Store.history`, {args.runs} runs at random places and hours "
        "(`benchmarks/history_query.py`).",
        "",
        "| query | backend | median ms | p95 ms | events returned (mean) |",
        "|---|---|---:|---:|---:|",
    ]
    for backend, (timings, _, _) in results.items():
        for t in timings:
            lines.append(
                f"| {t.name} | {backend} | {t.median_ms:.2f} | {t.p95_ms:.2f} | {t.rows:.0f} |"
            )
    lines += [
        "",
        "| backend | write_events: events/s (history + latest) | Accord CPU per event, µs |",
        "|---|---:|---:|",
    ]
    for backend, (_, filled, _) in results.items():
        lines.append(f"| {backend} | {filled.rate:,.0f} | {filled.cpu_us_per_event:.1f} |")
    return "\n".join(lines) + "\n"


def _machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({model})"


if __name__ == "__main__":
    main()
