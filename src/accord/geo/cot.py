"""CoT <-> separation: airborne events to tracks, alert changes to the events people see.

Pure (no I/O, no clock): the coordination adapter (``accord.server.coordination``) feeds it the
events the hub routes and ``now``, and submits what it returns.

Which events are tracks: every airborne CoT type (``a-<affiliation>-A-...``: MAVLink drones of
our feeds, drones released by partners, crewed aircraft from an ADS-B gateway). Ground units
are not checked. ``<track course speed>`` gives the velocity (speed 9999999 = unknown), the
point's ``ce``/``le`` the errors, and a partner's ``<__release precision_m>`` the precision its
position was coarsened to (it replaces the inflated ``ce``; see :class:`~accord.geo.track.Track`).

The alert for a pair (reference drones-federation §B6: ATAK shows ``b-a-*`` emergencies that
link ``p-p`` to a map item of exactly the linked type):

- ``b-a-o-c`` with ``<emergency type="Custom">Conflict with [ORG-B] Hawk 2 in 17 s, CPA 12 m``,
  ``<link relation="p-p">`` to the own drone, the point at the predicted conflict point, and the
  machine detail ``<__separation level a b t_loss_s cpa_s cpa_m/>`` (``t_loss_s`` empty when no
  loss is ahead and the level is only held by persistence);
- ``<__conflict key origin partner/>``: ``key`` is the pair key both sides of a link compute
  alike (:func:`conflict_key`), ``origin`` the server that computed this view, ``partner`` the
  partner that released the intruder (empty for a local one);
- its cancel, ``b-a-o-can`` with ``<emergency cancel="true">``, same uid;
- the conflict zone, a ``u-d-c-c`` circle of the volume's radius at the conflict point, deleted
  (``t-x-d-d``) when the alert clears.

Pair keys and pseudonyms: our drone ``A1`` is known to partner B as ``p(A1)`` (its policy's
pseudonym, or ``A1``), B's drone ``B2`` is known to us as ``q(B2)``. Neither side knows the
other's original uids, but both know ``p(A1)`` and ``q(B2)``: we released one and received the
other. The key is a hash of that sorted pair, so both compute it without any secret crossing.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

from lxml import etree

from accord.cot.errors import MalformedEvent
from accord.cot.model import UNKNOWN_THRESHOLD, UNKNOWN_VALUE, CotEvent, Point
from accord.cot.xml import detail_from_xml, escape_attr, parse_fragment
from accord.geo.config import LEVEL_NAMES
from accord.geo.encounter import Encounter
from accord.geo.monitor import AlertChange
from accord.geo.track import Track

ALERT_TYPE = "b-a-o-c"  # ATAK's custom emergency: shown, not sounded as a 911
CANCEL_TYPE = "b-a-o-can"
ZONE_TYPE = "u-d-c-c"
DELETE_TYPE = "t-x-d-d"
SEPARATION_TAG = "__separation"
CONFLICT_TAG = "__conflict"
ALERT_STALE_MS = 30_000  # the adapter re-sends active alerts well within this
KEY_HEX = 16  # 64 bits of SHA-256: pairs of one federation never collide in practice


def is_airborne(kind: str) -> bool:
    """``a-*-A-*``: an aircraft of any affiliation."""
    parts = kind.split("-", 3)
    return len(parts) >= 3 and parts[0] == "a" and parts[2] == "A"


def callsign_of(event: CotEvent) -> str:
    contact = event.detail.contact
    return contact.callsign if contact is not None and contact.callsign else event.uid


def _number(element: etree._Element | None, name: str) -> float | None:
    if element is None:
        return None
    text = element.get(name)
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return math.nan  # a present but unreadable value is bad input, not "unknown"


def to_track(event: CotEvent, *, own: bool) -> Track | str:
    """The track an airborne event reports, or why it cannot be one (a counted reason)."""
    point = event.point
    if not point.hae < UNKNOWN_THRESHOLD:
        return "no altitude"
    course = speed = precision = None
    slope = 0.0
    if "<track" in event.detail.xml or "<__release" in event.detail.xml:
        try:
            root = parse_fragment(f"<detail>{event.detail.xml}</detail>")
        except MalformedEvent:
            return "bad detail"
        track = root.find("track")
        course, speed = _number(track, "course"), _number(track, "speed")
        precision = _number(root.find("__release"), "precision_m")
        slope_value = _number(track, "slope")
        if slope_value is not None and speed is not None and speed < UNKNOWN_THRESHOLD:
            # CoT slope is the climb angle in degrees: vertical speed = speed x tan(slope).
            slope = speed * math.tan(math.radians(slope_value)) if abs(slope_value) < 90 else 0.0
    return Track(
        uid=event.uid,
        time_s=event.time / 1000.0,
        lat_deg=point.lat,
        lon_deg=point.lon,
        alt_m=point.hae,
        track_deg=course,
        speed_mps=speed,
        vertical_speed_mps=slope,
        ce_m=point.ce,
        le_m=point.le,
        precision_m=precision,
        own=own,
    )


def conflict_key(a: str, b: str) -> str:
    """The pair key of two uids as both sides of a link know them (see the module docstring)."""
    first, second = (a, b) if a <= b else (b, a)
    return hashlib.sha256(f"{first}\0{second}".encode()).hexdigest()[:KEY_HEX]


@dataclass(frozen=True, slots=True)
class Pair:
    """What an alert says of its two tracks, beyond the encounter."""

    key: str  # conflict_key of the two public uids
    origin: str  # this server's name
    own_type: str  # the own drone's CoT type (ATAK links only to exactly that type)
    own_callsign: str
    intruder_callsign: str
    partner: str = ""  # the partner that released the intruder ("" = a local track)

    @property
    def uid(self) -> str:
        return f"sep.{self.origin}.{self.key}"


def _fmt(value: float | None, digits: int) -> str:
    if value is None or not math.isfinite(value):
        return ""
    return f"{value:.{digits}f}"


def alert_text(level: int, encounter: Encounter, intruder: str) -> str:
    if level >= 3:
        return (
            f"Loss of separation with {intruder}: {encounter.horizontal_m:.0f} m apart, "
            f"{encounter.vertical_m:.0f} m vertically"
        )
    name = LEVEL_NAMES[level - 1]
    when = f" in {encounter.t_in_s:.0f} s" if encounter.t_in_s is not None else ""
    return f"Conflict with {intruder}{when}, CPA {encounter.cpa_m:.0f} m ({name})"


def separation_xml(level: int, encounter: Encounter) -> str:
    """The machine detail, exactly ``<__separation level a b t_loss_s cpa_s cpa_m/>``."""
    return (
        f'<{SEPARATION_TAG} level="{LEVEL_NAMES[level - 1]}"'
        f' a="{escape_attr(encounter.ownship)}" b="{escape_attr(encounter.intruder)}"'
        f' t_loss_s="{_fmt(encounter.t_in_s, 1)}" cpa_s="{_fmt(encounter.cpa_s, 1)}"'
        f' cpa_m="{_fmt(encounter.cpa_m, 0)}"/>'
    )


def _conflict_xml(pair: Pair) -> str:
    return (
        f'<{CONFLICT_TAG} key="{pair.key}" origin="{escape_attr(pair.origin)}"'
        f' partner="{escape_attr(pair.partner)}"/>'
    )


def _link(pair: Pair, encounter: Encounter) -> str:
    return (
        f'<link uid="{escape_attr(encounter.ownship)}" type="{escape_attr(pair.own_type)}"'
        ' relation="p-p"/>'
    )


def _conflict_point(encounter: Encounter) -> tuple[float, float]:
    if encounter.loss or encounter.cpa_s <= 0:
        return encounter.plane.inverse(0.0, 0.0)
    return encounter.cpa_point()


def alert_events(change: AlertChange, pair: Pair, now_ms: int) -> list[CotEvent]:
    """The events one alert change sends: the alert and its zone, or the cancel and the
    zone's deletion."""
    encounter = change.encounter
    if change.level == 0:
        return cancel_events(pair, encounter, now_ms)
    return raised_events(change.level, encounter, pair, now_ms)


