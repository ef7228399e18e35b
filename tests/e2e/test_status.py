"""``accord status`` against a live server, and against none."""

from __future__ import annotations

import asyncio
import io
import json
import os
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from accord.cli import main
from accord.cli.status import render
from tests.conftest import Server, ServerFactory
from tests.e2e.clients import CotClient, client_tls_context, sa
from tests.waiting import wait_until

TAKV = '<takv device="Pixel 8" platform="ATAK-CIV" os="34" version="5.5.0.3"/>'


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def status_args(server: Server, *extra: str) -> list[str]:
    url = f"https://127.0.0.1:{server.port('https')}"
    return ["status", "--data-dir", str(server.config.data_dir), "--url", url, *extra]


async def connect_two(server: Server) -> None:
    cert, key = server.client_cert("alice", "Blue")
    alpha = await CotClient.connect(
        server.port("tls"), tls=client_tls_context(cert, key, server.pki.ca_cert)
    )
    anon = await CotClient.connect(server.port("tcp"))
    await alpha.send(sa("ALPHA-1", "ALPHA", extra=TAKV))
    await anon.send(sa("ANON-1", "ANONYMOUS"))
    await wait_until(lambda: server.counters.events_in == 2, what="both SAs routed")
    assert server.running.history_writer is not None
    await server.running.history_writer.flush()


async def test_status_prints_the_server_and_its_clients(
    server: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    await connect_two(server)
    code = await asyncio.to_thread(main, status_args(server))
    out = capsys.readouterr().out
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0].startswith("Accord ")
    assert f"tls {server.port('tls')}" in out
    assert "sessions   2 (tcp 1, tls 1)" in out
    assert "events     in 2, out 0" in out
    assert "sqlite, 2 events" in out  # the two SAs, archived
    header = next(line for line in lines if line.startswith("CALLSIGN"))
    assert header.split() == [
        "CALLSIGN", "UID", "USER", "GROUPS", "ADDRESS", "VIA", "DEVICE", "SINCE", "LAST",
        "IN", "OUT", "DROPS",
    ]  # fmt: skip
    alpha = next(line for line in lines if line.startswith("ALPHA "))
    assert "ALPHA-1" in alpha
    assert "alice" in alpha
    assert "Blue" in alpha
    assert "ATAK-CIV 5.5.0.3 (Pixel 8)" in alpha
    assert alpha.split()[-3:] == ["1", "0", "0"]
    anon = next(line for line in lines if line.startswith("ANONYMOUS "))
    assert "__ANON__" in anon
    assert " tcp " in anon


