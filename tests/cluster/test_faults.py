"""NATS trouble: one NATS node killed, routing goes on; all of NATS gone, the node runs on
(local routing unchanged) and counts the degradation."""

from __future__ import annotations

import shutil
from pathlib import Path

from accord.config import ClusterConfig
from tests.cluster.conftest import NatsCluster
from tests.cluster.test_nodes import ORG, Nodes, heard_on, until_received
from tests.conftest import ServerFactory
from tests.e2e.clients import new_uid, sa
from tests.waiting import wait_until


async def _nodes(nats: NatsCluster, make_server: ServerFactory, tmp_path: Path) -> Nodes:
    quiet = {"https_port": 0, "enroll_port": 0, "udp_port": 0, "tcp_port": 0}
    # Node A knows n1 and n3; node B knows n2 only (it learns the others from the cluster).
    urls_a = (nats.urls[0], nats.urls[2])
    a = await make_server(cluster=ClusterConfig(urls_a, "node-a", ORG), **quiet)
    shutil.copytree(a.config.data_dir / "pki", tmp_path / "server1" / "pki")
    b = await make_server(cluster=ClusterConfig((nats.urls[1],), "node-b", ORG), **quiet)
    return Nodes(a, b, nats)


async def test_a_nats_node_killed_routing_goes_on(
    nats_cluster: NatsCluster, make_server: ServerFactory, tmp_path: Path
) -> None:
    nodes = await _nodes(nats_cluster, make_server, tmp_path)
    alpha = await nodes.client(nodes.a, "alpha", "Blue")
    bravo = await nodes.client(nodes.b, "bravo", "Blue")
    await bravo.send(sa(new_uid(), "BRAVO"))
    await heard_on(nodes.b, "Blue")
    uid = new_uid()
    await until_received(lambda: alpha.send(sa(uid, "ALPHA")), bravo, lambda e: e.uid == uid)

    bus_a = nodes.a.running.cluster
    ours = next(n for n in nats_cluster.nodes if n.spec.url.endswith(bus_a.connected_to))
    await ours.stop(kill=True)  # node A's NATS server, kill -9
    await wait_until(lambda: bus_a.degraded >= 1, what="the disconnect was counted")
    moved = await until_received(
        lambda: alpha.send(sa(uid, "ALPHA", lat=9.0)), bravo, lambda e: e.point.lat == 9.0
    )
    assert moved.uid == uid


async def test_nats_gone_while_running_is_a_counted_degradation(
    nats_cluster: NatsCluster, make_server: ServerFactory, tmp_path: Path
) -> None:
    nodes = await _nodes(nats_cluster, make_server, tmp_path)
    alpha = await nodes.client(nodes.a, "alpha", "Blue")
    local = await nodes.client(nodes.a, "local", "Blue")
    await local.send(sa(new_uid(), "LOCAL"))
    await heard_on(nodes.a, "Blue")
    for node in nats_cluster.nodes:
        await node.stop(kill=True)
    bus_a = nodes.a.running.cluster
    await wait_until(lambda: bus_a.degraded >= 1, what="the outage was counted")
    # The node runs on: local routing is unchanged, sessions are not dropped.
    uid = new_uid()
    for lat in (1.0, 2.0, 3.0):
        await alpha.send(sa(uid, "ALPHA", lat=lat))
    got = await local.recv_until(lambda e: e.uid == uid and e.point.lat == 3.0)
    assert got.uid == uid
    assert nodes.a.running.hub.session_count >= 2
    assert not nodes.a.running.stopping.is_set()
