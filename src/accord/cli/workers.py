"""``accord serve --workers N`` (issue 17): the supervisor's composition, and a worker's entry.

The supervisor (:func:`serve_workers`) runs :func:`accord.app.prepare` once (ports checked, CA,
certificates, keys and database made), starts an embedded NATS server (or uses ``[cluster]``
urls when given), and then N workers (:mod:`accord.cluster.workers`). Each worker is
``accord serve`` with the ``[cluster]`` of that NATS and a :class:`WorkerRole`:

- TCP, TLS and UDP streaming: every worker, ``SO_REUSEPORT`` on the same ports (the kernel
  spreads connections by their addresses); events cross between workers on NATS.
- HTTPS, HTTP, enrollment, metrics, federation, drone feeds, multicast: the primary (worker 0)
  only, since what they hold (missions, partner links, the sharing ledger, feeds) is still
  per process.
- The store: one SQLite file in WAL mode with a busy timeout, written by every worker; each
  event is recorded by the worker that received it (a relayed one is not recorded again).

The supervisor writes ``running.json`` (its own pid, the ports), so ``accord status`` and the
other commands reach the primary. A worker is ``python -m accord.cli.workers``: it reads its
configuration and role (pickled by its supervisor) on stdin.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import importlib.util
import json
import logging
import os
import pickle
import signal
import socket
import sys
import time
from collections.abc import Callable

from accord.app import ServerFailed, StartupError, WorkerRole, prepare, run, start
from accord.app.running import remove_record, write_record
from accord.config import ClusterConfig, Config

log = logging.getLogger("accord.workers")

PRIMARY_ONLY = (
    "https_port",
    "http_port",
    "enroll_port",
    "metrics_port",
    "federation_port",
    "federation_files_port",
    "drone_port",
)
PR_SET_PDEATHSIG = 1


def _free_port(bind: str) -> int:
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    with socket.socket(family) as sock:
        sock.bind((bind, 0))
        return int(sock.getsockname()[1])


def worker_config(
    config: Config, role: WorkerRole, ports: dict[str, int], cluster: ClusterConfig
) -> Config:
    """The configuration of one worker: the resolved ports (the primary's own ones off on the
    others), the cluster of the supervisor's NATS, this worker's node name."""
    changes: dict[str, object] = {key: ports.get(key, 0) for key in ("tcp_port", "tls_port")}
    changes["udp_port"] = ports.get("udp_port", 0)
    for key in PRIMARY_ONLY:
        changes[key] = ports.get(key, 0) if role.primary else 0
    if not role.primary:
        changes["drone_feeds"] = ()
        changes["udp_multicast_group"] = ""
    base = cluster.node or config.server_names[0]
    changes["cluster"] = dataclasses.replace(cluster, node=f"{base}-w{role.index}")
    return dataclasses.replace(config, **changes)  # type: ignore[arg-type]


async def serve_workers(
    config: Config,
    count: int,
    *,
    any_port: bool = False,
    started: Callable[[dict[str, object]], None] | None = None,
    stopping: asyncio.Event | None = None,
) -> None:
    """Run ``count`` workers until SIGINT/SIGTERM (or ``stopping``); raise
    :class:`ServerFailed` with one line when a worker keeps dying.

    ``any_port`` (tests, benchmarks): every enabled listener on a port the kernel picks;
    ``started`` is then told the ports, the NATS URL and the workers' pids."""
    if importlib.util.find_spec("nats") is None:  # the workers' bus
        raise StartupError(
            "serve --workers needs the cluster extra (nats-py is missing): "
            "pip install 'accord[cluster]'"
        )
    from accord.cluster.workers import Workers, WorkerState, embedded_nats, reserve

    await prepare(config, check=not any_port)
    held: list[socket.socket] = []
    ports: dict[str, int] = {}
    for key, kind in (("tcp_port", socket.SOCK_STREAM), ("tls_port", socket.SOCK_STREAM)):
        if getattr(config, key):
            if any_port:
                sock = reserve(config.bind, kind)
                held.append(sock)  # held (not listening) until the workers stop
                ports[key] = sock.getsockname()[1]
            else:
                ports[key] = getattr(config, key)
    if config.udp_port:  # a held UDP socket would take a share of the datagrams: not held
        ports["udp_port"] = _free_port(config.bind) if any_port else config.udp_port
    for key in PRIMARY_ONLY:
        if getattr(config, key):
            ports[key] = _free_port(config.bind) if any_port else getattr(config, key)
    nats = None
    monitor_port = 0
    if config.cluster.enabled:
        cluster = config.cluster
    else:
        try:
            nats = await embedded_nats(config.data_dir / "nats")
        except Exception as exc:
            raise StartupError(f"cannot start the embedded NATS server: {exc}") from None
        cluster = ClusterConfig(urls=(nats.spec.url,), node="", org=config.cluster.org)
        monitor_port = nats.spec.monitor_port
    roles = [WorkerRole(i, count, monitor_port) for i in range(count)]
    payloads = [pickle.dumps((worker_config(config, r, ports, cluster), r)) for r in roles]
    workers = Workers([sys.executable, "-m", "accord.cli.workers"], lambda i: payloads[i], count)
    loop = asyncio.get_running_loop()
    stop = stopping or asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, workers.stopping.set)
    record = None

    async def relay_stop() -> None:
        await stop.wait()
        workers.stopping.set()

    async def all_ready() -> None:
        nonlocal record
        primary: WorkerState = workers.states[0]
        said = primary.ready.get("ports")
        bound = {str(k): int(v) for k, v in said.items()} if isinstance(said, dict) else {}
        record = write_record(config, bound, os.getpid(), time.time())
        log.info(
            "Accord: %d workers (pids %s) on NATS %s; listening: %s; data in %s",
            count,
            ", ".join(str(s.pid) for s in workers.states),
            ", ".join(cluster.urls),
            ", ".join(f"{k}={v}" for k, v in bound.items()),
            config.data_dir.resolve(),
        )
        if started is not None:
            started(
                {
                    "ports": bound,
                    "nats": list(cluster.urls),
                    "nats_monitor_port": monitor_port,
                    "pids": [s.pid for s in workers.states],
                    "workers": workers,
                }
            )

    try:
        async with asyncio.TaskGroup() as group:
            relay = group.create_task(relay_stop())
            await workers.run(all_ready)
            relay.cancel()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        if record is not None:
            remove_record(record)
        for sock in held:
            sock.close()
        if nats is not None:
            await nats.stop()
        log.info("stopped: %d workers (%d restarts)", count, workers.restarts)
    if workers.failure is not None:
        raise ServerFailed(workers.failure)


# -- a worker -----------------------------------------------------------------------------------
def _die_with_parent() -> None:
    """Linux: SIGTERM when the supervisor dies, even by SIGKILL (else nothing)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


async def _worker(config: Config, role: WorkerRole) -> None:
    running = await start(config, worker=role)
    said = {"pid": os.getpid(), "index": role.index, "ports": running.ports}
    sys.stdout.write("accord-worker-ready " + json.dumps(said) + "\n")
    sys.stdout.flush()
    await run(running, config)


def main() -> int:
    _die_with_parent()
    config, role = pickle.loads(sys.stdin.buffer.read())
    assert isinstance(config, Config)
    assert isinstance(role, WorkerRole)
    from accord.cli import setup_logging

    setup_logging(config.log_level, config.log_json, prefix=f"w{role.index} ")
    try:
        import uvloop
    except ImportError:
        runner = asyncio.run
    else:
        runner = uvloop.run
    try:
        runner(_worker(config, role))
    except StartupError as exc:
        print(f"accord: error: worker {role.index}: {exc}", file=sys.stderr)
        return 2
    except ServerFailed as exc:
        print(f"accord: error: worker {role.index}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