async def test_status_json_is_the_raw_status_and_clients(
    server: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    await connect_two(server)
    code = await asyncio.to_thread(main, status_args(server, "--json"))
    assert code == 0
    body = json.loads(capsys.readouterr().out)
    assert body["server"] == "Accord"
    assert body["ports"]["https"] == server.port("https")
    assert {c["uid"] for c in body["clients"]} == {"ALPHA-1", "ANON-1"}


def test_status_without_a_server_says_how_to_start_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"https://127.0.0.1:{free_port()}"
    assert main(["cert", "init", "--data-dir", str(tmp_path / "stopped")]) == 0
    capsys.readouterr()
    code = main(["status", "--data-dir", str(tmp_path / "stopped"), "--url", url])
    err = capsys.readouterr().err
    assert code != 0
    assert err.strip() == f"accord: no Accord answering on {url}: start it with `accord serve`"


def test_status_default_url_comes_from_the_configuration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "accord.toml"
    port = free_port()
    config.write_text(f'data_dir = "{tmp_path / "data"}"\nhttps_port = {port}\n')
    assert main(["cert", "init", "--config", str(config)]) == 0  # a server's data dir, stopped
    code = main(["status", "--config", str(config)])
    assert code != 0
    assert f"no Accord answering on https://127.0.0.1:{port}:" in capsys.readouterr().err


async def test_status_with_another_data_dir_says_which_certificate_is_missing(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"https://127.0.0.1:{server.port('https')}"
    assert main(["cert", "init", "--data-dir", str(tmp_path / "elsewhere")]) == 0
    capsys.readouterr()
    args = ["status", "--data-dir", str(tmp_path / "elsewhere"), "--url", url]
    code = await asyncio.to_thread(main, args)
    err = capsys.readouterr().err
    assert code == 2
    assert "no admin certificate in" in err
    assert "--data-dir" in err


async def test_status_lists_partner_links(
    server: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    code = await asyncio.to_thread(main, status_args(server, "--json"))
    assert code == 0
    body = json.loads(capsys.readouterr().out)
    clients = body.pop("clients")
    body["federation"] = [
        {
            "partner": "org-b",
            "direction": "out",
            "state": "up",
            "since": "2026-11-29T09:00:00Z",
            "last_error": "",
            "events_in": 12,
            "events_out": 3400,
            "withheld": 56,
            "dropped": 0,
            "messages_out": 40,
            "extensions": ["batch", "store-forward"],
        },
        {
            "partner": "org-c",
            "direction": "in",
            "state": "down",
            "since": "2026-11-29T09:10:00Z",
            "last_error": "connection refused",
            "events_in": 0,
            "events_out": 0,
            "withheld": 0,
            "dropped": 7,
        },
    ]
    out = io.StringIO()
    render(body, clients, out)
    lines = out.getvalue().splitlines()
    assert (
        "partners   org-b (out): up since 2026-11-29T09:00:00Z, in 12, out 3,400, withheld 56, "
        "dropped 0 (batch, store-forward)" in lines
    )
    assert any(
        line.strip().startswith("org-c (in): down")
        and "(plain federation v2), last error: connection refused" in line
        for line in lines
    )


class ForeignServer:
    """Someone else's HTTPS server on this host: another CA. It would accept a client
    certificate of ours (it trusts our CA), so it records any that is presented to it."""

    def __init__(self, root: Path, trusts: Path) -> None:
        import datetime as dt
        import threading

        from accord.identity.pki import init_ca, issue_server

        now = dt.datetime.now(dt.UTC)
        paths = init_ca(root / "pki", now, "Someone Else CA")
        issue_server(paths, ("localhost", "127.0.0.1"), now)
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(paths.server_cert, paths.server_key)
        self.ctx.verify_mode = ssl.CERT_OPTIONAL
        self.ctx.load_verify_locations(trusts)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = int(self.sock.getsockname()[1])
        self.attempts = 0
        self.client_certs: list[object] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.attempts += 1
            conn.settimeout(5)
            try:
                with self.ctx.wrap_socket(conn, server_side=True) as tls:
                    cert = tls.getpeercert()
                    if cert:
                        self.client_certs.append(cert)
                    tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
            except (ssl.SSLError, OSError):
                conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


@pytest.fixture
def foreign(tmp_path: Path, server: Server) -> Iterator[ForeignServer]:
    other = ForeignServer(tmp_path / "someone-else", server.pki.ca_cert)
    yield other
    other.close()


async def test_status_dials_the_port_the_server_wrote_not_the_configured_one(
    server: Server,
    foreign: ForeignServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The configuration says the HTTPS API is where someone else's server listens; the
    # running server wrote its real port into running.json.
    monkeypatch.setenv("ACCORD_HTTPS_PORT", str(foreign.port))
    args = ["status", "--data-dir", str(server.config.data_dir), "--json"]
    code = await asyncio.to_thread(main, args)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert json.loads(captured.out)["ports"]["https"] == server.port("https")
    assert foreign.attempts == 0


async def test_status_refuses_a_server_of_another_ca_and_presents_no_certificate(
    server: Server, foreign: ForeignServer, capsys: pytest.CaptureFixture[str]
) -> None:
    from accord.app.running import write_record

    # running.json names a port on which another server now answers (a stale record whose
    # port someone else took, or a mistake): its certificate is not from our CA.
    write_record(server.config, {"https": foreign.port}, os.getpid(), time.time())
    for command in (["status"], ["drone", "list"]):
        code = await asyncio.to_thread(main, [*command, "--data-dir", str(server.config.data_dir)])
        err = capsys.readouterr().err
        assert code == 1, err
        assert f"the server on https://127.0.0.1:{foreign.port} is not the one of" in err
    assert foreign.attempts >= 2  # it was dialled ...
    assert foreign.client_certs == []  # ... and never saw the admin certificate


async def test_running_json_names_the_bound_ports_while_the_server_runs(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    from accord.app.running import read_record, record_path

    server = await make_server()
    found = read_record(server.config.data_dir)
    assert found is not None
    assert found.pid == os.getpid()
    assert dict(found.ports) == server.running.ports
    assert found.federation_name == "localhost"
    await server.running.close(grace_s=2.0)
    assert not record_path(server.config.data_dir).exists()  # removed at a clean exit


def test_a_running_json_left_by_a_killed_server_is_ignored(tmp_path: Path) -> None:
    from accord.app.running import read_record, write_record
    from accord.config import Config

    dead = subprocess.Popen(["true"])  # a pid that no longer runs
    dead.wait()
    tmp_path.mkdir(exist_ok=True)
    write_record(Config(data_dir=tmp_path), {"https": 1}, dead.pid, time.time())
    assert read_record(tmp_path) is None
    write_record(Config(data_dir=tmp_path), {"https": 1}, os.getpid(), time.time())
    assert read_record(tmp_path) is not None
