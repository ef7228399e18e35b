"""``accord separation check FILE... [--config accord.toml | --daidalus-conf uas.conf] [--json]``

Replays an encounter through the separation core faster than real time and prints each pair's
alerts with their times: one DAIDALUS ``.daa`` file, or two or more ``.tlog`` files (each
read through the MAVLink bridge; their clocks are taken as one). The thresholds come from
accord.toml's ``[separation]`` section, from a DAIDALUS ``.conf`` (so the two can be compared
directly), or the defaults (the corpus's ``uas.conf``). ``--json`` prints the shape of the
corpus's ``expected/`` summaries. Bad input exits 2 with ``file:line: why``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path

from accord.bridges.mavlink import MavlinkBridge
from accord.bridges.tlog import decode_tlog
from accord.bridges.uas import FeedSettings
from accord.config import ConfigError, load
from accord.geo.config import SeparationConfig
from accord.geo.daidalus import DaidalusError, decode_conf, decode_daa
from accord.geo.replay import replay
from accord.geo.track import Track, track_problem

EXIT_USAGE = 2
US_PER_S = 1_000_000


class InputError(Exception):
    """A file cannot be replayed; the message names it (and the line or record)."""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("separation", help="replay an encounter through the separation alerts")
    verbs = p.add_subparsers(dest="separation_command", required=True)
    check = verbs.add_parser(
        "check", help="replay a .daa file or .tlog files and print each pair's alerts"
    )
    check.add_argument("files", type=Path, nargs="+", help="one .daa file, or 2+ .tlog files")
    source = check.add_mutually_exclusive_group()
    source.add_argument("--config", type=Path, help="accord.toml: its [separation] section")
    source.add_argument("--daidalus-conf", type=Path, help="a DAIDALUS .conf, e.g. uas.conf")
    check.add_argument("--json", action="store_true", help="print the summaries as JSON")


def _thresholds(args: argparse.Namespace) -> SeparationConfig:
    if args.daidalus_conf is not None:
        path: Path = args.daidalus_conf
        return decode_conf(path.read_text(encoding="utf-8", errors="replace"), str(path))
    if args.config is not None:
        return load(args.config).separation
    return SeparationConfig()


def _tlog_tracks(path: Path) -> list[tuple[int, Track]]:
    """(time in us, track) for every position report in one log, through the bridge."""
    bridge = MavlinkBridge(FeedSettings(name=path.stem, rate_hz=0.0))
    out: list[tuple[int, Track]] = []
    for number, record in enumerate(decode_tlog(path.read_bytes()), start=1):
        now_ms = record.time_us // 1000
        bridge.receive_data(record.frame, now_ms)
        for vehicle in bridge.vehicles.values():
            if vehicle.position_ms != now_ms or vehicle.lat is None or vehicle.lon is None:
                continue
            slope = vehicle.slope or 0.0
            speed = vehicle.speed
            climb = speed * math.tan(math.radians(slope)) if speed and abs(slope) < 89 else 0.0
            track = Track(
                uid=f"{path.stem}.{vehicle.sysid}",
                time_s=record.time_us / US_PER_S,
                lat_deg=vehicle.lat,
                lon_deg=vehicle.lon,
                alt_m=vehicle.msl_m if vehicle.msl_m is not None else math.nan,
                track_deg=vehicle.course,
                speed_mps=speed,
                vertical_speed_mps=climb,
                own=True,
            )
            problem = track_problem(track)
            if problem is not None:
                raise InputError(f"{path}: record {number}: {track.uid}: {problem}")
            out.append((record.time_us, track))
        bridge.take()
    if not out:
        raise InputError(f"{path}: no vehicle position in this log (GLOBAL_POSITION_INT)")
    return out


def _from_tlogs(paths: Sequence[Path]) -> tuple[list[tuple[float, list[Track]]], list[str]]:
    reports = sorted(
        (item for path in paths for item in _tlog_tracks(path)), key=lambda item: item[0]
    )
    start_us = reports[0][0]
    steps: list[tuple[float, list[Track]]] = []
    aircraft: list[str] = []
    for time_us, track in reports:
        time_s = (time_us - start_us) / US_PER_S
        moved = dataclasses.replace(track, time_s=time_s)
        if steps and steps[-1][0] == time_s:
            steps[-1][1][:] = [t for t in steps[-1][1] if t.uid != moved.uid]
            steps[-1][1].append(moved)
        else:
            steps.append((time_s, [moved]))
        if moved.uid not in aircraft:
            aircraft.append(moved.uid)
    if len(aircraft) < 2:
        raise InputError(f"{', '.join(map(str, paths))}: only one vehicle ({aircraft[0]})")
    return steps, aircraft


def _check(args: argparse.Namespace) -> int:
    config = _thresholds(args)
    files: list[Path] = args.files
    if all(path.suffix == ".tlog" for path in files):
        if len(files) < 2:
            raise InputError(f"{files[0]}: give two or more .tlog files (one per aircraft)")
        steps, aircraft = _from_tlogs(files)
        results = replay(steps, aircraft, config)
    elif len(files) == 1:
        path = files[0]
        scenario = decode_daa(path.read_text(encoding="utf-8", errors="replace"), str(path))
        results = replay(scenario.steps, scenario.aircraft, config)
    else:
        raise InputError("give one .daa file, or two or more .tlog files")
    if args.json:
        print(json.dumps({"pairs": [result.summary() for result in results]}, indent=2))
    else:
        for result in results:
            print("\n".join(result.describe()))
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        return _check(args)
    except (InputError, DaidalusError, ConfigError) as exc:
        print(f"accord: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"accord: error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
