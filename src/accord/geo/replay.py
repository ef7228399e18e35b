"""Replaying an encounter through the monitor, faster than real time, into DAIDALUS's summary.

The result has the names and shape of the corpus's ``expected/`` summaries: per pair the first
sample at which each level is shown (``first_alert_s``, None = never) and the runs of samples
inside the volume (``lowc_intervals_s``, inclusive sample times), plus every change of the shown
level, for people.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from accord.geo.config import LEVEL_NAMES, SeparationConfig
from accord.geo.encounter import Encounter
from accord.geo.monitor import SeparationMonitor, pair_key
from accord.geo.track import Track


@dataclass(slots=True)
class PairResult:
    ownship: str
    intruder: str
    first_alert_s: dict[str, float | None] = field(
        default_factory=lambda: {"1": None, "2": None, "3": None}
    )
    lowc_intervals_s: list[list[float]] = field(default_factory=list)
    changes: list[tuple[float, int, Encounter]] = field(default_factory=list)  # time, level, why
    steps: list[tuple[float, int, float | None]] = field(default_factory=list)  # time, level, t_in
    _inside: bool = False

    def summary(self) -> dict[str, object]:
        return {
            "ownship": self.ownship,
            "intruder": self.intruder,
            "first_alert_s": dict(self.first_alert_s),
            "lowc_intervals_s": [list(run) for run in self.lowc_intervals_s],
        }

    def describe(self) -> list[str]:
        """Lines for people: each change of the shown level, then the losses of separation."""
        lines = [f"{self.ownship} - {self.intruder}:"]
        for time_s, level, enc in self.changes:
            name = LEVEL_NAMES[level - 1] if level else "clear"
            if enc.t_in_s is None:
                ahead = ""
            else:
                ahead = ", inside now" if enc.loss else f", loss in {enc.t_in_s:.1f} s"
            lines.append(
                f"  {time_s:7.1f} s  {name}{ahead}, CPA {enc.cpa_m:.0f} m in {enc.cpa_s:.1f} s"
                f" (now {enc.horizontal_m:.0f} m apart, {enc.vertical_m:.0f} m vertically)"
            )
        if not self.changes:
            lines.append("  no alert")
        for start, end in self.lowc_intervals_s:
            lines.append(f"  loss of separation from {start:.1f} s to {end:.1f} s")
        return lines

    def _record(self, encounter: Encounter, level: int) -> None:
        time_s = encounter.time_s
        self.steps.append((time_s, level, encounter.t_in_s))
        for shown in range(1, level + 1):
            if self.first_alert_s[str(shown)] is None:
                self.first_alert_s[str(shown)] = time_s
        if encounter.loss:
            if self._inside:
                self.lowc_intervals_s[-1][1] = time_s
            else:
                self.lowc_intervals_s.append([time_s, time_s])
        self._inside = encounter.loss


def replay(
    steps: Iterable[tuple[float, Sequence[Track]]],
    aircraft: Sequence[str],
    config: SeparationConfig,
) -> list[PairResult]:
    """Feed each step (its states as one batch) and summarise every pair of ``aircraft``.

    Pairs are named in the order of ``aircraft`` (A-B, A-C, B-C), the first as the ownship.
    """
    monitor = SeparationMonitor(config)
    results = {frozenset((a, b)): PairResult(a, b) for a, b in itertools.combinations(aircraft, 2)}
    for now_s, states in steps:
        changes = {change.pair: change for change in monitor.update_many(states, now_s)}
        updated = {state.uid for state in states}
        for pair, result in results.items():
            if not pair & updated:
                continue
            a, b = tuple(pair)
            encounter = monitor.encounter(a, b)
            if encounter is None or encounter.time_s != now_s:
                result._inside = False  # too far apart to be followed: level 0, not inside
                result.steps.append((now_s, 0, None))
                continue
            level = monitor.level(a, b)
            if pair_key(a, b) in changes:
                result.changes.append((now_s, level, encounter))
            result._record(encounter, level)
    return list(results.values())
