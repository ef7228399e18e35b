"""CoT <-> separation: which events are tracks, what a track reads, what an alert says."""

from __future__ import annotations

import dataclasses
import math

import pytest

from accord.cot.model import UNKNOWN_VALUE, CotEvent, Detail, Point
from accord.cot.xml import detail_from_xml, parse_fragment
from accord.geo.config import SeparationConfig
from accord.geo.cot import (
    Pair,
    alert_events,
    alert_text,
    callsign_of,
    conflict_key,
    is_airborne,
    separation_xml,
    to_track,
)
from accord.geo.encounter import evaluate
from accord.geo.monitor import AlertChange
from accord.geo.track import Track

NOW_MS = 1_700_000_000_000


def event(detail: str = "", *, kind: str = "a-f-A-M-H-Q", point: Point | None = None) -> CotEvent:
    return CotEvent(
        uid="D1", type=kind, how="m-g", time=NOW_MS, start=NOW_MS, stale=NOW_MS + 5000,
        point=point or Point(47.0, 7.0, 600.0, 5.0, 8.0), detail=detail_from_xml(detail),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "airborne"),
    [("a-f-A-M-H-Q", True), ("a-n-A-C-F", True), ("a-h-A", True), ("a-f-G-U-C", False),
     ("b-a-o-c", False), ("a-f", False), ("u-d-f", False)],
)  # fmt: skip
def test_only_aircraft_types_are_tracks(kind: str, airborne: bool) -> None:
    assert is_airborne(kind) is airborne


def test_a_track_reads_point_errors_time_and_velocity() -> None:
    track = to_track(event('<track course="90" speed="12.5" slope="0"/>'), own=True)
    assert isinstance(track, Track)
    assert (track.uid, track.time_s, track.lat_deg, track.lon_deg) == ("D1", NOW_MS / 1000, 47, 7)
    assert (track.alt_m, track.ce_m, track.le_m) == (600.0, 5.0, 8.0)
    assert (track.track_deg, track.speed_mps, track.own) == (90.0, 12.5, True)
    assert track.precision_m is None
    assert track.vertical_speed_mps == 0.0


def test_slope_gives_a_vertical_speed() -> None:
    track = to_track(event('<track course="0" speed="10" slope="45"/>'), own=False)
    assert isinstance(track, Track)
    assert track.vertical_speed_mps == pytest.approx(10.0)


def test_no_track_detail_is_unknown_velocity_not_zero() -> None:
    track = to_track(event('<contact callsign="X"/>'), own=False)
    assert isinstance(track, Track)
    assert track.speed_mps is None
    assert not track.velocity_known


def test_a_partners_release_precision_is_read() -> None:
    detail = '<track course="1" speed="2"/><__release policy="p" precision_m="71"/>'
    track = to_track(event(detail), own=False)
    assert isinstance(track, Track)
    assert track.precision_m == 71.0


def test_an_unreadable_number_is_bad_input_not_unknown() -> None:
    track = to_track(event('<track course="east" speed="3"/>'), own=False)
    assert isinstance(track, Track)
    assert track.track_deg is not None
    assert math.isnan(track.track_deg)


def test_a_detail_that_does_not_parse_is_no_track() -> None:
    broken = dataclasses.replace(event(), detail=Detail(xml='<track course="1"'))
    assert to_track(broken, own=False) == "bad detail"


def test_unknown_altitude_is_no_track() -> None:
    point = Point(47.0, 7.0, UNKNOWN_VALUE, 5.0, 5.0)
    assert to_track(event(point=point), own=False) == "no altitude"


def test_a_callsign_or_else_the_uid_names_a_track() -> None:
    assert callsign_of(event('<contact callsign="Hawk 2"/>')) == "Hawk 2"
    assert callsign_of(event()) == "D1"


def test_the_pair_key_is_the_same_from_both_sides_and_differs_per_pair() -> None:
    assert conflict_key("a", "b") == conflict_key("b", "a")
    assert conflict_key("a", "b") != conflict_key("a", "c")
    assert len(conflict_key("a", "b")) == 16


