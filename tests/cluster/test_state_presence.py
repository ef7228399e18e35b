"""Presence across nodes: a client leaving node A disappears on node B's clients at once (the
``t-x-d-d`` of one server), and the contact list of any node lists the clients of every node,
groups respected. Real 3-node NATS, two Accord nodes, mutual-TLS clients."""

from __future__ import annotations

import shutil
import ssl
from pathlib import Path

import httpx
import pytest

from accord.cluster.presence import contact_key
from accord.cluster.sync import bucket_name
from accord.config import ClusterConfig
from accord.domain.routing import deleted
from tests.cluster.conftest import NatsCluster
from tests.cluster.test_nodes import ORG, Nodes, _cluster, heard_on, until_received
from tests.conftest import Server, ServerFactory
from tests.e2e.clients import new_uid, sa
from tests.waiting import wait_until


@pytest.fixture
async def nodes(nats_cluster: NatsCluster, make_server: ServerFactory, tmp_path: Path) -> Nodes:
    quiet = {"enroll_port": 0, "udp_port": 0, "tcp_port": 0}
    a = await make_server(cluster=_cluster(nats_cluster.urls[0], "node-a"), https_port=0, **quiet)
    shutil.copytree(a.config.data_dir / "pki", tmp_path / "server1" / "pki")
    b = await make_server(cluster=_cluster(nats_cluster.urls[1], "node-b"), **quiet)
    return Nodes(a, b, nats_cluster)


def https(node: Server, name: str, group: str) -> httpx.AsyncClient:
    cert, key = node.client_cert(name, group)
    ctx = ssl.create_default_context(cafile=str(node.pki.ca_cert))
    ctx.load_cert_chain(cert, key)
    return httpx.AsyncClient(
        base_url=f"https://127.0.0.1:{node.port('https')}", verify=ctx, timeout=10
    )


async def test_a_client_leaving_a_disappears_on_b_at_once(nodes: Nodes) -> None:
    alpha = await nodes.client(nodes.a, "alpha", "Blue")
    bravo = await nodes.client(nodes.b, "bravo", "Blue")
    red = await nodes.client(nodes.b, "red", "Red")
    uid_a = new_uid()
    await bravo.send(sa(new_uid(), "BRAVO"))
    await red.send(sa(new_uid(), "RED"))
    await heard_on(nodes.b, "Blue")
    got = await until_received(
        lambda: alpha.send(sa(uid_a, "ALPHA")),
        bravo,
        lambda e: e.uid == uid_a,
    )
    assert got.uid == uid_a
    presence_b = nodes.b.running.cluster.presence
    await wait_until(lambda: presence_b.table.where(uid_a) == ["node-a"], what="A's contact")
    view = nodes.b.running.cluster.view()
    assert (view["nodes"], view["remote_contacts"]) == ("node-a,node-b", 1)

    await alpha.close()
    gone = await bravo.recv_until(lambda e: e.type == "t-x-d-d")
    assert deleted(gone) == (uid_a, "a-f-G-U-C")
    assert presence_b.departures == 1
    # Only who could hear alpha is told: Red on B never heard it.
    assert not [e for e in await red.expect_silence(0.3) if e.type == "t-x-d-d"]
    # A newcomer on B is not shown the departed contact (its SA was forgotten on B).
    newcomer = await nodes.client(nodes.b, "newcomer", "Blue")
    assert not [e for e in await newcomer.expect_silence(0.5) if e.uid == uid_a]
    assert nodes.b.running.hub.latest(uid_a) is None


async def test_contacts_all_on_b_lists_the_clients_of_a_with_groups_respected(
    nodes: Nodes,
) -> None:
    alpha = await nodes.client(nodes.a, "alpha", "Blue")
    uid_a = new_uid()
    await alpha.send(sa(uid_a, "ALPHA", extra='<takv platform="ATAK-CIV" version="5.5"/>'))
    local = await nodes.client(nodes.b, "bravo", "Blue")
    uid_b = new_uid()
    await local.send(sa(uid_b, "BRAVO"))
    async with https(nodes.b, "blue-api", "Blue") as blue, https(nodes.b, "red-api", "Red") as red:

        async def listed() -> list[dict[str, object]]:
            rows = (await blue.get("/Marti/api/contacts/all")).json()
            assert isinstance(rows, list)
            return rows

        async def both() -> bool:
            return {r["uid"] for r in await listed()} == {uid_a, uid_b}

        await wait_until(both, what="contacts/all on B lists A's client")
        row = next(r for r in await listed() if r["uid"] == uid_a)
        assert row["callsign"] == "ALPHA"
        assert row["filterGroups"] == ["Blue"]
        # The card (team, role, device) from the SA A's client identified with.
        card = (row["team"], row["role"], row["takv"])
        assert card == ("Cyan", "Team Member", "ATAK-CIV 5.5")
        # A caller in Red sees neither (groups respected across nodes as on one server).
        assert (await red.get("/Marti/api/contacts/all")).json() == []
        # Alpha leaves A: it leaves B's list too.
        await alpha.close()

        async def only_b() -> bool:
            return {r["uid"] for r in await listed()} == {uid_b}

        await wait_until(only_b, what="A's client left B's list")