def raised_events(level: int, encounter: Encounter, pair: Pair, now_ms: int) -> list[CotEvent]:
    """The alert at ``level`` and its conflict zone (also what a refresh re-sends)."""
    lat, lon = _conflict_point(encounter)
    text = alert_text(level, encounter, pair.intruder_callsign)
    detail = (
        f'<contact callsign="{escape_attr(pair.own_callsign)} conflict"/>'
        f"{_link(pair, encounter)}"
        f'<emergency type="Custom">{escape_attr(text)}</emergency>'
        f"{separation_xml(level, encounter)}{_conflict_xml(pair)}"
        f"<remarks>{escape_attr(text)}</remarks>"
    )
    alert = CotEvent(
        uid=pair.uid,
        type=ALERT_TYPE,
        how="m-p",  # machine, predicted
        time=now_ms,
        start=now_ms,
        stale=now_ms + ALERT_STALE_MS,
        point=Point(lat, lon, UNKNOWN_VALUE, UNKNOWN_VALUE, UNKNOWN_VALUE),
        detail=detail_from_xml(detail),
    )
    radius = max(1.0, encounter.volume_h_m)
    colour = "-65536" if level >= 2 else "-256"  # red for warning and loss, yellow for caution
    zone = CotEvent(
        uid=f"{pair.uid}.zone",
        type=ZONE_TYPE,
        how="m-p",
        time=now_ms,
        start=now_ms,
        stale=now_ms + ALERT_STALE_MS,
        point=Point(lat, lon, UNKNOWN_VALUE, UNKNOWN_VALUE, UNKNOWN_VALUE),
        detail=detail_from_xml(
            f'<shape><ellipse major="{radius:.0f}" minor="{radius:.0f}" angle="360"/></shape>'
            f'<contact callsign="conflict {escape_attr(pair.own_callsign)}"/>'
            f'<strokeColor value="{colour}"/><strokeWeight value="3.0"/>'
            f'<fillColor value="{colour}"/>'
            f"{_link(pair, encounter)}{_conflict_xml(pair)}"
        ),
    )
    return [alert, zone]


