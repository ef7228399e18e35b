"""``accord drone simulate|replay``: synthetic or recorded MAVLink sent to a drone feed over UDP.

``simulate`` flies ``--vehicles`` simulated vehicles (orbits and lawnmower patterns, gimbal and
camera, see :mod:`accord.bridges.simulator`) and sends their MAVLink 2 to ``--udp HOST:PORT``,
the address of a ``kind = "udp"`` drone feed. ``replay`` sends a ``.tlog`` there at ``--speed``.
"""

from __future__ import annotations

import argparse
import socket
import time
from pathlib import Path

from accord.bridges.simulator import Fleet
from accord.bridges.tlog import decode_tlog
from accord.config import Config


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT")
    return host, int(port)


def add_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    p = sub.add_parser("drone", parents=[common], help="simulate or replay MAVLink drones")
    drone = p.add_subparsers(dest="drone_command", required=True)
    sim = drone.add_parser("simulate", help="send synthetic MAVLink 2 for N vehicles over UDP")
    sim.add_argument("--vehicles", type=int, default=4, help="how many (system ids 1..N)")
    sim.add_argument("--udp", type=_address, required=True, help="HOST:PORT of a udp drone feed")
    sim.add_argument("--rate", type=float, default=10.0, help="position messages per second")
    sim.add_argument("--seconds", type=float, default=0.0, help="stop after (0 = run until ^C)")
    sim.add_argument("--origin", default="46.95,7.45", help="LAT,LON of the region's corner")
    rep = drone.add_parser("replay", help="send a .tlog to a udp drone feed")
    rep.add_argument("file", type=Path, help="the telemetry log (.tlog)")
    rep.add_argument("--speed", type=float, default=1.0, help="times real time")
    rep.add_argument("--udp", type=_address, required=True, help="HOST:PORT of a udp drone feed")


def run(args: argparse.Namespace, config: Config) -> int:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        if args.drone_command == "simulate":
            return _simulate(sock, args)
        return _replay(sock, args)
    finally:
        sock.close()


def _simulate(sock: socket.socket, args: argparse.Namespace) -> int:
    lat, _, lon = args.origin.partition(",")
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
    start, first = time.monotonic(), records[0].time_us
    for record in records:
        delay = start + (record.time_us - first) / 1e6 / args.speed - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        sock.sendto(record.frame, args.udp)
    print(f"replayed {len(records)} records from {args.file}")
    return 0
