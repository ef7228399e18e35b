"""Bad records in the presence and state buckets (anyone with NATS access can write them):
dropped and counted, never applied, never a crash."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import nats
import pytest

from accord.cluster.sync import bucket_name
from accord.domain.groups import Membership
from accord.identity import registry
from accord.identity.users import UserStore
from tests.cluster.conftest import NatsCluster
from tests.cluster.test_nodes import ORG, Nodes, _cluster
from tests.conftest import ServerFactory
from tests.e2e.clients import new_uid, sa
from tests.waiting import wait_until


@pytest.fixture
async def nodes(nats_cluster: NatsCluster, make_server: ServerFactory, tmp_path: Path) -> Nodes:
    quiet = {"https_port": 0, "enroll_port": 0, "udp_port": 0, "tcp_port": 0}
    a = await make_server(cluster=_cluster(nats_cluster.urls[0], "node-a"), **quiet)
    shutil.copytree(a.config.data_dir / "pki", tmp_path / "server1" / "pki")
    b = await make_server(cluster=_cluster(nats_cluster.urls[1], "node-b"), **quiet)
    return Nodes(a, b, nats_cluster)


async def test_bad_records_are_dropped_and_counted(nodes: Nodes) -> None:
    UserStore(nodes.a.config.data_dir).add(
        "alice", "a long password", Membership.both(["Blue"]), now_ms=int(time.time() * 1000)
    )
    users_b = UserStore(nodes.b.config.data_dir)
    await wait_until(lambda: users_b.get("alice") is not None, what="alice reached B")
    index_before = registry.load_index(nodes.b.pki)
    conn = await nats.connect(nodes.nats.urls[2])
    try:
        js = conn.jetstream()
        state = await js.key_value(bucket_name("STATE", ORG))
        presence = await js.key_value(bucket_name("PRESENCE", ORG))
        await state.put("user.alice", b'{"password": "not an argon2 hash"}')
        await state.put("user.bob", b"\xff not json")
        await state.put("cert.ABC", b'{"serial": 7}')
        await state.put("cert.DEF", b"[]")
        await presence.put("c.node-x.some-uid", b"{not json")
        await presence.put("c.=ZZ.uid", b"{}")
        await presence.put("nonsense", b"{}")
    finally:
        await conn.close()
    shared_b = nodes.b.running.cluster.shared
    presence_b = nodes.b.running.cluster.presence
    await wait_until(lambda: shared_b.bad >= 4, what="the state records refused")
    await wait_until(lambda: presence_b.bad >= 3, what="the presence records refused")
    # Nothing was applied: alice keeps her password, no bob, the index is as it was.
    assert users_b.verify("alice", "a long password") is not None
    assert users_b.get("bob") is None
    assert registry.load_index(nodes.b.pki) == index_before
    assert presence_b.table.remote() == []
    # And the node goes on: clients on both nodes still see each other.
    alpha = await nodes.client(nodes.a, "alpha", "Blue")
    bravo = await nodes.client(nodes.b, "bravo", "Blue")
    await bravo.send(sa(new_uid(), "BRAVO"))
    uid = new_uid()
    await alpha.send(sa(uid, "ALPHA"))
    await wait_until(lambda: presence_b.table.where(uid) == ["node-a"], what="alpha on B")
    assert not nodes.b.running.stopping.is_set()
