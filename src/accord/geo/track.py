"""A track: one aircraft's last reported state, and the checks it must pass to be compared.

Bad input is named, not guessed at: :func:`track_problem` says what is wrong with a track (NaN,
a coordinate out of range, an absurd speed), and the monitor drops such a track and counts the
reason. Unknown values are kept as unknown: ``speed_mps`` or ``track_deg`` of None (or the CoT
sentinel 9999999) is "velocity unknown", ``ce_m``/``le_m`` of 9999999 is "error unknown", and
None there means the source gives none (the DAIDALUS corpus): the bare cylinder.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

UNKNOWN_THRESHOLD = 999_999.0  # CoT writes 9999999 (ATAK) or 999999 (TAK Server) for unknown
MAX_SPEED_MPS = 350.0  # faster than any aircraft below the flight levels is a bad report
MAX_VERTICAL_SPEED_MPS = 150.0
MIN_ALT_M = -1_000.0  # below the Dead Sea shore with margin
MAX_ALT_M = 30_000.0
MAX_ERROR_M = 100_000.0  # a known ce/le/precision beyond this is no position at all


@dataclass(frozen=True, slots=True)
class Track:
    """Where one aircraft was at ``time_s``: WGS-84 degrees, altitude and errors in metres.

    ``own``: one of this server's aircraft (its pairs with every other track are watched).
    ``precision_m``: a partner released this position coarsened to within this many metres
    (``<__release precision_m>``); it replaces ``ce_m``, which the coarsening inflated.
    """

    uid: str
    time_s: float
    lat_deg: float
    lon_deg: float
    alt_m: float
    track_deg: float | None = None
    speed_mps: float | None = None
    vertical_speed_mps: float = 0.0
    ce_m: float | None = None
    le_m: float | None = None
    precision_m: float | None = None
    own: bool = False

    @property
    def velocity_known(self) -> bool:
        return (
            self.track_deg is not None
            and self.speed_mps is not None
            and self.speed_mps < UNKNOWN_THRESHOLD
            and self.track_deg < UNKNOWN_THRESHOLD
        )


def _bad(value: float | None) -> bool:
    return value is not None and not math.isfinite(value)


def track_problem(track: Track) -> str | None:
    """Why this track cannot be compared (a short reason, also a metric label), or None."""
    numbers = (
        track.time_s,
        track.lat_deg,
        track.lon_deg,
        track.alt_m,
        track.track_deg,
        track.speed_mps,
        track.vertical_speed_mps,
        track.ce_m,
        track.le_m,
        track.precision_m,
    )
    if any(_bad(value) for value in numbers):
        return "not a number"
    if not -90.0 <= track.lat_deg <= 90.0 or not -180.0 <= track.lon_deg <= 180.0:
        return "coordinates out of range"
    if not MIN_ALT_M <= track.alt_m <= MAX_ALT_M:
        return "altitude out of range"
    speed = track.speed_mps
    if speed is not None and speed < UNKNOWN_THRESHOLD and not 0.0 <= speed <= MAX_SPEED_MPS:
        return "absurd speed"
    if abs(track.vertical_speed_mps) > MAX_VERTICAL_SPEED_MPS:
        return "absurd vertical speed"
    for error in (track.ce_m, track.le_m, track.precision_m):
        if error is not None and (error < 0.0 or MAX_ERROR_M < error < UNKNOWN_THRESHOLD):
            return "error out of range"
    return None
