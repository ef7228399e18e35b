"""``[cluster]`` in the TOML file, and `accord serve` when NATS is not there."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from accord.cluster.natsd import free_port
from accord.config import ClusterConfig, Config, ConfigError, load


def test_no_cluster_by_default() -> None:
    assert not Config().cluster.enabled


def test_cluster_table_is_read(tmp_path: Path) -> None:
    path = tmp_path / "accord.toml"
    path.write_text('[cluster]\nurls = ["nats://h:4222"]\nnode = "n1"\norg = "acme"\n')
    cluster = load(path, environ={}).cluster
    assert cluster == ClusterConfig(("nats://h:4222",), "n1", "acme", 1)
    assert cluster.enabled


@pytest.mark.parametrize(
    ("table", "error"),
    [
        ('urls = ["nats://h"]\nnodes = "x"', "unknown key"),
        ("urls = [1]", "list of nats:// URLs"),
        ('urls = ["nats://h"]\norg = ""', "org non-empty"),
        ('urls = ["nats://h"]\nsa_replicas = 9', "1 to 5"),
    ],
)
def test_bad_cluster_table_is_a_clear_error(tmp_path: Path, table: str, error: str) -> None:
    path = tmp_path / "accord.toml"
    path.write_text(f"[cluster]\n{table}\n")
    with pytest.raises(ConfigError, match=error):
        load(path, environ={})


def test_serve_without_nats_exits_2_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "accord.toml"
    path.write_text(f'[cluster]\nurls = ["nats://127.0.0.1:{free_port()}"]\n')
    off = ["--tcp-port", "0", "--tls-port", "0", "--udp-port", "0", "--https-port", "0"]
    off += ["--enroll-port", "0", "--drone-port", "0"]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "accord",
            "serve",
            "--config",
            str(path),
            "--data-dir",
            str(tmp_path / "data"),
            *off,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if "error" in line]
    assert len(errors) == 1
    assert "cannot reach NATS at nats://127.0.0.1:" in errors[0]
