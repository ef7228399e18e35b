"""The partner link of a two-node organisation runs on one node, and moves when it dies.

Organisation ORG-C has two Accord nodes on one PostgreSQL database and a real 3-node NATS
cluster: node A is a separate process (``accord serve``, so that it can be killed with
``kill -9``), node B runs in the test. Partner ORG-P is a third Accord with its own store; the
organisation dials it. A takes the partner-link lease first; B stands by with no link.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import shutil
import signal
import ssl
import sys
import time
from collections.abc import AsyncIterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import nats
import pytest

from accord.app import Running, start
from accord.cli import main
from accord.cluster.lease import FEDERATION_LEASE, LEASE_TTL_S, lease_bucket
from accord.cluster.natsd import free_port
from accord.config import ClusterConfig
from accord.domain.partners import Partner
from accord.identity.pki import PkiPaths, issue_client
from tests.cluster.conftest import NatsCluster
from tests.cluster.test_nodes import until_received
from tests.e2e.clients import CotClient, marker, new_uid, sa
from tests.federation.test_link_e2e import orgs
from tests.store.conftest import new_postgres_database
from tests.waiting import wait_until

__all__ = ["orgs"]  # the fixture

pytestmark = pytest.mark.timeout(180)

ORG = "ORG-C"


def _toml_partner(p: Partner) -> str:
    return (
        "[[partners]]\n"
        f'name = "{p.name}"\nca_sha256 = "{p.ca_sha256}"\nca_file = "{p.ca_file}"\n'
        f'address = "{p.address}"\nshare_all = true\ncallsign_prefix = "{p.callsign_prefix}"\n'
    )


def node_a_config(path: Path, data_dir: Path, db: str, nats_url: str, partner: Partner) -> int:
    """The config file of node A (a process of its own); returns its TCP port."""
    tcp = free_port()
    path.write_text(
        f'data_dir = "{data_dir}"\nbind = "127.0.0.1"\ntcp_port = {tcp}\n'
        "tls_port = 0\nhttps_port = 0\nhttp_port = 0\nudp_port = 0\nenroll_port = 0\n"
        "drone_port = 0\nmetrics_port = 0\nfederation_port = 0\nfederation_files_port = 0\n"
        f'server_names = ["localhost", "127.0.0.1"]\ndatabase_url = "{db}"\n'
        f'[cluster]\nurls = ["{nats_url}"]\nnode = "node-a"\norg = "{ORG}"\n\n'
        + _toml_partner(partner)
    )
    return tcp


async def lease_holder(nats_url: str) -> str:
    """The node named in the lease's key, "" when none holds it."""
    conn = await nats.connect(nats_url)
    try:
        kv = await conn.jetstream().key_value(lease_bucket(ORG))
        entry = await kv.get(FEDERATION_LEASE)
        return (entry.value or b"").decode().split(" ")[0]
    except Exception:
        return ""
    finally:
        await conn.close()


async def outbox_frames(db: str) -> list[bytes]:
    conn = await asyncpg.connect(db)
    try:
        return [bytes(r[0]) for r in await conn.fetch("SELECT frame FROM outbox")]
    finally:
        await conn.close()


async def verify_ledger(data_dir: Path, db: str = "") -> tuple[int, str]:
    """``accord ledger verify`` as the CLI runs it, in a thread of this process: a child
    spawned from this loop (uvloop, with gRPC loaded) once aborted between fork and exec."""
    args = ["ledger", "verify", "--data-dir", str(data_dir)]
    if db:
        args += ["--database-url", db]

    def run() -> tuple[int, str]:
        out = io.StringIO()
        with redirect_stdout(out), redirect_stderr(out):
            code = main(args)
        return code, out.getvalue()

    return await asyncio.to_thread(run)


@pytest.fixture
async def database() -> AsyncIterator[str]:
    async with new_postgres_database() as url:
        yield url


