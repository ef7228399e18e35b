"""kill -9 an Accord node under load (issue 17, faults).

The nodes are real ``accord serve`` processes on a real 3-node NATS cluster, so the kill is a
real SIGKILL: no shutdown code runs. Streaming clients on both nodes send SAs continuously;
node A is killed; its clients (which, as ATAK with a second server configured, fail over)
reconnect to node B within 10 s and get the latest SA of every contact. What the cluster had
acknowledged is still there: every SA delivered before the kill is in the latest-SA stream
(3 replicas, NATS is untouched by the kill), and the reconnected clients get exactly the
stream's latest of each uid of node A.

Uploads (answered 200 by node A before the kill) rely on a shared PostgreSQL store: both nodes
run on one database, so node B lists what A acknowledged. The bytes are still in A's data
directory (``packages/``), written before A answered 200; a shared store for the bytes across
nodes is the shared-store work of issue 17, not this test's.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import os
import shutil
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import nats
import pytest
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.errors import ServiceUnavailableError

from accord.cluster.subjects import sa_stream, sa_subject
from accord.cot.model import CotEvent
from accord.cot.xml import decode_xml
from accord.identity.ca import PkiPaths
from accord.identity.pki import issue_client
from tests.cluster.conftest import NatsCluster
from tests.e2e.clients import CotClient, client_tls_context, new_uid, sa
from tests.e2e.conftest import free_ports
from tests.store.conftest import new_postgres_database
from tests.waiting import wait_until

ORG = "kill-org"
GROUP = "Blue"
START_TIMEOUT_S = 30.0
FAILOVER_BOUND_S = 10.0  # issue 17: a killed node's clients are back, with the latest SAs
SLOW = os.environ.get("RUN_SLOW") == "1"
CLIENTS_PER_NODE = 100 if SLOW else 12
SA_INTERVAL_S = 1.0 if SLOW else 0.25  # each client's SA rate: the load
LOAD_S = 20.0 if SLOW else 2.0  # load before the kill


@dataclass
class Node:
    """One ``accord serve`` process."""

    name: str
    data_dir: Path
    config: Path
    ports: dict[str, int]
    log: Path
    proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        args = [sys.executable, "-m", "accord", "serve", "--config", str(self.config)]
        args += ["--data-dir", str(self.data_dir), "--udp-port", "0", "--drone-port", "0"]
        for name, port in self.ports.items():
            args += [f"--{name}-port", str(port)]
        with self.log.open("a") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, text=True)

    async def listening(self) -> None:
        async def up() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited:\n{self.log.read_text()}")
            return "Accord listening" in self.log.read_text()

        await wait_until(up, timeout_s=START_TIMEOUT_S, what=f"{self.name} listening")

    def kill(self) -> None:
        """SIGKILL: no shutdown path runs."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def node_config(path: Path, name: str, urls: list[str], database_url: str) -> None:
    lines = ['bind = "127.0.0.1"']
    if database_url:
        lines.append(f'database_url = "{database_url}"')
    lines += [
        "[cluster]",
        "urls = [" + ", ".join(f'"{u}"' for u in urls) + "]",
        f'node = "{name}"',
        f'org = "{ORG}"',
        "sa_replicas = 3",
    ]
    path.write_text("\n".join(lines) + "\n")


@dataclass
class Pair:
    a: Node
    b: Node
    pki: PkiPaths
    certs: Path
    nats: NatsCluster

    def tls(self, name: str) -> ssl.SSLContext:
        files = issue_client(self.pki, name, self.certs, dt.datetime.now(dt.UTC), ou=GROUP)
        return client_tls_context(files.cert, files.key, self.pki.ca_cert)

    def https(self, node: Node, name: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=f"https://127.0.0.1:{node.ports['https']}", verify=self.tls(name), timeout=10
        )


