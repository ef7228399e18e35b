"""Separation alerts end to end on one server: simulated drones on a collision course through
a MAVLink feed, and a client's aircraft, raise alerts a TCP client receives, then cancels."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import sys
import time
from pathlib import Path

import pytest
from lxml import etree

from accord.app import StartupError
from accord.bridges.simulator import Fleet, encounter
from accord.cli import main
from accord.config import DroneFeed
from accord.cot.model import CotEvent, Point
from accord.cot.xml import detail_from_xml, parse_fragment
from accord.federation import partners_file
from tests.conftest import Server, ServerFactory
from tests.e2e.clients import CotClient
from tests.e2e.test_status import status_args

ORIGIN = (46.95, 7.45)


def feed() -> DroneFeed:
    return DroneFeed(name="sim", kind="udp", address="127.0.0.1:0", org="org")


async def fly(server: Server, fleet: Fleet, seconds: float, rate_hz: float = 10.0) -> None:
    port = server.port("drone:sim")
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    start = loop.time()
    try:
        while (t := loop.time() - start) < seconds:
            for frames in fleet.frames(t):
                sock.sendto(b"".join(frames), ("127.0.0.1", port))
            await asyncio.sleep(1 / rate_hz)
    finally:
        sock.close()


def separation(event: CotEvent) -> etree._Element | None:
    root = parse_fragment(f"<detail>{event.detail.xml}</detail>")
    return root.find("__separation")


def is_alert(event: CotEvent) -> bool:
    return event.type == "b-a-o-c" and separation(event) is not None


async def test_two_own_drones_head_on_raise_an_alert_and_its_cancel(
    make_server: ServerFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    server = await make_server(drone_feeds=(feed(),))
    client = await CotClient.connect(server.port("tcp"))
    await client.expect_silence(0.1)
    fleet = Fleet(vehicles=encounter("headon", ORIGIN, meet_s=5.0, speed=30.0))
    flying = asyncio.create_task(fly(server, fleet, 16.0))
    try:
        alert = await client.recv_until(is_alert, timeout=8.0)
        mark = separation(alert)
        assert mark is not None
        assert set(mark.attrib) == {"level", "a", "b", "t_loss_s", "cpa_s", "cpa_m"}
        assert mark.get("level") in {"caution", "warning", "loss"}
        assert {mark.get("a"), mark.get("b")} == {"org.sim.1", "org.sim.2"}
        assert float(mark.get("cpa_m", "x")) < 150  # head on: they pass within metres
        assert '<emergency type="Custom">Conflict with sim-' in alert.detail.xml or (
            "Loss of separation with" in alert.detail.xml
        )
        assert 'relation="p-p"' in alert.detail.xml
        assert f'uid="{mark.get("a")}"' in alert.detail.xml
        # The level rises to a loss of separation as they meet, then the alert is cancelled.
        loss = await client.recv_until(
            lambda e: is_alert(e) and separation(e).get("level") == "loss",  # type: ignore[union-attr]
            timeout=10.0,
        )
        cancel = await client.recv_until(lambda e: e.type == "b-a-o-can", timeout=15.0)
        assert cancel.uid == alert.uid == loss.uid
        assert '<emergency cancel="true">' in cancel.detail.xml
    finally:
        flying.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await flying
    coordination = server.running.coordination
    assert coordination is not None
    assert coordination.raised["loss"] >= 1
    assert coordination.cleared >= 1
    assert not coordination.active
    code = await asyncio.to_thread(main, status_args(server))
    out = capsys.readouterr().out
    assert code == 0, out
    assert "separation 2 airborne tracks, 0 alerts shown (raised: caution " in out
    assert re.search(r"loss [1-9]\d*; [1-9]\d* cleared\)", out), out
    assert "geofences  0 in force, 0 breaches; intents 2, 0 conflicts" in out


def aircraft(uid: str, lat: float, lon: float, *, course: float, speed: float) -> CotEvent:
    """A crewed aircraft as an ADS-B gateway would send it (a client, not one of our feeds)."""
    now = int(time.time() * 1000)
    return CotEvent(
        uid=uid, type="a-n-A-C-F", how="m-g", time=now, start=now, stale=now + 10_000,
        point=Point(lat, lon, 648.0, 10.0, 10.0),
        detail=detail_from_xml(
            f'<contact callsign="N123"/><track course="{course}" speed="{speed}"/>'
        ),
    )  # fmt: skip


async def test_a_clients_aircraft_is_an_intruder_and_bad_tracks_are_dropped_and_counted(
    make_server: ServerFactory,
) -> None:
    server = await make_server(drone_feeds=(feed(),))
    client = await CotClient.connect(server.port("tcp"))
    gateway = await CotClient.connect(server.port("tcp"))
    await client.expect_silence(0.1)
    # One own drone hovering at the origin, 120 m above a home at 480 m MSL (+48 m geoid).
    (drone, _) = encounter("vertical", ORIGIN, meet_s=1000.0)
    flying = asyncio.create_task(fly(server, Fleet(vehicles=(drone,)), 12.0))
    try:
        await client.recv_until(lambda e: e.uid == "org.sim.1", timeout=5.0)
        nan = aircraft("BAD-1", ORIGIN[0], ORIGIN[1], course=90.0, speed=5000.0)
        await gateway.send(nan)
        # 2 km west, flying east at 60 m/s at the drone's height: loss in ~30 s.
        west = ORIGIN[1] - 2000 / (111_320 * 0.6833)

        async def report() -> None:
            for _ in range(20):
                await gateway.send(aircraft("ICAO-ABC", ORIGIN[0], west, course=90.0, speed=60.0))
                await asyncio.sleep(0.5)

        reporting = asyncio.create_task(report())
        alert = await client.recv_until(is_alert, timeout=8.0)
        reporting.cancel()
        mark = separation(alert)
        assert mark is not None
        assert (mark.get("a"), mark.get("b")) == ("org.sim.1", "ICAO-ABC")
        assert "Conflict with N123" in alert.detail.xml
    finally:
        flying.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await flying
    coordination = server.running.coordination
    assert coordination is not None
    assert coordination.monitor.counters.dropped["absurd speed"] >= 1
    assert "BAD-1" not in coordination.monitor.tracks


async def test_the_simulate_command_flies_an_encounter_that_raises_an_alert(
    make_server: ServerFactory,
) -> None:
    server = await make_server(drone_feeds=(feed(),))
    client = await CotClient.connect(server.port("tcp"))
    await client.expect_silence(0.1)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "accord", "drone", "simulate", "--scenario", "crossing",
        "--meet", "20", "--udp", f"127.0.0.1:{server.port('drone:sim')}", "--seconds", "6",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        alert = await client.recv_until(is_alert, timeout=10.0)
    finally:
        out, _ = await proc.communicate()
    assert proc.returncode == 0, out
    assert b"crossing: over 46.95,7.45 in 20 s (both)" in out
    mark = separation(alert)
    assert mark is not None
    assert {mark.get("a"), mark.get("b")} == {"org.sim.1", "org.sim.2"}


def zone_file(path: Path, centre: tuple[float, float], name: str) -> None:
    d = 0.001
    lat, lon = centre
    ring = [[lon - d, lat - d], [lon + d, lat - d], [lon + d, lat + d], [lon - d, lat + d]]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [{
        "type": "Feature", "properties": {"name": name, "trigger": "entry"},
        "geometry": {"type": "Polygon", "coordinates": [ring]},
    }]}))  # fmt: skip


async def test_a_zone_from_the_geojson_file_raises_a_breach_and_is_reloaded(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    zones = tmp_path / "zones.geojson"
    zone_file(zones, ORIGIN, "Airfield")
    server = await make_server(drone_feeds=(feed(),), geofence_files=(str(zones),))
    client = await CotClient.connect(server.port("tcp"))
    await client.expect_silence(0.1)
    (drone, _) = encounter("vertical", ORIGIN, meet_s=1000.0)  # hovering over the origin
    flying = asyncio.create_task(fly(server, Fleet(vehicles=(drone,)), 4.0))
    try:
        breach = await client.recv_until(lambda e: e.type == "b-a-g", timeout=5.0)
    finally:
        flying.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await flying
    assert "sim-1 entered Airfield" in breach.detail.xml
    assert 'track="org.sim.1"' in breach.detail.xml
    coordination = server.running.coordination
    assert coordination is not None
    assert coordination.breaches == 1
    # What SIGHUP does: the file is read again; a broken one changes nothing.
    zone_file(zones, (ORIGIN[0] + 1, ORIGIN[1]), "Elsewhere")
    assert coordination.load_fence_files((str(zones),))[0]
    assert [f.name for f in coordination.fences.fences.values()] == ["Elsewhere"]
    zones.write_text("{not json")
    ok, what = coordination.load_fence_files((str(zones),))
    assert not ok
    assert "zones.geojson" in what
    assert [f.name for f in coordination.fences.fences.values()] == ["Elsewhere"]


async def test_a_broken_geojson_file_refuses_the_start_naming_it(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    zones = tmp_path / "zones.geojson"
    zones.write_text('{"type": "FeatureCollection", "features": [{"geometry": 3}]}')
    with pytest.raises(StartupError, match=r"zones\.geojson: features\[0\]"):
        await make_server(geofence_files=(str(zones),))


async def test_a_drone_outside_its_own_missions_corridor_is_flagged_non_conforming(
    make_server: ServerFactory,
) -> None:
    server = await make_server(drone_feeds=(feed(),))
    client = await CotClient.connect(server.port("tcp"))
    await client.expect_silence(0.1)
    # Its mission is the 300 m square around the origin; it hovers at the centre, 300 m from
    # every leg: 250 m outside the 50 m corridor.
    (drone, _) = encounter("vertical", ORIGIN, meet_s=1000.0)
    flying = asyncio.create_task(fly(server, Fleet(vehicles=(drone,)), 4.0))
    try:
        alert = await client.recv_until(lambda e: "<__conformance" in e.detail.xml, timeout=5.0)
    finally:
        flying.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await flying
    assert alert.type == "b-a-o-c"
    mark = parse_fragment(f"<detail>{alert.detail.xml}</detail>").find("__conformance")
    assert mark is not None
    assert (mark.get("track"), mark.get("intent")) == ("org.sim.1", "org.sim.1.mission")
    assert 245 <= float(mark.get("off_m", "0")) <= 255  # the simulator's flat-earth offsets
    assert "m outside its mission corridor (sim-1 mission)" in alert.detail.xml


async def test_thresholds_agreed_with_a_partner_apply_to_its_tracks(
    make_server: ServerFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ours, theirs = tmp_path / "server0", tmp_path / "theirs"  # server0: make_server's dir
    assert main(["cert", "init", "--data-dir", str(theirs)]) == 0
    args = ["partner", "add", "org-b", "--ca", str(theirs / "pki" / "ca.pem"), "--share-all",
            "--data-dir", str(ours)]  # fmt: skip
    bad = tmp_path / "bad.toml"
    bad.write_text("horizontal_m = -5\n")
    assert main([*args, "--separation", str(bad)]) == 2
    assert "bad.toml: horizontal_m = -5 is not a number >= 0" in capsys.readouterr().err
    agreed = tmp_path / "agreed.toml"
    agreed.write_text("[separation]\nhorizontal_m = 300\nvertical_m = 60\n")
    assert main([*args, "--separation", str(agreed)]) == 0
    (partner,) = partners_file.read(ours)
    assert partner.separation == (("horizontal_m", 300.0), ("vertical_m", 60.0))
    server = await make_server()
    coordination = server.running.coordination
    assert coordination is not None
    agreed_config = coordination.monitor.partner_configs["org-b"]
    assert (agreed_config.horizontal_m, agreed_config.vertical_m) == (300.0, 60.0)
    assert coordination.monitor.config.horizontal_m == 150.0  # ours for everyone else


async def test_bad_and_excess_shapes_and_routes_are_dropped_and_counted(
    make_server: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from accord.server import coordination as module

    monkeypatch.setattr(module, "MAX_FENCES", 1)
    monkeypatch.setattr(module, "MAX_INTENTS", 1)
    server = await make_server()
    client = await CotClient.connect(server.port("tcp"))
    d = 0.001
    square = "".join(
        f'<link point="{ORIGIN[0] + n * d},{ORIGIN[1] + e * d}"/>'
        for n, e in ((-1, -1), (-1, 1), (1, 1), (1, -1))
    )
    bowtie = "".join(
        f'<link point="{ORIGIN[0] + n * d},{ORIGIN[1] + e * d}"/>'
        for n, e in ((-1, -1), (1, 1), (-1, 1), (1, -1))
    )

    def item(uid: str, kind: str, detail: str) -> CotEvent:
        now = int(time.time() * 1000)
        return CotEvent(
            uid=uid, type=kind, how="h-e", time=now, start=now, stale=now + 60_000,
            point=Point(*ORIGIN), detail=detail_from_xml(detail),
        )  # fmt: skip

    await client.send(item("F-BAD", "u-d-f", bowtie + "<__geofence/>"))
    await client.send(item("F-1", "u-d-f", square + "<__geofence/>"))
    await client.send(item("F-2", "u-d-f", square + "<__geofence/>"))
    await client.send(item("R-1", "b-m-r", square))
    await client.send(item("R-2", "b-m-r", square))
    await client.send(item("R-BAD", "b-m-r", '<link point="1,2"/>'))
    coordination = server.running.coordination
    assert coordination is not None
    async with asyncio.timeout(5):
        while sum(coordination.dropped.values()) < 4:
            await asyncio.sleep(0.05)
    assert coordination.dropped == {
        "fence: self-intersecting polygon": 1, "fence: too many fences": 1,
        "intent: too many intents": 1, "intent: fewer than 2 waypoints": 1,
    }  # fmt: skip
    assert list(coordination.fences.fences) == ["F-1"]
    assert list(coordination.intents) == ["R-1"]
