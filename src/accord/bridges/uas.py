"""A vehicle's state and the events that show it (reference drones-federation §A2-A7).

Everything here is plain arithmetic on decoded values: :mod:`accord.bridges.mavlink` fills a
:class:`Vehicle` from MAVLink messages, and the ``to_*`` functions turn it into events:

- the aircraft (``a-<aff>-A-M-H-Q`` / ``…-M-F-Q``) with ``<track>``, ``<spatial>``, the camera
  ``<sensor>``, ``<__video>``, ``<status battery>``, ``<vehicle>`` and ``<remarks>``;
- the aim point, ``b-m-p-s-p-i``, linked ``p-p`` to the aircraft (ATAK draws the line);
- the link-lost alert (``b-a-o-c``, ATAK's "Custom" emergency) and its cancel (``b-a-o-can``);
- the home (launch and return) point, ``b-m-p-w`` linked ``p-p`` to the aircraft;
- the mission as an ATAK route, ``b-m-r`` with one ``<link point relation="c">`` per waypoint.

Units: lat/lon degrees, heights metres above the WGS-84 ellipsoid (never MSL), angles degrees
(azimuth true, clockwise from north), speeds m/s, times epoch ms.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from accord.cot.made import delete_event, made_event
from accord.cot.model import UNKNOWN_VALUE, CotEvent, Point
from accord.cot.xml import detail_from_xml, escape_attr

# Geoid undulation (metres of the EGM96 geoid above the ellipsoid) at lat, lon degrees.
Geoid = Callable[[float, float], float]

# UAS Tool aircraft go stale ~3-3.5 s after their time (captures in shared/data/captures).
STALE_MS = 3_000
# ATAK's own alerts are stale 10 s after they are sent and re-sent while active (§B6).
ALERT_STALE_MS = 10_000
# GPS_RAW_INT eph/epv are dilutions of precision x100, not metres; a civil single-frequency
# receiver's user equivalent range error is ~5 m (1 sigma), so ce ≈ HDOP x 5 m.
UERE_M = 5.0
# A fix worse than 3D: the position is dead reckoning or 2D. ce is multiplied and floored so a
# client never shows it as precise; a 2D fix has no vertical.
POOR_FIX_CE_FACTOR = 10.0
POOR_FIX_CE_FLOOR_M = 500.0
# The camera cone needs a range (§A2); without CAMERA_FOV_STATUS it is the slant distance to
# the ground from the height above home and the tilt, within ATAK's 15 km tool limit.
MAX_RANGE_M = 15_000.0

# Home and mission change rarely: sent when they change and again every STATIC_REFRESH_MS while
# the vehicle is live (clients that join later get them); stale well after the last refresh.
STATIC_REFRESH_MS = 60_000
STATIC_STALE_MS = 10 * 60_000
DELETE_STALE_MS = 20_000

# MAV_TYPE values (common.xml) by what ATAK draws for them (§A1; mavTAK's grouping).
_FIXED_WING = frozenset({1, 16, 19, 20, 21, 22, 23, 24, 25, 28, 47})
_ROTARY = frozenset({2, 3, 4, 13, 14, 15, 29, 35, 43})
_LIGHTER = frozenset({7, 8, 17})
_GROUND = frozenset({10, 46})
_SURFACE = frozenset({11})
_SUBSURFACE = frozenset({12})
VEHICLE_TYPES = _FIXED_WING | _ROTARY | _LIGHTER | _GROUND | _SURFACE | _SUBSURFACE | {9}


def type_suffix(mav_type: int) -> str:
    """The CoT type after ``a-<affiliation>-`` for a MAV_TYPE."""
    if mav_type in _FIXED_WING:
        return "A-M-F-Q"
    if mav_type in _ROTARY:
        return "A-M-H-Q"
    if mav_type in _LIGHTER:
        return "A-M-L"
    if mav_type in _GROUND:
        return "G-E-V"
    if mav_type in _SURFACE:
        return "S-X"
    if mav_type in _SUBSURFACE:
        return "U"
    return "A-M"  # rocket and the rest: a military air vehicle, no function


@dataclass(frozen=True, slots=True)
class FeedSettings:
    """What a feed tells the bridge: names, affiliation, video, rates."""

    name: str
    org: str = "accord"
    affiliation: str = "f"
    callsign: str = "{feed}-{sysid}"  # may use {feed} and {sysid}
    video_url: str = ""
    rate_hz: float = 2.0  # aircraft events per second and vehicle, at most
    link_timeout_ms: int = 3_000  # no HEARTBEAT this long: the link is lost
    camera_model: str = ""

    def uid(self, sysid: int) -> str:
        return f"{self.org}.{self.name}.{sysid}"

    def callsign_of(self, sysid: int) -> str:
        return self.callsign.replace("{feed}", self.name).replace("{sysid}", str(sysid))


@dataclass(slots=True)
class Camera:
    """Where the camera looks. ``azimuth`` is true; None = not reported."""

    azimuth: float | None = None
    elevation: float | None = None
    roll: float | None = None
    fov: float | None = None
    vfov: float | None = None
    range_m: float | None = None
    aim: tuple[float, float, float | None] | None = None  # image centre lat, lon, MSL height
    model: str = ""
    # A gimbal reports yaw relative to the vehicle: it becomes true when the vehicle yaw is
    # known, at the time of the event (the vehicle turns under a locked gimbal).
    relative_yaw: float | None = None


Waypoint = tuple[int, float, float, float]  # seq, lat, lon, alt (as the item's frame says)


@dataclass(slots=True)
class Mission:
    """The mission as seen crossing the link (the GCS uploading it, or the vehicle reporting
    it): MISSION_COUNT opens a transfer, items fill it; complete when every seq has come."""

    expected: int | None = None  # from MISSION_COUNT; None until one is seen
    items: dict[int, Waypoint | None] = field(default_factory=dict)  # None: not a nav point
    route: tuple[Waypoint, ...] | None = None  # the last one sent as a route
    route_ms: int = 0  # when the route was last sent


@dataclass(slots=True)
class Vehicle:
    """Full-rate state of one vehicle (one MAVLink system id)."""

    sysid: int
    compid: int
    mav_type: int
    last_heartbeat_ms: int
    armed: bool = False
    lat: float | None = None
    lon: float | None = None
    msl_m: float | None = None
    relative_alt_m: float | None = None
    position_ms: int = 0
    course: float | None = None
    speed: float | None = None
    slope: float | None = None
    roll: float | None = None
    pitch: float | None = None
    yaw: float | None = None
    spin: tuple[float, float, float] | None = None
    fix_type: int | None = None
    satellites: int | None = None
    undulation_m: float | None = None  # from the GPS itself: alt_ellipsoid - alt
    h_acc_m: float | None = None
    v_acc_m: float | None = None
    battery_pct: int | None = None
    voltage: float | None = None
    time_remaining_s: int | None = None
    camera: Camera = field(default_factory=Camera)
    home: tuple[float, float, float] | None = None  # lat, lon, MSL
    home_sent: tuple[float, float, float] | None = None
    home_ms: int = 0  # when home was last sent
    autopilot: int = 0  # MAV_AUTOPILOT
    mission: Mission = field(default_factory=Mission)
    last_emit_ms: int | None = None
    link_lost: bool = False


def hae_of(
    vehicle: Vehicle,
    msl_m: float | None,
    geoid: Geoid | None,
    at: tuple[float, float] | None = None,
) -> float:
    """Height above the ellipsoid for an MSL height (at the vehicle, or at ``at``): the GPS's
    own undulation (alt_ellipsoid - alt of one fix) when it reports one, else the EGM96 model,
    else unknown — never MSL."""
    if at is None:
        if vehicle.lat is None or vehicle.lon is None:
            return UNKNOWN_VALUE
        at = (vehicle.lat, vehicle.lon)
    if msl_m is None:
        return UNKNOWN_VALUE
    if vehicle.undulation_m is not None:
        return msl_m + vehicle.undulation_m
    if geoid is not None:
        return msl_m + geoid(*at)
    return UNKNOWN_VALUE


def errors_of(vehicle: Vehicle) -> tuple[float, float]:
    """ce, le (metres) from the GPS accuracy, inflated on fixes worse than 3D."""
    ce = vehicle.h_acc_m if vehicle.h_acc_m is not None else UNKNOWN_VALUE
    le = vehicle.v_acc_m if vehicle.v_acc_m is not None else UNKNOWN_VALUE
    fix = vehicle.fix_type
    if fix is None:
        return ce, le
    if fix < 3:
        base = ce if ce < UNKNOWN_VALUE else POOR_FIX_CE_FLOOR_M
        ce = max(base * POOR_FIX_CE_FACTOR, POOR_FIX_CE_FLOOR_M)
        le = UNKNOWN_VALUE
    return ce, le


def _num(value: float) -> str:
    text = f"{value:.6f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def _wrap(degrees: float) -> float:
    return degrees % 360.0


def true_azimuth(vehicle: Vehicle) -> float | None:
    cam = vehicle.camera
    if cam.azimuth is not None:
        return _wrap(cam.azimuth)
    if cam.relative_yaw is not None and vehicle.yaw is not None:
        return _wrap(vehicle.yaw + cam.relative_yaw)
    return None


def _range(vehicle: Vehicle) -> float | None:
    cam = vehicle.camera
    if cam.range_m is not None:
        return min(cam.range_m, MAX_RANGE_M)
    if cam.elevation is None or vehicle.relative_alt_m is None or vehicle.relative_alt_m <= 0:
        return None
    if cam.elevation > -1.0:
        return None  # at or above the horizon: no ground in the centre pixel
    return min(vehicle.relative_alt_m / math.sin(math.radians(-cam.elevation)), MAX_RANGE_M)


def _sensor_xml(vehicle: Vehicle, settings: FeedSettings) -> str:
    cam = vehicle.camera
    azimuth = true_azimuth(vehicle)
    if azimuth is None and cam.elevation is None and cam.fov is None:
        return ""
    attrs: list[tuple[str, str]] = []
    if cam.elevation is not None:
        attrs.append(("elevation", _num(cam.elevation)))
    if cam.vfov is not None:
        attrs.append(("vfov", _num(cam.vfov)))
    if azimuth is not None:
        # MITRE: the clockwise angle of a north arrow drawn on the image.
        attrs.append(("north", _num(_wrap(360.0 - azimuth))))
    attrs.append(("roll", _num(cam.roll or 0.0)))
    rng = _range(vehicle)
    if rng is not None:
        attrs.append(("range", _num(rng)))
    if azimuth is not None:
        attrs.append(("azimuth", _num(azimuth)))
    attrs.append(("model", escape_attr(cam.model or settings.camera_model or "MAVLink camera")))
    if cam.fov is not None:
        attrs.append(("fov", _num(cam.fov)))
    attrs += [("type", "r-e"), ("version", "0.6")]
    return "<sensor " + " ".join(f'{k}="{v}"' for k, v in attrs) + "/>"


def _remarks(vehicle: Vehicle, now_ms: int) -> str:
    parts = ["armed" if vehicle.armed else "disarmed"]
    if vehicle.battery_pct is not None:
        parts.append(f"battery {vehicle.battery_pct} %")
    if vehicle.voltage is not None:
        parts.append(f"{vehicle.voltage:.2f} V")
    if vehicle.fix_type is not None:
        fix = {0: "no GPS", 1: "no fix", 2: "2D fix"}.get(vehicle.fix_type, "3D fix")
        sats = f", {vehicle.satellites} satellites" if vehicle.satellites is not None else ""
        parts.append(fix + sats)
    if vehicle.link_lost:
        quiet_s = (now_ms - vehicle.last_heartbeat_ms) / 1000
        parts.append(f"LINK LOST (no heartbeat for {quiet_s:.0f} s)")
    else:
        parts.append("link ok")
    return "; ".join(parts)


def spi_uid(settings: FeedSettings, sysid: int) -> str:
    return f"{settings.uid(sysid)}.SPI1"


def aircraft_type(vehicle: Vehicle, settings: FeedSettings) -> str:
    return f"a-{settings.affiliation}-{type_suffix(vehicle.mav_type)}"


def to_aircraft(
    vehicle: Vehicle, settings: FeedSettings, now_ms: int, geoid: Geoid | None, *, stale_ms: int
) -> CotEvent:
    """The aircraft event; ``stale_ms`` is absolute (``now_ms`` for a lost link)."""
    if vehicle.lat is None or vehicle.lon is None:
        raise ValueError("to_aircraft needs a vehicle with a position")
    callsign = settings.callsign_of(vehicle.sysid)
    ce, le = errors_of(vehicle)
    point = Point(vehicle.lat, vehicle.lon, hae_of(vehicle, vehicle.msl_m, geoid), ce, le)
    parts = [f'<contact callsign="{escape_attr(callsign)}"/>']
    if vehicle.course is not None and vehicle.speed is not None:
        parts.append(
            f'<track course="{_num(vehicle.course)}" speed="{_num(vehicle.speed)}"'
            f' slope="{_num(vehicle.slope or 0.0)}"/>'
        )
    parts.append(_sensor_xml(vehicle, settings))
    if vehicle.roll is not None and vehicle.pitch is not None and vehicle.yaw is not None:
        spin = vehicle.spin or (0.0, 0.0, 0.0)
        parts.append(
            f'<spatial><attitude roll="{_num(vehicle.roll)}" pitch="{_num(vehicle.pitch)}"'
            f' yaw="{_num(vehicle.yaw)}"/><spin roll="{_num(spin[0])}" pitch="{_num(spin[1])}"'
            f' yaw="{_num(spin[2])}"/></spatial>'
        )
    if settings.video_url:
        parts.append(
            f'<__video sensor="{escape_attr(callsign)}" spi="{escape_attr(callsign)}.SPI1"'
            f' url="{escape_attr(settings.video_url)}"/>'
        )
    if vehicle.battery_pct is not None:
        parts.append(f'<status battery="{vehicle.battery_pct}"/>')
    vehicle_attrs = [
        'type="MAVLink"',
        'typeTag="_MAVLINK_"',
        f'isFlying="{str(vehicle.armed).lower()}"',
    ]
    if vehicle.voltage is not None:
        vehicle_attrs.append(f'voltage="{vehicle.voltage:.2f}"')
    if vehicle.time_remaining_s is not None:
        vehicle_attrs.append(f'flightTimeRemaining="{vehicle.time_remaining_s}"')
    parts.append(f"<vehicle {' '.join(vehicle_attrs)}/>")
    gps = "true" if vehicle.fix_type is not None and vehicle.fix_type >= 3 else "false"
    parts.append(f'<_radio rssi="{0 if vehicle.link_lost else 100}" gps="{gps}"/>')
    parts.append(f"<remarks>{_remarks(vehicle, now_ms)}</remarks>")
    return CotEvent(
        uid=settings.uid(vehicle.sysid),
        type=aircraft_type(vehicle, settings),
        how="m-g",
        time=now_ms,
        start=now_ms,
        stale=stale_ms,
        point=point,
        detail=detail_from_xml("".join(parts)),
    )


def to_spi(
    vehicle: Vehicle, settings: FeedSettings, now_ms: int, geoid: Geoid | None, *, stale_ms: int
) -> CotEvent | None:
    """The camera's aim point, or None when the camera reports none."""
    aim = vehicle.camera.aim
    if aim is None:
        return None
    callsign = settings.callsign_of(vehicle.sysid)
    detail = (
        f'<contact callsign="{escape_attr(callsign)}.SPI1"/>'
        f'<link uid="{escape_attr(settings.uid(vehicle.sysid))}"'
        f' type="{aircraft_type(vehicle, settings)}" relation="p-p"/>'
        '<precisionlocation geopointsrc="CALC" altsrc="CALC"/>'
    )
    return CotEvent(
        uid=spi_uid(settings, vehicle.sysid),
        type="b-m-p-s-p-i",
        how="m-p",  # machine, predicted: computed from the camera pose (jmisb ST 0805, §A3)
        time=now_ms,
        start=now_ms,
        stale=stale_ms,
        point=Point(
            aim[0], aim[1], hae_of(vehicle, aim[2], geoid, aim[:2]), UNKNOWN_VALUE, UNKNOWN_VALUE
        ),
        detail=detail_from_xml(detail),
    )


