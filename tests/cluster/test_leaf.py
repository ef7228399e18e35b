"""A base on a NATS leaf node: cut its uplink, the base works alone; heal it, both sides catch
up with the latest SAs and no client gets anything twice (issue 17).

The main side is a real 3-node NATS cluster in JetStream domain ``hub`` that accepts leaf
nodes; the base is a real ``nats-server`` leaf in its own domain ``base1`` whose uplink runs
through a TCP link the test can cut (every connection through it reset, new ones refused) and
heal. Node H is an Accord node on the main side (NATS n2, not the server the leaf is attached
to); nodes B1 and B2 are the base's Accord nodes, both on the leaf, with
``[cluster] hub_domain = "hub"``.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import nats
import pytest
from nats.js.errors import NotFoundError

from accord.cluster.leaf import ConfiguredNats, hub_conf, leaf_conf
from accord.cluster.natsd import NatsServerError, free_port, specs
from accord.cluster.subjects import sa_stream, sa_subject
from accord.config import ClusterConfig
from accord.cot.xml import decode_xml
from tests.conftest import Server, ServerFactory
from tests.e2e.clients import CotClient, client_tls_context, new_uid, sa
from tests.waiting import wait_until

ORG = "leaf-org"
GROUP = "Blue"
START_ATTEMPTS = 3


class CuttableLink:
    """A TCP link from the leaf to the main cluster: ``cut`` resets what runs through it and
    refuses new connections until ``heal``."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.is_cut = False
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.is_cut:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._pipe(reader, up_writer))
                tg.create_task(self._pipe(up_reader, writer))
        finally:
            self._writers -= {writer, up_writer}

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.transport.abort()

    def cut(self) -> None:
        self.is_cut = True
        for writer in list(self._writers):
            writer.transport.abort()

    def heal(self) -> None:
        self.is_cut = False

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


@dataclass
class Base:
    hub: list[ConfiguredNats]
    leaf: ConfiguredNats
    link: CuttableLink

    async def leaf_connected(self) -> bool:
        leafz = await self.leaf.monitor("leafz")
        return int(str(leafz.get("leafnodes", 0))) > 0

    async def formed(self) -> bool:
        for node in self.hub:
            jsz = await node.monitor("jsz")
            meta = jsz.get("meta_cluster") or {}
            if not isinstance(meta, dict) or not meta.get("leader"):
                return False
            routez = await node.monitor("routez")
            if int(str(routez.get("num_routes", 0))) < len(self.hub) - 1:
                return False
        return await self.leaf_connected()


