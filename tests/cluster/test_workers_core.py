"""The pure parts of ``serve --workers`` and ``cluster status``: the restart policy, how a
worker's end is told, the per-worker configuration, and the status document."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from accord.app.running import WorkerRole
from accord.cli import main
from accord.cli.cluster import EXIT_NOT_CLUSTERED
from accord.cli.workers import worker_config
from accord.cluster.status import parse_reports, status_subject, summarise
from accord.cluster.workers import (
    RestartPolicy,
    Workers,
    embedded_nats,
    exit_line,
    leftover_nats,
)
from accord.config import ClusterConfig, Config
from tests.conftest import ServerFactory
from tests.waiting import wait_until


def test_a_worker_is_restarted_until_it_dies_too_often_in_the_window() -> None:
    policy = RestartPolicy(window_s=60.0, limit=3)
    assert policy.died(1, now=0.0)
    assert policy.died(1, now=10.0)
    assert policy.died(0, now=11.0)  # another worker's deaths count apart
    assert not policy.died(1, now=20.0)  # the third within 60 s: give up
    assert policy.recent(1) == 3
    fresh = RestartPolicy(window_s=60.0, limit=3)
    for t in (0.0, 10.0):
        assert fresh.died(2, now=t)
    assert fresh.died(2, now=65.0)  # the first has left the window
    assert fresh.recent(2) == 2


def test_exit_line_names_the_worker_pid_and_the_signal_or_code() -> None:
    assert exit_line(1, 4242, -signal.SIGKILL) == "worker 1 (pid 4242) was killed by SIGKILL"
    assert exit_line(0, 7, 2) == "worker 0 (pid 7) exited with code 2"
    assert exit_line(3, 9, -200) == "worker 3 (pid 9) was killed by signal 200"


def test_worker_config_primary_keeps_its_ports_the_others_only_streaming(tmp_path: Path) -> None:
    config = Config(data_dir=tmp_path, udp_multicast_group="239.2.3.1")
    ports = {"tcp_port": 1001, "tls_port": 1002, "udp_port": 1003, "https_port": 1004}
    ports |= {"enroll_port": 1005, "federation_port": 1006, "metrics_port": 1007}
    cluster = ClusterConfig(urls=("nats://127.0.0.1:4222",), org="acme")
    primary = worker_config(config, WorkerRole(0, 2), ports, cluster)
    other = worker_config(config, WorkerRole(1, 2), ports, cluster)
    for c in (primary, other):
        assert (c.tcp_port, c.tls_port, c.udp_port) == (1001, 1002, 1003)
        assert c.cluster.urls == ("nats://127.0.0.1:4222",)
        assert c.cluster.org == "acme"
    assert (primary.https_port, primary.enroll_port, primary.federation_port) == (1004, 1005, 1006)
    assert primary.metrics_port == 1007
    assert primary.udp_multicast_group == "239.2.3.1"
    assert (other.https_port, other.enroll_port, other.federation_port, other.metrics_port) == (
        0,
        0,
        0,
        0,
    )
    assert other.http_port == other.drone_port == 0
    assert other.udp_multicast_group == ""
    assert other.drone_feeds == ()
    assert (primary.cluster.node, other.cluster.node) == ("localhost-w0", "localhost-w1")


def test_parse_reports_one_per_node_and_counts_what_is_not_a_report() -> None:
    replies = [
        json.dumps({"node": "b", "pid": 2, "sessions": 1}).encode(),
        b"not json",
        json.dumps(["a list"]).encode(),
        json.dumps({"pid": 3}).encode(),  # no node name
        json.dumps({"node": "a", "pid": 1, "sessions": 4}).encode(),
    ]
    reports, refused = parse_reports(replies)
    assert [r["node"] for r in reports] == ["a", "b"]
    assert refused == 3


def test_summarise_joins_nodes_to_their_nats_servers_with_health() -> None:
    reports = [
        {"node": "a", "sessions": 4, "nats": {"url": "127.0.0.1:4222"}},
        {"node": "b", "sessions": 1, "nats": {"url": "127.0.0.1:4222"}},
        {"node": "c", "sessions": 0, "nats": {"url": ""}},  # not connected
    ]
    health = {
        "127.0.0.1:4222": {"healthy": True, "server_name": "n1", "version": "2.15.1"},
        "127.0.0.1:5222": {"healthy": False},
    }
    doc = summarise(reports, 1, {"name": "S", "messages": 3}, health, asked="a")
    assert doc["sessions"] == 5
    assert doc["refused_replies"] == 1
    assert doc["asked"] == "a"
    first, second = doc["nats_servers"]
    assert (first["url"], first["nodes"], first["healthy"], first["name"]) == (
        "127.0.0.1:4222",
        ["a", "b"],
        True,
        "n1",
    )
    assert (second["nodes"], second["healthy"]) == ([], False)
    unmonitored = summarise(reports[:1], 0, None, {}, asked="a")["nats_servers"]
    assert unmonitored[0]["healthy"] is None


def test_status_subject_is_the_orgs_control_subject() -> None:
    assert status_subject("acme") == "accord.acme.ctl.status"
    assert status_subject("a.b") == "accord.a~2Eb.ctl.status"


@pytest.mark.parametrize("value", ["0", "65", "two"])
def test_serve_workers_out_of_range_is_a_usage_error(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--workers", value])
    assert exited.value.code == 2
    assert "--workers" in capsys.readouterr().err


def test_cluster_status_on_a_missing_data_dir_makes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nothing-here"
    assert main(["cluster", "status", "--data-dir", str(missing)]) == 2
    assert not missing.exists()
    assert "accord: error" in capsys.readouterr().err


async def test_cluster_status_of_a_single_server_says_it_is_not_in_a_cluster(
    make_server: ServerFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    server = await make_server(udp_port=0, enroll_port=0)
    url = f"https://127.0.0.1:{server.port('https')}"
    args = ["cluster", "status", "--data-dir", str(server.config.data_dir), "--url", url]
    assert await asyncio.to_thread(main, args) == EXIT_NOT_CLUSTERED
    err = capsys.readouterr().err
    assert "not in a cluster" in err
    assert err.count("\n") == 1


def test_one_process_imports_no_cluster_code() -> None:
    """``--workers 1`` (the default) is the single process as before: neither the bus, the
    supervisor nor nats-py is even imported by the CLI and the composition root."""
    probe = (
        "import sys, accord.cli, accord.app; accord.cli._parser().parse_args(['serve']); "
        "print(sorted(m for m in sys.modules if m.startswith('accord.cluster') "
        "or m in ('nats', 'accord.cli.workers')))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def _worker_that(exits: int, ready: bool = True) -> list[str]:
    """A stand-in worker process: says it is ready (or not), reads its stdin, exits."""
    said = "print('accord-worker-ready {}', flush=True); " if ready else ""
    return [sys.executable, "-c", f"import sys; {said}sys.stdin.read(); sys.exit({exits})"]


async def test_a_worker_that_keeps_dying_stops_the_whole_with_one_line() -> None:
    workers = Workers(_worker_that(3), lambda i: b"", 2, policy=RestartPolicy(60.0, 3))
    await asyncio.wait_for(workers.run(), 30)
    assert workers.failure is not None
    assert re.fullmatch(
        r"worker [01] \(pid \d+\) exited with code 3, 3 times in 60 s: stopping all workers",
        workers.failure,
    )
    assert workers.restarts >= 2
    assert all(s.proc is not None and s.proc.returncode is not None for s in workers.states)


async def test_a_worker_that_fails_at_start_stops_the_whole() -> None:
    workers = Workers(_worker_that(2, ready=False), lambda i: b"", 2)
    await asyncio.wait_for(workers.run(), 30)
    assert workers.failure is not None
    assert workers.failure.endswith(
        "exited with code 2 before it was ready (its error is above): stopping all workers"
    )
    assert workers.restarts == 0


async def test_stopping_ends_every_worker() -> None:
    sleeper = [sys.executable, "-c", "print('accord-worker-ready {}', flush=True); "
               "import time; time.sleep(60)"]  # fmt: skip
    workers = Workers(sleeper, lambda i: b"", 2)
    started = asyncio.Event()

    async def on_start() -> None:
        started.set()

    run = asyncio.create_task(workers.run(on_start))
    await asyncio.wait_for(started.wait(), 30)
    pids = [s.pid for s in workers.states]
    workers.stopping.set()
    await asyncio.wait_for(run, 30)
    assert workers.failure is None
    assert [s.proc.returncode for s in workers.states if s.proc] == [-signal.SIGTERM] * 2
    assert len(set(pids)) == 2


async def test_a_nats_server_left_by_a_killed_supervisor_is_stopped_first(tmp_path: Path) -> None:
    """A supervisor killed with SIGKILL takes its workers along (PR_SET_PDEATHSIG), not its
    NATS server, which holds the store: the next start stops it, then starts its own."""
    left = await embedded_nats(tmp_path / "nats")
    try:
        assert leftover_nats(tmp_path / "nats") == left.pid
        fresh = await embedded_nats(tmp_path / "nats")
        try:
            await wait_until(lambda: not left.running, what="the leftover NATS server stopped")
            assert fresh.running
            assert leftover_nats(tmp_path / "nats") == fresh.pid
            assert (await fresh.monitor("healthz")).get("status") == "ok"
        finally:
            await fresh.stop()
    finally:
        await left.stop()
    assert leftover_nats(tmp_path / "nats") is None
