"""Two Accord nodes on a real 3-node NATS cluster act as one server.

Each node has its own data directory; node B's holds a copy of node A's PKI (the same CA and
server certificate), so one client certificate works on both. Node A talks to NATS node n1,
node B to n2: every event crosses a NATS route.
"""

from __future__ import annotations

import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import nats
import pytest

from accord.app import StartupError
from accord.cluster.natsd import free_port
from accord.cluster.subjects import sa_filter, sa_stream
from accord.config import ClusterConfig
from accord.cot.model import CotEvent
from tests.cluster.conftest import NatsCluster
from tests.conftest import Server, ServerFactory
from tests.e2e.clients import CotClient, client_tls_context, marker, new_uid, sa
from tests.waiting import wait_until

ORG = "test-org"


@dataclass
class Nodes:
    a: Server
    b: Server
    nats: NatsCluster

    async def client(self, node: Server, name: str, group: str) -> CotClient:
        cert, key = node.client_cert(name, group)
        tls = client_tls_context(cert, key, node.pki.ca_cert)
        return await CotClient.connect(node.port("tls"), tls=tls)


def _cluster(url: str, node: str) -> ClusterConfig:
    return ClusterConfig(urls=(url,), node=node, org=ORG)


@pytest.fixture
async def nodes(nats_cluster: NatsCluster, make_server: ServerFactory, tmp_path: Path) -> Nodes:
    quiet = {"https_port": 0, "enroll_port": 0, "udp_port": 0, "tcp_port": 0}
    a = await make_server(cluster=_cluster(nats_cluster.urls[0], "node-a"), **quiet)
    shutil.copytree(a.config.data_dir / "pki", tmp_path / "server1" / "pki")
    b = await make_server(cluster=_cluster(nats_cluster.urls[1], "node-b"), **quiet)
    return Nodes(a, b, nats_cluster)


async def heard_on(node: Server, group: str) -> None:
    """The node has subscribed for ``group`` (its sessions hear it)."""
    await wait_until(
        lambda: group in node.running.cluster._interest.groups, what=f"interest in {group}"
    )


async def until_received(
    send: Callable[[], Awaitable[None]], client: CotClient, want: Callable[[CotEvent], bool]
) -> CotEvent:
    """Send until ``client`` gets what it wants: subscription interest crosses NATS routes
    asynchronously, so the first sends may find no subscriber yet."""
    got: list[CotEvent] = []

    async def arrived() -> bool:
        await send()
        try:
            got.append(await client.recv_until(want, timeout=0.3))
        except TimeoutError:
            return False
        return True

    await wait_until(arrived, what="the event crossed the bus")
    return got[0]


async def test_sa_crosses_nodes_within_groups(nodes: Nodes) -> None:
    alpha = await nodes.client(nodes.a, "alpha", "Blue")
    bravo = await nodes.client(nodes.b, "bravo", "Blue")
    red = await nodes.client(nodes.b, "red", "Red")
    uid_a, uid_b, uid_r = new_uid(), new_uid(), new_uid()
    sent_on_b = 0

    async def from_b(client: CotClient, event: CotEvent) -> None:
        nonlocal sent_on_b
        sent_on_b += 1
        await client.send(event)

    await from_b(red, sa(uid_r, "RED"))
    await from_b(bravo, sa(uid_b, "BRAVO"))
    await heard_on(nodes.b, "Blue")
    await heard_on(nodes.a, "Blue")

    got = await until_received(
        lambda: alpha.send(sa(uid_a, "ALPHA")), bravo, lambda e: e.uid == uid_a
    )
    assert got.detail is not None
    assert got.type == "a-f-G-U-C"
    # A to B, and B to A.
    await until_received(lambda: from_b(bravo, sa(uid_b, "BRAVO")), alpha, lambda e: e.uid == uid_b)
    # Red on B never hears Blue from A, and Blue on A never hears Red from B.
    bus_a, bus_b = nodes.a.running.cluster, nodes.b.running.cluster
    await alpha.send(sa(uid_a, "ALPHA", lat=5.0))
    await from_b(red, sa(uid_r, "RED", lat=6.0))
    await bravo.recv_until(lambda e: e.uid == uid_a and e.point.lat == 5.0)
    assert not [e for e in await red.expect_silence(0.5) if e.uid in (uid_a, uid_b)]
    # Sent once, delivered once: a copy that reaches B twice (live, and again from the
    # latest-SA stream when B gains the group) is dropped as a duplicate, not delivered.
    assert not [e for e in await bravo.expect_silence(0.3) if e.point.lat == 5.0]
    assert not [e for e in await alpha.expect_silence(0.3) if e.uid == uid_r]
    # Node A never subscribed to Red (no session there hears it), so Red never reached it.
    assert bus_a._interest.groups == {"Blue"}
    assert bus_b._interest.groups == {"Blue", "Red"}
    assert bus_b.received >= 2
    assert bus_a.received >= 1
    # Once per event (each sender is in one group), and what B got from the bus it never
    # published again (loop-free).
    await wait_until(lambda: bus_b.published >= sent_on_b, what="B published its own events")
    assert bus_b.published == sent_on_b
    assert bus_a.dropped == bus_b.dropped == 0


