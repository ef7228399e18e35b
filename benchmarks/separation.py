"""Separation monitor at scale: N airborne tracks (default 2,000) reporting at 2 Hz, one core.

Tracks fly straight lines in a square region (default 60 km x 60 km, ~0.55 tracks per km²):
drones at 5-30 m/s, a few crewed aircraft at 60-120 m/s (outside the grid's cells, so every
update meets them). A share of the tracks are own drones (default 10 %; ``--own 1.0``: every
track is own, every pair watched); some own drones are set on collision courses so that alerts
are raised and cleared. Each track reports at 2 Hz with its own phase, each report fed to
``SeparationMonitor.update`` at its instant, ``tick`` once a second.

Measured with ``time.process_time`` around the monitor calls only: CPU per update (mean, p50,
p99), the share of one core 2 Hz x N needs, and the alert latency: the CPU time of the update
call that returned an alert change (the delay between a position report and its alert, on an
idle core). The numbers on a shared machine are ratios within one run.

    .venv/bin/python benchmarks/separation.py [--tracks 2000] [--seconds 60] [--own 0.1]
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import time

from accord.geo.enu import EARTH_RADIUS_M
from accord.geo.monitor import SeparationMonitor
from accord.geo.track import Track

RATE_HZ = 2.0
M_PER_DEG = EARTH_RADIUS_M * math.pi / 180.0
CENTRE = (46.95, 7.45)
CREWED_SHARE = 0.02
CONFLICT_PAIRS_PER_1000 = 25


class Flight:
    """A straight line in the local plane; ``at(t)`` is its report at time t."""

    def __init__(self, uid: str, x: float, y: float, heading: float, speed: float, own: bool):
        self.uid, self.x, self.y, self.heading, self.speed, self.own = (
            uid,
            x,
            y,
            heading,
            speed,
            own,
        )
        self.alt = 120.0

    def at(self, t: float) -> Track:
        rad = math.radians(self.heading)
        x = self.x + self.speed * math.sin(rad) * t
        y = self.y + self.speed * math.cos(rad) * t
        lat = CENTRE[0] + y / M_PER_DEG
        lon = CENTRE[1] + x / (M_PER_DEG * math.cos(math.radians(CENTRE[0])))
        return Track(self.uid, t, lat, lon, self.alt, self.heading, self.speed, 0.0, 3.0, 5.0,
                     own=self.own)  # fmt: skip


def flights(n: int, side_m: float, own_share: float, rng: random.Random) -> list[Flight]:
    out: list[Flight] = []
    conflicts = max(1, n * CONFLICT_PAIRS_PER_1000 // 1000)
    for i in range(conflicts):  # head-on own pairs meeting between 30 s and 90 s from the start
        x, y = rng.uniform(-side_m / 3, side_m / 3), rng.uniform(-side_m / 3, side_m / 3)
        heading, speed, meet = rng.uniform(0, 360), rng.uniform(8, 20), rng.uniform(30, 90)
        rad = math.radians(heading)
        dx, dy = math.sin(rad) * speed * meet, math.cos(rad) * speed * meet
        out.append(Flight(f"own-c{i}a", x - dx, y - dy, heading, speed, True))
        out.append(Flight(f"own-c{i}b", x + dx, y + dy, (heading + 180) % 360, speed, True))
    while len(out) < n:
        i = len(out)
        crewed = rng.random() < CREWED_SHARE
        own = not crewed and rng.random() < own_share
        speed = rng.uniform(60, 120) if crewed else rng.uniform(5, 30)
        x, y = rng.uniform(-side_m / 2, side_m / 2), rng.uniform(-side_m / 2, side_m / 2)
        uid = f"{'own' if own else 'trk'}-{i}"
        out.append(Flight(uid, x, y, rng.uniform(0, 360), speed, own))
    return out


def run(n: int, seconds: float, own_share: float, side_m: float, seed: int) -> dict[str, float]:
    rng = random.Random(seed)
    fleet = flights(n, side_m, own_share, rng)
    phase = {f.uid: rng.uniform(0, 1 / RATE_HZ) for f in fleet}
    reports = sorted(
        (k / RATE_HZ + phase[f.uid], f) for f in fleet for k in range(int(seconds * RATE_HZ))
    )
    monitor = SeparationMonitor()
    costs: list[float] = []
    latencies: list[float] = []
    raised = cleared = 0
    next_tick = 1.0
    tick_cpu = 0.0
    for t, flight in reports:
        if t >= next_tick:
            c0 = time.process_time()
            monitor.tick(next_tick)
            tick_cpu += time.process_time() - c0
            next_tick += 1.0
        track = flight.at(t)
        c0 = time.process_time()
        changes = monitor.update(track, t)
        cost = time.process_time() - c0
        costs.append(cost)
        if changes:
            latencies.append(cost)
            raised += sum(1 for c in changes if c.level > c.previous)
            cleared += sum(1 for c in changes if c.level == 0)
    costs.sort()
    latencies.sort()
    mean = statistics.fmean(costs)
    return {
        "updates": len(costs),
        "samples": monitor.counters.samples,
        "mean_us": mean * 1e6,
        "p50_us": costs[len(costs) // 2] * 1e6,
        "p99_us": costs[int(len(costs) * 0.99)] * 1e6,
        "core_share": mean * n * RATE_HZ + tick_cpu / seconds,
        "alerts_raised": raised,
        "alerts_cleared": cleared,
        "latency_p50_ms": latencies[len(latencies) // 2] * 1e3 if latencies else math.nan,
        "latency_p99_ms": latencies[int(len(latencies) * 0.99)] * 1e3 if latencies else math.nan,
        "latency_max_ms": latencies[-1] * 1e3 if latencies else math.nan,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=60.0, help="simulated time")
    parser.add_argument("--own", type=float, default=0.1, help="share of own drones")
    parser.add_argument("--side-km", type=float, default=60.0, help="side of the region")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    wall = time.perf_counter()
    result = run(args.tracks, args.seconds, args.own, args.side_km * 1000.0, args.seed)
    wall = time.perf_counter() - wall
    print(f"{args.tracks} tracks x {RATE_HZ:g} Hz for {args.seconds:g} s, own share {args.own:g}, "
          f"{args.side_km:g} km square (wall {wall:.1f} s)")  # fmt: skip
    for key, value in result.items():
        print(f"  {key:<16} {value:,.3f}" if isinstance(value, float) else f"  {key:<16} {value:,}")


if __name__ == "__main__":
    main()
