"""Mass join (issue 13 §1, §2): N clients connect at once, each announcing one SA.

For each scenario a fresh `accord serve` is started; then N clients connect at the same moment
and each writes its SA as soon as it is connected. Measured: the time until every client holds
the SA of every uid it may hear (its group's other members), the server's peak RSS, the
longest a ping (``t-x-c-t`` from one more client, every 0.25 s) waited for its pong, and the
server's RSS after the clients have gone and it has been idle for ``--idle`` seconds, against
its RSS before they came (memory coming back).

Scenarios: ``groups:N`` (groups of 100 over mutual TLS, one certificate per group, OU = group)
and ``one:N`` (all N in one group over plain TCP). ``--before-src DIR`` runs every scenario
first with the code in DIR (e.g. ``git archive main | tar -x -C DIR``) and then with this
checkout, so that before and after are measured in one run on the same machine.

    .venv/bin/python benchmarks/storm.py --scenarios groups:2000,one:1000 --before-src /tmp/b
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import contextlib
import resource

from procstat import CLK_TCK, proc_cpu_ticks, proc_rss_kib
from servers import Server, accord_command, raise_nofile_limit, start_accord, stop

GROUP_SIZE = 100
UID_RE = re.compile(rb'<event [^>]*?uid="st-(\d+)"')
PONG = b"t-x-c-t-r"
PING_EVERY_S = 0.25


def sa(index: int, group: int) -> bytes:
    now = time.time()
    t = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + ".000Z"
    stale = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now + 600)) + ".000Z"
    return (
        f'<event version="2.0" uid="st-{index}" type="a-f-G-U-C" how="m-g" time="{t}" '
        f'start="{t}" stale="{stale}"><point lat="{index % 90}.5" lon="{group % 180}.5" '
        f'hae="10.0" ce="9999999.0" le="9999999.0"/><detail>'
        f'<contact callsign="ST{index}" endpoint="*:-1:stcp"/>'
        f'<__group name="Cyan" role="Team Member"/></detail></event>'
    ).encode()


def ping() -> bytes:
    t = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + ".000Z"
    return (
        f'<event version="2.0" uid="storm-ping" type="t-x-c-t" how="h-g-i-g-o" time="{t}" '
        f'start="{t}" stale="{t}"><point lat="0" lon="0" hae="0" ce="9999999" le="9999999"/>'
        "<detail/></event>"
    ).encode()


class Client(asyncio.Protocol):
    def __init__(self, index: int, group: int, expect: int, done: asyncio.Event) -> None:
        self.index, self.group, self.expect, self.done = index, group, expect, done
        self.seen: set[bytes] = set()
        self.tail = b""
        self.complete_s: float | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        self.transport.write(sa(self.index, self.group))
        self._check()

    def data_received(self, data: bytes) -> None:
        data = self.tail + data
        cut = data.rfind(b"</event>")
        self.tail = data[cut + 8 :] if cut >= 0 else data
        if cut >= 0:
            self.seen.update(UID_RE.findall(data, 0, cut + 8))
        self._check()

    def _check(self) -> None:
        if self.complete_s is None and len(self.seen) >= self.expect:
            self.complete_s = time.monotonic()
            self.done.set()


class Pinger(threading.Thread):
    """Pings from a thread of its own with a blocking socket: it measures the server, not the
    load generator's busy event loop (it only waits for the GIL, a few ms at worst)."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.settimeout(0.05)
        self.waits: list[float] = []
        self.pending_since: float | None = None
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            self.pending_since = sent = time.monotonic()
            self.sock.sendall(ping())
            data = b""
            while PONG not in data and not self.stopping.is_set():
                try:
                    data += self.sock.recv(65536)
                except TimeoutError:
                    continue
            if PONG in data:
                self.waits.append(time.monotonic() - sent)
                self.pending_since = None
            self.stopping.wait(PING_EVERY_S)

    def longest_wait(self) -> float:
        """The longest answered wait, or how long an unanswered ping has waited."""
        since = self.pending_since
        pending = time.monotonic() - since if since is not None else 0.0
        return max([*self.waits, pending, 0.0])

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=5)
        self.sock.close()


FRESH_EVERY_S = 1.0
ADMIN_EVERY_S = 1.0
FRESH_RE = re.compile(rb'uid="storm-fresh" [^>]*?>.*?callsign="F(\d+)"', re.S)


def fresh(seq: int) -> bytes:
    now = time.time()
    t = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + ".000Z"
    stale = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now + 600)) + ".000Z"
    return (
        f'<event version="2.0" uid="storm-fresh" type="a-f-G-U-C" how="m-g" time="{t}" '
        f'start="{t}" stale="{stale}"><point lat="1.5" lon="1.5" hae="0" ce="9999999.0" '
        f'le="9999999.0"/><detail><contact callsign="F{seq}"/></detail></event>'
    ).encode()


