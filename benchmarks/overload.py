"""Memory after overload (issue 13 §2): does the server's RSS come back once a storm has passed?

One fresh `accord serve`; its RSS is sampled every second throughout:

1. *baseline*: the server alone, then with ``--watchers`` silent clients connected (they stay
   for the whole run and read everything, as a control room does);
2. *overload*: ``--clients`` more clients in the same group, each sending ``--rate`` SA/s for
   ``--overload`` s (1,000 x 1 SA/s is ~1 M deliveries/s offered, several times what one core
   delivers: the loadgen's delivered rate says by how much);
3. *idle with the watchers still connected* for ``--idle`` s;
4. *idle after the watchers have gone* for ``--idle-after`` s.

The goal of issue 13 §2 is RSS within 20 % of the baseline within a minute of the overload ending.
``--before-src DIR`` runs the same with the code in DIR first, so both come from one run.

    .venv/bin/python benchmarks/overload.py --before-src /tmp/before
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from procstat import proc_rss_kib
from servers import Server, accord_command, raise_nofile_limit, start_accord, stop

HERE = Path(__file__).resolve().parent
LOADGEN = HERE / "loadgen.py"
SAMPLE_EVERY_S = 1.0


class Sampler:
    """RSS of one process every second, from a thread, with a phase label per sample."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.phase = "start"
        self.samples: list[tuple[float, str, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._t0 = time.monotonic()

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(OSError, ValueError):
                self.samples.append(
                    (time.monotonic() - self._t0, self.phase, proc_rss_kib(self.pid))
                )
            self._stop.wait(SAMPLE_EVERY_S)

    def last(self, phase: str) -> int:
        values = [kib for _, p, kib in self.samples if p == phase]
        return values[-1] if values else 0

    def peak(self) -> int:
        return max((kib for _, _, kib in self.samples), default=0)

    def first_within(self, phase: str, limit_kib: float) -> float | None:
        """Seconds into ``phase`` until RSS first fell to ``limit_kib`` or below."""
        rows = [(t, kib) for t, p, kib in self.samples if p == phase]
        if not rows:
            return None
        start = rows[0][0]
        for t, kib in rows:
            if kib <= limit_kib:
                return t - start
        return None


def loadgen_cmd(server: Server, **kw: Any) -> list[str]:
    assert server.tcp_port is not None
    cmd = [sys.executable, str(LOADGEN), "--port", str(server.tcp_port)]
    for key, value in kw.items():
        flag = "--" + key.replace("_", "-")
        cmd += [flag] if value is True else [flag, str(value)]
    return cmd


def wait_rss_settled(sampler: Sampler, seconds: float) -> None:
    time.sleep(seconds)  # a measurement window, not a wait for a condition


def one_run(label: str, cmd: list[str], args: argparse.Namespace) -> dict[str, Any]:
    server = start_accord(cmd, client_certs=False, config="archive = false\n")
    try:
        with Sampler(server.pid) as s:
            s.phase = "alone"
            wait_rss_settled(s, 5)
            watch_total = args.overload + args.idle + 60
            s.phase = "watchers"
            watchers = subprocess.Popen(
                loadgen_cmd(
                    server,
                    clients=args.watchers,
                    senders=0,
                    rate=0,
                    warmup=0,
                    duration=watch_total,
                    label=f"{label}:watchers",
                ),
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            wait_rss_settled(s, 15)
            s.phase = "overload"
            t0 = time.monotonic()
            done = subprocess.run(
                loadgen_cmd(
                    server,
                    clients=args.clients,
                    rate=args.rate,
                    warmup=2,
                    duration=args.overload,
                    no_initial_sa=True,
                    label=f"{label}:overload",
                    server_pid=server.pid,
                ),
                capture_output=True,
                text=True,
                timeout=args.overload + 300,
            )
            overload_s = time.monotonic() - t0
            report: dict[str, Any] = json.loads(done.stdout) if done.stdout.strip() else {}
            s.phase = "idle"
            wait_rss_settled(s, args.idle)
            s.phase = "gone"
            watchers.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                watchers.wait(30)
            if watchers.poll() is None:
                watchers.kill()
            wait_rss_settled(s, args.idle_after)
        alive = server.proc.poll() is None
    finally:
        stop(server)
    base = s.last("watchers")
    alone = s.last("alone")
    limit = base * 1.2
    return {
        "code": label,
        "alive": alive,
        "rss_alone_mib": alone / 1024,
        "rss_baseline_mib": base / 1024,
        "rss_peak_mib": s.peak() / 1024,
        "rss_after_idle_mib": s.last("idle") / 1024,
        "rss_after_gone_mib": s.last("gone") / 1024,
        "back_within_20pct_s": s.first_within("idle", limit),
        "overload_wall_s": overload_s,
        "delivered_per_s": report.get("delivered_per_s"),
        "offered_per_s": report.get("offered_deliveries_per_s"),
        "p99_ms": (report.get("latency_ms") or {}).get("p99"),
        "server_cpu_pct": report.get("server_cpu_pct"),
        "samples": s.samples,
    }


def print_table(results: list[dict[str, Any]]) -> None:
    print(
        "| code | RSS alone | + watchers (baseline) | peak | after idle | back within 20 % "
        "| after watchers left | delivered/s | server CPU | p99 |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        back = r["back_within_20pct_s"]
        back_s = f"{back:.0f} s" if back is not None else "not within the window"
        delivered = r["delivered_per_s"]
        print(
            f"| {r['code']} | {r['rss_alone_mib']:.0f} MiB | {r['rss_baseline_mib']:.0f} MiB "
            f"| {r['rss_peak_mib']:.0f} MiB | {r['rss_after_idle_mib']:.0f} MiB | {back_s} "
            f"| {r['rss_after_gone_mib']:.0f} MiB "
            f"| {delivered:,.0f} | {r['server_cpu_pct'] or 0:.0f} % | {r['p99_ms'] or 0:.0f} ms |"
            if delivered is not None
            else f"| {r['code']} | … | … | … | … | {back_s} | … | n/a | n/a | n/a |"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=1.0, help="SA/s per overload client")
    parser.add_argument("--watchers", type=int, default=100)
    parser.add_argument("--overload", type=float, default=60.0, help="s of overload")
    parser.add_argument("--idle", type=float, default=60.0, help="s idle, watchers connected")
    parser.add_argument("--idle-after", type=float, default=20.0, help="s idle after they left")
    parser.add_argument("--before-src", help="a source tree (its src/) to measure first")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="LABEL=VAR=VALUE",
        help="also run the code under test with VAR=VALUE in its environment, before it "
        "(e.g. pymalloc=ACCORD_ALLOCATOR=pymalloc); repeatable",
    )
    parser.add_argument("--json", help="write the results (with every RSS sample) here")
    args = parser.parse_args()
    raise_nofile_limit()
    runs: list[tuple[str, list[str]]] = []
    if args.before_src:
        src = str(Path(args.before_src).resolve() / "src")
        runs.append(("before", ["env", f"PYTHONPATH={src}", sys.executable, "-m", "accord"]))
    after = accord_command()
    if after is None:
        print("accord is not installed", file=sys.stderr)
        return 2
    for variant in args.variant:
        label, _, assignment = variant.partition("=")
        if "=" not in assignment:
            parser.error(f"--variant {variant!r}: use LABEL=VAR=VALUE")
        runs.append((f"after, {label}", ["env", assignment, *after]))
    runs.append(("after", after))
    results = []
    for label, cmd in runs:
        print(f"{label}: {' '.join(cmd[-3:])}", file=sys.stderr, flush=True)
        results.append(one_run(label, cmd, args))
        r = results[-1]
        print(
            f"  baseline {r['rss_baseline_mib']:.0f} MiB, peak {r['rss_peak_mib']:.0f}, "
            f"after idle {r['rss_after_idle_mib']:.0f}, back in {r['back_within_20pct_s']}",
            file=sys.stderr,
            flush=True,
        )
    print_table(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    print(f"load average at the end: {os.getloadavg()}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
