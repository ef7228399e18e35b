"""The test NATS cluster is real: three servers that route to each other, with JetStream."""

from __future__ import annotations

import nats

from tests.cluster.conftest import NatsCluster
from tests.waiting import wait_until


async def test_three_nodes_form_one_cluster(nats_cluster: NatsCluster) -> None:
    for node in nats_cluster.nodes:
        routez = await node.monitor("routez")
        names = {r["remote_name"] for r in routez["routes"]}  # type: ignore[index,union-attr]
        assert names == {n.spec.name for n in nats_cluster.nodes} - {node.spec.name}
    # A message published on one node reaches a subscriber on another.
    a = await nats.connect(nats_cluster.nodes[0].spec.url)
    b = await nats.connect(nats_cluster.nodes[2].spec.url)
    try:
        got: list[bytes] = []

        async def take(msg: nats.aio.msg.Msg) -> None:
            got.append(msg.data)

        await b.subscribe("t.x", cb=take)
        await b.flush()

        async def arrived() -> bool:
            await a.publish("t.x", b"hello")
            await a.flush()
            return bool(got)

        await wait_until(arrived, what="a message crossed n1 -> n3")  # interest propagates
        assert got[0] == b"hello"
    finally:
        await a.close()
        await b.close()
