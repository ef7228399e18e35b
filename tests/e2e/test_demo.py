"""``accord demo`` end to end: the command as a user runs it, two pytak clients (one per side),
the other side's drones released under the demo's policies, and Ctrl-C that leaves nothing."""

from __future__ import annotations

import asyncio
import configparser
import os
import random
import re
import signal
import socket
import ssl
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from accord.cli import demo
from accord.cot.model import CotEvent
from accord.cot.xml import decode_xml
from accord.policy.geo import grid_cell

pytestmark = pytest.mark.timeout(150)

OFFSETS = (87, 89, 443, 446, 550, 901, 902)  # demo.Org.port offsets
READY_WAIT_S = 90.0  # generous on a shared machine; the demo itself prints its time
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "demo"


def ports_free(base: int) -> bool:
    for port in [base + o for o in OFFSETS] + [base + 1000 + o for o in OFFSETS]:
        for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
            with socket.socket(socket.AF_INET, kind) as sock:
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    return False
    return True


def listening(base: int) -> list[int]:
    """The demo's TCP ports something still accepts on."""
    found = []
    for port in [base + o for o in OFFSETS] + [base + 1000 + o for o in OFFSETS]:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                found.append(port)
    return found


def stray(base: int) -> list[str]:
    """Processes whose command line names this demo's ports."""
    mine = f"--base-port\0{base}".encode()
    left = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if mine in cmdline.read_bytes():
                left.append(cmdline.parent.name)
        except OSError:
            continue
    return left


def free_base() -> int:
    for _ in range(50):
        base = random.randrange(30000, 58000, 1000) + random.randrange(0, 9) * 10
        if ports_free(base):
            return base
    pytest.skip("no free port range for the demo")


async def pytak_reads(
    port: int, wanted: Callable[[CotEvent], bool], enough: Callable[[dict[str, CotEvent]], bool]
) -> dict[str, CotEvent]:
    """What a pytak client of one side receives that is ``wanted`` (latest per uid), once
    there is ``enough`` of it."""
    pytak = pytest.importorskip("pytak")
    parser = configparser.ConfigParser()
    parser["pytak"] = {"COT_URL": f"tcp://127.0.0.1:{port}"}
    reader, writer = await pytak.protocol_factory(parser["pytak"])
    got: dict[str, CotEvent] = {}
    try:
        async with asyncio.timeout(60):
            while not enough(got):
                frame = await reader.readuntil(b"</event>")
                if b"t-x-takp-v" in frame:
                    continue
                event = decode_xml(frame[frame.index(b"<event") :])
                if wanted(event):
                    got[event.uid] = event
    finally:
        writer.close()
    return got


async def partner_drones(port: int, partner: str, count: int) -> dict[str, CotEvent]:
    return await pytak_reads(
        port,
        lambda e: e.uid.startswith(f"{partner}.uas.") and e.type.startswith("a-f-A"),
        lambda got: len(got) >= count,
    )


async def separation_alert(port: int, partner: str) -> CotEvent:
    """A separation alert (ATAK's b-a-o-c) about a pair with one of ``partner``'s drones."""
    got = await pytak_reads(
        port,
        lambda e: e.type == "b-a-o-c" and f'partner="{partner}"' in e.detail.xml,
        lambda got: bool(got),
    )
    return next(iter(got.values()))


def test_the_example_policies_are_the_ones_the_demo_writes() -> None:
    assert (EXAMPLES / "org-a-to-org-b.toml").read_text() == demo.POLICY_A_TO_B
    assert (EXAMPLES / "org-b-to-org-a.toml").read_text() == demo.POLICY_B_TO_A


async def test_demo_federates_two_orgs_releases_under_policy_and_stops_on_ctrl_c() -> None:
    base = free_base()
    began = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "accord",
        "demo",
        "--base-port",
        str(base),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    out: list[str] = []
    rest = ""
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(READY_WAIT_S):
            while line := (await proc.stdout.readline()).decode():
                out.append(line)
                if line.startswith(demo.READY_LINE):
                    break
        text = "".join(out)
        assert demo.READY_LINE in text, text
        reported = float(re.search(r"ready in ([\d.]+) s", text).group(1))  # type: ignore[union-attr]
        here = time.monotonic() - began
        print(f"demo ready in {reported:.1f} s by its own clock, {here:.1f} s here")
        dirs = [Path(m) for m in re.findall(r"data in (\S+)", text)]
        assert len(dirs) == 2
        web = f"https://127.0.0.1:{base + 1000 + 446}/web/"
        assert web in text
        ca = ssl.create_default_context(cafile=str(dirs[1] / "pki" / "ca.pem"))
        async with httpx.AsyncClient(verify=ca, timeout=10) as http:
            signin = await http.get(web)  # the web map's sign-in page, served
            assert signin.status_code == 200
            answer = await http.post(
                f"{web}signin",
                data={"username": demo.DEMO_USER, "password": demo.DEMO_PASSWORD},
                headers={"Origin": web.removesuffix("/web/")},
            )
            assert answer.status_code == 303
            assert "accord_web" in answer.headers.get("set-cookie", "")  # signed in
        assert f"TCP 127.0.0.1:{base + 1000 + 87}" in text
        assert f"sign in: {demo.DEMO_USER} / {demo.DEMO_PASSWORD}" in text

        at_b = await partner_drones(base + 1000 + 87, "org-a", demo.VEHICLES)
        at_a = await partner_drones(base + 87, "org-b", demo.VEHICLES)
        for event in at_b.values():  # org-a -> org-b: snapped to the 100 m grid
            cell = grid_cell(event.point.lat, event.point.lon, 100)
            assert (event.point.lat, event.point.lon) == pytest.approx((cell.lat, cell.lon))
            assert event.point.ce >= 71
            assert event.detail.contact is not None
            assert event.detail.contact.callsign.startswith("[org-a] ORG-A UAS")
        # The encounter across the two: each side alerts on its drone and the other's.
        assert "<__separation" in (await separation_alert(base + 87, "org-b")).detail.xml
        assert "<__separation" in (await separation_alert(base + 1000 + 87, "org-a")).detail.xml
        # ... and org-a's first drone enters the agreed zone: a geofence breach.
        breaches = await pytak_reads(base + 87, lambda e: e.type == "b-a-g", bool)
        assert any(demo.FENCE_NAME in e.detail.xml for e in breaches.values())
        exact = [e for e in at_a.values() if e.point.ce < 71]
        assert exact  # org-b -> org-a: exact positions
        assert all(
            e.detail.contact is not None and e.detail.contact.callsign.startswith("[org-b] ")
            for e in at_a.values()
        )
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            rest = (await asyncio.wait_for(proc.communicate(), 20))[0].decode()
        except TimeoutError:
            proc.kill()
            await proc.communicate()
            raise
    assert proc.returncode == 0, "".join(out) + rest
    assert "accord demo: stopped" in rest
    assert not listening(base)  # every listener closed: nothing left serving
    assert not stray(base)  # no process of the demo is left
    assert not any(d.exists() for d in dirs)  # its temporary data is gone
