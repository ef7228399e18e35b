"""``accord serve --workers 2`` against one process (issue 17), and the bus's CPU cost.

1. Saturation: 1,000 TCP clients in one group, each sending SAs at a per-client rate that is
   ramped; the saturation point of a configuration is the highest delivered rate whose p99 is
   under 100 ms (and with at least 90 % of the offered deliveries made). Each step gets a
   fresh server. The configurations alternate within each rate and the ramp is run
   ``--rounds`` times (W1 W2, then W2 W1, ...), so that other work on the machine is shared.
2. CPU per delivery at one rate below saturation (``--cpu-rate``): one process without the bus,
   one process with the bus (``[cluster]`` on a NATS server started here: every event is
   published, nothing crosses), and two workers (every event crosses once). The server's CPU
   is its whole process tree (supervisor, workers, NATS).

The load generator (benchmarks/loadgen.py) runs on the same 2 cores; its CPU is recorded with
each step, so that what it takes from the server can be read off.

    flock /tmp/accord-bench.lock .venv/bin/python benchmarks/cluster_workers.py
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import servers
from servers import Server

HERE = Path(__file__).resolve().parent
LOADGEN = HERE / "loadgen.py"
PYTHON = str(p) if (p := HERE.parent / ".venv" / "bin" / "python").exists() else sys.executable
READY_TIMEOUT_S = 90.0


def start(cmd: list[str], workers: int, config: str = "") -> Server:
    server = servers.start_accord(
        cmd,
        client_certs=False,
        config="archive = false\n" + config,
        serve_args=("--workers", str(workers)) if workers > 1 else (),
    )
    record = server.workdir / "data" / "running.json"
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not record.exists():  # written once every worker is ready
        if server.proc.poll() is not None or time.monotonic() > deadline:
            servers.stop(server)
            raise RuntimeError(f"accord --workers {workers} did not start: {server.log_tail()}")
        time.sleep(0.1)
    return server


def loadgen(server: Server, label: str, **kw: Any) -> dict[str, Any]:
    assert server.tcp_port is not None
    cmd = [PYTHON, str(LOADGEN), "--port", str(server.tcp_port), "--server-pid", str(server.pid)]
    cmd += ["--label", label]
    for key, value in kw.items():
        flag = "--" + key.replace("_", "-")
        cmd += [flag] if value is True else [flag, str(value)]
    budget = 240 + float(kw.get("warmup", 2)) + float(kw.get("duration", 10))
    print(f"  {label:30} ...", end="", flush=True, file=sys.stderr)
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=budget)
        report: dict[str, Any] = json.loads(done.stdout) if done.stdout.strip() else {}
        if not report:
            report = {"error": f"loadgen exit {done.returncode}: {done.stderr[-400:]}"}
    except subprocess.TimeoutExpired:
        report = {"error": f"loadgen timed out after {budget:.0f}s"}
    report["label"] = label
    if server.proc.poll() is not None:
        report["error"] = f"server died: {server.log_tail(5)}"
    lat = report.get("latency_ms", {})
    print(
        f" deliv {report.get('delivered_per_s')}/s (offered "
        f"{report.get('offered_deliveries_per_s')}) p50 {lat.get('p50')} p99 {lat.get('p99')} "
        f"| server {report.get('server_cpu_pct')}% loadgen {report.get('loadgen_cpu_pct')}% "
        f"{report.get('error', '')}",
        file=sys.stderr,
    )
    return report


def within(r: dict[str, Any]) -> bool:
    """The step is below saturation: all connected, p99 < 100 ms, >= 90 % delivered."""
    return (
        "error" not in r
        and r.get("clients_connected") == r.get("clients")
        and r["latency_ms"]["p99"] is not None
        and r["latency_ms"]["p99"] < 100.0
        and r["delivered_per_s"] >= 0.9 * r["offered_deliveries_per_s"]
    )


def step(cmd: list[str], workers: int, rate: float, a: argparse.Namespace, config: str = "",
         name: str = "") -> dict[str, Any]:  # fmt: skip
    server = start(cmd, workers, config)
    try:
        r = loadgen(
            server, f"{name or f'w{workers}'} r={rate:g}", clients=a.clients, rate=rate,
            duration=a.window, warmup=a.warmup, no_initial_sa=True,
        )  # fmt: skip
    finally:
        servers.stop(server)
    r["workers"], r["config"] = workers, name or f"w{workers}"
    with open("/proc/loadavg") as fh:
        r["loadavg"] = fh.read().split()[0]
    return r


def nats_config(root: Path) -> tuple[str, subprocess.Popen[bytes]]:
    """A ``nats-server -js`` for the one-process-with-the-bus runs, and its [cluster]."""
    from accord.cluster.natsd import NatsProcess, specs

    spec = specs(["bench"], root)[0]
    spec.store.mkdir(parents=True)
    proc = subprocess.Popen(NatsProcess(spec, []).args(), stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{spec.monitor_port}/healthz", timeout=1):
                break
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.1)
    return f'[cluster]\nurls = ["{spec.url}"]\norg = "bench"\n', proc


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--rates", default="0.5,0.75,1,1.25,1.5,2", help="SA/s per client, ramped")
    p.add_argument("--clients", type=int, default=1000)
    p.add_argument("--window", type=float, default=10.0)
    p.add_argument("--warmup", type=float, default=8.0)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--cpu-rate", type=float, default=0.5, help="rate of the CPU-per-delivery runs")
    p.add_argument("--json", type=Path, help="write every report here")
    p.add_argument("--cpu-only", action="store_true", help="only the CPU-per-delivery runs")
    a = p.parse_args()
    servers.raise_nofile_limit()
    cmd = servers.accord_command()
    assert cmd is not None, "no accord CLI"
    rates = [float(x) for x in a.rates.split(",")]
    reports: list[dict[str, Any]] = []
    best: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
    for round_ in range(0 if a.cpu_only else a.rounds):
        order = [1, 2] if round_ % 2 == 0 else [2, 1]
        live = set(order)
        top: dict[int, dict[str, Any] | None] = {1: None, 2: None}
        for rate in rates:
            for workers in order:
                if workers not in live:
                    continue
                r = step(cmd, workers, rate, a)
                r["round"] = round_ + 1
                reports.append(r)
                if within(r):
                    top[workers] = r
                else:
                    live.discard(workers)  # saturated: this configuration's ramp ends
            if not live:
                break
        for workers, r in top.items():
            if r is not None:
                best[workers].append(r)
    # CPU per delivery, with and without the bus; a fresh NATS server for each run with the
    # bus (one with the last run's latest SAs would hand them all to the newcomers).
    cpu: list[dict[str, Any]] = []
    for round_ in range(a.rounds):
        for workers, bus, name in ((1, False, "w1"), (1, True, "w1+bus"), (2, False, "w2")):
            nats = None
            config = ""
            if bus:
                config, nats = nats_config(Path(tempfile.mkdtemp(prefix="bench-nats-")))
            try:
                r = step(cmd, workers, a.cpu_rate, a, config, name)
            finally:
                if nats is not None:
                    nats.terminate()
                    nats.wait(10)
            r["round"] = round_ + 1
            cpu.append(r)
    if a.json:
        a.json.write_text(json.dumps({"ramp": reports, "cpu": cpu}, indent=2))
    print(render(reports, best, cpu, a))


def render(
    reports: list[dict[str, Any]],
    best: dict[int, list[dict[str, Any]]],
    cpu: list[dict[str, Any]],
    a: argparse.Namespace,
) -> str:
    out = [
        "| round | config | SA/s each | delivered/s | p50 / p99 ms | server CPU % | "
        "generator CPU % | load | within |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in reports:
        lat = r.get("latency_ms", {})
        out.append(
            f"| {r['round']} | {r['config']} | {r.get('rate_per_sender', '?')} | "
            f"{r.get('delivered_per_s', 0):,.0f} | {lat.get('p50')} / {lat.get('p99')} | "
            f"{r.get('server_cpu_pct')} | {r.get('loadgen_cpu_pct')} | {r['loadavg']} | "
            f"{'yes' if within(r) else 'no'} |"
        )
    out.append("")
    for workers in (1, 2):
        tops = [r["delivered_per_s"] for r in best[workers]]
        out.append(f"saturation w{workers}: {', '.join(f'{t:,.0f}' for t in tops) or 'none'}")
    if best[1] and best[2]:
        b1 = max(r["delivered_per_s"] for r in best[1])
        b2 = max(r["delivered_per_s"] for r in best[2])
        out.append(f"ratio w2/w1 (best of rounds): {b2 / b1:.2f}")
    out += [
        "",
        "| round | config | delivered/s | server CPU % | CPU µs per delivery | "
        "generator CPU % | p99 ms |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in cpu:
        per = (
            r["server_cpu_pct"] / 100 / r["delivered_per_s"] * 1e6
            if r.get("delivered_per_s")
            else float("nan")
        )
        out.append(
            f"| {r['round']} | {r['config']} | {r.get('delivered_per_s', 0):,.0f} | "
            f"{r.get('server_cpu_pct')} | {per:.3f} | {r.get('loadgen_cpu_pct')} | "
            f"{r.get('latency_ms', {}).get('p99')} |"
        )
    return "\n".join(out)


if __name__ == "__main__":
    main()
