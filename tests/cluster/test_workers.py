"""``accord serve --workers N``: real worker processes on shared ports and an embedded NATS.

The supervisor runs in the test's event loop (``serve_workers`` with kernel-chosen ports); the
workers are real ``python -m accord.cli.workers`` processes, the NATS server a real
``nats-server -js``. Which worker a client landed on is read from the cluster status (the
admin API of the primary, which gathers every worker's report over NATS): its client list
names the client's address.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import signal
import sqlite3
import ssl
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from accord.cli.workers import serve_workers
from accord.cluster.natsd import free_port
from accord.cluster.workers import Workers
from accord.config import Config
from accord.identity.ca import PkiPaths
from accord.identity.pki import issue_client
from tests.e2e.clients import CotClient, client_tls_context, new_uid, sa
from tests.waiting import wait_until

START_TIMEOUT_S = 60.0  # two workers and a NATS server starting on a shared 2-core machine


@dataclass
class Cluster:
    config: Config
    info: dict[str, Any] = field(default_factory=dict)
    clients: list[CotClient] = field(default_factory=list)

    @property
    def ports(self) -> dict[str, int]:
        return dict(self.info["ports"])

    @property
    def workers(self) -> Workers:
        workers = self.info["workers"]
        assert isinstance(workers, Workers)
        return workers

    @property
    def pki(self) -> PkiPaths:
        return PkiPaths(self.config.data_dir / "pki")

    async def status(self) -> dict[str, Any]:
        """GET /api/admin/cluster with the admin certificate the server keeps."""
        ctx = ssl.create_default_context(cafile=str(self.pki.ca_cert))
        ctx.check_hostname = False
        ctx.load_cert_chain(self.pki.admin_cert, self.pki.admin_key)
        url = f"https://127.0.0.1:{self.ports['https']}/api/admin/cluster"
        async with httpx.AsyncClient(verify=ctx, timeout=10) as http:
            answer = await http.get(url)
        assert answer.status_code == 200, answer.text
        doc: dict[str, Any] = answer.json()
        return doc

    async def tcp(self) -> CotClient:
        client = await CotClient.connect(self.ports["tcp"])
        self.clients.append(client)
        return client

    async def tls(self, name: str, group: str) -> CotClient:
        files = issue_client(
            self.pki, name, self.config.data_dir.parent / "certs", dt.datetime.now(dt.UTC), ou=group
        )
        tls = client_tls_context(files.cert, files.key, self.pki.ca_cert)
        client = await CotClient.connect(self.ports["tls"], tls=tls)
        self.clients.append(client)
        return client

    async def pid_of(self, client: CotClient) -> int:
        """The pid of the worker serving ``client`` (by its address in the cluster status)."""
        host, port = client.writer.get_extra_info("sockname")[:2]
        address = f"{host}:{port}"

        async def found() -> int:
            for node in (await self.status())["nodes"]:
                if any(c["address"] == address for c in node["clients"]):
                    return int(node["pid"])
            return 0

        return await wait_until(found, what=f"a worker reports the client {address}")

    async def on_worker(self, pid: int, connect: Any) -> CotClient:
        """Connect (``connect()``) until a client lands on the worker ``pid``."""
        for _ in range(40):
            client = await connect()
            if await self.pid_of(client) == pid:
                return client
            await client.close()
        raise AssertionError(f"40 connections and none on worker {pid}")

    async def on_other_worker(self, pid: int, connect: Any) -> tuple[CotClient, int]:
        """Connect (``connect()``) until a client lands on a worker other than ``pid``."""
        for _ in range(40):
            client = await connect()
            other = await self.pid_of(client)
            if other != pid:
                return client, other
            await client.close()  # on the same worker: not the one wanted
        raise AssertionError("40 connections all landed on one worker")


@contextlib.asynccontextmanager
async def running_workers(
    data_dir: Path, count: int = 2, **overrides: Any
) -> AsyncIterator[Cluster]:
    config = Config(
        data_dir=data_dir,
        bind="127.0.0.1",
        drone_port=0,
        udp_port=0,
        enroll_port=0,
        **overrides,
    )
    cluster = Cluster(config)
    ready = asyncio.Event()
    stopping = asyncio.Event()

    def started(info: dict[str, Any]) -> None:
        cluster.info = info
        ready.set()

    task = asyncio.create_task(
        serve_workers(config, count, any_port=True, started=started, stopping=stopping)
    )
    try:
        done, _ = await asyncio.wait(
            [task, asyncio.create_task(ready.wait())],
            timeout=START_TIMEOUT_S,
            return_when=asyncio.FIRST_COMPLETED,
        )
        if task in done:
            task.result()  # raises why it stopped
        assert ready.is_set(), "the workers did not start"
        yield cluster
    finally:
        for client in cluster.clients:
            await client.close()
        stopping.set()
        await asyncio.wait_for(task, 30)


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    async with running_workers(tmp_path / "data") as cluster:
        yield cluster


async def exchange(a: CotClient, uid_a: str, b: CotClient, uid_b: str) -> None:
    """``a`` and ``b`` see each other's SAs: sent until they arrive (NATS interest in a group
    a worker has just gained takes a moment to reach the server)."""

    async def crossed(sender: CotClient, uid: str, receiver: CotClient) -> bool:
        await sender.send(sa(uid, uid[-6:]))
        try:
            await receiver.recv_until(lambda e: e.uid == uid, timeout=0.5)
        except TimeoutError:
            return False
        return True

    await wait_until(lambda: crossed(a, uid_a, b), what="a's SA reached b")
    await wait_until(lambda: crossed(b, uid_b, a), what="b's SA reached a")


async def test_clients_on_different_workers_see_each_other(cluster: Cluster) -> None:
    pids = set(cluster.info["pids"])
    assert len(pids) == 2
    assert os.getpid() not in pids
    alpha = await cluster.tls("alpha", "Blue")
    pid_a = await cluster.pid_of(alpha)
    bravo, pid_b = await cluster.on_other_worker(pid_a, lambda: cluster.tls("bravo", "Blue"))
    assert {pid_a, pid_b} == pids
    red, _ = await cluster.on_other_worker(pid_a, lambda: cluster.tls("red", "Red"))
    uid_a, uid_b, uid_r = new_uid(), new_uid(), new_uid()
    await exchange(alpha, uid_a, bravo, uid_b)
    # Red (on alpha's other worker) hears neither Blue client, and they never hear it.
    await red.send(sa(uid_r, "RED"))
    await alpha.send(sa(uid_a, "ALPHA", lat=5.0))
    await bravo.recv_until(lambda e: e.uid == uid_a and e.point.lat == 5.0)
    assert not [e for e in await red.expect_silence(0.5) if e.uid in (uid_a, uid_b)]
    assert not [e for e in await alpha.expect_silence(0.3) if e.uid == uid_r]
    # The status: both workers, their sessions, the embedded NATS server, the SA stream.
    doc = await cluster.status()
    assert {n["pid"] for n in doc["nodes"]} == pids
    assert sorted(n["worker"] for n in doc["nodes"]) == [0, 1]
    assert doc["sessions"] == sum(n["sessions"] for n in doc["nodes"]) >= 3
    (server,) = doc["nats_servers"]
    assert server["healthy"] is True
    assert sorted(server["nodes"]) == sorted(n["node"] for n in doc["nodes"])
    assert doc["sa_stream"]["subjects"] >= 3  # the Blue and Red uids' latest SAs
    assert all(n["bus"]["dropped"] == 0 for n in doc["nodes"])


async def test_newcomer_on_another_worker_gets_the_latest_sa(cluster: Cluster) -> None:
    alpha = await cluster.tcp()
    pid_a = await cluster.pid_of(alpha)
    uid = new_uid()
    await alpha.send(sa(uid, "ALPHA", lat=1.0))
    await alpha.send(sa(uid, "ALPHA", lat=7.0))  # the latest

    async def stored() -> bool:
        return int((await cluster.status())["sa_stream"]["messages"]) >= 1

    await wait_until(stored, what="alpha's SA is in the latest-SA stream")
    newcomer, _ = await cluster.on_other_worker(pid_a, cluster.tcp)
    got = await newcomer.recv_until(lambda e: e.uid == uid)
    assert got.point.lat == 7.0


async def test_a_killed_worker_is_started_again_and_the_others_serve(cluster: Cluster) -> None:
    alpha = await cluster.tcp()
    pid_a = await cluster.pid_of(alpha)
    bravo = await cluster.on_worker(pid_a, cluster.tcp)
    victim, pid_v = await cluster.on_other_worker(pid_a, cluster.tcp)
    os.kill(pid_v, signal.SIGKILL)
    # Its client is cut off; the survivor's clients go on meanwhile.
    with pytest.raises((ConnectionError, TimeoutError)):
        await victim.recv_until(lambda e: False, timeout=5)
    await exchange(alpha, new_uid(), bravo, new_uid())

    def restarted() -> int:
        pids = [s.pid for s in cluster.workers.states]
        return next((p for p in pids if p not in (pid_a, pid_v)), 0)

    new_pid = await wait_until(restarted, timeout_s=30, what="the killed worker started again")
    assert cluster.workers.restarts == 1

    async def reports() -> bool:
        try:
            doc = await cluster.status()
        except httpx.TransportError:  # the killed one was the primary: its HTTPS comes back
            return False
        return {n["pid"] for n in doc["nodes"]} == {pid_a, new_pid}

    await wait_until(reports, timeout_s=20, what="the new worker answers the status")
    charlie, pid_c = await cluster.on_other_worker(pid_a, cluster.tcp)
    assert pid_c == new_pid
    await exchange(alpha, new_uid(), charlie, new_uid())
    await exchange(bravo, new_uid(), charlie, new_uid())


async def test_workers_share_one_store_each_event_recorded_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    uids: list[str] = []
    async with running_workers(data_dir) as cluster:
        alpha = await cluster.tcp()
        pid_a = await cluster.pid_of(alpha)
        bravo, _ = await cluster.on_other_worker(pid_a, cluster.tcp)
        uid_a, uid_b = new_uid(), new_uid()
        await exchange(alpha, uid_a, bravo, uid_b)
        for i in range(20):  # both workers write history batches at the same time
            await alpha.send(sa(uid_a, "A", lat=float(i)))
            await bravo.send(sa(uid_b, "B", lat=float(i)))
        await bravo.recv_until(lambda e: e.uid == uid_a and e.point.lat == 19.0)
        await alpha.recv_until(lambda e: e.uid == uid_b and e.point.lat == 19.0)
        uids = [uid_a, uid_b]
    with contextlib.closing(sqlite3.connect(data_dir / "accord.db")) as db:
        rows = db.execute("SELECT uid, lat FROM history ORDER BY id").fetchall()
    for uid in uids:
        lats = [lat for u, lat in rows if u == uid]
        # Every SA the client sent (the exchange's at lat 1, then 20), each recorded once: by
        # the worker that received it, never again by the one it was relayed to.
        assert lats[-20:] == [float(i) for i in range(20)]
        assert all(lats.count(float(i)) == 1 for i in range(20) if i != 1)


async def test_cluster_status_cli_reads_the_cluster(cluster: Cluster) -> None:
    alpha = await cluster.tcp()
    await alpha.send(sa(new_uid(), "ALPHA"))
    await cluster.pid_of(alpha)
    before = sorted(p.name for p in cluster.config.data_dir.rglob("*") if "nats" not in p.parts)
    proc = await asyncio.create_subprocess_exec(
        *cli(),
        "cluster",
        "status",
        "--data-dir",
        str(cluster.config.data_dir),
        "--clients",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    text = out.decode()
    assert "cluster    2 nodes" in text
    for pid in cluster.info["pids"]:
        assert f"pid {pid}" in text
    assert "ALPHA" in text
    assert ": healthy; used by localhost-w0, localhost-w1" in text
    assert "sa stream  ACCORD_SA_default:" in text
    after = sorted(p.name for p in cluster.config.data_dir.rglob("*") if "nats" not in p.parts)
    assert after == before  # read-only: nothing made in the data directory


def cli() -> list[str]:
    return [sys.executable, "-m", "accord"]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_one_signal_stops_every_worker_and_the_nats_server(
    tmp_path: Path, sig: signal.Signals
) -> None:
    """``accord serve --workers 2`` as an operator runs it: one SIGTERM (systemd) or SIGINT
    (Ctrl-C, which reaches only the supervisor: the workers have their own session)."""
    data_dir = tmp_path / "data"
    ports = [str(free_port()) for _ in range(3)]
    proc = await asyncio.create_subprocess_exec(
        *cli(),
        "serve",
        "--workers",
        "2",
        "--data-dir",
        str(data_dir),
        "--tcp-port",
        ports[0],
        "--tls-port",
        ports[1],
        "--https-port",
        ports[2],
        "--udp-port",
        "0",
        "--enroll-port",
        "0",
        "--drone-port",
        "0",
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    lines: list[str] = []
    while not any("workers (pids" in line for line in lines):
        line = (await asyncio.wait_for(proc.stderr.readline(), START_TIMEOUT_S)).decode()
        assert line, "".join(lines)
        lines.append(line)
    record = _record(data_dir)
    assert record["pid"] == proc.pid
    children = _children(proc.pid)
    assert len(children) == 3  # the NATS server and two workers
    client = await CotClient.connect(int(ports[0]))
    await client.send(sa(new_uid(), "ALPHA"))
    proc.send_signal(sig)
    _, rest = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, "".join(lines) + rest.decode()
    await client.close()
    assert not [pid for pid in children if _alive(pid)]
    assert _record(data_dir) is None
    assert "stopped: 2 workers (0 restarts)" in rest.decode()


def _children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _record(data_dir: Path) -> dict[str, Any] | None:
    path = data_dir / "running.json"
    if not path.exists():
        return None
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc
