"""``accord demo``: two organisations on this machine, federated, with drones in the air.

Two servers in this process, each with its own data directory (under ``--dir``, default a
fresh temporary one, removed at the end) and loopback ports that do not clash with a default
``accord serve`` (org-a from ``--base-port``, org-b 1000 above it). org-a dials org-b; each
releases to the other under the example policies in ``examples/demo/`` (org-a coarsens to a
100 m grid, org-b releases exact positions). Each flies simulated drones (the engine of
``accord drone simulate``) into its own MAVLink feed, over one shared region, on overlapping
courses. The ready line comes when a client of each side sees the other side's drones move;
it gives the time since the command started. Ctrl-C (or SIGTERM) stops everything.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509

from accord.app import Running, start
from accord.bridges.simulator import Fleet, encounter
from accord.config import Config, DroneFeed
from accord.cot.connection import StreamConnection
from accord.cot.model import CotEvent
from accord.cot.negotiation import Role
from accord.domain.groups import Membership
from accord.domain.partners import Partner
from accord.federation.trust import fingerprint
from accord.identity.pki import ensure_pki
from accord.identity.users import UserStore

DEMO_USER = "demo"
DEMO_PASSWORD = "accord-demo"  # made for the demo only; each run's data is new
BASE_PORT = 28000  # org-a's ports are BASE_PORT + the default's last digits; org-b +1000
REGION = (39.10, -108.62)  # one shared region: both fleets fly over it
FLEET_OFFSET_DEG = (0.0, 0.005)  # org-b's fleet ~430 m east of org-a's: orbits that cross
VEHICLES = 3  # per organisation
SIM_RATE_HZ = 5.0  # MAVLink position messages per vehicle and second
# One pair across the two orgs on crossing courses: a separation alert on both sides (and each
# side's view of the other's), every ENCOUNTER_PERIOD_S.
ENCOUNTER = "crossing"
ENCOUNTER_POINT = (REGION[0] - 0.004, REGION[1] + 0.0025)  # south of the orbits, between them
ENCOUNTER_MEET_S = 30.0
ENCOUNTER_PERIOD_S = 90.0
# An agreed restricted zone (both servers load it: geofence_files) on the orbit of org-a's
# first drone, which enters it about 16 s after the start and once per orbit after that.
FENCE_BOX_DEG = ((-0.0018, 0.0025), (-0.0002, 0.0042))  # (south, west), (north, east) offsets
FENCE_NAME = "Restricted (demo)"
READY_TIMEOUT_S = 60.0  # the target: tracks moving on both sides within this
READY_LINE = "accord demo: ready"

# What org-a releases to org-b: drones and ground SA, snapped to a 100 m grid.
POLICY_A_TO_B = """\
# accord demo: what org-a releases to org-b (written to <dir>/org-a/ by `accord demo`).
# Drones and ground units, both snapped to a 100 m grid (ce raised to >= 71 m), and
# separation alerts; nothing else.
name = "org-a->org-b/demo"
partner = "org-b"

[[rule]]
name = "drones"
types = ["a-f-A*"]
grid_m = 100
altitude_m = 10

[[rule]]
name = "ground-sa"
types = ["a-f-G*"]
grid_m = 100

[[rule]]
name = "alerts"
types = ["b-a-*", "u-d-c-c", "t-x-d-d"]

[[rule]]
name = "everything-else"
action = "withhold"
"""

# What org-b releases to org-a: drones and ground SA at full precision.
POLICY_B_TO_A = """\
# accord demo: what org-b releases to org-a (written to <dir>/org-b/ by `accord demo`).
# Drones and ground units at full precision, and separation alerts; nothing else.
name = "org-b->org-a/demo"
partner = "org-a"

[[rule]]
name = "drones"
types = ["a-f-A*"]

[[rule]]
name = "ground-sa"
types = ["a-f-G*"]

[[rule]]
name = "alerts"
types = ["b-a-*", "u-d-c-c", "t-x-d-d"]

