"""``accord drone simulate|replay|add|list|remove``.

``simulate`` flies ``--vehicles`` simulated vehicles (orbits and lawnmower patterns, gimbal and
camera, see :mod:`accord.bridges.simulator`) and sends their MAVLink 2 to ``--udp HOST:PORT``,
the address of a ``kind = "udp"`` drone feed; ``--scenario headon|crossing|overtaking|vertical``
flies two vehicles on a collision course instead (``--side a`` to one server, ``--side b`` to
its partner: the two servers alert each other). ``replay`` sends a ``.tlog`` there at ``--speed``.

``add``, ``list`` and ``remove`` act on a running server through its admin API, signed in with
the admin certificate of its data directory, like ``accord status``. Feeds added so are ad hoc:
they are not written to the configuration and are gone when the server restarts.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any

from accord.app.running import dial_host
from accord.bridges.simulator import SCENARIOS, Fleet, encounter
from accord.bridges.tlog import decode_tlog
from accord.cli.replay import replay
from accord.cli.status import StatusError, admin_context, admin_request, base_url
from accord.config import Config
from accord.identity.ca import PkiPaths


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT")
    return host, int(port)


def add_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    p = sub.add_parser(
        "drone",
        help="MAVLink drone feeds: add, list or remove them on a running server; simulate or "
        "replay drones",
    )
    drone = p.add_subparsers(dest="drone_command", required=True)
    sim = drone.add_parser(
        "simulate", parents=[common], help="send synthetic MAVLink 2 for N vehicles over UDP"
    )
    sim.add_argument("--vehicles", type=int, default=4, help="how many (system ids 1..N)")
    sim.add_argument(
        "--udp",
        type=_address,
        help="HOST:PORT of a udp drone feed (default: the default feed of the server running "
        "on the data directory, else 127.0.0.1:14550)",
    )
    sim.add_argument("--rate", type=float, default=10.0, help="position messages per second")
    sim.add_argument("--seconds", type=float, default=0.0, help="stop after (0 = run until ^C)")
    sim.add_argument("--origin", default="46.95,7.45", help="LAT,LON of the region's corner")
    sim.add_argument(
        "--scenario",
        choices=SCENARIOS,
        help="fly an encounter instead: two vehicles over --origin at --meet seconds (a "
        "separation alert within seconds); with --side, only one of them (two servers)",
    )
    sim.add_argument(
        "--side", choices=("a", "b", "both"), default="both",
        help="which vehicle of the --scenario pair to fly: a (system id 1), b (2) or both",
    )  # fmt: skip
    sim.add_argument("--meet", type=float, default=40.0, help="--scenario: seconds to the meeting")
    rep = drone.add_parser("replay", parents=[common], help="send a .tlog to a udp drone feed")
    rep.add_argument("file", type=Path, help="the telemetry log (.tlog)")
    rep.add_argument("--speed", type=float, default=1.0, help="times real time")
    rep.add_argument(
        "--udp",
        type=_address,
        help="HOST:PORT of a udp drone feed (default: the default feed of the server running "
        "on the data directory, else 127.0.0.1:14550)",
    )
    admin = argparse.ArgumentParser(add_help=False)
    admin.add_argument(
        "--url",
        help="its HTTPS API (default: the port in <data_dir>/running.json, else https_port)",
    )
    admin.add_argument("--timeout", type=float, default=5.0, help="seconds to wait (default 5)")
    add = drone.add_parser(
        "add",
        parents=[common, admin],
        help="start a feed on the running server (ad hoc: not written to the configuration, "
        "gone at its next start; put it in [[drone_feeds]] to keep it)",
        description="Start a MAVLink feed on the running server. The feed is ad hoc: it is "
        "not written to the configuration and is gone when the server restarts; to keep it, "
        "add a [[drone_feeds]] table to the configuration file.",
    )
    add.add_argument("name", help="unique, no dot; in uids <org>.<name>.<sysid>")
    add.add_argument("--kind", required=True, choices=FEED_KINDS, help="how to read MAVLink")
    add.add_argument("--address", help="HOST:PORT: to listen on (udp) or to reach (udpout, tcp)")
    add.add_argument("--path", help="the .tlog file (tlog), the device (serial)")
    add.add_argument("--baud", type=int, help="serial: the device's rate (default 57600)")
    add.add_argument("--speed", type=float, help="tlog replay speed (default 1)")
    add.add_argument("--org", help="first part of the uids (default accord)")
    add.add_argument("--affiliation", help="f, a, n, u, h, ... (default f)")
    add.add_argument("--callsign", help="may use {feed} and {sysid} (default {feed}-{sysid})")
    add.add_argument("--video-url", help="for <__video url> (rtsp://, srt://, ...)")
    add.add_argument("--groups", help="comma-separated groups (default __ANON__)")
    add.add_argument("--rate-hz", type=float, help="events per vehicle and second (default 2)")
    add.add_argument("--link-timeout-s", type=float, help="no heartbeat this long: link lost")
    lst = drone.add_parser("list", parents=[common, admin], help="the feeds of the running server")
    lst.add_argument("--json", action="store_true", help="print them as JSON")
    rem = drone.add_parser(
        "remove",
        parents=[common, admin],
        help="stop a feed on the running server (a configured one returns at its next start)",
    )
    rem.add_argument("name")


FEED_KINDS = ("udp", "udpout", "tcp", "tlog", "serial")
DEFAULT_DRONE_PORT = 14550  # the ground-station port (Config.drone_port)
_TABLE_KEYS = ("address", "path", "baud", "speed", "org", "affiliation", "callsign", "video_url",
               "rate_hz", "link_timeout_s")  # fmt: skip


def run(args: argparse.Namespace, config: Config) -> int:
    if args.drone_command in ("add", "list", "remove"):
        try:
            return _admin(args, config)
        except StatusError as exc:
            print(f"accord: {exc}", file=sys.stderr)
            return exc.code
    if args.udp is None:  # the server's default feed (accord.cli.datadir.with_running)
        args.udp = (dial_host(config.bind).strip("[]"), config.drone_port or DEFAULT_DRONE_PORT)
    family = socket.AF_INET6 if ":" in args.udp[0] else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if args.drone_command == "simulate":
            return _simulate(sock, args)
        return _replay(sock, args)
    finally:
        sock.close()


def _simulate(sock: socket.socket, args: argparse.Namespace) -> int:
    lat, _, lon = args.origin.partition(",")
    if args.scenario:
        pair = encounter(args.scenario, (float(lat), float(lon)), meet_s=args.meet)
        vehicles = {"a": pair[:1], "b": pair[1:], "both": pair}[args.side]
        fleet = Fleet(vehicles=vehicles)
        args.vehicles = len(vehicles)
        print(f"{args.scenario}: over {args.origin} in {args.meet:g} s ({args.side})")
    else:
        fleet = Fleet(args.vehicles, (float(lat), float(lon)))
    period = 1.0 / args.rate
    start = time.monotonic()
    sent = 0
    print(f"simulating {args.vehicles} vehicles at {args.rate:g} Hz to {args.udp[0]}:{args.udp[1]}")
    while True:
        elapsed = time.monotonic() - start
        if args.seconds and elapsed >= args.seconds:
            break
        for frames in fleet.frames(elapsed):
            sock.sendto(b"".join(frames), args.udp)
            sent += len(frames)
        time.sleep(max(0.0, start + (int(elapsed / period) + 1) * period - time.monotonic()))
    print(f"sent {sent} MAVLink messages")
    return 0


def _replay(sock: socket.socket, args: argparse.Namespace) -> int:
    records = list(decode_tlog(args.file.read_bytes()))
    if not records:
        print(f"{args.file}: no MAVLink records")
        return 1
    if args.speed <= 0:
        print("accord: error: --speed must be greater than 0", file=sys.stderr)
        return 2
    print(f"replaying {args.file} ({len(records):,} records) at {args.speed:g}x to "
          f"{args.udp[0]}:{args.udp[1]}", flush=True)  # fmt: skip
    replay(records, sock, args.udp, args.speed, sys.stdout)
    print(f"replayed {len(records)} records from {args.file}")
    return 0


def table(args: argparse.Namespace) -> dict[str, Any]:
    """The ``[[drone_feeds]]`` table the ``add`` arguments describe."""
    out: dict[str, Any] = {"name": args.name, "kind": args.kind}
    for key in _TABLE_KEYS:
        value = getattr(args, key)
        if value is not None:
            out[key] = value
    if args.groups is not None:
        out["groups"] = [g.strip() for g in args.groups.split(",") if g.strip()]
    return out


def _admin(args: argparse.Namespace, config: Config) -> int:
    url = base_url(args.url, config)
    pki = PkiPaths(config.data_dir / "pki")
    ctx = admin_context(url, pki, args.timeout)
    path = "/api/admin/drone-feeds"
    if args.drone_command == "add":
        code, body = admin_request(
            url, path, ctx, args.timeout, pki, method="POST", body=table(args), answers=(400, 409)
        )
        if code != 201:
            print(f"accord: {body.get('error', code)}", file=sys.stderr)
            return 1
        port = f" on port {body['port']}" if body.get("port") else ""
        print(f"started drone feed {body['name']} ({body['kind']} {body['where']}){port}; "
              "ad hoc: gone when the server restarts")  # fmt: skip
        return 0
    if args.drone_command == "remove":
        quoted = urllib.parse.quote(args.name, safe="")
        code, body = admin_request(
            url, f"{path}/{quoted}", ctx, args.timeout, pki, method="DELETE", answers=(404,)
        )
        if code != 200:
            print(f"accord: {body.get('error', code)}", file=sys.stderr)
            return 1
        print(f"stopped drone feed {args.name}")
        return 0
    feeds = admin_request(url, path, ctx, args.timeout, pki)[1].get("feeds", [])
    if args.json:
        json.dump(feeds, sys.stdout, indent=2)
        print()
        return 0
    if not feeds:
        print("no drone feeds")
        return 0
    rows = [("NAME", "KIND", "WHERE", "ORIGIN", "VEHICLES", "MESSAGES", "BAD", "EVENTS")]
    for f in feeds:
        c = f["counters"]
        where = f["where"] + (f" (port {f['port']})" if f.get("port") else "")
        rows.append((
            f["name"], f["kind"], where, "ad hoc" if f["adhoc"] else "config",
            f"{f['vehicles_live']}/{f['vehicles']}", str(c.get("messages", 0)),
            str(c.get("bad_data", 0) + c.get("truncated", 0)), str(c.get("events", 0)),
        ))  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    return 0