async def test_the_partner_link_runs_on_one_node_and_moves_when_it_is_killed(
    nats_cluster: NatsCluster, orgs: Any, database: str, tmp_path: Path
) -> None:
    make, launch = orgs
    partner, org = make("ORG-P"), make(ORG)
    b_dir = tmp_path / "ORG-C-b"
    shutil.copytree(org.data_dir / "pki", b_dir / "pki")  # one CA, one ledger key
    await launch(partner, org.partner())
    assert partner.running is not None
    p_tcp, p_fed = partner.running.ports["tcp"], partner.port
    as_partner = partner.partner(dial=partner)

    # Node A, a process of its own, takes the lease and dials the partner.
    conf = tmp_path / "node-a.toml"
    node_a_config(conf, org.data_dir, database, nats_cluster.urls[0], as_partner)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "accord", "serve", "--config", str(conf),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    node_b: Running | None = None
    try:

        async def a_holds() -> bool:
            assert proc.returncode is None, "node A exited"
            return await lease_holder(nats_cluster.urls[2]) == "node-a"

        await wait_until(a_holds, timeout_s=30, what="node A holds the lease")
        await wait_until(
            lambda: partner.link(ORG).state == "up", timeout_s=15, what="A's link is up"
        )
        # Node B stands by: no link of its own while A holds the lease.
        node_b = await start(
            _b_config(b_dir, as_partner, database, nats_cluster.urls[1]), any_port=True
        )
        lease_b = node_b.lease
        assert lease_b is not None
        await wait_until(lambda: lease_b.core.holder.startswith("node-a"), what="B saw A hold it")
        assert node_b.federation is None
        assert not lease_b.core.holding

        # A client on B gets the partner's SA, and the partner gets B's client's SA (both cross
        # the bus to and from node A, which runs the link).
        on_b = await CotClient.connect(node_b.ports["tcp"])
        on_p = await CotClient.connect(p_tcp)
        uid_b, uid_p = new_uid(), new_uid()
        await until_received(lambda: on_p.send(sa(uid_p, "PAPA")), on_b, lambda e: e.uid == uid_p)
        await until_received(lambda: on_b.send(sa(uid_b, "BRAVO")), on_p, lambda e: e.uid == uid_b)
        assert node_b.federation is None  # still not B's link

        # The partner goes away; B's client sends on: A keeps each marker in the shared outbox.
        await partner.running.close(grace_s=0.5)
        sent = [new_uid("MARK") for _ in range(20)]
        for uid in sent:
            await on_b.send(marker(uid))

        async def all_stored() -> bool:
            frames = b"".join(await outbox_frames(database))
            return all(uid.encode() in frames for uid in sent)

        await wait_until(all_stored, timeout_s=15, what="A stored every marker in the outbox")

        # kill -9 node A. B takes the lease once A's last renewal expires.
        killed_at = time.monotonic()
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        await wait_until(
            lambda: lease_b.core.holding, timeout_s=LEASE_TTL_S + 10, what="B took the lease"
        )
        took_s = time.monotonic() - killed_at
        assert await lease_holder(nats_cluster.urls[0]) == "node-b"
        await wait_until(lambda: node_b.federation is not None, what="B started its link")
        # The partner comes back on its ports; B dials it and resends what A had stored.
        await launch(
            partner,
            org.partner(),
            any_port=False,
            tcp_port=p_tcp,
            federation_port=p_fed,
            federation_files_port=0,
        )
        on_p = await CotClient.connect(p_tcp)
        seen: dict[str, int] = {}
        async with asyncio.timeout(30):
            while not all(seen.get(u) for u in sent):
                got = await on_p.recv()
                seen[got.uid] = seen.get(got.uid, 0) + 1
        for late in await on_p.expect_silence(0.5):
            seen[late.uid] = seen.get(late.uid, 0) + 1
        assert [u for u in sent if seen.get(u) != 1] == []  # nothing lost, nothing twice
        # And both ways again, now through B's own link.
        await until_received(
            lambda: on_p.send(sa(uid_p, "PAPA", lat=9.0)),
            on_b,
            lambda e: e.uid == uid_p and e.point.lat == 9.0,
        )
        await until_received(
            lambda: on_b.send(sa(uid_b, "BRAVO", lat=8.0)),
            on_p,
            lambda e: e.uid == uid_b and e.point.lat == 8.0,
        )
        # Both ledgers verify: the organisation's (continued by B after A's death) and the
        # partner's mirror of it.
        assert node_b.ledger is not None
        await node_b.ledger.flush()
        assert partner.running is not None
        assert partner.running.ledger is not None
        await partner.running.ledger.flush()
        code, out = await verify_ledger(b_dir, database)
        assert code == 0, out
        code, out = await verify_ledger(partner.data_dir)
        assert code == 0, out
        print(f"takeover after kill -9: {took_s:.1f} s (lease TTL {LEASE_TTL_S} s)")
    except BaseException:
        import traceback

        traceback.print_exc()  # DEBUG
        raise
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
        if node_b is not None:
            try:
                await node_b.close(grace_s=1.0)
            except BaseException:
                import traceback

                traceback.print_exc()  # DEBUG
                raise