[[rule]]
name = "everything-else"
action = "withhold"
"""


@dataclass
class Org:
    name: str
    base: int  # its ports: base + 87 (TCP), + 89 (TLS), + 443/446 (HTTPS), + 901/902, + 550
    data_dir: Path
    policy: str
    origin: tuple[float, float]
    side: int  # which vehicle of the encounter pair it flies: 0 or 1
    ca_file: Path | None = None
    ca_sha256: str = ""
    running: Running | None = None

    def port(self, offset: int) -> int:
        return self.base + offset

    def fleet(self) -> Fleet:
        return Fleet(VEHICLES, self.origin)

    def encounter(self) -> Fleet:
        """Its half of the encounter, over ENCOUNTER_POINT ENCOUNTER_MEET_S from now."""
        pair = encounter(
            ENCOUNTER, ENCOUNTER_POINT, meet_s=ENCOUNTER_MEET_S, sysids=(VEHICLES + 1, VEHICLES + 2)
        )
        return Fleet(vehicles=(pair[self.side],))


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "demo",
        help="two federated organisations on this machine with simulated drones (Ctrl-C stops)",
    )
    p.add_argument("--dir", type=Path, help="keep the demo's data here (default: a temp dir)")
    p.add_argument(
        "--base-port",
        type=int,
        default=BASE_PORT,
        help=f"org-a's ports start here, org-b's 1000 above (default {BASE_PORT})",
    )


def process_age_s() -> float:
    """How long ago this process started (Linux ``/proc``; 0 elsewhere): the demo's time is
    measured from the command, interpreter start and imports included."""
    try:
        stat = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return max(0.0, uptime - int(stat[19]) / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return 0.0


def run(args: argparse.Namespace) -> int:
    began = time.monotonic() - process_age_s()
    temporary = args.dir is None
    root = Path(tempfile.mkdtemp(prefix="accord-demo-")) if temporary else args.dir
    try:
        return asyncio.run(_demo(root, args.base_port, began))
    finally:
        if temporary:
            shutil.rmtree(root, ignore_errors=True)


def _orgs(root: Path, base: int) -> tuple[Org, Org]:
    east = (REGION[0] + FLEET_OFFSET_DEG[0], REGION[1] + FLEET_OFFSET_DEG[1])
    a = Org("org-a", base, root / "org-a", POLICY_A_TO_B, REGION, 0)
    b = Org("org-b", base + 1000, root / "org-b", POLICY_B_TO_A, east, 1)
    now = dt.datetime.now(dt.UTC)
    for org in (a, b):
        paths = ensure_pki(org.data_dir / "pki", ("localhost", "127.0.0.1"), now)
        org.ca_file = paths.ca_cert
        org.ca_sha256 = fingerprint(x509.load_pem_x509_certificate(paths.ca_cert.read_bytes()))
        other = "org-b" if org is a else "org-a"
        (org.data_dir / f"policy-to-{other}.toml").write_text(org.policy, encoding="utf-8")
        (org.data_dir / "geofences.geojson").write_text(json.dumps(_fence()), encoding="utf-8")
        users = UserStore(org.data_dir)
        if users.get(DEMO_USER) is None:
            users.add(DEMO_USER, DEMO_PASSWORD, Membership.both(["__ANON__"]), now_ms=0)
    return a, b


def _fence() -> dict[str, Any]:
    (south, west), (north, east) = (
        (REGION[0] + lat, REGION[1] + lon) for lat, lon in FENCE_BOX_DEG
    )
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    return {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"name": FENCE_NAME, "trigger": "entry"},
                "geometry": {"type": "Polygon", "coordinates": [ring]},
            }
        ],
    }


def _config(org: Org, other: Org, dial: bool) -> Config:
    partner = Partner(
        name=other.name,
        ca_sha256=other.ca_sha256,
        ca_file=str(other.ca_file),
        address=f"127.0.0.1:{other.port(901)}" if dial else "",
        callsign_prefix=f"[{other.name}] ",
        policy_file=str(org.data_dir / f"policy-to-{other.name}.toml"),
    )
    feed = DroneFeed(
        name="uas",
        kind="udp",
        address=f"127.0.0.1:{org.port(550)}",
        org=org.name,
        callsign=f"{org.name.upper()} UAS {{sysid}}",
    )
    return Config(
        data_dir=org.data_dir,
        bind="127.0.0.1",
        tcp_port=org.port(87),
        tls_port=org.port(89),
        https_port=org.port(443),
        udp_port=0,
        http_port=0,
        enroll_port=org.port(446),
        metrics_port=0,
        drone_port=0,
        federation_port=org.port(901),
        federation_files_port=org.port(902),
        federation_name=org.name,
        server_names=("localhost", "127.0.0.1"),
        partners=(partner,),
        drone_feeds=(feed,),
        geofence_files=(str(org.data_dir / "geofences.geojson"),),
        archive=False,
    )


async def _fly(org: Org) -> None:
    """Send the org's simulated fleet to its MAVLink feed, as ``accord drone simulate``."""
    fleet, pair = org.fleet(), org.encounter()
    target = ("127.0.0.1", org.port(550))
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    begun = paired = time.monotonic()
    try:
        while True:
            now = time.monotonic()
            if now - paired >= ENCOUNTER_PERIOD_S:  # fly the encounter again
                pair, paired = org.encounter(), now
            for frames in fleet.frames(now - begun) + pair.frames(now - paired):
                sock.sendto(b"".join(frames), target)
            await asyncio.sleep(1.0 / SIM_RATE_HZ)
    finally:
        sock.close()