def to_link_alert(vehicle: Vehicle, settings: FeedSettings, now_ms: int, *, lost: bool) -> CotEvent:
    """``b-a-o-c`` (ATAK's "Custom" alert) while the link is lost; ``b-a-o-can`` when it is back.

    Not ``b-a-o-tbl``: that is a person's 911 and ATAK sounds it as one; a silent drone link
    is an operator's problem to see and act on, which a custom alert linked to the aircraft
    says without claiming a life is in danger (reference §B6)."""
    callsign = settings.callsign_of(vehicle.sysid)
    link = (
        f'<link uid="{escape_attr(settings.uid(vehicle.sysid))}"'
        f' type="{aircraft_type(vehicle, settings)}" relation="p-p"/>'
    )
    if lost:
        quiet_s = (now_ms - vehicle.last_heartbeat_ms) / 1000
        text = f"{callsign}: telemetry link lost, no heartbeat for {quiet_s:.0f} s"
        emergency = f'<emergency type="Custom">{escape_attr(text)}</emergency>'
        kind = "b-a-o-c"
    else:
        emergency = f'<emergency cancel="true">{escape_attr(callsign)}</emergency>'
        kind = "b-a-o-can"
    lat = vehicle.lat if vehicle.lat is not None else 0.0
    lon = vehicle.lon if vehicle.lon is not None else 0.0
    return made_event(
        f"{settings.uid(vehicle.sysid)}.link-lost",
        kind,
        Point(lat, lon),
        (f'<contact callsign="{escape_attr(callsign)} link"/>{link}{emergency}'),
        now_ms=now_ms,
        stale_ms=ALERT_STALE_MS,
        how="m-g",
    )


