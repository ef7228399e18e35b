"""Benchmark Accord against taky 0.10 in one run and print a Markdown table of ratios.

One server at a time is measured; each measurement gets a freshly started server (fresh data
dir, fresh ports), so backlog or persisted state from one step never leaks into the next.
The load comes from loadgen.py in a child process (same interpreter as this script, so it
can import accord for the protobuf scenario).

    python benchmarks/run.py --quick            # ~3 min, smoke numbers
    python benchmarks/run.py --record           # full run, appended to benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import procstat
import servers
from servers import Server, TakyCerts

HERE = Path(__file__).resolve().parent
LOADGEN = HERE / "loadgen.py"
# The project venv's interpreter, when there is one: the protobuf path imports accord.
PYTHON = str(p) if (p := HERE.parent / ".venv" / "bin" / "python").exists() else sys.executable
RESULTS = HERE / "RESULTS.md"
ALL_SCENARIOS = [
    "latency",
    "latency-tls",
    "latency-proto",
    "fanout",
    "sa1k",
    "idle-tls",
    "idle-cpu",
]


@dataclass(frozen=True)
class Profile:
    """Durations and sizes; --quick shrinks them for a smoke run."""

    latency_s: float
    window_s: float
    warmup_s: float
    fanout_rates: tuple[float, ...]
    idle_cpu_s: float
    idle_tls_clients: tuple[int, ...]

    @staticmethod
    def make(quick: bool) -> Profile:
        if quick:
            return Profile(5, 4, 1, (1, 2, 4, 8), 5, (1000, 2000))
        return Profile(30, 10, 2, (1, 2, 3, 4, 6, 8, 12, 16, 24, 32), 10, (1000, 10_000))


@dataclass
class Row:
    """One metric of one scenario; values keyed by server name (None = not run / n/a)."""

    scenario: str
    metric: str
    lower_is_better: bool
    values: dict[str, float | None] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)


@dataclass
class Context:
    args: argparse.Namespace
    profile: Profile
    accord_cmd: list[str] | None
    taky_certs: TakyCerts | None
    reports: list[dict[str, Any]] = field(default_factory=list)

    def server_names(self) -> list[str]:
        return [s for s in self.args.servers if s != "accord" or self.accord_cmd]


# ---------------------------------------------------------------------------------------
# Running the loadgen


def loadgen(ctx: Context, server: Server, *, tls: bool, label: str, **kw: Any) -> dict[str, Any]:
    """Run loadgen.py once against `server`; returns its JSON report (or an error report)."""
    port = server.tls_port if tls else server.tcp_port
    assert port is not None, f"{server.name} has no {'TLS' if tls else 'TCP'} port"
    cmd = [PYTHON, str(LOADGEN), "--port", str(port), "--server-pid", str(server.pid)]
    cmd += ["--label", f"{server.name}:{label}"]
    if tls:
        assert server.tls is not None
        cmd += ["--tls", "--ca", server.tls.ca, "--cert", server.tls.cert, "--key", server.tls.key]
    for key, value in kw.items():
        flag = "--" + key.replace("_", "-")
        cmd += [flag] if value is True else [flag, str(value)]
    # Bounded: connect allowance (10k TLS handshakes) + warmup + window + slack.
    budget = 180 + float(kw.get("warmup", 2)) + float(kw.get("duration", 10))
    print(f"  {server.name:6} {label:28} ...", end="", flush=True, file=sys.stderr)
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=budget)
        report: dict[str, Any] = json.loads(done.stdout) if done.stdout.strip() else {}
        if not report:
            report = {"error": f"loadgen exit {done.returncode}: {done.stderr[-500:]}"}
    except subprocess.TimeoutExpired:
        report = {"error": f"loadgen timed out after {budget:.0f}s"}
    except json.JSONDecodeError as exc:
        report = {"error": f"bad loadgen output: {exc}"}
    report.setdefault("label", f"{server.name}:{label}")
    if server.proc.poll() is not None:
        report["server_died"] = f"exit {server.proc.returncode}: {server.log_tail(5)}"
    ctx.reports.append(report)
    print(" " + _brief(report), file=sys.stderr)
    return report


def _brief(r: dict[str, Any]) -> str:
    if "error" in r:
        return "ERROR " + str(r["error"])[:200]
    lat = r.get("latency_ms", {})
    return (
        f"conn {r.get('clients_connected')}/{r.get('clients')} "
        f"deliv {r.get('delivered_per_s')}/s (offered {r.get('offered_deliveries_per_s')}) "
        f"p50 {lat.get('p50')} p99 {lat.get('p99')} ms | server cpu {r.get('server_cpu_pct')}% "
        f"rss {r.get('server_rss_mib')} MiB | loadgen cpu {r.get('loadgen_cpu_pct')}%"
    )


def start(ctx: Context, name: str, *, tls: bool = False) -> Server:
    if name == "taky":
        return servers.start_taky(ctx.taky_certs if tls else None)
    assert ctx.accord_cmd is not None
    return servers.start_accord(ctx.accord_cmd, client_certs=tls)


def ok(r: dict[str, Any]) -> bool:
    return (
        "error" not in r
        and "server_died" not in r
        and r.get("clients_connected") == r.get("clients")
    )


def note_of(r: dict[str, Any]) -> str:
    if "server_died" in r:
        return "server died"
    if "error" in r:
        return "failed"
    if r.get("clients_connected") != r.get("clients"):
        return f"only {r.get('clients_connected')}/{r.get('clients')} connected"
    return ""


# ---------------------------------------------------------------------------------------
# Scenarios: each returns rows; a server that cannot run one leaves None in its cell.


def sc_latency(ctx: Context, *, tls: bool = False, wire: str = "xml") -> list[Row]:
    """One-hop latency: 2 clients, one sends 10 SA/s, the other receives."""
    name = "latency" + ("-tls" if tls else "") + ("-proto" if wire == "protobuf" else "")
    what = f"1 hop, {'TLS' if tls else 'TCP'} {wire}, 10 ev/s"
    p50 = Row(name, f"{what}: p50 ms", True)
    p99 = Row(name, f"{what}: p99 ms", True)
    for srv_name in ctx.server_names():
        if srv_name == "taky" and wire == "protobuf":
            p50.notes["taky"] = p99.notes["taky"] = "XML only"
            continue
        with servers.running(start(ctx, srv_name, tls=tls)) as srv:
            r = loadgen(
                ctx, srv, tls=tls, label=name, clients=2, senders=1, rate=10,
                duration=ctx.profile.latency_s, warmup=ctx.profile.warmup_s, format=wire,
            )  # fmt: skip
        _put(p50, srv_name, r, lambda r: r["latency_ms"]["p50"])
        _put(p99, srv_name, r, lambda r: r["latency_ms"]["p99"])
    return [p50, p99]


def sc_fanout(ctx: Context) -> list[Row]:
    """100 clients all sending; ramp the per-client rate until delivery falls behind."""
    best = Row("fanout", "100 clients fan-out: max delivered ev/s", False)
    at = Row("fanout", "  … p99 ms at that rate", True)
    for srv_name in ctx.server_names():
        top: dict[str, Any] | None = None
        saturated = False
        for rate in ctx.profile.fanout_rates:
            with servers.running(start(ctx, srv_name)) as srv:
                r = loadgen(
                    ctx, srv, tls=False, label=f"fanout r={rate:g}", clients=100, rate=rate,
                    duration=ctx.profile.window_s, warmup=ctx.profile.warmup_s,
                )  # fmt: skip
            if not ok(r):
                break
            if top is None or r["delivered_per_s"] > top["delivered_per_s"]:
                top = r
            # Saturated: the server no longer keeps up, or the loadgen itself is the limit.
            if r["delivered_per_s"] < 0.9 * r["offered_deliveries_per_s"]:
                saturated = True
                break
            if r["loadgen_cpu_pct"] > 90:
                best.notes[srv_name] = "loadgen-bound"
                saturated = True
                break
        if top is None:
            best.notes[srv_name] = "failed"
            continue
        if not saturated:
            best.notes[srv_name] = "not saturated: ramp ended"
        best.values[srv_name] = top["delivered_per_s"]
        at.values[srv_name] = top["latency_ms"]["p99"]
        at.notes[srv_name] = f"{top['rate_per_sender']:g}/s each"
    return [best, at]


def sc_sa1k(ctx: Context) -> list[Row]:
    """1,000 clients each sending 1 SA/s (~1M deliveries/s offered).

    Measured twice: in steady state (clients connect quietly, 8 s of warm-up so that the
    connect transient has passed), which is what the p99 target is about; and with every
    client announcing itself on connect (N*(N-1) deliveries at once, as if the whole team
    reconnected together), which shows how a burst drains.
    """
    rows = [
        Row("sa1k", "1k clients x 1 SA/s: delivered ev/s", False),
        Row("sa1k", "  … p50 ms (steady)", True),
        Row("sa1k", "  … p99 ms (steady)", True),
        Row("sa1k", "  … server RSS MiB", True),
        Row("sa1k", "  … p99 ms, all announcing on connect", True),
    ]
    warmup = max(ctx.profile.warmup_s, 8.0)
    for srv_name in ctx.server_names():
        with servers.running(start(ctx, srv_name)) as srv:
            r = loadgen(
                ctx, srv, tls=False, label="sa1k", clients=1000, rate=1,
                duration=ctx.profile.window_s, warmup=warmup, no_initial_sa=True,
            )  # fmt: skip
        _put(rows[0], srv_name, r, lambda r: r["delivered_per_s"])
        _put(rows[1], srv_name, r, lambda r: r["latency_ms"]["p50"])
        _put(rows[2], srv_name, r, lambda r: r["latency_ms"]["p99"])
        _put(rows[3], srv_name, r, lambda r: r["server_peak_rss_mib"])
        with servers.running(start(ctx, srv_name)) as srv:
            r = loadgen(
                ctx, srv, tls=False, label="sa1k-burst", clients=1000, rate=1,
                duration=ctx.profile.window_s, warmup=warmup,
            )  # fmt: skip
        _put(rows[4], srv_name, r, lambda r: r["latency_ms"]["p99"])
    return rows


def sc_idle_tls(ctx: Context) -> list[Row]:
    """N idle mTLS sessions held: server RSS and RSS per session.

    taky's select() loop cannot watch fds >= 1024 (FD_SETSIZE), so it only gets the sizes
    below that; Accord gets every size.
    """
    rows: list[Row] = []
    for n in ctx.profile.idle_tls_clients:
        rss = Row("idle-tls", f"{n:,} idle TLS sessions: server RSS MiB", True)
        per = Row("idle-tls", "  … KiB per session", True)
        for srv_name in ctx.server_names():
            if srv_name == "taky" and n > 1000:
                rss.notes["taky"] = per.notes["taky"] = "select() ≤1024 fds"
                continue
            with servers.running(start(ctx, srv_name, tls=True)) as srv:
                time.sleep(1.0)  # let start-up allocation settle before the baseline
                base_kib = procstat.proc_rss_kib(srv.pid)
                r = loadgen(
                    ctx, srv, tls=True, label=f"idle-tls n={n}", clients=n, rate=0,
                    duration=5, warmup=1, connect_concurrency=100, no_initial_sa=True,
                )  # fmt: skip
            _put(rss, srv_name, r, lambda r: r["server_rss_mib"])
            _put(per, srv_name, r, per_session_kib(base_kib, n))
        rows += [rss, per]
    return rows


def per_session_kib(base_kib: int, n: int) -> Callable[[dict[str, Any]], float]:
    """RSS growth over the pre-connect baseline, per held session."""
    return lambda r: round((r["server_rss_mib"] * 1024 - base_kib) / n, 1)


def sc_idle_cpu(ctx: Context) -> list[Row]:
    """100 clients connected and silent: the server's own CPU use."""
    cpu = Row(
        "idle-cpu", f"100 silent clients: server CPU % over {ctx.profile.idle_cpu_s:g}s", True
    )
    for srv_name in ctx.server_names():
        with servers.running(start(ctx, srv_name)) as srv:
            r = loadgen(
                ctx, srv, tls=False, label="idle-cpu", clients=100, rate=0,
                duration=ctx.profile.idle_cpu_s, warmup=2,
            )  # fmt: skip
        _put(cpu, srv_name, r, lambda r: r["server_cpu_pct"])
    return [cpu]


