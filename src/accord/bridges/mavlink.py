"""MAVLink telemetry in, events out, with no I/O: ``MavlinkBridge.receive_data(bytes, now)``.

One bridge serves one feed (one link), which may carry several vehicles. A vehicle is a system
id whose autopilot sends a HEARTBEAT with a vehicle MAV_TYPE; its other components (gimbal,
camera, companion computer) add to the same track. Ground stations (MAV_TYPE_GCS), and
components that are not vehicles, never become tracks.

State is kept at full rate; events leave at most ``rate_hz`` per vehicle, on a position update.
:meth:`MavlinkBridge.tick` judges link loss against the ``now`` it is given: a vehicle without
HEARTBEAT for ``link_timeout_ms`` is sent once more with ``stale = now`` (clients drop it at
once) together with a link-lost alert; when heartbeats return, the alert is cancelled.

Bad input never raises: corrupt bytes, CRC failures, truncated frames and unknown message ids
are counted in :class:`BridgeCounters` and skipped; every other vehicle keeps flowing.

Home and mission: HOME_POSITION becomes a home marker (sent when it moves); the mission, as it
crosses the link either way (a GCS uploading it: MISSION_COUNT then MISSION_ITEM_INT to the
vehicle; or the vehicle reporting it), becomes a route once every item of the announced count
has been seen, and again only when it changes; a cleared (zero-item) mission deletes it. Both
are re-sent once a minute while the vehicle is live, for clients that join later.

Two vehicles claiming one system id: the first component whose HEARTBEAT names a vehicle type
owns the id. A vehicle heartbeat from another component of that id, or a different MAV_TYPE
from the owner, is counted as a ``conflict`` and ignored, as are that component's position
messages; the owner's claim lapses only when its own heartbeats stop (link timeout), so a
flapping pair cannot make the track's type or position jump back and forth. Two vehicles that
also share the component id cannot be told apart on the wire: the type stays the first one's,
and the conflict counter is how an operator learns of it.
"""

from __future__ import annotations

import logging
import math
import struct
from dataclasses import dataclass, field
from typing import Any

from pymavlink.dialects.v20 import ardupilotmega as mavlink

from accord.bridges.tlog import foreign_definition
from accord.bridges.uas import (
    STALE_MS,
    STATIC_REFRESH_MS,
    VEHICLE_TYPES,
    FeedSettings,
    Geoid,
    Vehicle,
    Waypoint,
    route_uid,
    to_aircraft,
    to_delete,
    to_home,
    to_link_alert,
    to_route,
    to_spi,
)
from accord.cot.model import CotEvent

log = logging.getLogger("accord.bridges.mavlink")

MAV_TYPE_GCS = 6
MAV_AUTOPILOT_INVALID = 8
MAV_AUTOPILOT_ARDUPILOTMEGA = 3  # its mission item 0 is home, not a waypoint
MAV_MISSION_TYPE_MISSION = 0  # not fence, not rally points
# MAV_CMD navigation commands that are a place to fly to (common.xml): waypoint, loiters,
# land, takeoff, loiter to altitude, spline waypoint, VTOL takeoff and land.
NAV_POINT_COMMANDS = frozenset({16, 17, 18, 19, 21, 22, 31, 82, 84, 85})
# MAV_FRAME values with latitude/longitude in x/y: global, relative to home, above terrain
# (float and int variants).
GLOBAL_FRAMES = frozenset({0, 3, 5, 6, 10, 11})
MISSION_MESSAGES = frozenset(
    {"MISSION_COUNT", "MISSION_ITEM_INT", "MISSION_ITEM", "MISSION_CLEAR_ALL"}
)
MAV_MODE_FLAG_SAFETY_ARMED = 128
INT32_MAX = 2**31 - 1
INT32_MIN = -(2**31)
UINT16_MAX = 2**16 - 1
# GIMBAL_DEVICE_FLAGS (common.xml): which frame the reported yaw is in.
GIMBAL_YAW_LOCK = 16
GIMBAL_YAW_IN_VEHICLE_FRAME = 32
GIMBAL_YAW_IN_EARTH_FRAME = 64
# Messages whose values belong to the vehicle, taken only from the owning component.
_OWNED = frozenset(
    {"GLOBAL_POSITION_INT", "GPS_RAW_INT", "ATTITUDE", "SYS_STATUS", "BATTERY_STATUS"}
)
MIN_SLOPE_SPEED = 0.5  # m/s
# The largest read a stream parser buffers without finding a frame: MAVLink 2's longest
# frame is 280 bytes; anything beyond a few frames of garbage is dropped (and counted).
MAX_BUFFERED_BYTES = 4096