@contextlib.contextmanager
def two_nodes(nats_cluster: NatsCluster, tmp_path: Path, database_url: str) -> Iterator[Pair]:
    """Node A on NATS n1 and n3, node B on n2 (it learns the others from the cluster); B's
    data directory holds a copy of A's PKI (same CA, same server certificate)."""
    urls = nats_cluster.urls
    nodes = []
    for name, node_urls in (("node-a", [urls[0], urls[2]]), ("node-b", [urls[1]])):
        tcp, tls, https, enroll, metrics = free_ports(5)
        ports = {"tcp": tcp, "tls": tls, "https": https, "enroll": enroll, "metrics": metrics}
        config = tmp_path / f"{name}.toml"
        node_config(config, name, node_urls, database_url)
        nodes.append(Node(name, tmp_path / name, config, ports, tmp_path / f"{name}.log"))
    a, b = nodes
    try:
        yield Pair(a, b, PkiPaths(a.data_dir / "pki"), tmp_path / "certs", nats_cluster)
    finally:
        for node in nodes:
            node.stop()


async def start_pair(pair: Pair) -> None:
    pair.a.start()
    await pair.a.listening()
    shutil.copytree(pair.a.data_dir / "pki", pair.b.data_dir / "pki")
    pair.b.start()
    await pair.b.listening()


def seq_of(event: CotEvent) -> int:
    return round(event.point.lon * 100)


@dataclass
class Mobile:
    """A streaming client that sends its SA with a rising sequence number (in ``lon``) and
    records the highest sequence seen of every other uid; it fails over to ``spare``."""

    name: str
    uid: str
    tls: ssl.SSLContext
    client: CotClient
    seq: int = 0
    sending: bool = True
    seen: dict[str, int] = field(default_factory=dict)
    lost: asyncio.Event = field(default_factory=asyncio.Event)
    back: asyncio.Event = field(default_factory=asyncio.Event)
    retired: list[CotClient] = field(default_factory=list)  # the connection to a killed node

    async def close(self) -> None:
        for client in [*self.retired, self.client]:
            await client.close()

    async def send_loop(self) -> None:
        while True:
            if self.sending and (self.back.is_set() or not self.lost.is_set()):
                self.seq += 1
                with contextlib.suppress(OSError):
                    await self.client.send(sa(self.uid, self.name, lon=self.seq / 100))
            await asyncio.sleep(SA_INTERVAL_S)

    async def read_loop(self, spare: int) -> None:
        while True:
            try:
                event = await self.client.recv(timeout=3600)
            except (OSError, asyncio.IncompleteReadError, EOFError, ConnectionError):
                event = None
            if event is None or self.client.closed:
                if self.back.is_set() or self.lost.is_set():
                    raise AssertionError(f"{self.name} lost its connection twice")
                self.lost.set()
                self.retired.append(self.client)
                self.client = await CotClient.connect(spare, tls=self.tls)
                self.back.set()
                continue
            if event.type == "a-f-G-U-C" and event.uid != self.uid:
                self.seen[event.uid] = max(self.seen.get(event.uid, 0), seq_of(event))


async def stream_latest(urls: tuple[str, ...], uids: list[str]) -> dict[str, int]:
    """The sequence of each uid's last SA in the latest-SA stream (what the cluster kept).
    Right after a NATS server is killed the stream may be electing a new leader: requests
    that time out meanwhile are tried again."""
    conn = await nats.connect(list(urls))
    try:
        js = conn.jetstream(timeout=2.0)
        latest: dict[str, int] = {}

        async def read() -> bool:
            for uid in uids:
                if uid in latest:
                    continue
                try:
                    msg = await js.get_last_msg(sa_stream(ORG), sa_subject(ORG, GROUP, uid))
                except (NatsTimeoutError, ServiceUnavailableError):
                    return False
                latest[uid] = seq_of(decode_xml(msg.data or b""))
            return True

        await wait_until(read, timeout_s=30, what="the SA stream answers")
        return latest
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def running(mobiles: list[Mobile], spare: int) -> AsyncIterator[None]:
    try:
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(m.send_loop()) for m in mobiles]
            tasks += [tg.create_task(m.read_loop(spare)) for m in mobiles]
            try:
                yield
            finally:
                for task in tasks:
                    task.cancel()
    finally:
        for mobile in mobiles:
            await mobile.close()


