"""A whole NATS outage and its end: what changed on a node meanwhile reaches the others once
NATS is back (users, presence), nothing is lost and nothing crashes."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

from accord.config import ClusterConfig
from accord.domain.groups import Membership
from accord.identity.users import UserStore
from tests.cluster.conftest import NatsCluster
from tests.cluster.test_nodes import ORG, Nodes
from tests.conftest import ServerFactory
from tests.e2e.clients import new_uid, sa
from tests.waiting import wait_until

RECOVERY_S = 45.0  # a restarted JetStream cluster elects its leaders, clients reconnect


async def test_changes_made_during_an_outage_cross_when_nats_is_back(
    nats_cluster: NatsCluster, make_server: ServerFactory, tmp_path: Path
) -> None:
    quiet = {"https_port": 0, "enroll_port": 0, "udp_port": 0, "tcp_port": 0}
    urls = nats_cluster.urls
    a = await make_server(cluster=ClusterConfig((urls[0], urls[2]), "node-a", ORG), **quiet)
    shutil.copytree(a.config.data_dir / "pki", tmp_path / "server1" / "pki")
    b = await make_server(cluster=ClusterConfig((urls[1], urls[0]), "node-b", ORG), **quiet)
    nodes = Nodes(a, b, nats_cluster)
    for node in nats_cluster.nodes:
        await node.stop(kill=True)
    await wait_until(lambda: a.running.cluster.degraded >= 1, what="A saw the outage")
    # Meanwhile on A: a user added, a client joined.
    UserStore(a.config.data_dir).add(
        "olga", "a long password", Membership.both(["Blue"]), now_ms=int(time.time() * 1000)
    )
    alpha = await nodes.client(a, "alpha", "Blue")
    uid = new_uid()
    await alpha.send(sa(uid, "ALPHA"))
    shared_a = a.running.cluster.shared
    await wait_until(lambda: shared_a.errors >= 1, what="the push failed and was counted")
    await asyncio.gather(*(node.start() for node in nats_cluster.nodes))
    await wait_until(nats_cluster.formed, timeout_s=RECOVERY_S, what="NATS formed again")
    users_b = UserStore(b.config.data_dir)
    await wait_until(
        lambda: users_b.get("olga") is not None, timeout_s=RECOVERY_S, what="olga on B"
    )
    presence_b = b.running.cluster.presence
    await wait_until(
        lambda: presence_b.table.where(uid) == ["node-a"], timeout_s=RECOVERY_S, what="alpha"
    )
    # Neither node stopped, and neither took the other for dead for good.
    assert not a.running.stopping.is_set()
    assert not b.running.stopping.is_set()
    await wait_until(
        lambda: set(presence_b.table.alive()) == {"node-a", "node-b"}, what="both alive on B"
    )