@dataclass(slots=True)
class BridgeCounters:
    """What a bridge has seen and skipped; the feeds report them to /metrics and the logs."""

    bytes_in: int = 0
    messages: int = 0
    bad_data: int = 0  # CRC failures, bad prefixes, bad lengths
    truncated: int = 0  # partial frames at the end of a datagram
    unknown: int = 0  # message ids not in the dialect, or defined otherwise (intact frames)
    ignored_components: int = 0  # heartbeats of GCS and non-vehicle components
    conflicts: int = 0  # a second vehicle claiming a system id
    events: int = 0
    links_lost: int = 0

    def snapshot(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


def _new_parser() -> Any:
    parser = mavlink.MAVLink(None)
    parser.robust_parsing = True  # a bad frame becomes MAVLink_bad_data instead of an error
    return parser


def _deg_e7(value: int) -> float | None:
    """degE7 to degrees; None for the unknown sentinels and values off the globe."""
    if value in (INT32_MAX, INT32_MIN):
        return None
    return value / 1e7


def _finite(value: float) -> float | None:
    return value if isinstance(value, int | float) and math.isfinite(value) else None


def euler_deg(q: list[float]) -> tuple[float, float, float] | None:
    """(roll, pitch, yaw) degrees of a [w, x, y, z] quaternion (aerospace 3-2-1 order)."""
    if len(q) != 4 or not all(math.isfinite(v) for v in q):
        return None
    w, x, y, z = q
    norm = math.sqrt(w * w + x * x + y * y + z * z)
    if norm < 1e-6:
        return None
    w, x, y, z = w / norm, x / norm, y / norm, z / norm
    roll = math.atan2(2 * (w * x + y * z), 1 - 2 * (x * x + y * y))
    pitch = math.asin(max(-1.0, min(1.0, 2 * (w * y - z * x))))
    yaw = math.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))
    return math.degrees(roll), math.degrees(pitch), math.degrees(yaw)


def ground_distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Haversine distance on a 6 371 km sphere; ample for a camera footprint."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6_371_000.0 * math.asin(min(1.0, math.sqrt(a)))


def gcs_heartbeat(sysid: int = 255, compid: int = 190) -> bytes:
    """A ground station's HEARTBEAT (MAVLink 2): what a vehicle or router needs to hear before
    it sends telemetry to a UDP peer (``udpout`` feeds), and that a TCP server may expect."""
    mav = mavlink.MAVLink(None, srcSystem=sysid, srcComponent=compid)
    frame: bytes = mav.heartbeat_encode(MAV_TYPE_GCS, MAV_AUTOPILOT_INVALID, 0, 0, 0).pack(mav)
    return frame


