"""The local east-north-up tangent plane DAIDALUS compares a pair in.

DAIDALUS projects both aircraft orthographically onto the plane tangent to a sphere of radius
6 366 707 m (one nautical mile = one arc-minute) at the ownship, keeps altitude as the third
axis and moves both in straight lines in that plane. The same here: :class:`Plane` is centred on
one track, projects positions exactly and velocities with the projection's derivative at the
track's own position (its track angle is measured from true north where it is).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

EARTH_RADIUS_M = 6_366_707.0  # DAIDALUS GreatCircle.spherical_earth_radius: 1 nmi = 1 arcmin


@dataclass(frozen=True, slots=True)
class Plane:
    """The tangent plane at (``lat_deg``, ``lon_deg``): x east, y north, metres."""

    lat_deg: float
    lon_deg: float

    def project(self, lat_deg: float, lon_deg: float) -> tuple[float, float]:
        """A point's (x, y) in metres; the centre is (0, 0)."""
        if lat_deg == self.lat_deg and lon_deg == self.lon_deg:
            return 0.0, 0.0  # the ownship, compared in its own plane: no trigonometry
        lat0 = math.radians(self.lat_deg)
        lat = math.radians(lat_deg)
        dlon = math.radians(lon_deg - self.lon_deg)
        cos_lat = math.cos(lat)
        x = EARTH_RADIUS_M * cos_lat * math.sin(dlon)
        y = EARTH_RADIUS_M * (
            math.cos(lat0) * math.sin(lat) - math.sin(lat0) * cos_lat * math.cos(dlon)
        )
        return x, y

    def project_velocity(
        self, lat_deg: float, lon_deg: float, track_deg: float, speed_mps: float
    ) -> tuple[float, float]:
        """A ground velocity (track from true north at the point, speed) as (vx, vy) in m/s.

        The local east and north directions at the point are projected onto the plane's axes,
        which is the derivative of :meth:`project` along the motion.
        """
        trk = math.radians(track_deg)
        if lat_deg == self.lat_deg and lon_deg == self.lon_deg:
            return speed_mps * math.sin(trk), speed_mps * math.cos(trk)
        lat0 = math.radians(self.lat_deg)
        lat = math.radians(lat_deg)
        dlon = math.radians(lon_deg - self.lon_deg)
        east, north = speed_mps * math.sin(trk), speed_mps * math.cos(trk)
        sin_dlon, cos_dlon = math.sin(dlon), math.cos(dlon)
        sin_lat = math.sin(lat)
        sin_lat0 = math.sin(lat0)
        vx = east * cos_dlon - north * sin_lat * sin_dlon
        vy = east * sin_lat0 * sin_dlon + north * (
            sin_lat * sin_lat0 * cos_dlon + math.cos(lat) * math.cos(lat0)
        )
        return vx, vy

    def inverse(self, x: float, y: float) -> tuple[float, float]:
        """The (lat, lon) in degrees of a point of the plane (the predicted conflict point)."""
        r = EARTH_RADIUS_M
        lat0 = math.radians(self.lat_deg)
        rho2 = x * x + y * y
        # Height above the plane of the sphere's point that projects to (x, y).
        depth = math.sqrt(max(r * r - rho2, 0.0))
        sin_lat = (depth * math.sin(lat0) + y * math.cos(lat0)) / r
        lat = math.asin(max(-1.0, min(1.0, sin_lat)))
        num = x
        den = depth * math.cos(lat0) - y * math.sin(lat0)
        lon = self.lon_deg + math.degrees(math.atan2(num, den))
        lon = (lon + 180.0) % 360.0 - 180.0
        return math.degrees(lat), lon
