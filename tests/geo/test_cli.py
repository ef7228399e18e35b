"""``accord separation check``: its JSON for corpus scenarios is DAIDALUS's, bad input exits 2."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from pymavlink.dialects.v20 import ardupilotmega as mavlink

from accord.bridges.tlog import encode_record
from accord.cli import main
from accord.geo.enu import EARTH_RADIUS_M

from .corpus import CORPUS, SCENARIOS

M_PER_DEG = EARTH_RADIUS_M * math.pi / 180.0
HEADER = (
    "NAME, lat, lon, alt, trk, gs, vs, time\n"
    "unitless, [deg], [deg], [m], [deg], [m/s], [m/s], [s]\n"
)


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, list[dict[str, object]]]:
    assert main(["separation", "check", *argv, "--json"]) == 0
    out: dict[str, list[dict[str, object]]] = json.loads(capsys.readouterr().out)
    return out


def _close(a: float | None, b: float | None) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and abs(a - b) <= 1.0)


def test_json_of_every_corpus_scenario_matches_the_expected_summaries(
    capsys: pytest.CaptureFixture[str],
) -> None:
    conf = str(CORPUS / "uas.conf")
    for path in SCENARIOS:
        ours = _json(capsys, str(path), "--daidalus-conf", conf)["pairs"]
        theirs = json.loads((CORPUS / "expected" / f"{path.stem}.json").read_text())["pairs"]
        assert [(p["ownship"], p["intruder"]) for p in ours] == [
            (p["ownship"], p["intruder"]) for p in theirs
        ]
        for mine, expected in zip(ours, theirs, strict=True):
            summary = expected["summary"]
            first = mine["first_alert_s"]
            assert isinstance(first, dict)
            assert set(first) == {"1", "2", "3"}
            assert all(_close(first[k], summary["first_alert_s"][k]) for k in first), path.stem
            lowc = mine["lowc_intervals_s"]
            assert isinstance(lowc, list)
            assert len(lowc) == len(summary["lowc_intervals_s"]), path.stem
            for run, other in zip(lowc, summary["lowc_intervals_s"], strict=True):
                assert _close(run[0], other[0]), path.stem
                assert _close(run[1], other[1]), path.stem


def test_defaults_are_uas_conf_and_text_lists_alerts_with_times(
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = str(CORPUS / "scenarios" / "headon_01.daa")
    assert _json(capsys, path) == _json(capsys, path, "--daidalus-conf", str(CORPUS / "uas.conf"))
    assert main(["separation", "check", path]) == 0
    text = capsys.readouterr().out
    assert text.startswith("DroneA - DroneB:\n")
    assert "caution, loss in" in text
    assert "loss, inside now" in text
    assert "loss of separation from 55.0 s to 62.0 s" in text
    parallel = str(CORPUS / "scenarios" / "parallel_01.daa")
    assert main(["separation", "check", parallel]) == 0
    assert "no alert" in capsys.readouterr().out


def test_thresholds_from_accord_toml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    toml = tmp_path / "accord.toml"
    toml.write_text("[separation]\nhorizontal_m = 20\nvertical_m = 5\n")
    path = str(CORPUS / "scenarios" / "headon_01.daa")
    pair = _json(capsys, path, "--config", str(toml))["pairs"][0]
    assert pair["lowc_intervals_s"] == []  # a 20 m x 5 m cylinder is never entered here
    toml.write_text("[separation]\nhorizontal_m = -1\n")
    assert main(["separation", "check", path, "--config", str(toml)]) == 2
    assert "horizontal_m = -1 is not a number" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("A, nan, 68.78, 100, 90, 10, 0, 0", ":3: A: not a number"),
        ("A, 38.55, 200.0, 100, 90, 10, 0, 0", ":3: A: coordinates out of range"),
        ("A, 38.55, 68.78, 100, 90, 4000, 0, 0", ":3: A: absurd speed"),
        ("A, 38.55, 68.78, 100", ":3: 4 values for 8 columns"),
    ],
)
def test_bad_input_names_file_and_line_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], row: str, message: str
) -> None:
    path = tmp_path / "bad.daa"
    path.write_text(HEADER + row + "\n")
    assert main(["separation", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"accord: error: {path}{message}")


def test_unusable_files_and_arguments_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    daa = str(CORPUS / "scenarios" / "headon_01.daa")
    assert main(["separation", "check", str(tmp_path / "missing.daa")]) == 2
    assert "missing.daa" in capsys.readouterr().err
    assert main(["separation", "check", daa, daa]) == 2
    assert "give one .daa file, or two or more .tlog files" in capsys.readouterr().err
    one = tmp_path / "one.tlog"
    one.write_bytes(b"")
    assert main(["separation", "check", str(one)]) == 2
    assert "give two or more .tlog files" in capsys.readouterr().err
    conf = tmp_path / "bad.conf"
    conf.write_text("alerters = X\n")
    assert main(["separation", "check", daa, "--daidalus-conf", str(conf)]) == 2
    assert "bad.conf:1: alerter 'X' has levels []" in capsys.readouterr().err


def _tlog(path: Path, sysid: int, east0_m: float, east_speed: float, lat: float = 38.55) -> None:
    """A drone flying east (or west) at 120 m: HEARTBEAT and GLOBAL_POSITION_INT at 1 Hz."""
    mav = mavlink.MAVLink(None, srcSystem=sysid, srcComponent=1)
    start_us = 1_700_000_000_000_000
    data = bytearray()
    for second in range(0, 80):
        east = east0_m + east_speed * second
        lon = 68.78 + east / (M_PER_DEG * math.cos(math.radians(lat)))
        stamp = start_us + second * 1_000_000
        heartbeat = mav.heartbeat_encode(2, 3, 128 | 1, 4, 4).pack(mav)  # quadrotor, ArduPilot
        position = mav.global_position_int_encode(
            second * 1000, int(lat * 1e7), int(lon * 1e7), 120_000, 120_000,
            0, int(east_speed * 100), 0, 9000 if east_speed > 0 else 27000,
        ).pack(mav)  # fmt: skip
        data += encode_record(stamp, heartbeat) + encode_record(stamp + 1000, position)
    path.write_bytes(bytes(data))


def test_two_tlogs_are_replayed_through_the_mavlink_bridge(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = tmp_path / "alpha.tlog", tmp_path / "bravo.tlog"
    _tlog(a, 1, 0.0, 10.0)
    _tlog(b, 2, 1500.0, -10.0)
    pairs = _json(capsys, str(a), str(b))["pairs"]
    assert [(p["ownship"], p["intruder"]) for p in pairs] == [("alpha.1", "bravo.2")]
    first = pairs[0]["first_alert_s"]
    assert isinstance(first, dict)
    # 1500 m apart closing at 20 m/s: inside from (1500 - 150) / 20 = 67.5 s
    assert first["3"] is not None
    assert 67.0 <= first["3"] <= 70.0
    assert first["1"] is not None
    assert first["1"] < first["2"] < first["3"]


def test_tlogs_without_positions_or_with_one_vehicle_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b, empty = tmp_path / "a.tlog", tmp_path / "b.tlog", tmp_path / "empty.tlog"
    _tlog(a, 1, 0.0, 10.0)
    empty.write_bytes(b"")
    assert main(["separation", "check", str(a), str(empty)]) == 2
    assert "empty.tlog: no vehicle position in this log" in capsys.readouterr().err
    b.write_bytes(a.read_bytes())  # the same vehicle in a second file name
    assert main(["separation", "check", str(a), str(a)]) == 2
    assert "only one vehicle (a.1)" in capsys.readouterr().err


def test_a_tlog_position_out_of_range_names_the_record(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = tmp_path / "a.tlog", tmp_path / "b.tlog"
    _tlog(a, 1, 0.0, 10.0)
    _tlog(b, 2, 1500.0, -10.0)
    mav = mavlink.MAVLink(None, srcSystem=2, srcComponent=1)
    high = mav.global_position_int_encode(
        0, int(38.55e7), int(68.79e7), 40_000_000, 120_000, 0, 1000, 0, 9000
    ).pack(mav)  # 40 km up
    b.write_bytes(b.read_bytes() + encode_record(1_700_000_100_000_000, high))
    assert main(["separation", "check", str(a), str(b)]) == 2
    assert "b.tlog: record 161: b.2: altitude out of range" in capsys.readouterr().err