def _b_config(
    data_dir: Path,
    partner: Partner,
    db: str,
    nats_url: str,
    node: str = "node-b",
    *,
    https: bool = False,
) -> Any:
    from accord.config import Config

    return Config(
        data_dir=data_dir,
        bind="127.0.0.1",
        tls_port=0,
        https_port=8443 if https else 0,  # any free port (started with any_port)
        udp_port=0,
        enroll_port=0,
        drone_port=0,
        federation_port=0,
        federation_files_port=0,
        server_names=("localhost", "127.0.0.1"),
        partners=(partner,),
        database_url=db,
        cluster=ClusterConfig(urls=(nats_url,), node=node, org=ORG),
    )


async def test_a_node_that_stops_gives_the_lease_back_at_once(
    nats_cluster: NatsCluster, orgs: Any, database: str, tmp_path: Path
) -> None:
    """A graceful stop deletes the key (a standby need not wait for it to expire), and only
    ever one node runs the link."""
    make, launch = orgs
    partner, org = make("ORG-P"), make(ORG)
    b_dir = tmp_path / "ORG-C-b"
    shutil.copytree(org.data_dir / "pki", b_dir / "pki")
    await launch(partner, org.partner())
    as_partner = partner.partner(dial=partner)
    node_a = await start(
        _b_config(org.data_dir, as_partner, database, nats_cluster.urls[0], "node-a"),
        any_port=True,
    )
    try:
        lease_a = node_a.lease
        assert lease_a is not None
        await wait_until(lambda: node_a.federation is not None, what="A runs the link")
        node_b = await start(
            _b_config(b_dir, as_partner, database, nats_cluster.urls[1]), any_port=True
        )
    except BaseException:
        await node_a.close(grace_s=1.0)
        raise
    try:
        lease_b = node_b.lease
        assert lease_b is not None
        await wait_until(lambda: lease_b.core.holder.startswith("node-a"), what="B saw A hold it")
        await wait_until(lambda: partner.link(ORG).state == "up", what="A's link is up")
        assert node_b.federation is None
        await node_a.close(grace_s=1.0)
        assert not lease_a.core.holding
        assert node_a.federation is None
        # Given back, not left to expire: nobody (or already B) holds it the moment A is gone.
        assert await lease_holder(nats_cluster.urls[2]) in ("", "node-b")
        await wait_until(lambda: node_b.federation is not None, what="B runs the link")
        fed_b = node_b.federation
        assert fed_b is not None
        await wait_until(lambda: fed_b.outgoing["ORG-P"].state == "up", what="B's link is up")
        holding = {s.name: s.value for s in lease_b.samples()}
        assert holding["cluster_lease_holding"] == 1.0
        assert holding["cluster_lease_gained_total"] == 1.0
        assert lease_a.core.gained == lease_a.core.lost == 1
    finally:
        await node_b.close(grace_s=1.0)


ORG_POLICY = """name = "c->p/joint"
partner = "ORG-P"

[[rule]]
name = "units"
types = ["a-*"]

[[mission]]
name = "joint"
missions = ["Joint*"]
share = ["items", "logs"]
"""
PARTNER_POLICY = """name = "p->c/joint"
partner = "ORG-C"

[[mission]]
name = "back"
missions = ["Joint*"]
share = ["logs"]
"""