def head_on(gap_m: float) -> AlertChange:
    config = SeparationConfig()
    own = Track("OWN", 0.0, 47.0, 7.0, 100.0, 90.0, 10.0)
    east = 7.0 + gap_m / (111_320 * math.cos(math.radians(47.0)))
    other = Track("OTHER", 0.0, 47.0, east, 100.0, 270.0, 10.0)
    encounter = evaluate(own, other, 0.0, config)
    return AlertChange(encounter.raw_level, 0, encounter)


PAIR = Pair("k" * 16, "org-a", "a-f-A-M-H-Q", "Hawk 1", "[ORG-B] Hawk 2", "org-b")


def test_the_alert_has_the_exact_machine_detail_and_links_to_the_own_drone() -> None:
    change = head_on(490.0)  # loss in (490 - 150) / 20 = 17 s
    assert change.level == 2
    alert, zone = alert_events(change, PAIR, NOW_MS)
    assert (alert.uid, alert.type, zone.uid, zone.type) == (
        "sep.org-a." + "k" * 16, "b-a-o-c", "sep.org-a." + "k" * 16 + ".zone", "u-d-c-c",
    )  # fmt: skip
    root = parse_fragment(f"<detail>{alert.detail.xml}</detail>")
    mark = root.find("__separation")
    assert mark is not None
    assert dict(mark.attrib) == {
        "level": "warning", "a": "OWN", "b": "OTHER", "t_loss_s": "17.0", "cpa_s": "24.5",
        "cpa_m": "0",
    }  # fmt: skip
    link = root.find("link")
    assert link is not None
    assert dict(link.attrib) == {"uid": "OWN", "type": "a-f-A-M-H-Q", "relation": "p-p"}
    emergency = root.find("emergency")
    assert emergency is not None
    assert emergency.get("type") == "Custom"
    assert emergency.text == "Conflict with [ORG-B] Hawk 2 in 17 s, CPA 0 m (warning)"
    conflict = root.find("__conflict")
    assert conflict is not None
    assert dict(conflict.attrib) == {"key": "k" * 16, "origin": "org-a", "partner": "org-b"}
    # The conflict point: where the own drone is at the closest approach, 245 m east.
    assert alert.point.lat == pytest.approx(47.0)
    assert alert.point.lon > 7.0
    assert 'major="150"' in zone.detail.xml


def test_a_loss_says_how_far_apart_and_sits_at_the_own_drone() -> None:
    change = head_on(100.0)
    assert change.level == 3
    alert, _ = alert_events(change, PAIR, NOW_MS)
    assert "Loss of separation with [ORG-B] Hawk 2: 100 m apart, 0 m vertically" in (
        alert.detail.xml
    )
    assert (alert.point.lat, alert.point.lon) == pytest.approx((47.0, 7.0))
    assert 'value="-65536"' in alert_events(change, PAIR, NOW_MS)[1].detail.xml


def test_a_cleared_alert_is_cancelled_and_its_zone_deleted() -> None:
    change = head_on(490.0)
    cleared = AlertChange(0, 2, change.encounter)
    cancel, delete = alert_events(cleared, PAIR, NOW_MS)
    assert (cancel.uid, cancel.type) == (PAIR.uid, "b-a-o-can")
    assert '<emergency cancel="true">Hawk 1</emergency>' in cancel.detail.xml
    assert delete.type == "t-x-d-d"
    assert f'<link uid="{PAIR.uid}.zone" type="u-d-c-c" relation="none"/>' in delete.detail.xml


def test_a_level_held_without_a_loss_ahead_leaves_t_loss_empty() -> None:
    far = head_on(5000.0).encounter
    assert far.t_in_s is None
    assert 't_loss_s=""' in separation_xml(1, far)
    assert alert_text(1, far, "X") == f"Conflict with X, CPA {far.cpa_m:.0f} m (caution)"
