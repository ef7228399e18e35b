"""Oracle: every pair of every corpus scenario, replayed through the monitor, against DAIDALUS.

Criteria (issue 14): ``first_alert_s`` per level within 1 s, ``lowc_intervals_s`` within 1 s,
with ``uas.conf``'s thresholds read from the file. Stricter checks on top: the per-step levels
equal DAIDALUS's ``level`` (uas.conf) and ``raw_level`` (uas_raw.conf) away from a threshold,
and ``t_in`` is within 0.05 s of its ``time_to_violation_s``. Nothing here is per scenario.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from accord.geo.config import SeparationConfig
from accord.geo.daidalus import decode_conf, decode_daa
from accord.geo.replay import PairResult, replay
from accord.geo.track import Track

from .corpus import CORPUS, SCENARIOS

TOLERANCE_S = 1.0
BOUNDARY_S = 0.01  # a t_in this close to a threshold may fall either side of it


def _config(name: str) -> SeparationConfig:
    return decode_conf((CORPUS / name).read_text(), name)


def _run(path: Path, config: SeparationConfig) -> dict[tuple[str, str], PairResult]:
    scenario = decode_daa(path.read_text(), path.name)
    return {(r.ownship, r.intruder): r for r in replay(scenario.steps, scenario.aircraft, config)}


def _expected(path: Path) -> list[dict[str, Any]]:
    pairs: list[dict[str, Any]] = json.loads(
        (CORPUS / "expected" / f"{path.stem}.json").read_text()
    )["pairs"]
    return pairs


def _near_threshold(t_in: float | None, config: SeparationConfig) -> bool:
    if t_in is None:
        return False
    limits = {t for pair in config.level_times() for t in pair}
    return any(abs(t_in - limit) <= BOUNDARY_S for limit in limits)


def test_the_corpus_is_there() -> None:
    assert len(SCENARIOS) == 60


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_first_alerts_and_losses_match_daidalus(path: Path) -> None:
    results = _run(path, _config("uas.conf"))
    for pair in _expected(path):
        ours = results[(pair["ownship"], pair["intruder"])].summary()
        theirs = pair["summary"]
        for level in ("1", "2", "3"):
            a, b = ours["first_alert_s"][level], theirs["first_alert_s"][level]
            assert (a is None) == (b is None), (pair["intruder"], level, a, b)
            if a is not None:
                assert abs(a - b) <= TOLERANCE_S, (pair["intruder"], level, a, b)
        ours_lowc, theirs_lowc = ours["lowc_intervals_s"], theirs["lowc_intervals_s"]
        assert len(ours_lowc) == len(theirs_lowc)
        for (a0, a1), (b0, b1) in zip(ours_lowc, theirs_lowc, strict=True):
            assert abs(a0 - b0) <= TOLERANCE_S
            assert abs(a1 - b1) <= TOLERANCE_S


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_every_step_matches_daidalus_levels_and_time_to_violation(path: Path) -> None:
    alerting, raw = _config("uas.conf"), _config("uas_raw.conf")
    with_logic, without = _run(path, alerting), _run(path, raw)
    for pair in _expected(path):
        key = (pair["ownship"], pair["intruder"])
        steps = pair["steps"]
        for i, (time_s, level, t_in) in enumerate(with_logic[key].steps):
            expected_t_in = steps["time_to_violation_s"][i]
            assert (t_in is None) == (expected_t_in is None), (key, time_s)
            if t_in is not None:
                assert abs(t_in - expected_t_in) <= 0.05, (key, time_s)
            if not _near_threshold(expected_t_in, alerting):
                assert level == steps["level"][i], (key, time_s)
                assert without[key].steps[i][1] == steps["raw_level"][i], (key, time_s)


def test_a_pair_is_sampled_only_at_steps_where_one_of_its_aircraft_reports() -> None:
    a = Track("A", 0.0, 38.55, 68.78, 100.0, 90.0, 10.0, own=True)
    b = Track("B", 0.0, 38.55, 68.781, 100.0, 270.0, 10.0, own=True)
    c = Track("C", 0.5, 38.60, 68.78, 100.0, 0.0, 10.0, own=True)
    steps = [(0.0, [a, b]), (0.5, [c]), (1.0, [dataclasses.replace(a, time_s=1.0)])]
    results = {
        (r.ownship, r.intruder): r for r in replay(steps, ["A", "B", "C"], SeparationConfig())
    }
    assert [t for t, _, _ in results[("A", "B")].steps] == [0.0, 1.0]
    # B reports before C is known, then C: two samples, both level 0 (5.5 km apart)
    assert results[("B", "C")].steps == [(0.0, 0, None), (0.5, 0, None)]
    assert results[("A", "B")].summary()["first_alert_s"] == {"1": 0.0, "2": 0.0, "3": 0.0}
    assert results[("B", "C")].describe() == ["B - C:", "  no alert"]
