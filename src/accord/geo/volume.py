"""How much a track's uncertainty widens the cylinder, and where it is at a given instant.

- CoT ``ce``/``le`` are 1-sigma (MITRE), so they count ``k_sigma`` times; an unknown one
  (9999999) counts as ``unknown_ce_m``/``unknown_le_m``, never as zero; none given (None) adds
  nothing, so the corpus's volume is the bare cylinder.
- A partner's coarsened position carries the precision it was released at (``precision_m``, a
  bound, not a sigma): it counts once, instead of the ``ce`` the coarsening raised to the cell
  size. A ``ce`` larger than the precision was not raised by it and is counted as well.
- A report ``age`` seconds old is dead-reckoned in a straight line, and its volume grows by
  ``age_accel_mps2 * age**2 / 2`` (what an unseen acceleration could have moved it).
- Older than ``max_age_s``, its velocity is not trusted any more: it stays where it was
  reported and becomes a disc of radius speed x age. A track with no usable velocity is the same
  disc, growing at ``unknown_speed_mps``.
"""

from __future__ import annotations

from dataclasses import dataclass

from accord.geo.config import SeparationConfig
from accord.geo.enu import Plane
from accord.geo.track import UNKNOWN_THRESHOLD, Track


@dataclass(frozen=True, slots=True)
class Kinematics:
    """A track at one instant in a plane: position (m), velocity (m/s), widening (m)."""

    x: float
    y: float
    z: float
    vx: float
    vy: float
    vz: float
    widen_h_m: float
    widen_v_m: float


def _sigma(value: float | None, unknown: float) -> float:
    if value is None:
        return 0.0
    return unknown if value >= UNKNOWN_THRESHOLD else value


def horizontal_base_m(track: Track, config: SeparationConfig) -> float:
    """The horizontal widening of a fresh report: k x ce, or the release precision."""
    k, ce = config.k_sigma, _sigma(track.ce_m, config.unknown_ce_m)
    if track.precision_m is None:
        return k * ce
    precision = _sigma(track.precision_m, config.unknown_ce_m)
    return precision + (k * ce if ce > precision else 0.0)


def vertical_base_m(track: Track, config: SeparationConfig) -> float:
    return config.k_sigma * _sigma(track.le_m, config.unknown_le_m)


def at(track: Track, plane: Plane, now_s: float, config: SeparationConfig) -> Kinematics:
    """The track dead-reckoned to ``now_s`` in ``plane``, with its widening."""
    age = max(0.0, now_s - track.time_s)
    x, y = plane.project(track.lat_deg, track.lon_deg)
    widen_h = horizontal_base_m(track, config)
    widen_v = vertical_base_m(track, config)
    vz = track.vertical_speed_mps
    if track.velocity_known and age <= config.max_age_s:
        assert track.track_deg is not None  # velocity_known
        assert track.speed_mps is not None
        vx, vy = plane.project_velocity(track.lat_deg, track.lon_deg, track.track_deg,
                                        track.speed_mps)  # fmt: skip
        grow = 0.5 * age * age
        return Kinematics(
            x + vx * age, y + vy * age, track.alt_m + vz * age, vx, vy, vz,
            widen_h + grow * config.age_accel_mps2,
            widen_v + grow * config.age_vertical_accel_mps2,
        )  # fmt: skip
    speed = track.speed_mps if track.velocity_known else config.unknown_speed_mps
    assert speed is not None
    return Kinematics(
        x, y, track.alt_m, 0.0, 0.0, 0.0, widen_h + speed * age, widen_v + abs(vz) * age
    )
