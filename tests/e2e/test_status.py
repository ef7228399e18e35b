"""``accord status`` against a live server, and against none."""

from __future__ import annotations

import asyncio
import io
import json
import socket
from pathlib import Path

import pytest

from accord.cli import main
from accord.cli.status import render
from tests.conftest import Server
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
    code = main(["status", "--data-dir", str(tmp_path / "nothing"), "--url", url])
    err = capsys.readouterr().err
    assert code != 0
    assert err.strip() == f"accord: no Accord answering on {url}: start it with `accord serve`"


def test_status_default_url_comes_from_the_configuration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "accord.toml"
    port = free_port()
    config.write_text(f'data_dir = "{tmp_path / "data"}"\nhttps_port = {port}\n')
    code = main(["status", "--config", str(config)])
    assert code != 0
    assert f"no Accord answering on https://127.0.0.1:{port}:" in capsys.readouterr().err


async def test_status_with_another_data_dir_says_which_certificate_is_missing(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"https://127.0.0.1:{server.port('https')}"
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
