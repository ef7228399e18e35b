"""Every separation threshold, with its unit: the ``[separation]`` section of accord.toml.

The defaults are the corpus's small-UAS DAIDALUS configuration (``uas.conf``: a 150 m / 30 m
cylinder, 60 s look-ahead, caution at 45 s, warning at 25 s, DO-365B alerting logic 2 of 4,
hysteresis 5 s, persistence 4 s), plus Accord's uncertainty terms, which DAIDALUS runs without
(its sensor-uncertainty mitigation is off there).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

LEVEL_NAMES = ("caution", "warning", "loss")  # levels 1, 2, 3


class SeparationConfigError(ValueError):
    """A separation setting is wrong; the message names the key, the value and what is allowed."""


@dataclass(frozen=True, slots=True)
class SeparationConfig:
    """Thresholds of the separation core; per partner, a copy with that partner's keys replaced."""

    horizontal_m: float = 150.0  # H: radius of the cylinder two tracks must not share
    vertical_m: float = 30.0  # V: half-height of the cylinder (|dalt| <= V is inside)
    lookahead_s: float = 60.0  # how far ahead straight-line paths are compared
    caution_alerting_s: float = 45.0  # level 1 raised when loss comes sooner than this
    caution_early_alerting_s: float = 55.0  # level 1 kept while loss comes sooner than this
    warning_alerting_s: float = 25.0  # level 2 raised ...
    warning_early_alerting_s: float = 35.0  # level 2 kept ...
    loss_alerting_s: float = 0.0  # level 3: 0 = inside the cylinder now
    loss_early_alerting_s: float = 0.0
    alerting_m: int = 2  # a level shows when M of the last N samples reach it (0 and 0: off)
    alerting_n: int = 4
    hysteresis_s: float = 5.0  # no sample of a pair for longer than this: its history restarts
    persistence_s: float = 4.0  # a raised level is held at least this long
    k_sigma: float = 2.0  # CoT ce/le are 1-sigma; the volume grows by k times them
    unknown_ce_m: float = 20.0  # 1-sigma assumed for ce = 9999999 (unknown is not zero)
    unknown_le_m: float = 20.0  # 1-sigma assumed for le = 9999999
    age_accel_mps2: float = 2.0  # a report of age a grows the horizontal volume by 1/2 x this x a^2
    age_vertical_accel_mps2: float = 1.0  # ... and the vertical by 1/2 x this x a^2
    max_age_s: float = 5.0  # older: no velocity, a disc of radius speed x age
    unknown_speed_mps: float = 30.0  # a track with no usable speed is a disc growing this fast
    track_timeout_s: float = 60.0  # older: forgotten, its pairs' alerts cleared
    reevaluate_s: float = 1.0  # tick(): a pair with an alert not sampled this long is sampled
    index_speed_mps: float = 40.0  # faster tracks are kept outside the grid and checked by all

    def level_times(self) -> tuple[tuple[float, float], ...]:
        """(alerting, early alerting) time in s of levels 1, 2, 3."""
        return (
            (self.caution_alerting_s, self.caution_early_alerting_s),
            (self.warning_alerting_s, self.warning_early_alerting_s),
            (self.loss_alerting_s, self.loss_early_alerting_s),
        )

    def replace(self, values: Mapping[str, Any], source: str) -> SeparationConfig:
        """A copy with ``values`` (TOML keys) replaced, checked; errors name ``source``."""
        known = {f.name: f.type for f in fields(SeparationConfig)}
        changes: dict[str, Any] = {}
        for key, raw in values.items():
            if key not in known:
                raise SeparationConfigError(
                    f"{source}: unknown separation key {key!r}; known: {', '.join(known)}"
                )
            if known[key] == "int":
                if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
                    raise SeparationConfigError(
                        f"{source}: {key} = {raw!r} is not a whole number >= 0"
                    )
                changes[key] = raw
            else:
                if (
                    isinstance(raw, bool)
                    or not isinstance(raw, int | float)
                    or not math.isfinite(raw)
                    or raw < 0
                ):
                    raise SeparationConfigError(f"{source}: {key} = {raw!r} is not a number >= 0")
                changes[key] = float(raw)
        return dataclasses.replace(self, **changes).checked(source)

    def checked(self, source: str) -> SeparationConfig:
        """This configuration if it is consistent, else an error saying what to change."""
        for key in ("horizontal_m", "vertical_m", "lookahead_s", "index_speed_mps"):
            if getattr(self, key) <= 0:
                raise SeparationConfigError(f"{source}: {key} must be greater than 0")
        m, n = self.alerting_m, self.alerting_n
        if not (m == n == 0 or 1 <= m <= n):
            raise SeparationConfigError(
                f"{source}: alerting_m = {m}, alerting_n = {n}: need 1 <= M <= N (or both 0: off)"
            )
        for name, (alerting, early) in zip(LEVEL_NAMES, self.level_times(), strict=True):
            if early < alerting:
                raise SeparationConfigError(
                    f"{source}: {name}_early_alerting_s = {early} is below "
                    f"{name}_alerting_s = {alerting}; the early time must be at least as long"
                )
        return self


def from_mapping(values: Mapping[str, Any], source: str) -> SeparationConfig:
    """The ``[separation]`` table (or a partner's keys) over the defaults."""
    return SeparationConfig().replace(values, source)
