"""The organisation's partners and release policies are the cluster's (issue 17).

Two Accord nodes of ORG-C (each its own SQLite store and data directory, one CA) on a real
3-node NATS cluster, and partner ORG-P, a third Accord. What a node's operator changes (a
policy file and SIGHUP, ``partners.toml`` as ``accord partner add`` writes it) is put in
force on every node; the node that takes the partner-link lease federates under it.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import nats
import pytest

from accord.app import Running, StartupError, start
from accord.cluster.partners_state import PARTNERS_KEY
from accord.cluster.sync import bucket_name
from accord.config import ClusterConfig, Config
from accord.domain.partners import Partner
from accord.federation import partners_toml
from accord.federation.gate import PolicyGate
from accord.policy import decode_policy
from tests.cluster.conftest import NatsCluster
from tests.e2e.clients import CotClient, new_uid, sa
from tests.federation.test_link_e2e import orgs
from tests.waiting import wait_until

__all__ = ["orgs"]  # the fixture

pytestmark = pytest.mark.timeout(120)

ORG = "ORG-C"


def policy(types: str) -> str:
    rule = f'[[rule]]\nname = "units"\ntypes = ["{types}"]\n'
    return f'name = "c->p/{types}"\npartner = "ORG-P"\n\n{rule}'


V1, V2 = policy("b-*"), policy("a-*")  # V1 releases no SA (a-f-G-...), V2 does


def node(data_dir: Path, name: str, nats_url: str, *partners: Partner) -> Config:
    return Config(
        data_dir=data_dir,
        bind="127.0.0.1",
        tls_port=0,
        https_port=0,
        udp_port=0,
        enroll_port=0,
        drone_port=0,
        federation_port=0,
        federation_files_port=0,
        archive=False,
        server_names=("localhost", "127.0.0.1"),
        partners=partners,
        cluster=ClusterConfig(urls=(nats_url,), node=name, org=ORG),
    )


def version(text: str) -> str:
    return decode_policy(text.encode()).version


def in_force(running: Running) -> str:
    """The version of ORG-P's policy in force on a node (whether or not it runs the link)."""
    shared = running.shared_partners
    assert shared is not None
    held = shared.policies.get("ORG-P")
    return "" if held is None else held.version


def gate_version(running: Running) -> str:
    gate = running.gate
    return gate.policies["ORG-P"].version if isinstance(gate, PolicyGate) else ""


async def put_record(nats_url: str, value: bytes) -> None:
    conn = await nats.connect(nats_url)
    try:
        kv = await conn.jetstream().key_value(bucket_name("STATE", ORG))
        await kv.put(PARTNERS_KEY, value)
    finally:
        await conn.close()


async def test_a_policy_changed_on_one_node_is_in_force_on_the_other_and_on_its_link(
    nats_cluster: NatsCluster, orgs: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="accord")
    make, launch = orgs
    partner, org = make("ORG-P"), make(ORG)
    b_dir = tmp_path / "ORG-C-b"
    shutil.copytree(org.data_dir / "pki", b_dir / "pki")
    partner_running = await launch(partner, org.partner())
    a_policy, b_policy = tmp_path / "a-policy.toml", tmp_path / "b-policy.toml"
    a_policy.write_text(V1)
    b_policy.write_text(policy("u-*"))  # node B's own file says something else
    as_partner = partner.partner(dial=partner, share_all=False, policy_file=str(a_policy))

    # Node A is first: it seeds the cluster's record with its files and takes the lease.
    node_a = await start(
        node(org.data_dir, "node-a", nats_cluster.urls[0], as_partner), any_port=True
    )
    node_b: Running | None = None
    try:
        await wait_until(lambda: node_a.federation is not None, what="A runs the link")
        assert in_force(node_a) == gate_version(node_a) == version(V1)
        # Node B has other files: it uses the cluster's, and says so in one line.
        node_b = await start(
            node(
                b_dir,
                "node-b",
                nats_cluster.urls[1],
                replace(as_partner, policy_file=str(b_policy)),
            ),
            any_port=True,
        )
        assert in_force(node_b) == version(V1)
        differ = [
            r.getMessage() for r in caplog.records if "differ from the cluster" in r.getMessage()
        ]
        assert differ == [
            "cluster ORG-C: this node's partners and release policies differ from the "
            "cluster's, which are used: ORG-P (policy) (change them on any node with `accord "
            "partner` or a policy file and SIGHUP)"
        ]
        assert b_policy.read_text() == policy("u-*")  # its operator's file is left as it was

        # A's operator edits the policy and reloads (what SIGHUP does in a cluster): B follows.
        a_policy.write_text(V2)
        assert node_a.shared_partners is not None
        node_a.shared_partners.reload_wanted.set()
        await wait_until(lambda: in_force(node_b) == version(V2), what="B has A's new policy")
        await wait_until(lambda: gate_version(node_a) == version(V2), what="A's link under it")

        # A malformed policy published into the record: refused on both, V2 stays in force.
        conn_url = nats_cluster.urls[2]
        bad = (
            json.loads(node_b.shared_partners.sync.good["ORG-P"]) if node_b.shared_partners else {}
        )
        bad["policy"] = "this is [not a policy"
        await put_record(conn_url, json.dumps({"format": 1, "partners": {"ORG-P": bad}}).encode())
        sync_a, sync_b = node_a.shared_partners.sync, node_b.shared_partners.sync
        await wait_until(lambda: sync_a.refused == 1 and sync_b.refused == 1, what="both refused")
        assert in_force(node_b) == gate_version(node_a) == version(V2)
        refused = [
            r.getMessage()
            for r in caplog.records
            if "refused, those in force stay" in r.getMessage()
        ]
        assert len(refused) == 2, refused
        assert all("\n" not in line for line in refused), refused
        assert "ORG-P" in refused[0]
        assert "policy_file is not a valid policy" in refused[0]

        # A stops: B takes the lease and federates under the cluster's V2, not its own file.
        on_p = await CotClient.connect(partner_running.ports["tcp"])
        await node_a.close(grace_s=1.0)
        await wait_until(lambda: node_b.federation is not None, what="B runs the link")
        assert gate_version(node_b) == version(V2)
        await wait_until(lambda: partner.link(ORG).state == "up", what="B's link is up")
        on_b = await CotClient.connect(node_b.ports["tcp"])
        uid = new_uid()
        await on_b.send(sa(uid, "BRAVO"))
        got = await on_p.recv_until(lambda e: e.uid == uid, timeout=15)
        assert got.uid == uid  # V2 releases a-*: B's SA reached the partner
    finally:
        await node_a.close(grace_s=1.0)
        if node_b is not None:
            await node_b.close(grace_s=1.0)


