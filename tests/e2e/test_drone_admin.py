"""Drone feeds added, listed and removed on a running server: admin API and ``accord drone``."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest

from accord.bridges.simulator import Fleet
from accord.cli import main
from accord.config import DroneFeed
from tests.conftest import Server, ServerFactory
from tests.e2e.clients import CotClient
from tests.e2e.test_admin import as_admin, https, scrape
from tests.waiting import wait_until


def drone_args(server: Server, *extra: str) -> list[str]:
    url = f"https://127.0.0.1:{server.port('https')}"
    return ["drone", extra[0], "--data-dir", str(server.config.data_dir), "--url", url, *extra[1:]]


async def send_fleet(port: int, fleet: Fleet, seconds: float, rate_hz: float = 10.0) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    try:
        for tick in range(int(seconds * rate_hz)):
            for frames in fleet.frames(tick / rate_hz):
                sock.sendto(b"".join(frames), ("127.0.0.1", port))
            await asyncio.sleep(1 / rate_hz)  # the telemetry rate of a real vehicle
    finally:
        sock.close()


async def test_a_feed_added_over_the_api_bridges_until_it_is_removed(server: Server) -> None:
    client = await CotClient.connect(server.port("tcp"))
    await client.expect_silence(0.1)
    async with as_admin(server) as http:
        table = {"name": "adhoc", "kind": "udp", "address": "127.0.0.1:0", "org": "org"}
        added = await http.post("/api/admin/drone-feeds", json=table)
        assert added.status_code == 201, added.text
        body = added.json()
        assert body["adhoc"] is True
        assert body["kind"] == "udp"
        assert body["port"] > 0
        assert server.port("drone:adhoc") == body["port"]
        await send_fleet(body["port"], Fleet(1), 1.2)
        event = await client.recv_until(lambda e: e.uid == "org.adhoc.1", timeout=3.0)
        assert event.type.startswith("a-f-A-M")
        listed = (await http.get("/api/admin/drone-feeds")).json()["feeds"]
        assert [f["name"] for f in listed] == ["adhoc"]
        assert listed[0]["vehicles"] == 1
        assert listed[0]["counters"]["messages"] > 0
        status = (await http.get("/api/admin/status")).json()
        assert status["drone_feeds"][0]["name"] == "adhoc"
        # Taken: 409; unknown key, bad kind, bad address: 400 with the reason.
        again = await http.post("/api/admin/drone-feeds", json=table)
        assert again.status_code == 409
        assert "adhoc" in again.json()["error"]
        for bad, said in [
            ({"name": "x", "kind": "udp", "address": "127.0.0.1:0", "colour": 1}, "colour"),
            ({"name": "x", "kind": "carrier-pigeon", "address": "h:1"}, "kind"),
            ({"name": "x", "kind": "tcp", "address": "nowhere"}, "host:port"),
            ({"name": "x", "kind": "tlog", "path": "/no/such.tlog"}, "/no/such.tlog"),
            ({"kind": "udp"}, "name"),
        ]:
            refused = await http.post("/api/admin/drone-feeds", json=bad)
            assert refused.status_code == 400, bad
            assert said in refused.json()["error"], refused.json()
        for body_text in (b"[1]", b"{not json"):
            refused = await http.post("/api/admin/drone-feeds", content=body_text)
            assert refused.status_code == 400
        removed = await http.delete("/api/admin/drone-feeds/adhoc")
        assert removed.status_code == 200
        assert removed.json() == {"removed": "adhoc"}
        assert "drone:adhoc" not in server.running.ports
        assert (await http.delete("/api/admin/drone-feeds/adhoc")).status_code == 404
        assert (await http.get("/api/admin/drone-feeds")).json() == {"feeds": []}


async def test_only_administrators_manage_drone_feeds(server: Server) -> None:
    cert, key = server.client_cert("mallory", "Blue")
    async with https(server, cert, key) as http:
        table = {"name": "evil", "kind": "udp", "address": "127.0.0.1:0"}
        assert (await http.post("/api/admin/drone-feeds", json=table)).status_code == 403
        assert (await http.get("/api/admin/drone-feeds")).status_code == 403
    assert "evil" not in server.running.feeds


async def test_the_drone_commands_add_list_and_remove_feeds(
    make_server: ServerFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    server = await make_server()
    code = await asyncio.to_thread(
        main,
        drone_args(server, "add", "cli", "--kind", "udp", "--address", "127.0.0.1:0",
                   "--groups", "Blue,Red", "--rate-hz", "1"),
    )  # fmt: skip
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "started drone feed cli (udp 127.0.0.1:0) on port" in out.out
    assert "ad hoc" in out.out
    feed = server.running.feeds["cli"]
    assert feed.adhoc
    assert feed.party.membership.inbound == frozenset({"Blue", "Red"})
    assert await asyncio.to_thread(main, drone_args(server, "list")) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:4] == ["NAME", "KIND", "WHERE", "ORIGIN"]
    assert "cli" in out
    assert "ad hoc" in out
    assert await asyncio.to_thread(main, drone_args(server, "list", "--json")) == 0
    assert json.loads(capsys.readouterr().out)[0]["name"] == "cli"
    # A taken name and a bad table are refused with the server's reason.
    code = await asyncio.to_thread(
        main, drone_args(server, "add", "cli", "--kind", "udp", "--address", "127.0.0.1:0")
    )
    assert code == 1
    assert "is running" in capsys.readouterr().err
    code = await asyncio.to_thread(main, drone_args(server, "add", "t", "--kind", "tlog"))
    assert code == 1
    assert "tlog feed needs path" in capsys.readouterr().err
    assert await asyncio.to_thread(main, drone_args(server, "remove", "cli")) == 0
    assert "stopped drone feed cli" in capsys.readouterr().out
    assert "cli" not in server.running.feeds
    assert await asyncio.to_thread(main, drone_args(server, "remove", "cli")) == 1
    assert "no drone feed named 'cli'" in capsys.readouterr().err
    assert await asyncio.to_thread(main, drone_args(server, "list")) == 0
    assert capsys.readouterr().out.strip() == "no drone feeds"


async def test_each_feed_reports_its_counters_to_metrics_and_status(
    make_server: ServerFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    feeds = tuple(
        # 3 s: a send loop stalled by a loaded machine for 1 s lost a link mid-flight (3 losses)
        DroneFeed(name=name, kind="udp", address="127.0.0.1:0", org="org", link_timeout_s=3.0)
        for name in ("alpha", "bravo")
    )
    server = await make_server(drone_feeds=feeds)
    junk = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        junk.sendto(b"\xfd\x09\x00\x00\x00\x01\x01\x00\x00\x00" + b"\x00" * 11, (
            "127.0.0.1", server.port("drone:bravo")))  # fmt: skip
    finally:
        junk.close()
    await send_fleet(server.port("drone:alpha"), Fleet(2), 1.2)
    async with as_admin(server) as http:

        async def links_lost() -> bool:  # silent for longer than the link timeout
            feeds = (await http.get("/api/admin/status")).json()["drone_feeds"]
            return bool(feeds[0]["counters"]["links_lost"] == 2)

        await wait_until(links_lost, what="both vehicles' links lost")
        values = await scrape(http)
        status = (await http.get("/api/admin/status")).json()
    alpha, bravo = (("feed", "alpha"),), (("feed", "bravo"),)
    assert values[("accord_drone_messages_total", alpha)] > 20
    assert values[("accord_drone_vehicles", alpha)] == 2
    assert values[("accord_drone_vehicles_live", alpha)] == 0
    assert values[("accord_drone_links_lost_total", alpha)] == 2
    assert values[("accord_drone_events_total", alpha)] >= 4
    assert values[("accord_drone_messages_total", bravo)] == 0
    assert (
        values[("accord_drone_bad_data_total", bravo)]
        + values[("accord_drone_truncated_total", bravo)]
        >= 1
    )
    for name in ("unknown_messages", "conflicts"):
        assert (f"accord_drone_{name}_total", alpha) in values
    assert [f["name"] for f in status["drone_feeds"]] == ["alpha", "bravo"]
    assert status["drone_feeds"][0]["counters"]["links_lost"] == 2
    url = f"https://127.0.0.1:{server.port('https')}"
    args = ["status", "--data-dir", str(server.config.data_dir), "--url", url]
    assert await asyncio.to_thread(main, args) == 0
    out = capsys.readouterr().out
    assert "drones     alpha (udp): 0/2 vehicles live" in out
    assert "bravo (udp): 0/0 vehicles live, 0 messages, " in out
    # A removed feed leaves /metrics.
    async with as_admin(server) as http:
        assert (await http.delete("/api/admin/drone-feeds/bravo")).status_code == 200
        values = await scrape(http)
    assert ("accord_drone_messages_total", bravo) not in values
    assert ("accord_drone_messages_total", alpha) in values
