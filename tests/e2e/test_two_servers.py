"""Two servers on one host, as the README's partner walk-through sets them up: flags only
(no hand-written TOML), each with its own name, linked, and an SA crossing the link."""

from __future__ import annotations

import json
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from accord.cli import main
from accord.cot.xml import encode_xml
from tests.e2e.clients import sa
from tests.e2e.conftest import Served, free_port

LINK_TIMEOUT_S = 30.0


def _self(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    assert main(["partner", "self", "--data-dir", str(data_dir)]) == 0
    lines = capsys.readouterr().out.splitlines()
    return dict(line.split(None, 1) for line in lines)


def _link_state(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> list[str]:
    code = main(["status", "--json", "--data-dir", str(data_dir)])
    out = capsys.readouterr().out
    if code != 0:
        return []
    return [f"{link['partner']}:{link['state']}" for link in json.loads(out)["federation"]]


def test_two_servers_on_one_host_link_with_flags_only(
    serve: Callable[..., Served], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a_dir, b_dir = tmp_path / "org-a", tmp_path / "org-b"
    flags = {
        a_dir: ["--federation-name", "org-a", "--federation-port", str(free_port()),
                "--federation-files-port", str(free_port()), "--drone-port", "0"],
        b_dir: ["--federation-name", "org-b", "--federation-port", str(free_port()),
                "--federation-files-port", str(free_port()), "--drone-port", "0"],
    }  # fmt: skip
    a = serve(*flags[a_dir], data_dir=a_dir)
    b = serve(*flags[b_dir], data_dir=b_dir)

    a_self, b_self = _self(a_dir, capsys), _self(b_dir, capsys)
    assert a_self["name"] == "org-a"
    assert b_self["name"] == "org-b"
    b_port = flags[b_dir][3]
    assert b_self["address"] == f"localhost:{b_port}"  # from its running.json, not 9001
    assert a_self["ledger_key"].startswith("org-a+")  # the names tell the two apart
    assert b_self["ledger_key"].startswith("org-b+")

    assert main(["partner", "add", "org-b", "--data-dir", str(a_dir),
                 "--ca", str(b_dir / "pki" / "ca.pem"), "--sha256", b_self["ca_sha256"],
                 "--address", f"127.0.0.1:{b_port}", "--ledger-key", b_self["ledger_key"],
                 "--share-all"]) == 0  # fmt: skip
    assert main(["partner", "add", "org-a", "--data-dir", str(b_dir),
                 "--ca", str(a_dir / "pki" / "ca.pem"), "--sha256", a_self["ca_sha256"],
                 "--ledger-key", a_self["ledger_key"], "--share-all"]) == 0  # fmt: skip
    capsys.readouterr()

    for served in (a, b):  # restart both, as the README says
        served.proc.send_signal(signal.SIGTERM)
        assert served.proc.wait(15) == 0
    b = serve(*flags[b_dir], data_dir=b_dir)
    a = serve(*flags[a_dir], data_dir=a_dir)

    deadline = time.monotonic() + LINK_TIMEOUT_S
    while "org-b:up" not in _link_state(a_dir, capsys):
        assert time.monotonic() < deadline, a.text()
        time.sleep(0.2)
    listener = socket.create_connection(("127.0.0.1", b.tcp))
    listener.settimeout(1.0)
    sender = socket.create_connection(("127.0.0.1", a.tcp))
    try:
        got = b""
        deadline = time.monotonic() + LINK_TIMEOUT_S
        while b"TWO-1" not in got:
            assert time.monotonic() < deadline, (a.text(), b.text())
            sender.sendall(encode_xml(sa("TWO-1", "ACROSS")))
            try:
                got += listener.recv(65536)
            except TimeoutError:
                continue
        assert b"[org-a] ACROSS" in got
    finally:
        listener.close()
        sender.close()