async def test_a_node_that_dies_takes_its_contacts_with_it(nodes: Nodes) -> None:
    """Node A stops without a word (its presence keys stay behind, as after kill -9): once its
    heartbeat is missed, B's clients get the t-x-d-d of A's contacts and the keys are deleted."""
    alpha = await nodes.client(nodes.a, "alpha", "Blue")
    bravo = await nodes.client(nodes.b, "bravo", "Blue")
    uid_a = new_uid()
    await bravo.send(sa(new_uid(), "BRAVO"))
    await heard_on(nodes.b, "Blue")
    await until_received(lambda: alpha.send(sa(uid_a, "ALPHA")), bravo, lambda e: e.uid == uid_a)
    presence_b = nodes.b.running.cluster.presence
    await wait_until(lambda: presence_b.table.where(uid_a) == ["node-a"], what="A's contact")
    # Silence node A's bus the hard way: its NATS connection is closed under it, so it says
    # nothing more (no heartbeat, no deletes), like a process killed with -9.
    bus_a = nodes.a.running.cluster
    bus_a.presence._closed = True
    await bus_a._nc.close()
    gone = await bravo.recv_until(lambda e: e.type == "t-x-d-d", timeout=30)
    assert deleted(gone) == (uid_a, "a-f-G-U-C")
    assert presence_b.dead_nodes == 1
    kv = await nodes.b.running.cluster._js.key_value(bucket_name("PRESENCE", ORG))

    async def deleted_keys() -> bool:
        try:
            entry = await kv.get(contact_key("node-a", uid_a))
        except Exception:
            return True
        return entry.value in (None, b"")

    await wait_until(deleted_keys, what="the dead node's keys were deleted")


async def test_a_client_that_moved_to_b_is_not_departed_when_its_old_session_on_a_ends(
    nodes: Nodes,
) -> None:
    """ATAK reconnecting to another node before its old socket died: as on one server, the
    old session's end is no departure while the uid is connected elsewhere."""
    old = await nodes.client(nodes.a, "alpha", "Blue")
    charlie = await nodes.client(nodes.a, "charlie", "Blue")
    bravo = await nodes.client(nodes.b, "bravo", "Blue")
    uid = new_uid()
    await charlie.send(sa(new_uid(), "CHARLIE"))
    await bravo.send(sa(new_uid(), "BRAVO"))
    await heard_on(nodes.b, "Blue")
    await until_received(lambda: old.send(sa(uid, "ALPHA")), bravo, lambda e: e.uid == uid)
    new = await nodes.client(nodes.b, "alpha", "Blue")
    await new.send(sa(uid, "ALPHA", lat=3.0))
    presence_a = nodes.a.running.cluster.presence
    await wait_until(
        lambda: sorted(presence_a.table.where(uid)) == ["node-a", "node-b"], what="on both"
    )
    await old.close()
    presence_b = nodes.b.running.cluster.presence
    await wait_until(lambda: presence_b.table.where(uid) == ["node-b"], what="A's key gone")
    for client in (charlie, bravo):
        assert not [e for e in await client.expect_silence(0.5) if e.type == "t-x-d-d"]
    assert presence_b.departures == 0
    # When it leaves B for good, both nodes' clients are told.
    await new.close()
    for client in (charlie, bravo):
        gone = await client.recv_until(lambda e: e.type == "t-x-d-d")
        assert deleted(gone) == (uid, "a-f-G-U-C")


async def test_presence_goes_on_when_the_nats_server_of_a_is_killed(
    nats_cluster: NatsCluster, make_server: ServerFactory, tmp_path: Path
) -> None:
    quiet = {"https_port": 0, "enroll_port": 0, "udp_port": 0, "tcp_port": 0}
    urls_a = (nats_cluster.urls[0], nats_cluster.urls[2])  # A can move to n3
    # Three copies of the buckets (and the stream): one NATS server's death loses none.
    a = await make_server(cluster=ClusterConfig(urls_a, "node-a", ORG, 3), **quiet)
    shutil.copytree(a.config.data_dir / "pki", tmp_path / "server1" / "pki")
    b = await make_server(cluster=ClusterConfig((nats_cluster.urls[1],), "node-b", ORG, 3), **quiet)
    nodes = Nodes(a, b, nats_cluster)
    bravo = await nodes.client(b, "bravo", "Blue")
    await bravo.send(sa(new_uid(), "BRAVO"))
    await heard_on(b, "Blue")
    bus_a = a.running.cluster
    ours = next(n for n in nats_cluster.nodes if n.spec.url.endswith(bus_a.connected_to))
    await ours.stop(kill=True)
    await wait_until(lambda: bus_a.degraded >= 1, what="A's disconnect counted")
    # A client that joins A after the failover is on B's list, and its leave reaches bravo.
    alpha = await nodes.client(a, "alpha", "Blue")
    uid = new_uid()
    await until_received(lambda: alpha.send(sa(uid, "ALPHA")), bravo, lambda e: e.uid == uid)
    presence_b = b.running.cluster.presence
    # Through the failover: JetStream elects new leaders, and a watch whose consumer was on
    # the killed server is made again (the bound is NATS's, not ours: a generous wait).
    await wait_until(
        lambda: presence_b.table.where(uid) == ["node-a"], timeout_s=30, what="alpha on B's list"
    )
    await alpha.close()
    gone = await bravo.recv_until(lambda e: e.type == "t-x-d-d")
    assert deleted(gone) == (uid, "a-f-G-U-C")
    # Neither node took the other for dead over the failover.
    assert presence_b.dead_nodes == 0
    assert a.running.cluster.presence.dead_nodes == 0
