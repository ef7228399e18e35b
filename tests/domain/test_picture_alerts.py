"""Alerts, shapes and geofences on the web map's features, and the fence a web user draws."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accord.cot.xml import decode_xml
from accord.domain.drawn_fence import MAX_VERTICES, FenceRefused, to_fence
from accord.domain.geochat import Sender
from accord.domain.picture import to_feature
from accord.domain.picture_alerts import alert_fields
from accord.geo.fence import from_event

NOW = 1_796_000_000_000
HOSTILE = "<img src=x onerror=alert(1)>\"'&</script>"
SENDER = Sender("WEB-alice-abc123", "alice (web)")
SQUARE = [[48.0, 11.0], [48.0, 11.1], [48.1, 11.1], [48.1, 11.0]]


def event(type_: str, detail: str, *, uid: str = "U-1", lat: float = 48.0, lon: float = 11.0):
    return decode_xml(
        (
            f'<event version="2.0" uid="{uid}" type="{type_}" how="m-p"'
            ' time="2026-12-02T17:00:00Z" start="2026-12-02T17:00:00Z"'
            ' stale="2026-12-02T17:00:30Z">'
            f'<point lat="{lat}" lon="{lon}" hae="500" ce="9999999" le="9999999"/>'
            f"<detail>{detail}</detail></event>"
        ).encode()
    )


SEPARATION = (
    '<contact callsign="Hawk 1 conflict"/><link uid="DRONE-A" type="a-f-A-M-H-Q" relation="p-p"/>'
    '<emergency type="Custom">Conflict with [ORG-B] Hawk 2 in 17 s, CPA 12 m (warning)</emergency>'
    '<__separation level="warning" a="DRONE-A" b="ORGB-7" t_loss_s="17.0" cpa_s="20.0"'
    ' cpa_m="12"/><__conflict key="abcd" origin="org-a" partner="org-b"/>'
)


def test_a_separation_alert_names_its_pair_level_partner_and_origin() -> None:
    fields = alert_fields(event("b-a-o-c", SEPARATION, uid="sep.org-a.abcd"))
    assert fields == {
        "alert": {
            "kind": "separation",
            "text": "Conflict with [ORG-B] Hawk 2 in 17 s, CPA 12 m (warning)",
            "level": "warning",
            "pair": ["DRONE-A", "ORGB-7"],
            "cancel": False,
            "partner": "org-b",
            "origin": "org-a",
        }
    }
    feature = to_feature(event("b-a-o-c", SEPARATION), NOW)
    assert feature["alert"]["pair"] == ["DRONE-A", "ORGB-7"]
    json.dumps(feature, allow_nan=False)


def test_its_cancel_is_marked_cancelled() -> None:
    detail = (
        '<link uid="DRONE-A" type="a-f-A-M-H-Q" relation="p-p"/>'
        '<emergency cancel="true">Hawk 1</emergency>'
        '<__conflict key="abcd" origin="org-a" partner=""/>'
    )
    alert = alert_fields(event("b-a-o-can", detail))["alert"]
    assert alert["cancel"] is True
    assert alert["kind"] == "separation"
    assert alert["pair"] == ["DRONE-A"]


def test_a_breach_and_an_intent_alert() -> None:
    breach = (
        '<link uid="DRONE-A" type="a-f-A" relation="p-p"/>'
        '<emergency type="Geo-fence Breached">Hawk 1 entered Airfield</emergency>'
        '<__breach fence="F1" name="Airfield" track="DRONE-A" kind="entry" track_partner=""'
        ' fence_partner="org-b" origin="org-a"/>'
    )
    alert = alert_fields(event("b-a-g", breach))["alert"]
    assert (alert["kind"], alert["text"], alert["pair"]) == (
        "breach",
        "Hawk 1 entered Airfield",
        ["DRONE-A"],
    )
    assert alert["partner"] == "org-b"
    intent = (
        '<link uid="DRONE-A" type="a-f-A" relation="p-p"/>'
        '<emergency type="Custom">Planned conflict</emergency>'
        '<__intent_conflict a="DRONE-A" b="DRONE-B" mission_a="m1" mission_b="m2"/>'
    )
    alert = alert_fields(event("b-a-o-c", intent))["alert"]
    assert (alert["kind"], alert["pair"]) == ("intent", ["DRONE-A", "DRONE-B"])


def test_the_conflict_zone_is_a_circle_marked_as_conflict() -> None:
    zone = (
        '<shape><ellipse major="150" minor="150" angle="360"/></shape>'
        '<link uid="DRONE-A" type="a-f-A" relation="p-p"/>'
        '<__conflict key="k" origin="o" partner=""/>'
    )
    assert alert_fields(event("u-d-c-c", zone)) == {"shape": {"circle_m": 150.0, "conflict": True}}


def test_a_geofence_polygon_is_a_closed_lon_lat_ring_with_its_trigger_and_name() -> None:
    detail = (
        '<contact callsign="Airfield"/><link point="48.0,11.0"/><link point="48.0,11.1"/>'
        '<link point="48.1,11.1"/><__geofence trigger="Exit"/>'
    )
    fields = alert_fields(event("u-d-f", detail))
    assert fields["shape"] == {"polygon": [[11.0, 48.0], [11.1, 48.0], [11.1, 48.1], [11.0, 48.0]]}
    assert fields["fence"] == {"trigger": "Exit", "name": "Airfield"}
    plain = alert_fields(event("u-d-r", detail.replace('<__geofence trigger="Exit"/>', "")))
    assert "fence" not in plain
    assert "polygon" in plain["shape"]


@pytest.mark.parametrize(
    ("type_", "detail"),
    [
        ("u-d-f", '<link point="48.0,11.0"/><link point="x,11.1"/><link point="48.1,11.1"/>'),
        ("u-d-f", '<link point="48.0,11.0"/><link point="48.0,11.1"/>'),  # two vertices
        ("u-d-f", '<link point="48,11"/><link point="95,11.1"/><link point="48.1,11.1"/>'),
        ("u-d-c-c", '<shape><ellipse major="nan"/></shape>'),
        ("u-d-c-c", '<shape><ellipse major="-5"/></shape>'),
        ("u-d-c-c", "<shape/>"),
    ],
)
def test_a_bad_shape_has_no_shape_field(type_: str, detail: str) -> None:
    assert "shape" not in alert_fields(event(type_, detail))


def test_other_types_get_nothing_and_hostile_text_stays_a_string() -> None:
    assert alert_fields(event("a-f-G-U-C", SEPARATION)) == {}
    assert "alert" not in to_feature(event("a-f-G-U-C", SEPARATION), NOW)
    hostile = SEPARATION.replace(
        "Conflict with [ORG-B]",
        HOSTILE.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;"),
    )
    alert = alert_fields(event("b-a-o-c", hostile))["alert"]
    assert alert["text"].startswith(HOSTILE)


@given(st.text(max_size=300))
def test_alert_fields_never_raise(junk: str) -> None:
    from xml.sax.saxutils import escape

    for type_ in ("b-a-o-c", "b-a-g", "u-d-f", "u-d-c-c"):
        point = escape(junk, {'"': "&quot;"})
        detail = f'<emergency>{escape(junk)}</emergency><link point="{point}"/>'
        try:
            parsed = event(type_, detail)
        except Exception:  # the junk made the XML itself invalid: not this module's input
            continue
        json.dumps(alert_fields(parsed), allow_nan=False)


def test_a_drawn_fence_is_a_u_d_f_the_coordination_monitor_takes() -> None:
    made = to_fence(SENDER, "Air <field>", "Both", SQUARE, NOW, "f1")
    assert made.type == "u-d-f"
    assert made.uid == "fence.WEB-alice-abc123.f1"
    fence = from_event(made)
    assert fence is not None
    assert fence.name == "Air <field>"
    assert fence.trigger == "both"
    assert fence.vertices[:4] == tuple((lat, lon) for lat, lon in SQUARE)
    feature = to_feature(made, NOW)
    assert feature["fence"] == {"trigger": "Both", "name": "Air <field>"}
    assert len(feature["shape"]["polygon"]) == 5


@pytest.mark.parametrize(
    ("name", "trigger", "points"),
    [
        ("", "Entry", SQUARE),
        ("x" * 81, "Entry", SQUARE),
        (7, "Entry", SQUARE),
        ("Z", "entry", SQUARE),
        ("Z", "Sometimes", SQUARE),
        ("Z", "Entry", SQUARE[:2]),
        ("Z", "Entry", [[48.0, 11.0]] * 3),
        ("Z", "Entry", [[48.0 + i / 1000, 11.0] for i in range(MAX_VERTICES + 1)]),
        ("Z", "Entry", [[48.0, 11.0], [91.0, 11.0], [48.1, 11.1]]),
        ("Z", "Entry", [[48.0, 11.0], [48.0, 181.0], [48.1, 11.1]]),
        ("Z", "Entry", [[48.0, 11.0], ["48", 11.0], [48.1, 11.1]]),
        ("Z", "Entry", [[48.0, 11.0], [True, 11.0], [48.1, 11.1]]),
        ("Z", "Entry", [[48.0, 11.0], [48.0], [48.1, 11.1]]),
        ("Z", "Entry", "48,11 48,12 49,12"),
        ("Z", "Entry", None),
    ],
)
def test_a_bad_drawn_fence_is_refused(name: object, trigger: object, points: object) -> None:
    with pytest.raises(FenceRefused):
        to_fence(SENDER, name, trigger, points, NOW, "f1")


def test_odd_inputs_leave_fields_out() -> None:
    import dataclasses

    assert alert_fields(event("b-a-o-c", '<contact callsign="no alert detail"/>')) == {}
    assert alert_fields(event("u-d-c-c", '<shape><ellipse major="wide"/></shape>')) == {}
    with_uid_link = (
        '<link uid="CREATOR" relation="p-p-CreatedBy"/><link point="48.0,11.0"/>'
        '<link point="48.0,11.1"/><link point="48.1,11.1"/>'
    )
    assert len(alert_fields(event("u-d-f", with_uid_link))["shape"]["polygon"]) == 4
    shape = event("u-d-f", with_uid_link)
    broken = dataclasses.replace(shape, detail=dataclasses.replace(shape.detail, xml="<link"))
    assert alert_fields(broken) == {}