def _put(row: Row, srv_name: str, r: dict[str, Any], get: Callable[[dict[str, Any]], Any]) -> None:
    if "error" in r:
        row.notes[srv_name] = note_of(r)
        return
    row.values[srv_name] = get(r)
    if note := note_of(r):
        row.notes[srv_name] = note


SCENARIOS: dict[str, Callable[[Context], list[Row]]] = {
    "latency": sc_latency,
    "latency-tls": lambda ctx: sc_latency(ctx, tls=True),
    "latency-proto": lambda ctx: sc_latency(ctx, tls=True, wire="protobuf"),
    "fanout": sc_fanout,
    "sa1k": sc_sa1k,
    "idle-tls": sc_idle_tls,
    "idle-cpu": sc_idle_cpu,
}


# ---------------------------------------------------------------------------------------
# Report


def fmt(v: float | None, note: str = "") -> str:
    if v is None:
        text = "—"
    elif abs(v) >= 100:
        text = f"{v:,.0f}"
    else:
        text = f"{v:.3g}"
    return f"{text} ({note})" if note else text


def ratio(row: Row) -> str:
    a, t = row.values.get("accord"), row.values.get("taky")
    if a is None or t is None:
        return "—"
    if t == 0:
        return "∞" if a > 0 else "—"
    better = (a < t) if row.lower_is_better else (a > t)
    return f"{a / t:.2f}" + (" ✓" if better else "")


