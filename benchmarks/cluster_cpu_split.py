"""Where ``serve --workers N`` spends its CPU: each process of the server's tree (supervisor,
workers, NATS) sampled from /proc over part of a 1,000-client run, against one process.

    flock /tmp/accord-bench.lock .venv/bin/python benchmarks/cluster_cpu_split.py --rate 0.2
"""

from __future__ import annotations

import argparse
import threading
import time

import cluster_workers as cw
import procstat
import servers


def _ticks(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return 0
    fields = stat[stat.rindex(b")") + 2 :].split()
    return int(fields[11]) + int(fields[12])


def _name(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            args = f.read().split(b"\0")
    except OSError:
        return "?"
    text = b" ".join(args).decode(errors="replace")
    if "nats-server" in text:
        return "nats-server"
    if "accord.cli.workers" in text:
        return "worker"
    return "supervisor" if "--workers" in text else "accord"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--rate", type=float, default=0.2)
    p.add_argument("--clients", type=int, default=1000)
    p.add_argument("--workers", default="2,1")
    a = p.parse_args()
    servers.raise_nofile_limit()
    cmd = servers.accord_command()
    assert cmd is not None
    for workers in (int(w) for w in a.workers.split(",")):
        server = cw.start(cmd, workers)
        pids = procstat._descendants(server.pid)
        names = {pid: _name(pid) for pid in pids}
        share: dict[int, float] = {}

        def sample(pids: list[int] = pids, share: dict[int, float] = share) -> None:
            time.sleep(12)  # the clients connected, most of the warm-up gone
            before, t0 = {pid: _ticks(pid) for pid in pids}, time.monotonic()
            time.sleep(8)
            after, dt = {pid: _ticks(pid) for pid in pids}, time.monotonic() - t0
            for pid in pids:
                share[pid] = 100 * (after[pid] - before[pid]) / procstat.CLK_TCK / dt

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            r = cw.loadgen(
                server, f"split w{workers}", clients=a.clients, rate=a.rate, duration=10,
                warmup=8, no_initial_sa=True,
            )  # fmt: skip
        finally:
            sampler.join()
            servers.stop(server)
        for pid, pct in share.items():
            print(f"w{workers} {names[pid]:11} pid {pid}: {pct:5.1f} % of a core")
        print(
            f"w{workers} total {sum(share.values()):.1f} %, {r.get('delivered_per_s')} deliveries/s"
        )


if __name__ == "__main__":
    main()
