"""A node of another CA or schema version refuses to join, with one clear line (exit 2)."""

from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path

import nats
import pytest

from accord.app import StartupError
from accord.cluster.state import CLUSTER_KEY, Member, decode_member, encode_member
from accord.cluster.sync import bucket_name, open_bucket
from accord.store.migrate import migrations
from tests.cluster.conftest import NatsCluster
from tests.cluster.test_nodes import ORG, _cluster
from tests.conftest import ServerFactory

QUIET = {"https_port": 0, "enroll_port": 0, "udp_port": 0, "tcp_port": 0}


async def test_a_node_of_another_ca_refuses_to_join(
    nats_cluster: NatsCluster, make_server: ServerFactory
) -> None:
    a = await make_server(cluster=_cluster(nats_cluster.urls[0], "node-a"), **QUIET)
    # Node B makes its own CA (no copy of A's pki/).
    with pytest.raises(StartupError) as err:
        await make_server(cluster=_cluster(nats_cluster.urls[1], "node-b"), **QUIET)
    line = str(err.value)
    assert "\n" not in line
    assert line.startswith(f"node node-b cannot join cluster {ORG}: its CA (sha256 ")
    assert "first joined by node-a" in line
    assert "copy the cluster's pki/" in line
    # Node A runs on, and the cluster record is still A's.
    assert not a.running.stopping.is_set()
    conn = await nats.connect(nats_cluster.urls[2])
    try:
        kv = await conn.jetstream().key_value(bucket_name("STATE", ORG))
        record = decode_member((await kv.get(CLUSTER_KEY)).value or b"")
    finally:
        await conn.close()
    assert record.node == "node-a"
    # Given A's CA, the same node joins (the refused start left its own CA in server1/pki).
    other = a.config.data_dir.parent / "server1" / "pki"
    shutil.rmtree(other)
    shutil.copytree(a.config.data_dir / "pki", other)
    c = await make_server(cluster=_cluster(nats_cluster.urls[1], "node-c"), **QUIET)
    assert c.running.cluster.presence is not None


async def test_a_node_of_another_schema_version_refuses_to_join(
    nats_cluster: NatsCluster, make_server: ServerFactory, tmp_path: Path
) -> None:
    """A node of a newer Accord joined first: this one (an older schema) is refused."""
    newer = migrations("sqlite")[-1].number + 1
    conn = await nats.connect(nats_cluster.urls[0])
    try:
        kv = await open_bucket(conn.jetstream(), bucket_name("STATE", ORG), 1)
        await kv.create(CLUSTER_KEY, encode_member(Member("node-new", newer, "0" * 64)))
    finally:
        await conn.close()
    with pytest.raises(StartupError) as err:
        await make_server(cluster=_cluster(nats_cluster.urls[1], "node-old"), **QUIET)
    line = str(err.value)
    assert "\n" not in line
    assert f"it has schema version {newer - 1}, the cluster has {newer}" in line
    assert "first joined by node-new" in line


async def test_accord_serve_refused_exits_2_with_one_line(
    nats_cluster: NatsCluster, make_server: ServerFactory, tmp_path: Path
) -> None:
    await make_server(cluster=_cluster(nats_cluster.urls[0], "node-a"), **QUIET)
    config = tmp_path / "other.toml"
    config.write_text(
        f'data_dir = "{tmp_path / "other"}"\nbind = "127.0.0.1"\n'
        "tls_port = 0\nhttps_port = 0\nenroll_port = 0\nudp_port = 0\ntcp_port = 0\n"
        "drone_port = 0\nmetrics_port = 0\n"
        f'[cluster]\nurls = ["{nats_cluster.urls[1]}"]\nnode = "node-x"\norg = "{ORG}"\n'
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "accord",
        "serve",
        "--config",
        str(config),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(proc.communicate(), 60)
    text = stderr.decode()
    assert proc.returncode == 2, text
    assert "Traceback" not in text
    errors = [line for line in text.splitlines() if line.startswith("accord: error:")]
    assert len(errors) == 1
    assert "node node-x cannot join cluster" in errors[0]
    assert "its CA" in errors[0]