async def _sees_partner_drones_move(org: Org, partner: str) -> None:
    """Return once a plain TCP client of ``org`` has seen one of ``partner``'s drones at two
    different positions: what a map shows as a moving track."""
    reader, writer = await asyncio.open_connection("127.0.0.1", org.port(87))
    conn = StreamConnection(Role.CLIENT)
    seen: dict[str, tuple[float, float]] = {}
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                raise ConnectionError(f"{org.name} closed the demo's watching client")
            conn.receive_data(data, time.monotonic())
            while isinstance(event := conn.next_event(), CotEvent):
                if not (event.uid.startswith(f"{partner}.") and event.type.startswith("a-f-A")):
                    continue
                where = (event.point.lat, event.point.lon)
                if seen.setdefault(event.uid, where) != where:
                    return
    finally:
        writer.close()


def _banner(a: Org, b: Org, ready_s: float | None) -> str:
    lines = []
    for org in (a, b):
        lines += [
            f"{org.name}: data in {org.data_dir}",
            f"  web map     https://127.0.0.1:{org.port(446)}/web/  (sign in: {DEMO_USER} / "
            f"{DEMO_PASSWORD}; the browser warns: the demo's own CA made the certificate)",
            f"  admin pages https://127.0.0.1:{org.port(443)}/web/ with the client certificate "
            f"{org.data_dir / 'pki' / 'admin.pem'} (and admin.key) in the browser",
            f"  ATAK        TCP 127.0.0.1:{org.port(87)} (no certificate), or SSL "
            f"127.0.0.1:{org.port(89)} with the package from: accord package {DEMO_USER} "
            f"--data-dir {org.data_dir} --host <this machine's address>",
            f"  status      accord status --data-dir {org.data_dir}",
        ]
    lines.append(
        "org-a releases to org-b on a 100 m grid; org-b releases exact positions to org-a. "
        f"{a.name.upper()} UAS {VEHICLES + 1} and {b.name.upper()} UAS {VEHICLES + 2} cross "
        f"{ENCOUNTER_MEET_S:g} s in (a separation alert on both sides), again every "
        f"{ENCOUNTER_PERIOD_S:g} s. {a.name.upper()} UAS 1 enters the agreed zone "
        f"'{FENCE_NAME}' (a geofence breach) once per orbit."
    )
    if ready_s is not None:
        lines.append(f"{READY_LINE} in {ready_s:.1f} s: tracks moving on both sides. Ctrl-C stops.")
    else:
        lines.append(f"accord demo: no moving partner tracks within {READY_TIMEOUT_S:g} s")
    return "\n".join(lines)


async def _demo(root: Path, base: int, began: float) -> int:
    a, b = _orgs(root, base)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    tasks: list[asyncio.Task[None]] = []
    try:
        b.running = await start(_config(b, a, dial=False))
        a.running = await start(_config(a, b, dial=True))
        watchers = [
            asyncio.ensure_future(_sees_partner_drones_move(a, b.name)),
            asyncio.ensure_future(_sees_partner_drones_move(b, a.name)),
        ]
        tasks += [asyncio.create_task(_fly(a)), asyncio.create_task(_fly(b))]
        waited = asyncio.gather(*watchers)
        ready: float | None = None
        try:
            await asyncio.wait_for(
                asyncio.shield(waited), max(1.0, READY_TIMEOUT_S - (time.monotonic() - began))
            )
            ready = time.monotonic() - began
        except TimeoutError:
            waited.cancel()
        print(_banner(a, b, ready), flush=True)
        await stop.wait()
        print("accord demo: stopping", flush=True)
        return 0 if ready is not None else 1
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for org in (a, b):
            if org.running is not None:
                await org.running.close(grace_s=1.0)
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        print("accord demo: stopped", file=sys.stderr, flush=True)