async def test_marti_dest_reaches_a_callsign_on_the_other_node(nodes: Nodes) -> None:
    alpha = await nodes.client(nodes.a, "alpha", "Blue")
    bravo = await nodes.client(nodes.b, "bravo", "Blue")
    charlie = await nodes.client(nodes.b, "charlie", "Blue")
    await bravo.send(sa(new_uid(), "BRAVO"))
    await charlie.send(sa(new_uid(), "CHARLIE"))
    await heard_on(nodes.b, "Blue")
    dest = '<marti><dest callsign="BRAVO"/></marti><remarks>hi</remarks>'
    got = await until_received(
        lambda: alpha.send(marker(new_uid(), detail=dest)), bravo, lambda e: e.type == "b-m-p-s-m"
    )
    assert got.type == "b-m-p-s-m"
    assert not [e for e in await charlie.expect_silence(0.5) if e.type == "b-m-p-s-m"]


async def test_newcomer_on_b_gets_the_latest_sa_last_seen_on_a(nodes: Nodes) -> None:
    alpha = await nodes.client(nodes.a, "alpha", "Blue")
    uid = new_uid()
    await alpha.send(sa(uid, "ALPHA", lat=1.0))
    await alpha.send(sa(uid, "ALPHA", lat=7.0))  # the latest
    conn = await nats.connect(nodes.nats.urls[2])
    try:
        js = conn.jetstream()

        async def stored() -> bool:
            info = await js.stream_info(sa_stream(ORG), subjects_filter=sa_filter(ORG, "Blue"))
            if not info.state.subjects:
                return False
            msg = await js.get_last_msg(sa_stream(ORG), next(iter(info.state.subjects)))
            return b'lat="7' in (msg.data or b"")

        await wait_until(stored, what="the latest SA is in the stream")
    finally:
        await conn.close()
    assert "Blue" not in nodes.b.running.cluster._interest.groups  # nobody on B heard it live
    newcomer = await nodes.client(nodes.b, "newcomer", "Blue")
    got = await newcomer.recv_until(lambda e: e.uid == uid)
    assert got.point.lat == 7.0
    assert nodes.b.running.cluster.caught_up == 1


async def test_nats_unreachable_at_start_is_one_clear_error(make_server: ServerFactory) -> None:
    url = f"nats://127.0.0.1:{free_port()}"  # nobody listens there
    with pytest.raises(StartupError, match=r"cannot reach NATS at nats://127\.0\.0\.1") as err:
        await make_server(cluster=ClusterConfig(urls=(url,), node="n"), udp_port=0)
    assert "\n" not in str(err.value)
    assert "[cluster] urls" in str(err.value)