@dataclass
class MavlinkBridge:
    """The sans-IO MAVLink bridge of one feed."""

    settings: FeedSettings
    geoid: Geoid | None = None
    counters: BridgeCounters = field(default_factory=BridgeCounters)

    def __post_init__(self) -> None:
        self.vehicles: dict[int, Vehicle] = {}
        self._parser = _new_parser()
        self._out: list[CotEvent] = []
        self._min_interval_ms = int(1000 / self.settings.rate_hz) if self.settings.rate_hz else 0

    # -- input ---------------------------------------------------------------------------------
    def receive_data(self, data: bytes, now_ms: int) -> list[CotEvent]:
        """Feed stream bytes (TCP, serial): frames may span reads."""
        self.counters.bytes_in += len(data)
        self._parse(data, now_ms)
        if len(self._parser.buf) - self._parser.buf_index > MAX_BUFFERED_BYTES:
            self.counters.bad_data += 1
            self._parser = _new_parser()
        return self.take()

    def receive_datagram(self, data: bytes, now_ms: int) -> list[CotEvent]:
        """Feed one datagram (UDP): whole frames; what is left over is a truncated frame."""
        self.counters.bytes_in += len(data)
        self._parse(data, now_ms)
        if self._parser.buf_len() > 0:
            self.counters.truncated += 1
            self._parser = _new_parser()
        return self.take()

    def _parse(self, data: bytes, now_ms: int) -> None:
        try:
            messages = self._parser.parse_buffer(data) or []
        except (mavlink.MAVError, struct.error, ValueError, IndexError, TypeError) as exc:
            # robust_parsing catches MAVError per frame; anything else means the parser's
            # buffer is unusable: count it and start afresh on the next read.
            self.counters.bad_data += 1
            log.debug("%s: MAVLink parser error: %s", self.settings.name, exc)
            self._parser = _new_parser()
            return
        for message in messages:
            self.receive_message(message, now_ms)

    def receive_message(self, message: Any, now_ms: int) -> None:
        """Apply one decoded message (from :meth:`receive_data` or a pymavlink reader)."""
        kind = message.get_type()
        if kind == "BAD_DATA":
            if foreign_definition(message.data):  # intact, another dialect's message
                self.counters.unknown += 1
            else:
                self.counters.bad_data += 1
            return
        if kind == "UNKNOWN" or kind.startswith("UNKNOWN_"):
            self.counters.unknown += 1
            return
        self.counters.messages += 1
        sysid, compid = message.get_srcSystem(), message.get_srcComponent()
        try:
            if kind == "HEARTBEAT":
                self._heartbeat(message, sysid, compid, now_ms)
                return
            if kind in MISSION_MESSAGES:
                # From the vehicle (it reports its mission), or to it (a GCS uploads one).
                owner = self.vehicles.get(sysid) or self.vehicles.get(message.target_system)
                if owner is not None:
                    self._mission(owner, message, kind, now_ms)
                return
            vehicle = self.vehicles.get(sysid)
            if vehicle is None:
                return  # no vehicle heartbeat from this system yet: nothing to draw it as
            if kind in _OWNED and compid != vehicle.compid:
                self.counters.ignored_components += 1
                return
            handler = _HANDLERS.get(kind)
            if handler is not None:
                handler(self, vehicle, message, now_ms)
        except (AttributeError, TypeError, ValueError, OverflowError) as exc:
            self.counters.bad_data += 1
            log.debug("%s: skipped %s from %d/%d: %s", self.settings.name, kind, sysid, compid, exc)

    def take(self) -> list[CotEvent]:
        """The events produced since the last call."""
        out, self._out = self._out, []
        self.counters.events += len(out)
        return out

    # -- time ----------------------------------------------------------------------------------
    def tick(self, now_ms: int) -> list[CotEvent]:
        """Judge link loss at ``now_ms``; call it about once a second."""
        timeout = self.settings.link_timeout_ms
        for vehicle in self.vehicles.values():
            if vehicle.link_lost or now_ms - vehicle.last_heartbeat_ms <= timeout:
                continue
            vehicle.link_lost = True
            self.counters.links_lost += 1
            log.warning(
                "%s: vehicle %d link lost (no heartbeat for %.1f s)",
                self.settings.name,
                vehicle.sysid,
                (now_ms - vehicle.last_heartbeat_ms) / 1000,
            )
            if vehicle.lat is not None:
                self._out.append(
                    to_aircraft(vehicle, self.settings, now_ms, self.geoid, stale_ms=now_ms)
                )
                spi = to_spi(vehicle, self.settings, now_ms, self.geoid, stale_ms=now_ms)
                if spi is not None:
                    self._out.append(spi)
            self._out.append(to_link_alert(vehicle, self.settings, now_ms, lost=True))
        return self.take()

    # -- handlers ------------------------------------------------------------------------------
    def _heartbeat(self, msg: Any, sysid: int, compid: int, now_ms: int) -> None:
        if msg.type == MAV_TYPE_GCS or msg.autopilot == MAV_AUTOPILOT_INVALID:
            self.counters.ignored_components += 1
            return
        if msg.type not in VEHICLE_TYPES:
            self.counters.ignored_components += 1
            return
        vehicle = self.vehicles.get(sysid)
        if vehicle is None:
            vehicle = self.vehicles[sysid] = Vehicle(sysid, compid, msg.type, now_ms)
            log.info("%s: vehicle %d (MAV_TYPE %d) seen", self.settings.name, sysid, msg.type)
        elif compid != vehicle.compid or msg.type != vehicle.mav_type:
            if not vehicle.link_lost:
                self.counters.conflicts += 1
                if self.counters.conflicts in (1, 10, 100, 1000):
                    log.warning(
                        "%s: system id %d claimed by component %d (type %d) and %d (type %d)",
                        self.settings.name,
                        sysid,
                        vehicle.compid,
                        vehicle.mav_type,
                        compid,
                        msg.type,
                    )
                return
            # The owner went silent: the newcomer takes the id over.
            vehicle.compid, vehicle.mav_type = compid, msg.type
        vehicle.last_heartbeat_ms = now_ms
        vehicle.autopilot = msg.autopilot
        vehicle.armed = bool(msg.base_mode & MAV_MODE_FLAG_SAFETY_ARMED)
        if vehicle.link_lost:
            vehicle.link_lost = False
            log.info("%s: vehicle %d link back", self.settings.name, sysid)
            self._out.append(to_link_alert(vehicle, self.settings, now_ms, lost=False))

    def _position(self, vehicle: Vehicle, msg: Any, now_ms: int) -> None:
        lat, lon = _deg_e7(msg.lat), _deg_e7(msg.lon)
        if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180):
            return
        if lat == 0.0 and lon == 0.0:
            return  # no position yet (autopilots send zeros before the first fix)
        vehicle.lat, vehicle.lon = lat, lon
        vehicle.msl_m = msg.alt / 1000
        vehicle.relative_alt_m = msg.relative_alt / 1000
        vehicle.position_ms = now_ms
        vx, vy, vz = msg.vx / 100, msg.vy / 100, msg.vz / 100  # m/s north, east, down
        ground = math.hypot(vx, vy)
        vehicle.speed = ground
        vehicle.course = math.degrees(math.atan2(vy, vx)) % 360.0
        if ground < 0.05 and msg.hdg != UINT16_MAX:
            vehicle.course = msg.hdg / 100
        # A hovering vehicle's slope would be noise at +-90 degrees: level below walking pace.
        moving = math.hypot(ground, vz) >= MIN_SLOPE_SPEED
        vehicle.slope = math.degrees(math.atan2(-vz, ground)) if moving else 0.0
        self._maybe_emit(vehicle, now_ms)

    def _maybe_emit(self, vehicle: Vehicle, now_ms: int) -> None:
        if vehicle.link_lost:
            return
        last = vehicle.last_emit_ms
        if last is not None and now_ms - last < self._min_interval_ms:
            return
        vehicle.last_emit_ms = now_ms
        self._refresh_static(vehicle, now_ms)
        stale = now_ms + STALE_MS
        self._out.append(to_aircraft(vehicle, self.settings, now_ms, self.geoid, stale_ms=stale))
        spi = to_spi(vehicle, self.settings, now_ms, self.geoid, stale_ms=stale)
        if spi is not None:
            self._out.append(spi)

    def _gps(self, vehicle: Vehicle, msg: Any, now_ms: int) -> None:
        vehicle.fix_type = msg.fix_type
        vehicle.satellites = msg.satellites_visible if msg.satellites_visible != 255 else None
        # alt_ellipsoid and h_acc/v_acc are MAVLink 2 extensions: 0 when the sender has none.
        if msg.fix_type >= 3 and getattr(msg, "alt_ellipsoid", 0):
            vehicle.undulation_m = (msg.alt_ellipsoid - msg.alt) / 1000
        h_acc, v_acc = getattr(msg, "h_acc", 0), getattr(msg, "v_acc", 0)
        if h_acc:
            vehicle.h_acc_m = h_acc / 1000
        elif msg.eph != UINT16_MAX:
            vehicle.h_acc_m = msg.eph / 100 * 5.0
        else:
            vehicle.h_acc_m = None
        if v_acc:
            vehicle.v_acc_m = v_acc / 1000
        elif msg.epv != UINT16_MAX:
            vehicle.v_acc_m = msg.epv / 100 * 5.0
        else:
            vehicle.v_acc_m = None

    def _attitude(self, vehicle: Vehicle, msg: Any, now_ms: int) -> None:
        vehicle.roll = math.degrees(msg.roll)
        vehicle.pitch = math.degrees(msg.pitch)
        vehicle.yaw = math.degrees(msg.yaw) % 360.0
        vehicle.spin = (
            math.degrees(msg.rollspeed),
            math.degrees(msg.pitchspeed),
            math.degrees(msg.yawspeed),
        )

    def _sys_status(self, vehicle: Vehicle, msg: Any, now_ms: int) -> None:
        if msg.battery_remaining >= 0:
            vehicle.battery_pct = msg.battery_remaining
        if msg.voltage_battery not in (0, UINT16_MAX):  # 0: no battery monitor
            vehicle.voltage = msg.voltage_battery / 1000

    def _battery(self, vehicle: Vehicle, msg: Any, now_ms: int) -> None:
        if msg.id != 0:
            return  # the first battery speaks for the vehicle
        if msg.battery_remaining >= 0:
            vehicle.battery_pct = msg.battery_remaining
        cells = [v for v in msg.voltages if v != UINT16_MAX]
        if cells:
            vehicle.voltage = sum(cells) / 1000
        remaining = getattr(msg, "time_remaining", 0)
        vehicle.time_remaining_s = remaining or None

    def _gimbal(self, vehicle: Vehicle, msg: Any, now_ms: int) -> None:
        angles = euler_deg(list(msg.q))
        if angles is None:
            return
        roll, pitch, yaw = angles
        cam = vehicle.camera
        cam.roll, cam.elevation = roll, pitch
        flags = msg.flags
        earth = bool(flags & GIMBAL_YAW_IN_EARTH_FRAME) or (
            not flags & GIMBAL_YAW_IN_VEHICLE_FRAME and bool(flags & GIMBAL_YAW_LOCK)
        )
        if earth:
            cam.azimuth, cam.relative_yaw = yaw % 360.0, None
        else:
            cam.azimuth, cam.relative_yaw = None, yaw

    def _mount_status(self, vehicle: Vehicle, msg: Any, now_ms: int) -> None:
        # ArduPilot: a = pitch, b = roll, c = yaw (centidegrees, yaw relative to the vehicle).
        cam = vehicle.camera
        cam.elevation, cam.roll = msg.pointing_a / 100, msg.pointing_b / 100
        cam.azimuth, cam.relative_yaw = None, msg.pointing_c / 100

    def _mount_orientation(self, vehicle: Vehicle, msg: Any, now_ms: int) -> None:
        cam = vehicle.camera
        cam.elevation, cam.roll = msg.pitch, msg.roll
        absolute = _finite(getattr(msg, "yaw_absolute", math.nan))
        if absolute is not None and absolute != 0.0:
            cam.azimuth, cam.relative_yaw = absolute % 360.0, None
        else:
            cam.azimuth, cam.relative_yaw = None, msg.yaw

    def _camera_fov(self, vehicle: Vehicle, msg: Any, now_ms: int) -> None:
        cam = vehicle.camera
        cam.fov, cam.vfov = _finite(msg.hfov), _finite(msg.vfov)
        lat, lon = _deg_e7(msg.lat_image), _deg_e7(msg.lon_image)
        if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180):
            cam.aim, cam.range_m = None, None  # unknown, or beyond the horizon
            return
        alt_known = msg.alt_image not in (INT32_MAX, INT32_MIN)
        image_msl = msg.alt_image / 1000 if alt_known else None
        cam.aim = (lat, lon, image_msl)
        cam_lat, cam_lon = _deg_e7(msg.lat_camera), _deg_e7(msg.lon_camera)
        cam_msl = msg.alt_camera / 1000 if msg.alt_camera not in (INT32_MAX, INT32_MIN) else None
        if cam_lat is None or cam_lon is None:
            cam_lat, cam_lon, cam_msl = vehicle.lat, vehicle.lon, vehicle.msl_m
        if cam_lat is None or cam_lon is None:
            cam.range_m = None
            return
        flat = ground_distance_m(cam_lat, cam_lon, lat, lon)
        drop = (cam_msl - image_msl) if cam_msl is not None and image_msl is not None else 0.0
        cam.range_m = math.hypot(flat, drop)

    def _camera_information(self, vehicle: Vehicle, msg: Any, now_ms: int) -> None:
        raw = msg.model_name
        if isinstance(raw, list | tuple):
            raw = bytes(raw)
        if isinstance(raw, bytes | bytearray):
            raw = raw.split(b"\0", 1)[0].decode("utf-8", "replace")
        vehicle.camera.model = str(raw).strip("\0 ")
        focal, width, height = msg.focal_length, msg.sensor_size_h, msg.sensor_size_v
        if vehicle.camera.fov is None and _finite(focal) and focal > 0 and _finite(width):
            vehicle.camera.fov = math.degrees(2 * math.atan(width / (2 * focal)))
            if _finite(height) and height > 0:
                vehicle.camera.vfov = math.degrees(2 * math.atan(height / (2 * focal)))

    def _home(self, vehicle: Vehicle, msg: Any, now_ms: int) -> None:
        lat, lon = _deg_e7(msg.latitude), _deg_e7(msg.longitude)
        if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180):
            return
        if lat == 0.0 and lon == 0.0:
            return  # not set yet
        vehicle.home = (lat, lon, msg.altitude / 1000)
        if vehicle.home != vehicle.home_sent:
            self._send_home(vehicle, now_ms)

    def _send_home(self, vehicle: Vehicle, now_ms: int) -> None:
        event = to_home(vehicle, self.settings, now_ms, self.geoid)
        if event is not None:
            vehicle.home_sent, vehicle.home_ms = vehicle.home, now_ms
            self._out.append(event)

    def _refresh_static(self, vehicle: Vehicle, now_ms: int) -> None:
        """Home and route again, once a minute, for clients that joined since."""
        if vehicle.home_sent is not None and now_ms - vehicle.home_ms >= STATIC_REFRESH_MS:
            self._send_home(vehicle, now_ms)
        mission = vehicle.mission
        if mission.route and now_ms - mission.route_ms >= STATIC_REFRESH_MS:
            mission.route_ms = now_ms
            self._out.append(to_route(vehicle, self.settings, mission.route, now_ms))

    def _mission(self, vehicle: Vehicle, msg: Any, kind: str, now_ms: int) -> None:
        if getattr(msg, "mission_type", 0) != MAV_MISSION_TYPE_MISSION:
            return  # geofence and rally points are other lists
        mission = vehicle.mission
        if kind == "MISSION_COUNT":
            mission.expected, mission.items = msg.count, {}
        elif kind == "MISSION_CLEAR_ALL":
            mission.expected, mission.items = 0, {}
        else:
            seq = msg.seq
            if mission.expected is not None and seq >= mission.expected:
                return  # not part of the announced mission
            mission.items[seq] = self._waypoint(vehicle, msg, kind)
        self._mission_complete(vehicle, now_ms)

    def _waypoint(self, vehicle: Vehicle, msg: Any, kind: str) -> Waypoint | None:
        """The item as a place to fly to, or None (a command, a non-global frame, no place)."""
        if msg.command not in NAV_POINT_COMMANDS or msg.frame not in GLOBAL_FRAMES:
            return None
        if msg.seq == 0 and vehicle.autopilot == MAV_AUTOPILOT_ARDUPILOTMEGA:
            return None
        if kind == "MISSION_ITEM_INT":
            lat, lon = _deg_e7(msg.x), _deg_e7(msg.y)
        else:
            lat, lon = _finite(msg.x), _finite(msg.y)
        if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180):
            return None
        if lat == 0.0 and lon == 0.0:
            return None  # takeoff "here", and the like
        return (msg.seq, lat, lon, float(msg.z))

    def _mission_complete(self, vehicle: Vehicle, now_ms: int) -> None:
        mission = vehicle.mission
        expected = mission.expected
        if expected is None or any(seq not in mission.items for seq in range(expected)):
            return  # still arriving
        route = tuple(p for seq in range(expected) if (p := mission.items[seq]) is not None)
        if route == mission.route:
            return
        previous, mission.route, mission.route_ms = mission.route, route, now_ms
        if route:
            log.info("%s: vehicle %d mission of %d waypoints", self.settings.name,
                     vehicle.sysid, len(route))  # fmt: skip
            self._out.append(to_route(vehicle, self.settings, route, now_ms))
        elif previous:
            self._out.append(to_delete(route_uid(self.settings, vehicle.sysid), "b-m-r", now_ms))


_HANDLERS = {
    "GLOBAL_POSITION_INT": MavlinkBridge._position,
    "GPS_RAW_INT": MavlinkBridge._gps,
    "ATTITUDE": MavlinkBridge._attitude,
    "SYS_STATUS": MavlinkBridge._sys_status,
    "BATTERY_STATUS": MavlinkBridge._battery,
    "GIMBAL_DEVICE_ATTITUDE_STATUS": MavlinkBridge._gimbal,
    "MOUNT_STATUS": MavlinkBridge._mount_status,
    "MOUNT_ORIENTATION": MavlinkBridge._mount_orientation,
    "CAMERA_FOV_STATUS": MavlinkBridge._camera_fov,
    "CAMERA_INFORMATION": MavlinkBridge._camera_information,
    "HOME_POSITION": MavlinkBridge._home,
}