def home_uid(settings: FeedSettings, sysid: int) -> str:
    return f"{settings.uid(sysid)}.home"


def route_uid(settings: FeedSettings, sysid: int) -> str:
    return f"{settings.uid(sysid)}.mission"


def to_home(
    vehicle: Vehicle, settings: FeedSettings, now_ms: int, geoid: Geoid | None
) -> CotEvent | None:
    """The home (launch and return) point as a waypoint marker linked ``p-p`` to the aircraft.

    ``b-m-p-w`` ("designated point: waypoint" in the MITRE tree; ATAK draws it as a labelled
    point). Not ``b-m-p-s-p-loc``: ATAK clients and viewers use that for a video sensor's
    location (OpenTAK ICU), and not an ``a-`` type: a home is a place, not a unit."""
    if vehicle.home is None:
        return None
    lat, lon, msl = vehicle.home
    callsign = settings.callsign_of(vehicle.sysid)
    detail = (
        f'<contact callsign="{escape_attr(callsign)} home"/>'
        f'<link uid="{escape_attr(settings.uid(vehicle.sysid))}"'
        f' type="{aircraft_type(vehicle, settings)}" relation="p-p"/>'
        f"<remarks>launch and return point of {escape_attr(callsign)}</remarks>"
    )
    return made_event(
        home_uid(settings, vehicle.sysid),
        "b-m-p-w",
        Point(lat, lon, hae_of(vehicle, msl, geoid, (lat, lon))),
        detail,
        now_ms=now_ms,
        stale_ms=STATIC_STALE_MS,
        how="m-g",
    )