def markdown(rows: list[Row], meta: str) -> str:
    lines = [
        meta,
        "",
        "| scenario | metric | Accord | taky 0.10 | Accord/taky |",
        "|---|---|---:|---:|---:|",
    ]
    for row in rows:
        cells = [fmt(row.values.get(s), row.notes.get(s, "")) for s in ("accord", "taky")]
        lines.append(f"| {row.scenario} | {row.metric} | {cells[0]} | {cells[1]} | {ratio(row)} |")
    lines += ["", "✓ = Accord better (lower latency/RSS/CPU, higher throughput).", ""]
    return "\n".join(lines)


def run_meta(args: argparse.Namespace, accord_cmd: list[str] | None) -> str:
    commit = subprocess.run(
        ["git", "-C", str(HERE.parent), "rev-parse", "--short", "HEAD"],
        capture_output=True, text=True, timeout=30,
    ).stdout.strip() or "uncommitted"  # fmt: skip
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    models = [ln.split(":", 1)[1].strip() for ln in cpuinfo if ln.startswith("model name")]
    cpu = models[0] if models else platform.machine()
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"### {stamp} — accord {commit}{' (quick)' if args.quick else ''}\n\n"
        f"{os.cpu_count()} x {cpu}, Python {platform.python_version()}, "
        f"loadgen and server on the same host; accord: "
        f"{' '.join(accord_cmd) if accord_cmd else 'not measured'}"
    )


