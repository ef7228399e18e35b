"""Synthetic MAVLink 2 for a fleet of vehicles flying orbits and lawnmower patterns, no I/O.

``Fleet(n).frames(t_s)`` returns the frames every vehicle sends at time ``t_s`` (seconds since
the start): at each tick GLOBAL_POSITION_INT, ATTITUDE, GIMBAL_DEVICE_ATTITUDE_STATUS (from the
gimbal component; even system ids report yaw in the vehicle frame, odd ones in the earth frame)
and CAMERA_FOV_STATUS (from the camera component); once a second HEARTBEAT, GPS_RAW_INT (with
alt_ellipsoid and h_acc/v_acc), SYS_STATUS and BATTERY_STATUS; every 10 s HOME_POSITION (the
pattern's centre) and the mission as ArduPilot reports it, MISSION_COUNT then MISSION_ITEM_INT
(item 0 home, then the four corners of the pattern). Used by ``accord drone simulate``, the
tests and the benchmark.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pymavlink.dialects.v20 import ardupilotmega as mavlink

EARTH_M_PER_DEG = 111_320.0
# The geoid height the simulated GPS reports (alt_ellipsoid - alt); the simulated region sits
# where EGM96 is about this high, but the bridge only needs the two to be consistent.
SIM_UNDULATION_M = 48.0
CAMERA_HFOV_DEG, CAMERA_VFOV_DEG = 66.9, 41.6
GIMBAL_COMPONENT, CAMERA_COMPONENT = 154, 100
_FLAG_VEHICLE_FRAME, _FLAG_EARTH_FRAME = 32, 64


def quaternion(roll_deg: float, pitch_deg: float, yaw_deg: float) -> list[float]:
    """[w, x, y, z] of aerospace 3-2-1 Euler angles."""
    r, p, y = (math.radians(v) / 2 for v in (roll_deg, pitch_deg, yaw_deg))
    cr, sr, cp, sp, cy, sy = (
        math.cos(r),
        math.sin(r),
        math.cos(p),
        math.sin(p),
        math.cos(y),
        math.sin(y),
    )
    return [
        cr * cp * cy + sr * sp * sy,
        sr * cp * cy - cr * sp * sy,
        cr * sp * cy + sr * cp * sy,
        cr * cp * sy - sr * sp * cy,
    ]


def offset(lat: float, lon: float, north_m: float, east_m: float) -> tuple[float, float]:
    return (
        lat + north_m / EARTH_M_PER_DEG,
        lon + east_m / (EARTH_M_PER_DEG * math.cos(math.radians(lat))),
    )


@dataclass
class SimVehicle:
    sysid: int
    pattern: str  # "orbit", "lawnmower" or "line" (an encounter: see ``encounter``)
    centre: tuple[float, float]  # a line passes through it at ``meet_s``
    radius_m: float = 300.0
    speed: float = 12.0
    height_m: float = 120.0  # above home
    home_msl_m: float = 480.0
    gimbal_pitch: float = -35.0
    gimbal_yaw: float = 30.0  # relative to the vehicle
    velocity: tuple[float, float] = (0.0, 0.0)  # line: north, east m/s
    climb_mps: float = 0.0  # line: vertical speed, up
    meet_s: float = 40.0  # line: when it is at ``centre`` (and ``height_m``)

    def __post_init__(self) -> None:
        self._mav = mavlink.MAVLink(None, srcSystem=self.sysid, srcComponent=1)
        self._gimbal = mavlink.MAVLink(None, srcSystem=self.sysid, srcComponent=GIMBAL_COMPONENT)
        self._camera = mavlink.MAVLink(None, srcSystem=self.sysid, srcComponent=CAMERA_COMPONENT)

    def state(self, t: float) -> tuple[float, float, float, float, float]:
        """lat, lon, heading (deg), v_north, v_east (m/s) at ``t`` seconds."""
        if self.pattern == "line":
            vn, ve = self.velocity
            north, east = vn * (t - self.meet_s), ve * (t - self.meet_s)
        elif self.pattern == "orbit":
            omega = self.speed / self.radius_m
            angle = omega * t + self.sysid
            north, east = self.radius_m * math.cos(angle), self.radius_m * math.sin(angle)
            vn, ve = -self.speed * math.sin(angle), self.speed * math.cos(angle)
        else:  # lawnmower: legs of 2 r east-west, 60 m apart, over 2 r north-south
            leg = 2 * self.radius_m
            legs = max(1, int(leg // 60))
            distance = (self.speed * t + self.sysid * 37) % (leg * legs)
            index, along = int(distance // leg), distance % leg
            direction = 1 if index % 2 == 0 else -1
            east = -self.radius_m + (along if direction > 0 else leg - along)
            north = -self.radius_m + index * 60.0
            vn, ve = 0.0, direction * self.speed
        lat, lon = offset(*self.centre, north, east)
        heading = math.degrees(math.atan2(ve, vn)) % 360.0
        return lat, lon, heading, vn, ve

    def height_at(self, t: float) -> float:
        """Metres above home at ``t``."""
        if self.pattern != "line":
            return self.height_m
        return max(0.0, self.height_m + self.climb_mps * (t - self.meet_s))

    def frames(self, t: float, *, full: bool, mission: bool) -> list[bytes]:
        mav = self._mav
        boot_ms = int(t * 1000) & 0xFFFFFFFF
        lat, lon, heading, vn, ve = self.state(t)
        height = self.height_at(t)
        msl = self.home_msl_m + height
        lat7, lon7 = round(lat * 1e7), round(lon * 1e7)
        out: list[bytes] = []
        if full:
            rotary = 2 if self.pattern == "orbit" else 1  # quadrotor / fixed wing
            out.append(mav.heartbeat_encode(rotary, 3, 128 | 1, 4, 4).pack(mav))
            out.append(
                mav.gps_raw_int_encode(
                    int(t * 1e6),
                    3,
                    lat7,
                    lon7,
                    int(msl * 1000),
                    80,
                    120,
                    int(math.hypot(vn, ve) * 100),
                    int(heading * 100),
                    14,
                    int((msl + SIM_UNDULATION_M) * 1000),
                    1500,
                    2500,
                ).pack(mav)
            )
            battery = max(0, 100 - int(t / 30))
            voltage = int(16_800 - (100 - battery) * 30)
            out.append(
                mav.sys_status_encode(0, 0, 0, 300, voltage, 1200, battery, 0, 0, 0, 0, 0, 0).pack(
                    mav
                )
            )
            cells = [voltage] + [65535] * 9
            out.append(
                mav.battery_status_encode(
                    0, 0, 0, 2500, cells, 1200, -1, -1, battery, int(battery * 18)
                ).pack(mav)
            )
        out.append(
            mav.global_position_int_encode(
                boot_ms,
                lat7,
                lon7,
                int(msl * 1000),
                int(height * 1000),
                int(vn * 100),
                int(ve * 100),
                int(-self.climb_mps * 100),  # NED: down is positive
                int(heading * 100),
            ).pack(mav)
        )
        out.append(
            mav.attitude_encode(boot_ms, 0.0, 0.02, math.radians(heading), 0, 0, 0).pack(mav)
        )
        earth_frame = self.sysid % 2 == 1
        true_yaw = (heading + self.gimbal_yaw) % 360.0
        reported = true_yaw if earth_frame else self.gimbal_yaw
        flags = _FLAG_EARTH_FRAME if earth_frame else _FLAG_VEHICLE_FRAME
        q = quaternion(0.0, self.gimbal_pitch, reported)
        gimbal = self._gimbal
        out.append(
            gimbal.gimbal_device_attitude_status_encode(0, 0, boot_ms, flags, q, 0, 0, 0, 0).pack(
                gimbal
            )
        )
        ground = max(1.0, height) / math.tan(math.radians(-self.gimbal_pitch))
        image = offset(
            lat,
            lon,
            ground * math.cos(math.radians(true_yaw)),
            ground * math.sin(math.radians(true_yaw)),
        )
        camera = self._camera
        out.append(
            camera.camera_fov_status_encode(
                boot_ms,
                lat7,
                lon7,
                int(msl * 1000),
                round(image[0] * 1e7),
                round(image[1] * 1e7),
                int(self.home_msl_m * 1000),
                quaternion(0.0, self.gimbal_pitch, true_yaw),
                CAMERA_HFOV_DEG,
                CAMERA_VFOV_DEG,
            ).pack(camera)
        )
        if mission:
            home7 = round(self.centre[0] * 1e7), round(self.centre[1] * 1e7)
            out.append(
                mav.home_position_encode(
                    *home7, int(self.home_msl_m * 1000), 0, 0, 0, [1, 0, 0, 0], 0, 0, 0
                ).pack(mav)
            )
            corners = [(-1, -1), (-1, 1), (1, 1), (1, -1)]
            points = [home7] + [
                tuple(round(v * 1e7) for v in offset(*self.centre, n * self.radius_m,
                                                     e * self.radius_m))
                for n, e in corners
            ]  # fmt: skip
            out.append(mav.mission_count_encode(255, 190, len(points)).pack(mav))
            for seq, (wlat7, wlon7) in enumerate(points):
                frame = 0 if seq == 0 else 3  # home: global MSL; waypoints: above home
                height = self.home_msl_m if seq == 0 else self.height_m
                out.append(
                    mav.mission_item_int_encode(
                        255, 190, seq, frame, 16, 0, 1, 0, 0, 0, 0, wlat7, wlon7, height
                    ).pack(mav)
                )
        return out


SCENARIOS = ("headon", "crossing", "overtaking", "vertical")


def encounter(
    name: str,
    origin: tuple[float, float] = (46.95, 7.45),
    *,
    meet_s: float = 40.0,
    speed: float = 10.0,
    sysids: tuple[int, int] = (1, 2),
) -> tuple[SimVehicle, SimVehicle]:
    """Two vehicles on a collision course: both are over ``origin`` at ``meet_s`` seconds.

    ``headon``: west to east against east to west; ``crossing``: south to north across west to
    east; ``overtaking``: the second, at three times the speed, catches the first up from
    behind; ``vertical``: the first hovers, the second climbs into it from below at 2 m/s.
    With the defaults (10 m/s, 150 m cylinder, caution at 45 s) a head-on pair is in caution
    within seconds of the start and loses separation about 32 s in.
    """
    a, b = sysids
    if name == "headon":
        first, second = (0.0, speed), (0.0, -speed)
    elif name == "crossing":
        first, second = (speed, 0.0), (0.0, speed)
    elif name == "overtaking":
        first, second = (0.0, speed / 2), (0.0, 1.5 * speed)
    elif name == "vertical":
        one = SimVehicle(a, "line", origin, velocity=(0.0, 0.0), meet_s=meet_s)
        climb = min(2.0, 0.9 * one.height_m / meet_s)
        two = SimVehicle(b, "line", origin, climb_mps=climb, meet_s=meet_s)
        return one, two
    else:
        raise ValueError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}")
    return (
        SimVehicle(a, "line", origin, velocity=first, speed=math.hypot(*first), meet_s=meet_s),
        SimVehicle(b, "line", origin, velocity=second, speed=math.hypot(*second), meet_s=meet_s),
    )


class Fleet:
    """``count`` vehicles (system ids 1..count) spread over a region around ``origin``, or the
    ``vehicles`` given (an encounter)."""

    def __init__(
        self,
        count: int = 0,
        origin: tuple[float, float] = (46.95, 7.45),
        vehicles: tuple[SimVehicle, ...] = (),
    ) -> None:
        side = max(1, math.ceil(math.sqrt(count)))
        self.vehicles = list(vehicles)
        for index in range(count):
            row, col = divmod(index, side)
            centre = offset(*origin, row * 900.0, col * 900.0)
            pattern = "orbit" if index % 2 == 0 else "lawnmower"
            self.vehicles.append(SimVehicle(index + 1, pattern, centre))
        self._last_full: float | None = None
        self._last_mission: float | None = None

    def frames(self, t: float) -> list[list[bytes]]:
        """Per vehicle, the frames it sends at ``t`` seconds."""
        full = self._last_full is None or t - self._last_full >= 1.0
        mission = self._last_mission is None or t - self._last_mission >= 10.0
        if full:
            self._last_full = t
        if mission:
            self._last_mission = t
        return [v.frames(t, full=full, mission=mission) for v in self.vehicles]