async def _kill_under_load(pair: Pair, uploads: bool) -> dict[str, float]:
    await start_pair(pair)
    b_tls = pair.a.ports["tls"], pair.b.ports["tls"]
    on_a: list[Mobile] = []
    on_b: list[Mobile] = []
    for side, port in (("a", b_tls[0]), ("b", b_tls[1])):
        for i in range(CLIENTS_PER_NODE):
            name = f"{side}{i:03d}"
            tls = pair.tls(name)
            mobile = Mobile(name, new_uid(), tls, await CotClient.connect(port, tls=tls))
            (on_a if side == "a" else on_b).append(mobile)
    everyone = on_a + on_b
    a_uids = [m.uid for m in on_a]
    stored: list[str] = []
    async with running(on_a, spare=b_tls[1]), running(on_b, spare=b_tls[0]):
        # The mesh is formed: every client hears every other one, across the nodes.
        await wait_until(
            lambda: all(len(m.seen) == len(everyone) - 1 for m in everyone),
            timeout_s=30,
            what="every client hears every other",
        )
        if uploads:
            async with pair.https(pair.a, "uploader") as http:
                for i in range(3):
                    data = b"PK\x03\x04" + hashlib.sha256(str(i).encode()).digest() * 200
                    digest = hashlib.sha256(data).hexdigest()
                    answer = await http.post(
                        "/Marti/sync/missionupload",
                        params={"hash": digest, "filename": f"p{i}.zip", "creatorUid": "up"},
                        files={"assetfile": (f"p{i}.zip", data, "application/zip")},
                    )
                    assert answer.status_code == 200
                    stored.append(digest)
        await asyncio.sleep(LOAD_S)  # the load runs on: what a fixed time is for here
        # What B's clients saw live from A's before the kill: delivered, so acknowledged.
        live = {u: max(m.seen.get(u, 0) for m in on_b) for u in a_uids}
        for mobile in on_a:
            mobile.sending = False  # back on B, they listen before they speak again
        killed_at = time.monotonic()
        pair.a.kill()
        await wait_until(
            lambda: all(m.back.is_set() for m in on_a),
            timeout_s=FAILOVER_BOUND_S,
            what="A's clients reconnected to B",
        )
        reconnected_s = time.monotonic() - killed_at
        kept = await stream_latest(pair.nats.urls, a_uids)
        # Nothing delivered is lost: the stream holds at least what B's clients saw live.
        assert all(kept[u] >= live[u] for u in a_uids), (kept, live)

        def caught_up() -> bool:
            for mobile in on_a:
                for uid in a_uids:
                    if uid != mobile.uid and mobile.seen.get(uid, 0) < kept[uid]:
                        return False
                for other in on_b:
                    if other.uid not in mobile.seen:
                        return False
            return True

        await wait_until(
            caught_up,
            timeout_s=max(0.1, FAILOVER_BOUND_S - (time.monotonic() - killed_at)),
            what="A's clients got the latest SAs from B",
        )
        failover_s = time.monotonic() - killed_at
        # Exactly the stream's latest of A's uids: nothing newer invented, nothing stale kept.
        for mobile in on_a:
            assert {u: mobile.seen[u] for u in a_uids if u != mobile.uid} == {
                u: kept[u] for u in a_uids if u != mobile.uid
            }
        # Routing goes on, on B: A's clients speak again and B's hear them.
        for mobile in on_a:
            mobile.sending = True
        now = {u: kept[u] for u in a_uids}
        await wait_until(
            lambda: all(m.seen.get(u, 0) > now[u] for m in on_b for u in a_uids),
            timeout_s=20,
            what="B's clients hear A's clients again",
        )
    if uploads:
        async with pair.https(pair.b, "checker") as http:
            listed = (await http.get("/Marti/sync/search")).json()
        hashes = {str(r.get("Hash", r.get("hash", ""))).lower() for r in listed["results"]}
        assert set(stored) <= hashes, (stored, listed)
        files = {p.name for p in (pair.a.data_dir / "packages").rglob("*") if p.is_file()}
        assert all(any(d in f for f in files) for d in stored), files
    return {"reconnected_s": reconnected_s, "failover_s": failover_s}


