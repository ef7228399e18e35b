"""Closed-form straight-line geometry of a pair in the plane: loss of separation and CPA.

``s`` is the intruder's position relative to the ownship, ``v`` its relative velocity (metres,
m/s). The pair has lost separation while the horizontal distance is at most ``h`` **and** the
altitude difference at most ``v``: both must hold (an easy bug is to OR them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Relative:
    """Intruder minus ownship: position (m) and velocity (m/s), x east, y north, z up."""

    sx: float
    sy: float
    sz: float
    vx: float
    vy: float
    vz: float


def _horizontal(rel: Relative, h: float) -> tuple[float, float] | None:
    """The times (unbounded) when |s + v t| <= h horizontally, or None if never."""
    a = rel.vx * rel.vx + rel.vy * rel.vy
    c = rel.sx * rel.sx + rel.sy * rel.sy - h * h
    if a == 0.0:
        return (-math.inf, math.inf) if c <= 0.0 else None
    half_b = rel.sx * rel.vx + rel.sy * rel.vy
    disc = half_b * half_b - a * c
    if disc <= 0.0:  # never inside, or only touching the circle
        return None
    root = math.sqrt(disc)
    # Numerically stable roots: q has the sign of -b (never 0 here), so no cancellation.
    q = -half_b - root if half_b >= 0.0 else -half_b + root
    t1, t2 = q / a, c / q
    return (t1, t2) if t1 <= t2 else (t2, t1)


def _vertical(rel: Relative, v: float) -> tuple[float, float] | None:
    """The times (unbounded) when |sz + vz t| <= v, or None if never."""
    if rel.vz == 0.0:
        return (-math.inf, math.inf) if abs(rel.sz) <= v else None
    t1 = (-v - rel.sz) / rel.vz
    t2 = (v - rel.sz) / rel.vz
    return (t1, t2) if t1 <= t2 else (t2, t1)


def violation_interval(
    rel: Relative, h: float, v: float, lookahead_s: float
) -> tuple[float, float] | None:
    """``(t_in, t_out)`` of the loss of separation within ``[0, lookahead_s]``, or None.

    ``t_in`` is 0 when the pair is inside now. An interval of zero length (a tangent pass, or an
    entry exactly at the look-ahead) is no conflict, as in DAIDALUS.
    """
    horizontal = _horizontal(rel, h)
    if horizontal is None:
        return None
    vertical = _vertical(rel, v)
    if vertical is None:
        return None
    t_in = max(horizontal[0], vertical[0], 0.0)
    t_out = min(horizontal[1], vertical[1], lookahead_s)
    if t_in < t_out:
        return t_in, t_out
    return None


def cpa(rel: Relative) -> tuple[float, float]:
    """Horizontal closest point of approach: (time in s, 0 if diverging; distance in m)."""
    a = rel.vx * rel.vx + rel.vy * rel.vy
    t = 0.0 if a == 0.0 else max(0.0, -(rel.sx * rel.vx + rel.sy * rel.vy) / a)
    return t, math.hypot(rel.sx + rel.vx * t, rel.sy + rel.vy * t)
