"""Two Accord nodes of one organisation on one PostgreSQL database and a real NATS cluster:
packages, history and missions work from either node (issue 17).

Node A talks to NATS n1, node B to n2; both use the same (real) PostgreSQL database. Node B's
data directory holds a copy of node A's PKI, so one client certificate (and a mission token
signed with the token key) works on both.
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from accord.config import ClusterConfig
from accord.store.opening import open_store
from tests.cluster.conftest import NatsCluster
from tests.cluster.test_nodes import heard_on, until_received
from tests.conftest import Server, ServerFactory
from tests.e2e.clients import CotClient, client_tls_context, marker, new_uid, sa
from tests.e2e.test_marti import https
from tests.e2e.test_packages import commo_upload, package_bytes, package_files
from tests.store.conftest import new_postgres_database
from tests.waiting import wait_until

ORG = "shared-org"
M = "/Marti/api/missions"


@dataclass
class Nodes:
    a: Server
    b: Server

    async def client(self, node: Server, name: str, group: str) -> CotClient:
        cert, key = node.client_cert(name, group)
        tls = client_tls_context(cert, key, node.pki.ca_cert)
        return await CotClient.connect(node.port("tls"), tls=tls)


@pytest.fixture
async def database() -> AsyncIterator[str]:
    async with new_postgres_database() as url:
        yield url


@pytest.fixture
async def nodes(
    nats_cluster: NatsCluster, make_server: ServerFactory, tmp_path: Path, database: str
) -> Nodes:
    quiet = {"enroll_port": 0, "udp_port": 0, "tcp_port": 0, "database_url": database}
    a = await make_server(
        cluster=ClusterConfig(urls=(nats_cluster.urls[0],), node="node-a", org=ORG), **quiet
    )
    shutil.copytree(a.config.data_dir / "pki", tmp_path / "server1" / "pki")
    b = await make_server(
        cluster=ClusterConfig(urls=(nats_cluster.urls[1],), node="node-b", org=ORG), **quiet
    )
    return Nodes(a, b)


async def test_two_nodes_migrating_one_new_database_at_once(database: str, tmp_path: Path) -> None:
    """Both run the migrations at open (under an advisory lock): neither fails, both see one
    schema, and each migration is recorded once."""
    stores = await asyncio.gather(
        open_store(database, tmp_path / "a"), open_store(database, tmp_path / "b")
    )
    try:
        import asyncpg

        conn = await asyncpg.connect(database)
        try:
            numbers = [r[0] for r in await conn.fetch("SELECT number FROM schema_migrations")]
        finally:
            await conn.close()
        assert sorted(numbers) == list(range(1, len(numbers) + 1))
        assert len(numbers) >= 5  # 0005: the shared package bytes
    finally:
        for store in stores:
            await store.close()


async def test_a_package_uploaded_to_a_downloads_from_b_and_deletes_everywhere(
    nodes: Nodes,
) -> None:
    data = package_bytes(3_000_000, seed=17)  # more than one chunk of the shared copy
    digest = hashlib.sha256(data).hexdigest()
    async with https(nodes.a, "alpha", "Blue") as a, https(nodes.b, "bravo", "Blue") as b:
        up = await commo_upload(a, data, "plan.zip")
        assert up.status_code == 200, up.text
        assert package_files(nodes.b) == []  # B has no file of it: only the database does
        # B finds it and serves its bytes (fetched from the database once, then its own).
        found = await b.get("/Marti/sync/search", params={"keywords": ""})
        assert found.status_code == 200
        assert digest in found.text
        got = await b.get("/Marti/sync/content", params={"hash": digest})
        assert got.status_code == 200
        assert got.content == data
        part = await b.get(
            "/Marti/sync/content", params={"hash": digest, "offset": 2_500_000, "length": 10}
        )
        assert part.content == data[2_500_000:2_500_010]
        assert [p.name for p in package_files(nodes.b)] == [digest]
        # Deleted on B: gone on A too (metadata and bytes).
        gone = await b.delete(f"/Marti/api/files/{digest}")
        assert gone.status_code == 200, gone.text
        assert (await a.get("/Marti/sync/content", params={"hash": digest})).status_code == 404
        assert package_files(nodes.b) == []


async def test_history_on_b_sees_a_s_events_once(nodes: Nodes) -> None:
    alpha = await nodes.client(nodes.a, "alpha", "Blue")
    bravo = await nodes.client(nodes.b, "bravo", "Blue")
    uid = new_uid()
    sent: list[float] = []

    async def from_a(lat: float) -> None:
        sent.append(lat)
        await alpha.send(sa(uid, "ALPHA", lat=lat))

    await bravo.send(sa(new_uid(), "BRAVO"))
    await heard_on(nodes.b, "Blue")
    # B hears A's SAs live (B routes them, from the bus): it must not write them again.
    await until_received(lambda: from_a(3.0), bravo, lambda e: e.uid == uid)
    for lat in (4.0, 5.0):
        await from_a(lat)
    await bravo.recv_until(lambda e: e.uid == uid and e.point.lat == 5.0)
    writer_a, writer_b = nodes.a.running.history_writer, nodes.b.running.history_writer
    assert writer_a is not None
    assert writer_b is not None
    await wait_until(lambda: nodes.a.counters.events_in >= len(sent), what="A read them")
    await writer_a.flush()
    await writer_b.flush()
    async with https(nodes.b, "viewer", "Blue") as http:
        body = (await http.get("/api/history", params={"uid": uid, "limit": "100"})).json()
    lats = sorted(e["lat"] for e in body["events"] if e["uid"] == uid)
    assert lats == sorted(sent)  # each once, though both nodes routed those B heard


async def test_a_mission_made_on_a_is_listed_and_subscribed_on_b(nodes: Nodes) -> None:
    alice = await nodes.client(nodes.a, "alice", "Blue")
    bob = await nodes.client(nodes.b, "bob", "Blue")
    alice_uid, bob_uid = new_uid(), new_uid()
    await alice.send(sa(alice_uid, "alice"))
    await bob.send(sa(bob_uid, "bob"))
    await heard_on(nodes.a, "Blue")
    await heard_on(nodes.b, "Blue")
    book_a, book_b = nodes.a.running.missions, nodes.b.running.missions
    assert book_a is not None
    assert book_b is not None
    async with https(nodes.a, "alice", "Blue") as a, https(nodes.b, "bob", "Blue") as b:
        created = await a.put(f"{M}/fire", params={"creatorUid": alice_uid, "group": "Blue"})
        assert created.status_code == 201, created.text
        # Bob on B hears of it (t-x-m-n crossed the bus) and lists it.
        notice = await bob.recv_until(lambda e: e.type == "t-x-m-n")
        assert 'name="fire"' in notice.detail.xml
        await wait_until(lambda: book_b.reloads >= 1, what="B re-read the missions")
        listed = (await b.get(M)).json()["data"]
        assert [m["name"] for m in listed] == ["fire"]
        sub = await b.put(f"{M}/fire/subscription", params={"uid": bob_uid})
        assert sub.status_code == 201, sub.text
        # A sees B's subscriber, and A's next change reaches bob on B (t-x-m-c via the bus).
        reloads = book_a.reloads
        await wait_until(lambda: book_a.reloads > reloads, what="A re-read the missions")
        subs = (await a.get(f"{M}/fire/subscriptions")).json()["data"]
        assert bob_uid in subs
        marker_uid = new_uid()
        added = await a.put(
            f"{M}/fire/contents", params={"creatorUid": alice_uid}, json={"uids": [marker_uid]}
        )
        assert added.status_code == 200, added.text
        change = await bob.recv_until(lambda e: e.type == "t-x-m-c" and marker_uid in e.detail.xml)
        assert "ADD_CONTENT" in change.detail.xml
        # And B's view of the mission has the change (read from the shared store).
        reloads = book_b.reloads
        await wait_until(lambda: book_b.reloads > reloads, what="B re-read the missions")
        changes = (await b.get(f"{M}/fire/changes")).json()["data"]
        assert [c["type"] for c in changes] == ["CREATE_MISSION", "ADD_CONTENT"]


async def test_a_cot_sent_to_a_mission_on_a_joins_it_once(
    nodes: Nodes, caplog: pytest.LogCaptureFixture
) -> None:
    """Both nodes route a ``<dest mission>`` event (A from its client, B from the bus, for
    B's subscriber); only the node that received it from its client adds it to the mission."""
    alice = await nodes.client(nodes.a, "alice", "Blue")
    bob = await nodes.client(nodes.b, "bob", "Blue")
    alice_uid, bob_uid = new_uid(), new_uid()
    await alice.send(sa(alice_uid, "alice"))
    await bob.send(sa(bob_uid, "bob"))
    await heard_on(nodes.a, "Blue")
    await heard_on(nodes.b, "Blue")
    async with https(nodes.a, "alice", "Blue") as a, https(nodes.b, "bob", "Blue") as b:
        made = await a.put(f"{M}/ops", params={"creatorUid": alice_uid, "group": "Blue"})
        assert made.status_code == 201, made.text
        book_b = nodes.b.running.missions
        assert book_b is not None
        await wait_until(lambda: book_b.reloads >= 1, what="B re-read the missions")
        sub = await b.put(f"{M}/ops/subscription", params={"uid": bob_uid})
        assert sub.status_code == 201, sub.text
        book_a = nodes.a.running.missions
        assert book_a is not None
        await wait_until(lambda: book_a.reloads >= 1, what="A re-read the missions")
        track = new_uid("track")
        await until_received(
            lambda: alice.send(marker(track, detail='<marti><dest mission="ops"/></marti>')),
            bob,
            lambda e: e.uid == track,
        )
        await bob.recv_until(lambda e: e.type == "t-x-m-c" and track in e.detail.xml)
        late = [e for e in await bob.expect_silence(0.5) if e.type == "t-x-m-c"]
        assert [e for e in late if track in e.detail.xml] == []  # no second ADD_CONTENT
        changes = (await b.get(f"{M}/ops/changes")).json()["data"]
        added = [c for c in changes if c["type"] == "ADD_CONTENT"]
        assert [c["contentUid"] for c in added] == [track]
        assert book_b.added_elsewhere >= 1  # B routed it to bob but left adding it to A
        assert book_a.added_elsewhere == 0
        assert not [r for r in caplog.records if "not added to mission" in r.getMessage()]