# ---------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Benchmark Accord vs taky 0.10 on loopback.")
    p.add_argument("--quick", action="store_true", help="short windows, fewer steps (~3 min)")
    p.add_argument(
        "--scenarios",
        default=",".join(ALL_SCENARIOS),
        help=f"comma-separated subset of: {','.join(ALL_SCENARIOS)}",
    )
    p.add_argument("--servers", default="accord,taky", help="comma-separated: accord,taky")
    p.add_argument("--accord-cmd", help="how to run Accord's CLI (default: autodetect)")
    p.add_argument("--record", action="store_true", help=f"append the table to {RESULTS.name}")
    p.add_argument("--json", type=Path, help="also write every loadgen report here")
    args = p.parse_args(argv)
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    args.servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    if bad := [s for s in args.scenarios if s not in SCENARIOS]:
        p.error(f"unknown scenario(s): {bad}")
    if bad := [s for s in args.servers if s not in ("accord", "taky")]:
        p.error(f"unknown server(s): {bad}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    servers.raise_nofile_limit()
    accord_cmd = servers.accord_command(args.accord_cmd) if "accord" in args.servers else None
    if "accord" in args.servers and accord_cmd is None:
        print("accord is not installed: measuring taky only", file=sys.stderr)
    taky_certs = None
    with tempfile.TemporaryDirectory(prefix="bench-run-") as tmp:
        if "taky" in args.servers:
            servers.ensure_taky()
            if any(s in ("latency-tls", "idle-tls") for s in args.scenarios):
                taky_certs = TakyCerts(Path(tmp) / "taky-pki")
        ctx = Context(args, Profile.make(args.quick), accord_cmd, taky_certs)
        rows: list[Row] = []
        for name in args.scenarios:
            print(f"== {name}", file=sys.stderr)
            try:
                rows += SCENARIOS[name](ctx)
            except (servers.ServerError, subprocess.SubprocessError, OSError) as exc:
                print(f"  scenario {name} failed: {exc}", file=sys.stderr)
    table = markdown(rows, run_meta(args, accord_cmd))
    print(table)
    if args.json:
        args.json.write_text(json.dumps(ctx.reports, indent=2) + "\n")
    if args.record:
        if not RESULTS.exists():
            RESULTS.write_text(
                "# Benchmark results\n\nAppended by `benchmarks/run.py --record`.\n\n"
            )
        with RESULTS.open("a") as f:
            f.write(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