def to_route(
    vehicle: Vehicle, settings: FeedSettings, route: tuple[Waypoint, ...], now_ms: int
) -> CotEvent:
    """The mission as an ATAK route (``b-m-r``, the shape of ATAK-CIV's
    ``takcot/examples/Route.cot``): one ``<link type="b-m-p-w" point="lat,lon" relation="c">``
    per waypoint, in order, then ``<link_attr>`` and ``<__routeinfo>``. Points carry no height:
    mission altitudes are mostly relative to home or terrain, which a CoT point cannot say.
    The event's own point is the first waypoint (ATAK reads the route from the links; a point
    at 0,0 would put the route outside every area filter)."""
    callsign = settings.callsign_of(vehicle.sysid)
    uid = route_uid(settings, vehicle.sysid)
    links = "".join(
        f'<link uid="{escape_attr(uid)}.{seq}" callsign="WP{n}" type="b-m-p-w"'
        f' point="{_num7(lat)},{_num7(lon)}" remarks="" relation="c"/>'
        for n, (seq, lat, lon, _) in enumerate(route, 1)
    )
    detail = (
        f"{links}"
        '<link_attr planningmethod="Infil" color="-1" method="Flying" prefix="WP"'
        ' type="Vehicle" stroke="3" direction="Infil" routetype="Primary"'
        ' order="Ascending Check Points"/>'
        '<strokeColor value="-1"/><strokeWeight value="3.0"/>'
        "<__routeinfo><__navcues/></__routeinfo>"
        f'<contact callsign="{escape_attr(callsign)} mission"/>'
        f"<remarks>mission of {escape_attr(callsign)} ({escape_attr(settings.uid(vehicle.sysid))})"
        "</remarks>"
    )
    first = route[0] if route else (0, 0.0, 0.0, 0.0)
    return made_event(
        uid,
        "b-m-r",
        Point(first[1], first[2]),
        detail,
        now_ms=now_ms,
        stale_ms=STATIC_STALE_MS,
        how="h-e",
    )


def to_delete(uid: str, kind: str, now_ms: int) -> CotEvent:
    """``t-x-d-d`` with ``<__forcedelete>``: clients remove ``uid`` (a mission cleared)."""
    return delete_event(uid, kind, now_ms=now_ms, stale_ms=DELETE_STALE_MS)


def _num7(value: float) -> str:
    return f"{value:.7f}".rstrip("0").rstrip(".")