class FreshProbe(threading.Thread):
    """A fresh event every second from one connection, read at another: how long until each
    (or a later one: the latest of a uid may supersede it) arrives while the storm drains."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.out = socket.create_connection(("127.0.0.1", port))
        self.inp = socket.create_connection(("127.0.0.1", port))
        self.inp.settimeout(0.05)
        self.sent: dict[int, float] = {}
        self.newest_seen = -1
        self.waits: list[float] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        seq, next_at, tail = 0, time.monotonic(), b""
        while not self.stopping.is_set():
            now = time.monotonic()
            if now >= next_at:
                self.sent[seq] = now
                self.out.sendall(fresh(seq))
                seq, next_at = seq + 1, now + FRESH_EVERY_S
            try:
                data = tail + self.inp.recv(1 << 20)
            except TimeoutError:
                continue
            got = time.monotonic()
            for m in FRESH_RE.finditer(data):
                n = int(m.group(1))
                for k in range(self.newest_seen + 1, n + 1):
                    if k in self.sent:
                        self.waits.append(got - self.sent[k])
                self.newest_seen = max(self.newest_seen, n)
            tail = data[-4096:]

    def longest_wait(self) -> float:
        """The longest wait for a fresh event, counting the oldest one still unseen."""
        unseen = [t for k, t in self.sent.items() if k > self.newest_seen]
        pending = time.monotonic() - min(unseen) if unseen else 0.0
        return max([*self.waits, pending, 0.0])

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=5)
        self.out.close()
        self.inp.close()


class AdminProbe(threading.Thread):
    """``GET /api/admin/status`` with the admin certificate every second: the admin API (what
    ``accord status`` calls) must answer throughout."""

    def __init__(self, port: int, pki: Path) -> None:
        super().__init__(daemon=True)
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.ctx.check_hostname = False
        self.ctx.load_verify_locations(cafile=str(pki / "ca.pem"))
        self.ctx.load_cert_chain(str(pki / "admin.pem"), str(pki / "admin.key"))
        self.port = port
        self.waits: list[float] = []
        self.failures = 0
        self.pending_since: float | None = None
        self.stopping = threading.Event()

    def run(self) -> None:
        import http.client

        while not self.stopping.is_set():
            self.pending_since = sent = time.monotonic()
            try:
                conn = http.client.HTTPSConnection(
                    "127.0.0.1", self.port, context=self.ctx, timeout=30
                )
                conn.request("GET", "/api/admin/status")
                ok = conn.getresponse().status == 200
                conn.close()
            except OSError:
                ok = False
            if ok:
                self.waits.append(time.monotonic() - sent)
            else:
                self.failures += 1
            self.pending_since = None
            self.stopping.wait(ADMIN_EVERY_S)

    def longest_wait(self) -> float:
        since = self.pending_since
        pending = time.monotonic() - since if since is not None else 0.0
        return max([*self.waits, pending, 0.0])

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=35)


async def sample_rss(pid: int, peak: list[int], stop_at: asyncio.Event) -> None:
    while not stop_at.is_set():
        peak[0] = max(peak[0], proc_rss_kib(pid))
        await asyncio.sleep(0.2)


def group_contexts(
    server: Server, cmd: list[str], groups: int, env: dict[str, str]
) -> list[ssl.SSLContext]:
    data_dir = server.workdir / "data"
    contexts = []
    for g in range(groups):
        out = server.workdir / f"g{g}"
        subprocess.run(
            [*cmd, "cert", "client", f"storm-{g}", "--group", f"G{g}", "--data-dir",
             str(data_dir), "--out", str(out)],
            check=True, capture_output=True, timeout=60, env=env,
        )  # fmt: skip
        ctx = ssl.create_default_context(cafile=str(data_dir / "pki" / "ca.pem"))
        ctx.check_hostname = False
        ctx.load_cert_chain(str(out / f"storm-{g}.pem"), str(out / f"storm-{g}.key"))
        contexts.append(ctx)
    return contexts


async def storm(
    server: Server, n: int, contexts: list[ssl.SSLContext] | None, timeout_s: float, idle_s: float
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    await asyncio.sleep(1.0)
    baseline = proc_rss_kib(server.pid)
    assert server.tcp_port is not None
    assert server.tls_port is not None
    pinger = Pinger(server.tcp_port)
    pinger.start()
    fresh_probe = FreshProbe(server.tcp_port)
    fresh_probe.start()
    assert server.https_port is not None
    admin = AdminProbe(server.https_port, server.workdir / "data" / "pki")
    admin.start()
    peak, stop_sampling = [baseline], asyncio.Event()
    sampler = asyncio.create_task(sample_rss(server.pid, peak, stop_sampling))
    done = asyncio.Event()
    clients: list[Client] = []

    async def one(i: int) -> None:
        group = i // GROUP_SIZE if contexts else 0
        size = min(GROUP_SIZE, n - group * GROUP_SIZE) if contexts else n
        client = Client(i, group, size - 1, done)
        clients.append(client)
        ctx = contexts[group] if contexts else None
        port = server.tls_port if ctx else server.tcp_port
        for attempt in range(5):
            try:
                await loop.create_connection(lambda: client, "127.0.0.1", port, ssl=ctx)
                return
            except OSError:
                await asyncio.sleep(0.5 * (attempt + 1))

    start = time.monotonic()
    server_ticks0 = proc_cpu_ticks(server.pid)
    own0 = resource.getrusage(resource.RUSAGE_SELF)
    connecting = asyncio.gather(*(one(i) for i in range(n)))
    deadline = start + timeout_s
    while time.monotonic() < deadline:
        if sum(c.complete_s is not None for c in clients) == n:
            break
        done.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), PING_EVERY_S)
    await connecting
    server_cpu_s = (proc_cpu_ticks(server.pid) - server_ticks0) / CLK_TCK
    own1 = resource.getrusage(resource.RUSAGE_SELF)
    generator_cpu_s = (own1.ru_utime + own1.ru_stime) - (own0.ru_utime + own0.ru_stime)
    complete = [c.complete_s for c in clients if c.complete_s is not None]
    missing = sum(max(0, c.expect - len(c.seen)) for c in clients)
    # Keep pinging a moment after, so that a freeze at the end shows too.
    result = {
        "clients": n,
        "mode": f"groups of {GROUP_SIZE} (TLS)" if contexts else "one group (TCP)",
        "complete": len(complete),
        "missing_sas": missing,
        "all_sas_s": round(max(complete) - start, 2) if len(complete) == n else None,
        "max_ping_wait_s": round(pinger.longest_wait(), 3),
        "pings_answered": len(pinger.waits),
        "max_fresh_event_s": round(fresh_probe.longest_wait(), 3),
        "fresh_events_seen": len(fresh_probe.waits),
        "max_admin_wait_s": round(admin.longest_wait(), 3),
        "admin_answered": len(admin.waits),
        "admin_failed": admin.failures,
        "server_cpu_s": round(server_cpu_s, 1),
        "generator_cpu_s": round(generator_cpu_s, 1),
        "rss_baseline_mib": round(baseline / 1024, 1),
        "rss_peak_mib": round(peak[0] / 1024, 1),
    }
    pinger.stop()
    fresh_probe.stop()
    admin.stop()
    for c in clients:
        if c.transport is not None:
            c.transport.abort()
    await asyncio.sleep(idle_s)
    result["rss_after_idle_mib"] = round(proc_rss_kib(server.pid) / 1024, 1)
    result["idle_s"] = idle_s
    stop_sampling.set()
    await sampler
    return result


def run_one(
    cmd: list[str], env: dict[str, str], scenario: str, args: argparse.Namespace
) -> dict[str, Any]:
    mode, _, count = scenario.partition(":")
    n = int(count)
    os.environ.update(env)
    try:
        server = start_accord(cmd, client_certs=False, https=True)
    finally:
        for key in env:
            if key == "PYTHONPATH":
                os.environ.pop(key, None)
    try:
        contexts = None
        if mode == "groups":
            contexts = group_contexts(
                server, cmd, (n + GROUP_SIZE - 1) // GROUP_SIZE, {**os.environ, **env}
            )
        try:
            import uvloop

            runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
        except ImportError:
            runner = asyncio.Runner()
        with runner:
            return runner.run(storm(server, n, contexts, args.timeout, args.idle))
    finally:
        stop(server)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", default="groups:2000,one:1000")
    parser.add_argument("--before-src", help="a source tree (its src/) to measure first")
    parser.add_argument("--timeout", type=float, default=120.0, help="per storm, seconds")
    parser.add_argument("--idle", type=float, default=20.0, help="idle after, seconds")
    parser.add_argument("--json", help="write the results here too")
    args = parser.parse_args(argv)
    raise_nofile_limit()
    cmd = accord_command()
    if cmd is None:
        print("accord is not installed", file=sys.stderr)
        return 2
    python = [str(Path(sys.prefix) / "bin" / "python"), "-m", "accord"]
    runs: list[tuple[str, list[str], dict[str, str]]] = []
    if args.before_src:
        runs.append(("before", python, {"PYTHONPATH": str(Path(args.before_src) / "src")}))
    runs.append(("after", cmd, {}))
    results = []
    for scenario in args.scenarios.split(","):
        for label, command, env in runs:
            result = {"code": label, "scenario": scenario, **run_one(command, env, scenario, args)}
            print(json.dumps(result), flush=True)
            results.append(result)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