async def test_a_partner_added_on_one_node_is_known_on_the_other_which_takes_the_link_over(
    nats_cluster: NatsCluster, orgs: Any, tmp_path: Path
) -> None:
    make, launch = orgs
    partner, org = make("ORG-P"), make(ORG)
    b_dir = tmp_path / "ORG-C-b"
    shutil.copytree(org.data_dir / "pki", b_dir / "pki")
    await launch(partner, org.partner())
    # Neither node has a partner at start.
    node_a = await start(node(org.data_dir, "node-a", nats_cluster.urls[0]), any_port=True)
    node_b: Running | None = None
    try:
        node_b = await start(node(b_dir, "node-b", nats_cluster.urls[1]), any_port=True)
        assert node_a.partners == node_b.partners == ()
        assert node_a.lease is None
        assert node_b.lease is None
        # On A, `accord partner add` writes partners.toml; A publishes it, B puts it in force.
        partners_toml.write(org.data_dir, (partner.partner(dial=partner),))
        nodes = (node_a, node_b)
        await wait_until(
            lambda: all(n.partners and n.partners[0].name == "ORG-P" for n in nodes),
            what="both nodes know ORG-P",
        )
        # B's partners.toml is a copy of the cluster's (`accord partner list|remove` there).
        assert [p.name for p in partners_toml.read(b_dir)] == ["ORG-P"]
        copy, original = b_dir / "partners" / "ORG-P-ca.pem", Path(partner.ca_file)
        assert copy.read_bytes() == original.read_bytes()  # noqa: ASYNC240 (a test's check)
        # Both join the lease; one takes it and brings the new partner's link up.
        await wait_until(
            lambda: any(n.federation is not None for n in nodes), timeout_s=15, what="a holder"
        )
        holder, other = (node_a, node_b) if node_a.federation is not None else (node_b, node_a)
        await wait_until(lambda: partner.link(ORG).state == "up", what="the link is up")
        assert other.federation is None
        # The holder stops: the other takes the lease and the link to the partner added on A.
        await holder.close(grace_s=1.0)
        await wait_until(lambda: other.federation is not None, timeout_s=15, what="took it over")
        fed = other.federation
        assert fed is not None
        await wait_until(lambda: fed.outgoing["ORG-P"].state == "up", what="its link is up")
        # Removed on the node that runs the link (`accord partner remove` there): its link
        # stops, the partner is gone from the cluster's record and from the other's copy.
        other_dir = b_dir if other is node_b else org.data_dir
        partners_toml.write(other_dir, ())
        await wait_until(lambda: other.partners == () and other.federation is None,
                         what="the link stopped")  # fmt: skip
        await wait_until(lambda: partner.link(ORG).state != "up", what="the partner saw it go")
    finally:
        await node_a.close(grace_s=1.0)
        if node_b is not None:
            await node_b.close(grace_s=1.0)


async def test_a_bad_policy_is_not_published_and_a_bad_record_stops_a_joining_node(
    nats_cluster: NatsCluster, orgs: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    make, _ = orgs
    partner, org = make("ORG-P"), make(ORG)
    b_dir = tmp_path / "ORG-C-b"
    shutil.copytree(org.data_dir / "pki", b_dir / "pki")
    a_policy = tmp_path / "a-policy.toml"
    a_policy.write_text(V1)
    as_partner = partner.partner(share_all=False, policy_file=str(a_policy))
    node_a = await start(
        node(org.data_dir, "node-a", nats_cluster.urls[0], as_partner), any_port=True
    )
    try:
        shared = node_a.shared_partners
        assert shared is not None
        published = shared.sync.published
        # A's operator breaks the policy and reloads: refused on A in one line, not published.
        a_policy.write_text("rules = [[[")
        shared.reload_wanted.set()
        await wait_until(
            lambda: any("not published to the cluster" in r.getMessage() for r in caplog.records),
            what="A refused its own file",
        )
        assert shared.sync.published == published
        assert in_force(node_a) == version(V1)
        # A record that must be refused (another layout) keeps a joining node from starting.
        await put_record(nats_cluster.urls[1], b'{"format": 9, "partners": {}}')
        with pytest.raises(StartupError) as refused:
            await start(node(b_dir, "node-b", nats_cluster.urls[1]), any_port=True)
        assert str(refused.value).startswith(
            "the cluster's partners and release policies are refused: the partners record is "
            "not of format 1; fix them on a node of the cluster"
        )
        assert "\n" not in str(refused.value)
        await wait_until(lambda: shared.sync.refused == 1, what="A refused the record too")
        assert in_force(node_a) == version(V1)
    finally:
        await node_a.close(grace_s=1.0)
