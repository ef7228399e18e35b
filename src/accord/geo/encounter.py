"""One evaluation of a pair at one instant: when separation is lost, the CPA, the raw level.

Both tracks are dead-reckoned to ``now_s`` in the tangent plane at the ownship (the first
track), the cylinder is widened by both tracks' uncertainty, and the entry time ``t_in`` into
it within the look-ahead gives the level as DAIDALUS does: 3 if inside now, else 2 if ``t_in``
is below the warning time, else 1 if below the caution time, else 0. A level already shown at
the previous sample is kept with its (longer) early alerting time instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from accord.geo import volume
from accord.geo.config import SeparationConfig
from accord.geo.cylinder import Relative, cpa, violation_interval
from accord.geo.enu import Plane
from accord.geo.track import Track


@dataclass(frozen=True, slots=True)
class Encounter:
    """What the pair looks like at ``time_s`` (times relative to it, in s; distances in m)."""

    ownship: str
    intruder: str
    time_s: float
    t_in_s: float | None  # entry into the (widened) cylinder; 0 = inside now; None = not ahead
    t_out_s: float | None  # exit, capped at the look-ahead
    cpa_s: float  # time of horizontal closest approach (0 if diverging)
    cpa_m: float  # horizontal distance there
    horizontal_m: float  # horizontal distance now
    vertical_m: float  # |altitude difference| now
    volume_h_m: float  # the cylinder used: H and V with both tracks' widening
    volume_v_m: float
    plane: Plane  # the tangent plane the pair was compared in (at the ownship)
    cpa_x_m: float  # where the ownship is predicted at the closest approach, in that plane
    cpa_y_m: float
    raw_level: int

    @property
    def loss(self) -> bool:
        return self.t_in_s == 0.0

    def cpa_point(self) -> tuple[float, float]:
        """(lat, lon) of the ownship at the predicted closest approach (the conflict point)."""
        return self.plane.inverse(self.cpa_x_m, self.cpa_y_m)


def raw_level(t_in_s: float | None, config: SeparationConfig, held: tuple[bool, bool, bool]) -> int:
    """The level of one sample; ``held[i]``: level i+1 was shown at the previous sample."""
    if t_in_s is None:
        return 0
    times = config.level_times()
    for level in (3, 2, 1):
        alerting, early = times[level - 1]
        limit = early if held[level - 1] else alerting
        if t_in_s == 0.0 or t_in_s < limit:
            return level
    return 0


def evaluate(
    own: Track,
    other: Track,
    now_s: float,
    config: SeparationConfig,
    held: tuple[bool, bool, bool] = (False, False, False),
) -> Encounter:
    """The pair at ``now_s``; ``held`` as for :func:`raw_level`."""
    plane = Plane(own.lat_deg, own.lon_deg)
    a = volume.at(own, plane, now_s, config)
    b = volume.at(other, plane, now_s, config)
    rel = Relative(b.x - a.x, b.y - a.y, b.z - a.z, b.vx - a.vx, b.vy - a.vy, b.vz - a.vz)
    h = config.horizontal_m + a.widen_h_m + b.widen_h_m
    v = config.vertical_m + a.widen_v_m + b.widen_v_m
    interval = violation_interval(rel, h, v, config.lookahead_s)
    t_cpa, d_cpa = cpa(rel)
    t_in = interval[0] if interval else None
    return Encounter(
        ownship=own.uid,
        intruder=other.uid,
        time_s=now_s,
        t_in_s=t_in,
        t_out_s=interval[1] if interval else None,
        cpa_s=t_cpa,
        cpa_m=d_cpa,
        horizontal_m=math.hypot(rel.sx, rel.sy),
        vertical_m=abs(rel.sz),
        volume_h_m=h,
        volume_v_m=v,
        plane=plane,
        cpa_x_m=a.x + a.vx * t_cpa,
        cpa_y_m=a.y + a.vy * t_cpa,
        raw_level=raw_level(t_in, config, held),
    )
