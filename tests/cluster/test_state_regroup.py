"""A regroup on one node re-syncs the other nodes as a regroup does on one server: the
regrouped client's SA reaches who can hear it now on the other node, it gets theirs, and
newcomers there see it under its new groups only."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from accord.domain.groups import Membership
from accord.identity.users import UserStore
from tests.cluster.conftest import NatsCluster
from tests.cluster.test_nodes import Nodes, _cluster, heard_on, until_received
from tests.conftest import ServerFactory
from tests.e2e.clients import new_uid, sa
from tests.waiting import wait_until


@pytest.fixture
async def nodes(nats_cluster: NatsCluster, make_server: ServerFactory, tmp_path: Path) -> Nodes:
    quiet = {"https_port": 0, "enroll_port": 0, "udp_port": 0, "tcp_port": 0}
    # Node A looks at its users often: the regroup below is an operator's change on A.
    a = await make_server(
        cluster=_cluster(nats_cluster.urls[0], "node-a"), revocation_check_s=0.1, **quiet
    )
    shutil.copytree(a.config.data_dir / "pki", tmp_path / "server1" / "pki")
    b = await make_server(cluster=_cluster(nats_cluster.urls[1], "node-b"), **quiet)
    return Nodes(a, b, nats_cluster)


async def test_a_regroup_on_a_resyncs_b(nodes: Nodes) -> None:
    # Pat hears both groups (a user of the cluster's, so B knows it too).
    UserStore(nodes.a.config.data_dir).add(
        "pat", "a long password", Membership.both(["Blue", "Red"]), now_ms=int(time.time() * 1000)
    )
    users_b = UserStore(nodes.b.config.data_dir)
    await wait_until(lambda: users_b.get("pat") is not None, what="pat known on B")
    alpha = await nodes.client(nodes.a, "alpha", "Blue")
    bravo = await nodes.client(nodes.b, "bravo", "Blue")
    rudy = await nodes.client(nodes.b, "rudy", "Red")
    pat = await nodes.client(nodes.b, "pat", "Blue")
    uid_a, uid_r = new_uid(), new_uid()
    await bravo.send(sa(new_uid(), "BRAVO"))
    await rudy.send(sa(uid_r, "RUDY"))
    await heard_on(nodes.b, "Blue")
    await until_received(lambda: alpha.send(sa(uid_a, "ALPHA")), bravo, lambda e: e.uid == uid_a)
    await pat.recv_until(lambda e: e.uid == uid_a)
    assert not [e for e in await rudy.expect_silence(0.3) if e.uid == uid_a]

    # The operator moves alpha from Blue to Red on node A (as `accord user add alpha --group
    # Red` there); alpha's session on A is regrouped at A's next round.
    UserStore(nodes.a.config.data_dir).add(
        "alpha", "a long password", Membership.both(["Red"]), now_ms=int(time.time() * 1000)
    )
    await alpha.recv_until(lambda e: e.type == "t-x-g-c")
    # Rudy on B (Red) can hear alpha now: it gets alpha's latest SA without alpha sending.
    got = await rudy.recv_until(lambda e: e.uid == uid_a)
    assert got.detail.contact is not None
    assert got.detail.contact.callsign == "ALPHA"
    # Pat, who heard alpha in Blue and hears it in Red, is not sent it again (as one server).
    assert not [e for e in await pat.expect_silence(0.5) if e.uid == uid_a]
    # Alpha gets the SAs of B's clients its new group hears (rudy), without them sending.
    await alpha.recv_until(lambda e: e.uid == uid_r)
    # Presence on B says Red.
    presence_b = nodes.b.running.cluster.presence

    def red_on_b() -> bool:
        return any(
            c.uid == uid_a and c.membership == Membership.both(["Red"])
            for c in presence_b.table.remote()
        )

    await wait_until(red_on_b, what="B's presence has alpha in Red")
    # Alpha's messages now go to Red on B, not to Blue.
    await alpha.send(sa(uid_a, "ALPHA", lat=8.0))
    await rudy.recv_until(lambda e: e.uid == uid_a and e.point.lat == 8.0)
    assert not [e for e in await bravo.expect_silence(0.5) if e.point.lat == 8.0]
    # Newcomers on B: one in Blue is not shown alpha any more, one in Red is.
    blue_newcomer = await nodes.client(nodes.b, "blue-newcomer", "Blue")
    red_newcomer = await nodes.client(nodes.b, "red-newcomer", "Red")
    await red_newcomer.recv_until(lambda e: e.uid == uid_a)
    assert not [e for e in await blue_newcomer.expect_silence(0.5) if e.uid == uid_a]


async def test_a_node_started_after_a_regroup_reads_the_new_groups_only(
    nodes: Nodes, make_server: ServerFactory, tmp_path: Path
) -> None:
    """Node C never saw alpha live: what it reads from the latest-SA stream must already say
    Red (the SA left the stream under Blue at the regroup)."""
    alpha = await nodes.client(nodes.a, "alpha", "Blue")
    uid_a = new_uid()
    await alpha.send(sa(uid_a, "ALPHA"))
    await heard_on(nodes.a, "Blue")
    UserStore(nodes.a.config.data_dir).add(
        "alpha", "a long password", Membership.both(["Red"]), now_ms=int(time.time() * 1000)
    )
    await alpha.recv_until(lambda e: e.type == "t-x-g-c")
    await wait_until(lambda: nodes.a.running.cluster.published >= 2, what="A re-published")
    shutil.copytree(nodes.a.config.data_dir / "pki", tmp_path / "server2" / "pki")
    quiet = {"https_port": 0, "enroll_port": 0, "udp_port": 0, "tcp_port": 0}
    c = await make_server(cluster=_cluster(nodes.nats.urls[2], "node-c"), **quiet)
    blue = await nodes.client(c, "blue-c", "Blue")
    red = await nodes.client(c, "red-c", "Red")
    got = await red.recv_until(lambda e: e.uid == uid_a)
    assert got.detail.contact is not None
    await heard_on(c, "Blue")
    assert not [e for e in await blue.expect_silence(0.5) if e.uid == uid_a]
