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
from accord.cot.made import delete_event, made_event
from accord.cot.model import UNKNOWN_THRESHOLD, CotEvent, Point, iso_from_ms
from accord.cot.xml import escape_attr, parse_fragment
from accord.geo.config import LEVEL_NAMES
from accord.geo.encounter import Encounter
from accord.geo.fence import Breach
from accord.geo.intent import Intent, Meeting
from accord.geo.monitor import AlertChange
from accord.geo.track import Track

ALERT_TYPE = "b-a-o-c"  # ATAK's custom emergency: shown, not sounded as a 911
CANCEL_TYPE = "b-a-o-can"
ZONE_TYPE = "u-d-c-c"
SEPARATION_TAG = "__separation"
CONFLICT_TAG = "__conflict"
ALERT_STALE_MS = 30_000  # the adapter re-sends active alerts well within this
INTENT_STALE_MS = 3_600_000  # a planned conflict matters until the flight
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
    alert = made_event(
        pair.uid,
        ALERT_TYPE,
        Point(lat, lon),
        detail,
        now_ms=now_ms,
        stale_ms=ALERT_STALE_MS,
        how="m-p",  # machine, predicted
    )
    radius = max(1.0, encounter.volume_h_m)
    colour = "-65536" if level >= 2 else "-256"  # red for warning and loss, yellow for caution
    zone = made_event(
        f"{pair.uid}.zone",
        ZONE_TYPE,
        Point(lat, lon),
        (
            f'<shape><ellipse major="{radius:.0f}" minor="{radius:.0f}" angle="360"/></shape>'
            f'<contact callsign="conflict {escape_attr(pair.own_callsign)}"/>'
            f'<strokeColor value="{colour}"/><strokeWeight value="3.0"/>'
            f'<fillColor value="{colour}"/>'
            f"{_link(pair, encounter)}{_conflict_xml(pair)}"
        ),
        now_ms=now_ms,
        stale_ms=ALERT_STALE_MS,
        how="m-p",
    )
    return [alert, zone]


def cancel_events(pair: Pair, encounter: Encounter, now_ms: int) -> list[CotEvent]:
    lat, lon = encounter.plane.inverse(0.0, 0.0)
    cancel = made_event(
        pair.uid,
        CANCEL_TYPE,
        Point(lat, lon),
        (
            f'<contact callsign="{escape_attr(pair.own_callsign)} conflict"/>'
            f"{_link(pair, encounter)}"
            f'<emergency cancel="true">{escape_attr(pair.own_callsign)}</emergency>'
            f"{_conflict_xml(pair)}"
        ),
        now_ms=now_ms,
        stale_ms=ALERT_STALE_MS,
        how="m-p",
    )
    delete = delete_event(
        f"{pair.uid}.zone",
        ZONE_TYPE,
        now_ms=now_ms,
        stale_ms=ALERT_STALE_MS,
        how="h-g-i-g-o",
        point=Point(lat, lon),
    )
    return [cancel, delete]


BREACH_TYPE = "b-a-g"  # ATAK's "Geo-fence Breached"
BREACH_TAG = "__breach"


def breach_event(
    breach: Breach,
    *,
    origin: str,
    track_type: str,
    track_callsign: str,
    track_partner: str,
    fence_partner: str,
    now_ms: int,
) -> CotEvent:
    """A breach alert (``b-a-g``) linked ``p-p`` to the track, with the machine detail
    ``<__breach fence name track kind track_partner fence_partner/>`` (``*_partner``: the
    partner that released that uid, "" for our own; the release policy keeps those names)."""
    fence = breach.fence
    verb = "entered" if breach.kind == "entry" else "left"
    text = f"{track_callsign} {verb} {fence.name}"
    key = conflict_key(fence.uid, breach.track)
    detail = (
        f'<contact callsign="{escape_attr(track_callsign)} geofence"/>'
        f'<link uid="{escape_attr(breach.track)}" type="{escape_attr(track_type)}"'
        ' relation="p-p"/>'
        f'<emergency type="Geo-fence Breached">{escape_attr(text)}</emergency>'
        f'<{BREACH_TAG} fence="{escape_attr(fence.uid)}" name="{escape_attr(fence.name)}"'
        f' track="{escape_attr(breach.track)}" kind="{breach.kind}"'
        f' track_partner="{escape_attr(track_partner)}"'
        f' fence_partner="{escape_attr(fence_partner)}" origin="{escape_attr(origin)}"/>'
    )
    return made_event(
        f"fence.{origin}.{key}",
        BREACH_TYPE,
        Point(breach.lat, breach.lon),
        detail,
        now_ms=now_ms,
        stale_ms=ALERT_STALE_MS,
        how="m-g",
    )