@pytest.mark.slow
async def test_kill_9_a_node_under_load_its_clients_fail_over(
    nats_cluster: NatsCluster, tmp_path: Path
) -> None:
    with two_nodes(nats_cluster, tmp_path, "") as pair:
        times = await _kill_under_load(pair, uploads=False)
    print(f"failover after kill -9: {times}")
    assert times["failover_s"] < FAILOVER_BOUND_S


@pytest.mark.slow
async def test_kill_9_a_node_uploads_it_answered_are_kept_on_shared_postgres(
    nats_cluster: NatsCluster, tmp_path: Path
) -> None:
    async with new_postgres_database() as url:
        with two_nodes(nats_cluster, tmp_path, url) as pair:
            times = await _kill_under_load(pair, uploads=True)
    print(f"failover after kill -9 (shared PostgreSQL): {times}")
    assert times["failover_s"] < FAILOVER_BOUND_S


async def _serving(nats_cluster: NatsCluster, client_name: str) -> int:
    """Index of the NATS server that the client named ``client_name`` is connected to."""
    for i, server in enumerate(nats_cluster.nodes):
        if not server.running:
            continue
        connz = await server.monitor("connz")
        names = {str(c.get("name", "")) for c in connz.get("connections", [])}  # type: ignore[union-attr]
        if client_name in names:
            return i
    return -1


@pytest.mark.slow
async def test_kill_9_a_nats_node_under_load_routing_and_the_stream_go_on(
    nats_cluster: NatsCluster, tmp_path: Path
) -> None:
    with two_nodes(nats_cluster, tmp_path, "") as pair:
        await start_pair(pair)
        on_a = [
            Mobile(f"a{i}", new_uid(), tls, await CotClient.connect(pair.a.ports["tls"], tls=tls))
            for i in range(CLIENTS_PER_NODE)
            for tls in [pair.tls(f"a{i}")]
        ]
        on_b = [
            Mobile(f"b{i}", new_uid(), tls, await CotClient.connect(pair.b.ports["tls"], tls=tls))
            for i in range(CLIENTS_PER_NODE)
            for tls in [pair.tls(f"b{i}")]
        ]
        everyone = on_a + on_b
        async with running(on_a, spare=pair.b.ports["tls"]), running(on_b, pair.a.ports["tls"]):
            await wait_until(
                lambda: all(len(m.seen) == len(everyone) - 1 for m in everyone),
                timeout_s=30,
                what="every client hears every other",
            )
            await asyncio.sleep(LOAD_S)  # the load runs on: what a fixed time is for here
            index = await _serving(nats_cluster, "accord node-a")
            assert index >= 0, "node A is connected to none of the NATS servers"
            at_kill = {m.uid: m.seq for m in everyone}
            await nats_cluster.nodes[index].stop(kill=True)
            # Routing goes on: every client hears every other's SAs sent after the kill.
            await wait_until(
                lambda: all(
                    m.seen.get(o.uid, 0) > at_kill[o.uid]
                    for m in everyone
                    for o in everyone
                    if o is not m
                ),
                timeout_s=30,
                what="every client hears the others after the NATS kill",
            )
            # No client was dropped by an Accord node, and the stream (3 replicas) answers.
            assert not any(m.lost.is_set() for m in everyone)
            survivors = tuple(n.spec.url for n in nats_cluster.nodes if n.running)

            async def kept_after_kill() -> bool:
                # The stream may still be electing a leader when routing (core NATS) already
                # goes on; the SAs still being sent replace what it missed meanwhile.
                kept = await stream_latest(survivors, [m.uid for m in on_a])
                return all(kept[m.uid] > at_kill[m.uid] for m in on_a)

            await wait_until(kept_after_kill, timeout_s=30, what="the stream keeps new SAs")