async def test_a_mission_changed_on_the_standby_is_shared_by_the_holder(
    nats_cluster: NatsCluster, orgs: Any, database: str, tmp_path: Path
) -> None:
    """Mission sharing runs with the links on the lease holder; a change made through the
    standby's Mission API reaches the partner's mirror too (the holder re-reads the mission
    and offers what changed)."""
    make, launch = orgs
    partner, org = make("ORG-P"), make(ORG)
    b_dir = tmp_path / "ORG-C-b"
    shutil.copytree(org.data_dir / "pki", b_dir / "pki")
    (tmp_path / "org.toml").write_text(ORG_POLICY)
    (tmp_path / "partner.toml").write_text(PARTNER_POLICY)
    await launch(
        partner,
        org.partner(share_all=False, policy_file=str(tmp_path / "partner.toml")),
        https_port=8443,
    )
    as_partner = partner.partner(
        dial=partner, share_all=False, policy_file=str(tmp_path / "org.toml")
    )
    node_a = await start(
        _b_config(org.data_dir, as_partner, database, nats_cluster.urls[0], "node-a", https=True),
        any_port=True,
    )
    try:
        await wait_until(lambda: node_a.federation is not None, what="A runs the link")
        node_b = await start(
            _b_config(b_dir, as_partner, database, nats_cluster.urls[1], https=True),
            any_port=True,
        )
    except BaseException:
        await node_a.close(grace_s=1.0)
        raise
    try:
        await wait_until(lambda: partner.link(ORG).state == "up", what="A's link is up")
        assert node_b.federation is None
        pki = PkiPaths(b_dir / "pki")
        files = issue_client(pki, "carol", tmp_path / "certs", dt.datetime.now(dt.UTC))
        ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
        ctx.load_cert_chain(files.cert, files.key)
        base = f"https://127.0.0.1:{node_b.ports['https']}"
        unit = new_uid("unit")
        async with httpx.AsyncClient(base_url=base, verify=ctx, timeout=10) as at_b:
            made = await at_b.put("/Marti/api/missions/Joint Op", params={"creatorUid": "carol"})
            assert made.status_code == 201, made.text
            added = await at_b.put(
                "/Marti/api/missions/Joint Op/contents",
                params={"creatorUid": "carol"},
                json={"uids": [unit]},
            )
            assert added.status_code == 200, added.text
        assert partner.running is not None
        book_p = partner.running.missions
        assert book_p is not None

        async def mirrored() -> bool:
            missions = {m.name: m for m in (await book_p.all_missions()).values()}
            mirror = missions.get(f"{ORG}:Joint Op")
            return mirror is not None and unit in mirror.items

        async def until_mirrored() -> None:
            async with asyncio.timeout(15):
                while not await mirrored():
                    await asyncio.sleep(0.05)

        await until_mirrored()
    finally:
        await node_b.close(grace_s=1.0)
        await node_a.close(grace_s=1.0)


# nats-py's reconnect loop (nats/aio/client.py _attempt_reconnect) drops the transport of an
# attempt whose CONNECT fails against a server still starting without closing it; the GC then
# warns about that StreamWriter. Not Accord's socket: only that warning is let through here.
@pytest.mark.filterwarnings("ignore:unclosed <StreamWriter:ResourceWarning")
async def test_a_holder_cut_off_from_nats_stops_its_links_then_takes_them_back(
    nats_cluster: NatsCluster, orgs: Any, database: str, tmp_path: Path
) -> None:
    """With every NATS server gone the holder cannot renew: it stops its links before its
    lease could expire (it cannot tell an outage from being cut off while another node takes
    over), counts the failures, and takes the lease and the links back once NATS returns."""
    make, launch = orgs
    partner, org = make("ORG-P"), make(ORG)
    await launch(partner, org.partner())
    as_partner = partner.partner(dial=partner)
    node = await start(
        _b_config(org.data_dir, as_partner, database, nats_cluster.urls[0], "node-a"),
        any_port=True,
    )
    try:
        lease = node.lease
        assert lease is not None
        await wait_until(lambda: node.federation is not None, what="the node runs the link")
        for server in nats_cluster.nodes:
            await server.stop(kill=True)
        await wait_until(lambda: node.federation is None, timeout_s=LEASE_TTL_S + 5,
                         what="the links stopped")  # fmt: skip
        assert not lease.core.holding
        assert lease.core.failures >= 1
        assert lease.core.lost == 1
        for server in nats_cluster.nodes:
            await server.start()
        await wait_until(lambda: node.federation is not None, timeout_s=60,
                         what="the links are back")  # fmt: skip
        assert lease.core.gained == 2
        fed = node.federation
        assert fed is not None
        await wait_until(lambda: fed.outgoing["ORG-P"].state == "up", timeout_s=30,
                         what="the partner link is up again")  # fmt: skip
    finally:
        await node.close(grace_s=1.0)