INTENT_TAG = "__intent_conflict"
CONFORMANCE_TAG = "__conformance"


def _utc(seconds: float) -> str:
    return iso_from_ms(int(seconds * 1000))[11:19]


def intent_conflict_event(
    own: Intent, other: Intent, meeting: Meeting, pair: Pair, now_ms: int
) -> CotEvent:
    """Two missions meet: an alert linked ``p-p`` to the own route, naming both missions and
    where and when, with ``<__intent_conflict a b mission_a mission_b from to distance_m/>``
    and the pair's ``<__conflict>`` (the release policy treats ``a``/``b`` as for
    ``__separation``)."""
    text = (
        f"Missions {own.name} and {other.name} meet near {meeting.lat:.5f},{meeting.lon:.5f} "
        f"between {_utc(meeting.from_s)} and {_utc(meeting.to_s)} UTC"
    )
    detail = (
        f'<contact callsign="{escape_attr(own.name)} intent conflict"/>'
        f'<link uid="{escape_attr(own.uid)}" type="b-m-r" relation="p-p"/>'
        f'<emergency type="Custom">{escape_attr(text)}</emergency>'
        f'<{INTENT_TAG} a="{escape_attr(own.uid)}" b="{escape_attr(other.uid)}"'
        f' mission_a="{escape_attr(own.name)}" mission_b="{escape_attr(other.name)}"'
        f' from="{iso_from_ms(int(meeting.from_s * 1000))}"'
        f' to="{iso_from_ms(int(meeting.to_s * 1000))}" distance_m="{meeting.distance_m:.0f}"/>'
        f"{_conflict_xml(pair)}"
    )
    return made_event(
        f"intent.{pair.origin}.{pair.key}",
        ALERT_TYPE,
        Point(meeting.lat, meeting.lon),
        detail,
        now_ms=now_ms,
        stale_ms=INTENT_STALE_MS,
        how="m-p",
    )


def conformance_event(
    track: str, track_type: str, callsign: str, intent: Intent, off_m: float | None,
    lat: float, lon: float, now_ms: int,
) -> CotEvent:  # fmt: skip
    """``off_m`` metres outside its own mission's corridor (an alert), or None: back inside
    (its cancel)."""
    link = f'<link uid="{escape_attr(track)}" type="{escape_attr(track_type)}" relation="p-p"/>'
    if off_m is None:
        kind = CANCEL_TYPE
        body = f'<emergency cancel="true">{escape_attr(callsign)}</emergency>'
    else:
        kind = ALERT_TYPE
        text = f"{callsign} is {off_m:.0f} m outside its mission corridor ({intent.name})"
        body = (
            f'<emergency type="Custom">{escape_attr(text)}</emergency>'
            f'<{CONFORMANCE_TAG} track="{escape_attr(track)}" intent="{escape_attr(intent.uid)}"'
            f' off_m="{off_m:.0f}"/>'
        )
    return made_event(
        f"{track}.nonconforming",
        kind,
        Point(lat, lon),
        f'<contact callsign="{escape_attr(callsign)}"/>{link}{body}',
        now_ms=now_ms,
        stale_ms=ALERT_STALE_MS,
        how="m-g",
    )