def cancel_events(pair: Pair, encounter: Encounter, now_ms: int) -> list[CotEvent]:
    lat, lon = encounter.plane.inverse(0.0, 0.0)
    cancel = CotEvent(
        uid=pair.uid,
        type=CANCEL_TYPE,
        how="m-p",
        time=now_ms,
        start=now_ms,
        stale=now_ms + ALERT_STALE_MS,
        point=Point(lat, lon, UNKNOWN_VALUE, UNKNOWN_VALUE, UNKNOWN_VALUE),
        detail=detail_from_xml(
            f'<contact callsign="{escape_attr(pair.own_callsign)} conflict"/>'
            f"{_link(pair, encounter)}"
            f'<emergency cancel="true">{escape_attr(pair.own_callsign)}</emergency>'
            f"{_conflict_xml(pair)}"
        ),
    )
    zone_uid = f"{pair.uid}.zone"
    delete = CotEvent(
        uid=f"{zone_uid}.delete",
        type=DELETE_TYPE,
        how="h-g-i-g-o",
        time=now_ms,
        start=now_ms,
        stale=now_ms + ALERT_STALE_MS,
        point=Point(lat, lon),
        detail=detail_from_xml(
            f'<link uid="{escape_attr(zone_uid)}" type="{ZONE_TYPE}" relation="none"/>'
            "<__forcedelete/>"
        ),
    )
    return [cancel, delete]
