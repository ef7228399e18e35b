"""One organisation's separation alerts in a cluster: raised once, by one node (issue 17).

Two Accord nodes on a real 3-node NATS cluster; simulated MAVLink drones fly through a drone
feed of one node. Exactly one node (the ``alerts`` lease holder) computes the alerts; the
others deliver them from the bus, so a client on either node gets each alert event once, under
one uid, and its cancel once. An acknowledgement made through one node's web API is shown by
the other's. When the computing node is killed (``kill -9`` of a real ``accord serve``), the
other takes the lease and goes on alerting an ongoing conflict under the same uid.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import nats
import pytest

from accord.bridges.simulator import Fleet, SimVehicle, encounter
from accord.cluster.alerts import ALERTS_LEASE, AlertsFeed, xml_type
from accord.cluster.lease import LEASE_TTL_S, lease_bucket
from accord.cluster.natsd import free_port
from accord.config import ClusterConfig
from accord.cot.model import CotEvent
from tests.cluster.conftest import NatsCluster
from tests.conftest import Server, ServerFactory
from tests.e2e.clients import CotClient, client_tls_context
from tests.e2e.test_coordination import ORIGIN, feed, fly, is_alert, separation
from tests.waiting import wait_until

pytestmark = pytest.mark.timeout(180)

ORG = "alerts-org"
CANCEL = "b-a-o-can"
QUIET = {"enroll_port": 0, "udp_port": 0, "tls_port": 0}


def _cluster(url: str, node: str) -> ClusterConfig:
    return ClusterConfig(urls=(url,), node=node, org=ORG)


def computing(*servers: Server) -> list[Server]:
    return [s for s in servers if s.running.coordination and s.running.coordination.computing]


class Recorder:
    """Every separation alert event one client gets (``sep.*``: not the drones' conformance
    to their missions), in order, from a background reader."""

    def __init__(self, client: CotClient) -> None:
        self.client = client
        self.events: list[CotEvent] = []
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while True:
            event = await self.client.recv(timeout=3600)
            if event.uid.startswith("sep.") and (is_alert(event) or event.type == CANCEL):
                self.events.append(event)

    def alerts(self) -> list[CotEvent]:
        return [e for e in self.events if e.type != CANCEL]

    def cancels(self) -> list[CotEvent]:
        return [e for e in self.events if e.type == CANCEL]

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


@dataclass
class Pair:
    a: Server
    b: Server


@pytest.fixture
async def pair(nats_cluster: NatsCluster, make_server: ServerFactory, tmp_path: Path) -> Pair:
    a = await make_server(
        cluster=_cluster(nats_cluster.urls[0], "node-a"), drone_feeds=(feed(),), **QUIET
    )
    shutil.copytree(a.config.data_dir / "pki", tmp_path / "server1" / "pki")  # one CA
    b = await make_server(cluster=_cluster(nats_cluster.urls[1], "node-b"), **QUIET)
    await wait_until(lambda: len(computing(a, b)) == 1, what="one node computes the alerts")
    return Pair(a, b)


def https(server: Server, name: str) -> httpx.AsyncClient:
    cert, key = server.client_cert(name)
    port = server.port("https")
    return httpx.AsyncClient(
        base_url=f"https://127.0.0.1:{port}",
        verify=client_tls_context(cert, key, server.pki.ca_cert),
        headers={"origin": f"https://127.0.0.1:{port}"},
        timeout=10,
    )


async def acks_of(server: Server) -> list[dict[str, object]]:
    async with https(server, "viewer") as web:
        answer = await web.get("/web/alerts/acks")
        assert answer.status_code == 200, answer.text
        acks: list[dict[str, object]] = answer.json()["acks"]
        return acks


async def test_each_client_gets_each_alert_once_and_an_ack_on_a_is_seen_on_b(pair: Pair) -> None:
    a, b = pair.a, pair.b
    on_a = Recorder(await CotClient.connect(a.port("tcp")))
    on_b = Recorder(await CotClient.connect(b.port("tcp")))
    for node in (a, b):  # both nodes hear the drones' group before they fly
        await wait_until(
            lambda node=node: "__ANON__" in node.running.cluster._interest.groups,
            what="interest in __ANON__",
        )
    fleet = Fleet(vehicles=encounter("headon", ORIGIN, meet_s=5.0, speed=30.0))
    flying = asyncio.create_task(fly(a, fleet, 16.0))
    try:
        await wait_until(lambda: on_a.alerts() and on_b.alerts(), timeout_s=15, what="an alert")
        uid = on_a.alerts()[0].uid
        assert uid.startswith(f"sep.{ORG}.")  # the organisation's, not a node's
        # Acknowledged through node A's web API; node B's shows it.
        async with https(a, "alice") as web:
            answer = await web.post("/web/alerts/acks", json={"uid": uid})
            assert answer.status_code == 200, answer.text
            assert answer.json()["ack"]["by"] == "alice"
            refused = await web.post("/web/alerts/acks", json={"uid": ""})
            assert refused.status_code == 400
        async with https(a, "alice") as web:
            web.headers["origin"] = "https://elsewhere.example"
            assert (await web.post("/web/alerts/acks", json={"uid": uid})).status_code == 403

        async def b_shows_it() -> bool:
            return [x["uid"] for x in await acks_of(b)] == [uid]

        await wait_until(b_shows_it, what="node B shows A's acknowledgement")
        assert (await acks_of(b))[0]["by"] == "alice"
        # The conflict ends: one cancel for each client.
        await wait_until(lambda: on_a.cancels() and on_b.cancels(), timeout_s=20, what="the cancel")
        await flying
        await asyncio.sleep(1.0)  # (a second copy would be here by now)
    finally:
        flying.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await flying
        await on_a.stop()
        await on_b.stop()
    for client in (on_a, on_b):
        assert {e.uid for e in client.events} == {uid}  # one uid
        assert len(client.cancels()) == 1  # cleared once
        copies = Counter((e.type, e.time) for e in client.events)
        assert max(copies.values()) == 1, copies  # no event twice
    # Both clients got the same events: one node computed them, the other delivered them.
    assert [(e.type, e.time) for e in on_a.events] == [(e.type, e.time) for e in on_b.events]
    levels = [separation(e).get("level") for e in on_a.alerts()]  # type: ignore[union-attr]
    assert "loss" in levels
    (holder,) = computing(a, b)
    other = b if holder is a else a
    assert other.running.coordination is not None
    assert holder.running.coordination is not None
    assert sum(other.running.coordination.raised.values()) == 0
    assert other.running.coordination.cleared == 0
    assert holder.running.coordination.cleared == 1
    # The cancel took the acknowledgement with it, on both nodes.
    for node in (a, b):

        async def forgotten(node: Server = node) -> bool:
            return await acks_of(node) == []

        await wait_until(forgotten, what="the acknowledgement cleared with the alert")


# -- takeover ----------------------------------------------------------------------------------


def formation() -> Fleet:
    """Two own drones flying east side by side 30 m apart: a loss of separation that lasts."""
    north = 30.0 / 111_320
    return Fleet(
        vehicles=(
            SimVehicle(1, "line", ORIGIN, velocity=(0.0, 8.0), speed=8.0, meet_s=30.0),
            SimVehicle(
                2, "line", (ORIGIN[0] + north, ORIGIN[1]), velocity=(0.0, 8.0), speed=8.0,
                meet_s=30.0,
            ),
        )
    )  # fmt: skip


async def lease_holder(url: str) -> str:
    conn = await nats.connect(url)
    try:
        kv = await conn.jetstream().key_value(lease_bucket(ORG))
        entry = await kv.get(ALERTS_LEASE)
        return (entry.value or b"").decode().split(" ")[0]
    except Exception:
        return ""
    finally:
        await conn.close()


@pytest.fixture
async def node_a(
    nats_cluster: NatsCluster, tmp_path: Path
) -> AsyncIterator[asyncio.subprocess.Process]:
    """Node A, an ``accord serve`` of its own (so that it can be killed), holding the lease."""
    conf = tmp_path / "node-a.toml"
    conf.write_text(
        f'data_dir = "{tmp_path / "node-a"}"\nbind = "127.0.0.1"\ntcp_port = {free_port()}\n'
        "tls_port = 0\nhttps_port = 0\nhttp_port = 0\nudp_port = 0\nenroll_port = 0\n"
        "drone_port = 0\nmetrics_port = 0\nfederation_port = 0\nfederation_files_port = 0\n"
        f'[cluster]\nurls = ["{nats_cluster.urls[0]}"]\nnode = "node-a"\norg = "{ORG}"\n'
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "accord", "serve", "--config", str(conf),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:

        async def holds() -> bool:
            assert proc.returncode is None, "node A exited"
            return await lease_holder(nats_cluster.urls[2]) == "node-a"

        await wait_until(holds, timeout_s=30, what="node A holds the alerts lease")
        yield proc
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGKILL)
            await proc.wait()


async def test_a_killed_alert_node_is_taken_over_under_the_same_uid(
    nats_cluster: NatsCluster,
    node_a: asyncio.subprocess.Process,
    make_server: ServerFactory,
    tmp_path: Path,
) -> None:
    shutil.copytree(tmp_path / "node-a" / "pki", tmp_path / "server0" / "pki")
    b = await make_server(
        cluster=_cluster(nats_cluster.urls[1], "node-b"),
        drone_feeds=(feed(),),
        https_port=0,
        **QUIET,
    )
    coordination = b.running.coordination
    assert coordination is not None
    assert not coordination.computing
    client = Recorder(await CotClient.connect(b.port("tcp")))
    await wait_until(
        lambda: "__ANON__" in b.running.cluster._interest.groups, what="interest in __ANON__"
    )
    flying = asyncio.create_task(fly(b, formation(), 60.0))
    try:
        # Node A computes the alert from B's drones (own drones: the bus says so) and B's
        # client gets it from the bus.
        await wait_until(lambda: client.alerts(), timeout_s=20, what="A's alert reached B")
        uid = client.alerts()[0].uid
        assert not coordination.computing
        before = len(client.events)
        killed_at = asyncio.get_running_loop().time()
        killed_ms = int(time.time() * 1000)
        node_a.send_signal(signal.SIGKILL)
        await node_a.wait()
        await wait_until(
            lambda: coordination.computing, timeout_s=LEASE_TTL_S + 10, what="B took over"
        )
        lease_s = asyncio.get_running_loop().time() - killed_at
        # B alerts the ongoing conflict itself, under the same uid.
        await wait_until(lambda: coordination.active, timeout_s=15, what="B raised it")
        raised_s = asyncio.get_running_loop().time() - killed_at
        raised_by_b = list(coordination.active)
        await wait_until(  # made by B, after A's death
            lambda: any(e.time > killed_ms + 1000 for e in client.events[before:]),
            timeout_s=15,
            what="B's alert reached the client",
        )
        took_s = asyncio.get_running_loop().time() - killed_at
        await asyncio.sleep(1.0)
    finally:
        flying.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await flying
        await client.stop()
    print(
        f"after kill -9: lease taken {lease_s:.1f} s, alert raised {raised_s:.1f} s,"
        f" at the client {took_s:.1f} s"
    )
    assert len(raised_by_b) == 1
    assert {e.uid for e in client.events} == {uid}  # the same uid: one marker
    assert client.cancels() == []  # never cleared in between
    copies = Counter((e.type, e.time) for e in client.events)
    assert max(copies.values()) == 1, copies
    assert b.running.alerts_lease.core.holding


async def test_bad_messages_on_the_bus_are_dropped_and_counted_by_the_alerts_node(
    pair: Pair, nats_cluster: NatsCluster
) -> None:
    (holder,) = computing(pair.a, pair.b)
    (feed,) = [s for s in holder.running.probes.sources if isinstance(s, AlertsFeed)]
    subject = f"accord.{ORG}.ev.__ANON__"
    conn = await nats.connect(nats_cluster.urls[2])
    try:
        await conn.publish(subject, b"<event/>", headers={"Accord-Node": "x"})
        good = {"Accord-Node": "x", "Accord-Id": "1", "Accord-Format": "xml", "Accord-Groups": "B"}
        await conn.publish(subject, b"<not cot", headers=good)
        await conn.flush()
        await wait_until(lambda: feed.dropped == 2, what="both dropped and counted")
    finally:
        await conn.close()
    samples = {s.name: s.value for s in feed.samples()}
    assert samples["cluster_alerts_dropped_total"] == 2
    assert samples["cluster_alerts_computing"] == 1
    assert holder.running.coordination is not None
    assert holder.running.coordination.computing  # nothing raised into it


def test_the_feed_reads_an_xml_events_type_without_parsing_it() -> None:
    assert xml_type(b'<?xml version="1.0"?><event version="2.0" type="a-f-G" uid="x">') == "a-f-G"
    assert xml_type(b"<event uid='x' type='b-a-o-can'><detail/></event>") == "b-a-o-can"
    assert xml_type(b'<event uid="x"><detail type="a-f-A"/></event>') is None  # not the root's
    assert xml_type(b'<event type="a-f-A') is None  # cut short
    assert xml_type(b'<event type="\xff">') is None
    assert xml_type(b"garbage") is None