async def _start(tmp_path: Path, attempt: int) -> Base:
    hub_specs = specs(["n1", "n2", "n3"], tmp_path / f"nats{attempt}")
    leaf_ports = [free_port() for _ in hub_specs]
    hub = [
        ConfiguredNats(s, hub_conf(s, domain="hub", leaf_port=p, peers=hub_specs, advertise=False))
        for s, p in zip(hub_specs, leaf_ports, strict=True)
    ]
    link = CuttableLink(leaf_ports[0])
    await link.start()
    (leaf_spec,) = specs(["leaf1"], tmp_path / f"nats{attempt}")
    conf = leaf_conf(leaf_spec, domain="base1", remotes=[f"nats-leaf://127.0.0.1:{link.port}"])
    leaf = ConfiguredNats(leaf_spec, conf)
    base = Base(hub, leaf, link)
    results = await asyncio.gather(*(n.start() for n in [*hub, leaf]), return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:
        await _stop(base)
        raise errors[0]
    return base


async def _stop(base: Base) -> None:
    await asyncio.gather(*(n.stop() for n in [*base.hub, base.leaf]))
    await base.link.close()


@pytest.fixture
async def base(tmp_path: Path) -> AsyncIterator[Base]:
    for attempt in range(START_ATTEMPTS):
        try:
            started = await _start(tmp_path, attempt)
            break
        except NatsServerError:  # a free port taken meanwhile by another test
            if attempt == START_ATTEMPTS - 1:
                raise
    try:
        await wait_until(started.formed, timeout_s=30, what="main cluster formed, leaf attached")
        yield started
    finally:
        await _stop(started)


def seq_of(lon: float) -> int:
    return round(lon * 100)


@dataclass
class Member:
    """A streaming client that records every SA it gets as (uid, sequence)."""

    name: str
    uid: str
    client: CotClient
    seq: int = 0
    got: Counter[tuple[str, int]] = field(default_factory=Counter)

    async def read_loop(self) -> None:
        while True:
            event = await self.client.recv(timeout=3600)
            if event.type == "a-f-G-U-C":
                self.got[(event.uid, seq_of(event.point.lon))] += 1

    def latest(self, uid: str) -> int:
        return max((s for u, s in self.got if u == uid), default=0)

    async def send(self) -> int:
        self.seq += 1
        await self.client.send(sa(self.uid, self.name, lon=self.seq / 100))
        return self.seq

    async def heard_by(self, *others: Member) -> None:
        """Send (a new sequence each time) until every one of ``others`` has heard it:
        interest crosses the NATS routes and the leaf connection asynchronously."""

        async def heard() -> bool:
            seq = await self.send()
            with contextlib.suppress(AssertionError):
                await wait_until(
                    lambda: all(o.latest(self.uid) >= seq for o in others), timeout_s=0.5
                )
                return True
            return False

        await wait_until(heard, timeout_s=20, what=f"{self.name} heard by the others")


async def _member(node: Server, name: str, group: str = GROUP) -> Member:
    cert, key = node.client_cert(name, group)
    tls = client_tls_context(cert, key, node.pki.ca_cert)
    return Member(name, new_uid(), await CotClient.connect(node.port("tls"), tls=tls))


async def test_a_cut_base_works_alone_then_both_sides_catch_up_once(
    base: Base, make_server: ServerFactory, tmp_path: Path
) -> None:
    quiet = {"https_port": 0, "enroll_port": 0, "udp_port": 0, "tcp_port": 0}
    main_url, leaf_url = base.hub[1].spec.url, base.leaf.spec.url
    h = await make_server(cluster=ClusterConfig((main_url,), "node-h", ORG, sa_replicas=3), **quiet)
    for i in (1, 2):
        shutil.copytree(h.config.data_dir / "pki", tmp_path / f"server{i}" / "pki")
    base_cluster = {"org": ORG, "hub_domain": "hub"}
    b1 = await make_server(cluster=ClusterConfig((leaf_url,), "node-b1", **base_cluster), **quiet)
    b2 = await make_server(cluster=ClusterConfig((leaf_url,), "node-b2", **base_cluster), **quiet)
    leaf1, leaf2 = b1.running.cluster_leaf, b2.running.cluster_leaf
    assert h.running.cluster_leaf is None  # the main side needs no catch-up of its own
    alpha, bravo, charlie = (
        await _member(h, "alpha"),
        await _member(b1, "bravo"),
        await _member(b2, "charlie"),
    )
    everyone = (alpha, bravo, charlie)
    async with asyncio.TaskGroup() as tg:
        readers = [tg.create_task(m.read_loop()) for m in everyone]
        try:
            await wait_until(lambda: leaf1.watch.up and leaf2.watch.up, what="uplink seen up")
            for member in everyone:
                await member.heard_by(*(m for m in everyone if m is not member))

            # Cut: the base's clients keep seeing each other, through the leaf.
            base.link.cut()
            await wait_until(lambda: not leaf1.watch.up and not leaf2.watch.up, what="cut seen")
            await bravo.heard_by(charlie)
            await charlie.heard_by(bravo)
            superseded = await bravo.send()  # replaced by a later one while still cut
            await alpha.send()
            last_alpha = await alpha.send()
            last_bravo = await bravo.send()
            await wait_until(lambda: charlie.latest(bravo.uid) == last_bravo, what="B2 heard")
            assert bravo.latest(alpha.uid) < last_alpha
            assert alpha.latest(bravo.uid) < last_bravo
            last_charlie = charlie.seq
            # A newcomer on the base gets the latest SA from the base's own stream, cut: a Red
            # contact on B1, a Red newcomer on B2 (which heard no Red before).
            red = await _member(b1, "red", "Red")
            await red.send()
            conn = await nats.connect(leaf_url)
            try:
                subject = sa_subject(ORG, "Red", red.uid)

                async def in_base_stream() -> bool:
                    try:
                        await conn.jetstream().get_last_msg(sa_stream(ORG), subject)
                    except NotFoundError:
                        return False
                    return True

                await wait_until(in_base_stream, what="the Red SA in the base's stream")
            finally:
                await conn.close()
            newcomer = await _member(b2, "red-newcomer", "Red")
            await newcomer.client.recv_until(lambda e: e.uid == red.uid)

            # Heal: each side gets the other's latest SAs, once.
            base.link.heal()
            await wait_until(base.leaf_connected, timeout_s=20, what="leaf reconnected")
            await wait_until(
                lambda: (
                    alpha.latest(bravo.uid) == last_bravo
                    and alpha.latest(charlie.uid) == last_charlie
                    and bravo.latest(alpha.uid) == last_alpha
                    and charlie.latest(alpha.uid) == last_alpha
                ),
                timeout_s=20,
                what="both sides caught up",
            )
            # Live again across the healed link.
            await bravo.heard_by(alpha)
            await alpha.heard_by(bravo, charlie)
            # Both catch-ups (at start, after the heal) have finished: nothing more comes late.
            await wait_until(
                lambda: leaf1.completed == leaf2.completed == 2, what="catch-ups finished"
            )
        finally:
            for reader in readers:
                reader.cancel()

    for member in everyone:
        twice = {k: n for k, n in member.got.items() if n > 1}
        assert not twice, f"{member.name} got these SAs more than once: {twice}"
    # The catch-up carries the latest SA of each uid, not every SA sent while cut.
    assert (bravo.uid, superseded) not in alpha.got
    assert leaf1.watch.cuts == leaf2.watch.cuts == 1
    assert leaf1.republished >= 1  # bravo's
    assert leaf2.republished >= 1  # charlie's
    assert leaf1.delivered >= 1  # alpha's, to each base node
    assert leaf2.delivered >= 1
    assert leaf1.failed == leaf2.failed == 0
    # The main side's stream has the base's latest SA (a newcomer there gets it).
    conn = await nats.connect(main_url)
    try:
        msg = await conn.jetstream().get_last_msg(sa_stream(ORG), sa_subject(ORG, GROUP, bravo.uid))
        assert seq_of(decode_xml(msg.data or b"").point.lon) >= last_bravo
    finally:
        await conn.close()
