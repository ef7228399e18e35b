"""Users and certificate revocations shared by two Accord nodes on real NATS: one source of
truth (the state bucket), so a user added, a password changed or a certificate revoked on node
A is effective on node B as on one server (sessions cut, the next handshake refused)."""

from __future__ import annotations

import datetime as dt
import shutil
import ssl
import time
from pathlib import Path

import httpx
import pytest

from accord.domain.groups import Membership
from accord.identity import registry
from accord.identity.users import UserStore
from tests.cluster.conftest import NatsCluster
from tests.cluster.test_nodes import Nodes, _cluster, heard_on, until_received
from tests.conftest import Server, ServerFactory
from tests.e2e.clients import CotClient, client_tls_context, new_uid, sa
from tests.waiting import wait_until

PASSWORD = "correct horse battery"
# Far longer than any wait here: what B does, it does because it was told, not at its round.
SLOW_ROUND_S = 600.0


@pytest.fixture
async def nodes(nats_cluster: NatsCluster, make_server: ServerFactory, tmp_path: Path) -> Nodes:
    quiet = {"https_port": 0, "udp_port": 0, "tcp_port": 0}
    # Node A brings a user of its own: the first node seeds the cluster with its users.
    (tmp_path / "server0").mkdir()
    UserStore(tmp_path / "server0").add(
        "alice", PASSWORD, Membership.both(["Blue"]), now_ms=int(time.time() * 1000)
    )
    a = await make_server(cluster=_cluster(nats_cluster.urls[0], "node-a"), **quiet)
    shutil.copytree(a.config.data_dir / "pki", tmp_path / "server1" / "pki")
    # Node B had a user of its own before it joined: the cluster's users replace its own.
    UserStore(tmp_path / "server1").add(
        "stray", PASSWORD, Membership.both(["Red"]), now_ms=int(time.time() * 1000)
    )
    b = await make_server(
        cluster=_cluster(nats_cluster.urls[1], "node-b"),
        revocation_check_s=SLOW_ROUND_S,
        **quiet,
    )
    return Nodes(a, b, nats_cluster)


async def token_status(node: Server, user: str, password: str) -> int:
    async with httpx.AsyncClient(
        base_url=f"https://127.0.0.1:{node.port('enroll')}",
        verify=ssl.create_default_context(cafile=str(node.pki.ca_cert)),
        timeout=10,
    ) as http:
        answer = await http.post(
            "/oauth/token",
            params={"grant_type": "password", "username": user, "password": password},
        )
    return answer.status_code


async def test_joining_takes_the_clusters_users(nodes: Nodes) -> None:
    names = [u.name for u in UserStore(nodes.b.config.data_dir).list()]
    assert names == ["alice"]
    assert await token_status(nodes.b, "alice", PASSWORD) == 200
    assert await token_status(nodes.b, "stray", PASSWORD) == 400


async def test_a_user_added_and_a_password_changed_on_a_work_on_b(nodes: Nodes) -> None:
    users_a = UserStore(nodes.a.config.data_dir)  # as `accord user add` on node A's host does
    users_a.add("bob", PASSWORD, Membership.both(["Blue"]), now_ms=int(time.time() * 1000))

    async def signs_in(user: str, password: str) -> bool:
        return await token_status(nodes.b, user, password) == 200

    await wait_until(lambda: signs_in("bob", PASSWORD), what="bob signs in on B")
    users_a.set_password("bob", "a new long password", now_ms=int(time.time() * 1000))
    await wait_until(
        lambda: signs_in("bob", "a new long password"), what="the new password works on B"
    )
    assert await token_status(nodes.b, "bob", PASSWORD) == 400
    # And back: a user removed on B is gone on A.
    UserStore(nodes.b.config.data_dir).remove("bob")

    async def gone_on_a() -> bool:
        return await token_status(nodes.a, "bob", "a new long password") == 400

    await wait_until(gone_on_a, what="bob removed on A")
    assert nodes.b.running.cluster.shared.bad == 0


async def test_a_user_regrouped_on_a_moves_its_session_on_b(nodes: Nodes) -> None:
    """Groups of a certificate user changed on A: B moves the live session as one server."""
    cert, key = nodes.a.client_cert("carol", "Blue")
    tls = client_tls_context(cert, key, nodes.a.pki.ca_cert)
    carol = await CotClient.connect(nodes.b.port("tls"), tls=tls)
    red = await nodes.client(nodes.b, "rudy", "Red")
    await carol.send(sa(new_uid(), "CAROL"))
    UserStore(nodes.a.config.data_dir).add(
        "carol", PASSWORD, Membership.both(["Red"]), now_ms=int(time.time() * 1000)
    )
    await carol.recv_until(lambda e: e.type == "t-x-g-c")  # "your groups changed"
    uid = new_uid()
    got = await until_received(lambda: red.send(sa(uid, "RUDY")), carol, lambda e: e.uid == uid)
    assert got.uid == uid


async def test_a_certificate_revoked_on_a_is_cut_on_b_and_refused_there(nodes: Nodes) -> None:
    cert, key = nodes.a.client_cert("mallory", "Blue")
    tls = client_tls_context(cert, key, nodes.a.pki.ca_cert)
    mallory = await CotClient.connect(nodes.b.port("tls"), tls=tls)
    bravo = await nodes.client(nodes.b, "bravo", "Blue")
    await bravo.send(sa(new_uid(), "BRAVO"))
    uid = new_uid()
    await mallory.send(sa(uid, "MALLORY"))
    await bravo.recv_until(lambda e: e.uid == uid)
    await heard_on(nodes.b, "Blue")

    # As `accord cert revoke mallory` on node A's host.
    [revoked] = registry.revoke(nodes.a.pki, "mallory", dt.datetime.now(dt.UTC))
    # B cuts the live session at once (its own round is SLOW_ROUND_S away)...
    with pytest.raises(ConnectionError):
        await mallory.recv_until(lambda e: False, timeout=5)
    assert (await bravo.recv_until(lambda e: e.type == "t-x-d-d")).type == "t-x-d-d"
    assert revoked.serial in registry.revoked_serials(nodes.b.pki)
    # ... and refuses the next handshake.
    again = await CotClient.connect(nodes.b.port("tls"), tls=tls)
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await again.recv(timeout=5)
    await wait_until(lambda: nodes.b.counters.tls_handshake_failed == 1, what="refusal counted")
    # Bravo on B was not touched.
    await bravo.send(sa(new_uid(), "BRAVO"))
    assert not bravo.writer.is_closing()
