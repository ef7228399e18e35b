"""What keeping a history costs the routing: archiving on vs off, in one run.

Each measurement starts a fresh `accord serve` (SQLite history in its data dir, or
PostgreSQL with --database-url) and drives it with loadgen.py; on and off alternate so
that drift of the machine hits both alike. Two loads:

- fan-out: 100 clients all sending, each event delivered to 99 others (the routing
  benchmark of run.py), at a rate the server just keeps up with and at one above what it
  can deliver (there the delivered rate is the throughput);
- ingress: 20 clients each sending near the per-session input limit, so that many events
  are archived per delivery (the worst case for archiving: little routing work to hide its
  cost behind); not saturating, so its cost shows as server CPU.

    python benchmarks/archive.py [--reps 3] [--record] [--database-url postgresql://…]
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import sys
from typing import Any

import run
import servers

LOADS = {
    # name: loadgen arguments
    "fan-out 100 clients x 80/s": {"clients": 100, "rate": 80},
    "fan-out 100 clients x 120/s": {"clients": 100, "rate": 120},
    "ingress 20 clients x 190/s (3,800 archived/s)": {"clients": 20, "rate": 190},
}


def measure(
    cmd: list[str], config: str, load: dict[str, Any], args: argparse.Namespace
) -> dict[str, Any]:
    ctx = run.Context(args, run.Profile.make(True), accord_cmd=cmd, taky_certs=None)
    with servers.running(servers.start_accord(cmd, client_certs=False, config=config)) as srv:
        return run.loadgen(
            ctx, srv, tls=False, label="archive", duration=args.window, warmup=2, **load
        )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=3, help="on/off pairs per load")
    p.add_argument("--window", type=float, default=8.0, help="s measured per run")
    p.add_argument("--database-url", default="", help="PostgreSQL instead of SQLite")
    p.add_argument("--record", action="store_true", help="append to benchmarks/RESULTS.md")
    args = p.parse_args()
    args.servers = ["accord"]
    cmd = servers.accord_command()
    if cmd is None:
        print("accord is not installed in this interpreter", file=sys.stderr)
        return 2
    db = f'database_url = "{args.database_url}"\n' if args.database_url else ""
    backend = "PostgreSQL" if args.database_url else "SQLite"
    lines = [
        f"| load ({backend}) | archive off: delivered ev/s | on | on/off | server CPU off → on |",
        "|---|---|---|---|---|",
    ]
    for name, load in LOADS.items():
        got: dict[bool, list[dict[str, Any]]] = {False: [], True: []}
        for _ in range(args.reps):
            for on in (False, True):
                config = db + f"archive = {'true' if on else 'false'}\n"
                got[on].append(measure(cmd, config, load, args))
        off = statistics.median(r.get("delivered_per_s", 0) for r in got[False])
        on = statistics.median(r.get("delivered_per_s", 0) for r in got[True])
        cpu_off = statistics.median(r.get("server_cpu_pct", 0) for r in got[False])
        cpu_on = statistics.median(r.get("server_cpu_pct", 0) for r in got[True])
        ratio = on / off if off else float("nan")
        lines.append(
            f"| {name} | {off:,.0f} | {on:,.0f} | {ratio:.3f} | {cpu_off:.0f}% → {cpu_on:.0f}% |"
        )
    table = "\n".join(lines)
    print(table)
    if args.record:
        when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
        meta = f"{when}, {platform.machine()}, medians of {args.reps} alternating runs each"
        with run.RESULTS.open("a") as out:
            out.write(f"\n## History archiving: cost to routing ({meta})\n\n{table}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
