"""DAIDALUS's alerting logic: from each sample's raw level to the level that is shown.

Per pair, at each sample (DAIDALUS ``HysteresisData`` with ``MofN``, as the corpus README
describes it):

- the first sample, a sample not later than the previous one, or one more than
  ``hysteresis_s`` after it, restarts the history: the window of the last N values is seeded
  with M copies of the current value (the rest unknown), so a level present at the first
  sample shows at once;
- the raw value enters the window; the candidate is the highest level L that at least M of
  the last N values reach;
- a level raised less than ``persistence_s`` ago is not lowered; otherwise the candidate
  is shown.

With M = N = 0 the filter is off and the raw level is shown (DAIDALUS ``uas_raw.conf``).
The state is a value: :meth:`AlertFilter.apply` returns the next one, so a sample can be taken
back and replaced by a newer one at the same instant.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from accord.geo.config import SeparationConfig

_UNKNOWN = -1


@dataclass(frozen=True, slots=True)
class AlertFilter:
    """The alerting state of one pair (use :func:`new_filter`)."""

    m: int
    n: int
    hysteresis_s: float
    persistence_s: float
    window: tuple[int, ...] = ()
    raised_at: float = math.nan  # when the shown level last went up
    last_time: float = math.nan  # the time of the last sample
    level: int = _UNKNOWN  # the level shown after the last sample

    def shown(self) -> int:
        return max(0, self.level)

    def holds(self, level: int, now_s: float) -> bool:
        """Whether ``level`` was shown at an earlier sample (its early alerting time applies)."""
        return self.last_time < now_s and self.level == level

    def _candidate(self, window: tuple[int, ...]) -> int:
        for level in range(max(window), 0, -1):
            if sum(1 for value in window if value >= level) >= self.m:
                return level
        return 0

    def apply(self, raw: int, now_s: float) -> AlertFilter:
        """The state after a sample with raw level ``raw`` (0-3) at ``now_s``."""
        state = self
        if (
            math.isnan(self.last_time)
            or now_s <= self.last_time
            or now_s - self.last_time > self.hysteresis_s
        ):
            seed = tuple(raw if i < self.m else _UNKNOWN for i in range(self.n))
            state = AlertFilter(self.m, self.n, self.hysteresis_s, self.persistence_s, seed)
        if 1 <= self.m <= self.n:
            window = (*state.window[1:], raw)
            candidate = state._candidate(window)
        else:
            window, candidate = state.window, raw
        raised_at, level = state.raised_at, state.level
        held = (
            not math.isnan(raised_at)
            and level > 0
            and candidate < level
            and 0.0 <= now_s - raised_at < self.persistence_s
        )
        if not held:
            if candidate > 0 and candidate > level:
                raised_at = now_s
            level = max(0, candidate)
        return AlertFilter(
            self.m, self.n, self.hysteresis_s, self.persistence_s, window, raised_at, now_s, level,
        )  # fmt: skip


def new_filter(config: SeparationConfig) -> AlertFilter:
    return AlertFilter(
        config.alerting_m, config.alerting_n, config.hysteresis_s, config.persistence_s
    )
