"""What a releasing rule does to an event: details, pseudonyms, links, position, marking."""

from __future__ import annotations

import math

import pytest
from lxml import etree

from accord.cot.model import UNKNOWN_VALUE, Point
from accord.cot.xml import decode_xml, encode_xml, parse_fragment
from accord.policy.apply import PolicyState, Release, decide
from accord.policy.geo import distance_m, grid_cell
from accord.policy.parse import decode_policy
from accord.policy.transform import coarsen, coarsen_text, pseudonym
from tests.cot.samples import uas_tool_events
from tests.policy.helpers import ELSEWHERE, IN_REGION, NOW_MS, SECRET, event, policy

HEAD = f'name = "p"\npartner = "org-b"\nsecret = "{SECRET}"\n'


def release_with(rule_body: str, detail: str, type_: str = "a-f-G", *, head: str = HEAD) -> Release:
    p = decode_policy(head + '[[rule]]\nname = "r"\n' + rule_body)
    decision = decide(event(type_, IN_REGION, detail=detail), p, NOW_MS, PolicyState())
    assert isinstance(decision, Release), decision
    return decision


def tags(release: Release) -> list[str]:
    root = parse_fragment(f"<detail>{release.event.detail.xml}</detail>")
    return [str(child.tag) for child in root]


DETAIL = (
    '<contact callsign="ALPHA"/><track course="90" speed="3"/><remarks>pilot is Bob</remarks>'
    '<__video url="rtsp://user:pw@10.0.0.1/x"/><_flow-tags_ TAK-Server-1="2024"/>'
    '<sensor azimuth="10" fov="60" range="300"/><marti><dest callsign="B"/></marti>'
    '<shape><polyline><vertex lat="1" lon="2"/></polyline></shape>'
    '<__release policy="upstream"/>'
)


def test_sensitive_details_are_stripped_by_default() -> None:
    assert tags(release_with("", DETAIL)) == ["contact", "track", "shape", "__release"]


def test_strip_adds_to_the_defaults() -> None:
    assert tags(release_with('strip = ["contact"]\n', DETAIL)) == ["track", "shape", "__release"]


def test_allow_lets_a_default_stripped_tag_through() -> None:
    out = tags(release_with('allow = ["remarks", "sensor"]\n', DETAIL))
    assert out == ["contact", "track", "remarks", "sensor", "shape", "__release"]


def test_keep_is_an_allow_list() -> None:
    assert tags(release_with('keep = ["track", "remarks"]\n', DETAIL)) == [
        "track",
        "remarks",
        "__release",
    ]


def test_coarsening_also_strips_geometry_the_grid_cannot_reach() -> None:
    assert tags(release_with("grid_m = 100\n", DETAIL)) == ["contact", "track", "__release"]
    out = tags(release_with('grid_m = 100\nallow = ["shape"]\n', DETAIL))
    assert out == ["contact", "track", "shape", "__release"]


def test_kept_details_are_byte_faithful() -> None:
    detail = '<contact callsign="A" endpoint="*:-1:stcp"/><x b="2" a="1">t<y/>&amp;</x>'
    out = release_with("", detail).event.detail.xml
    assert out.startswith(detail)


def test_the_release_marking_names_policy_rule_partner_version_and_time() -> None:
    release = release_with("", "")
    root = parse_fragment(f"<detail>{release.event.detail.xml}</detail>")
    mark = root.find("__release")
    assert mark is not None
    p = decode_policy(HEAD + '[[rule]]\nname = "r"\n')
    assert dict(mark.attrib) == {
        "policy": "p",
        "rule": "r",
        "partner": "org-b",
        "version": p.version,
        "time": "2023-11-14T22:13:20.000Z",
    }


def test_an_upstream_release_marking_is_replaced() -> None:
    out = release_with("", '<__release policy="upstream"/>').event.detail.xml
    assert out.count("<__release") == 1
    assert "upstream" not in out


def test_pseudonyms_are_stable_per_partner_and_never_the_uid() -> None:
    key = b"k" * 32
    a = pseudonym("ANDROID-1", key, "org-b", "org-a.")
    assert a == pseudonym("ANDROID-1", key, "org-b", "org-a.")
    assert a.startswith("org-a.")
    assert len(a) == len("org-a.") + 24
    assert a != pseudonym("ANDROID-1", key, "org-c", "org-a.")
    assert a != pseudonym("ANDROID-2", key, "org-b", "org-a.")
    assert a != pseudonym("ANDROID-1", b"j" * 32, "org-b", "org-a.")


def test_the_event_uid_and_its_links_get_the_same_pseudonym() -> None:
    p = policy()
    aircraft = decide(event(uid="uas-1"), p, NOW_MS, PolicyState())
    spi = decide(
        event(
            "b-m-p-s-p-i",
            ELSEWHERE,
            uid="uas-1.SPI1",
            detail='<link uid="uas-1" type="a-f-A-M-H-Q" relation="p-p"/>',
        ),
        p,
        NOW_MS,
        PolicyState(),
    )
    assert isinstance(aircraft, Release)
    assert isinstance(spi, Release)
    assert aircraft.event.uid.startswith("org-a.")
    assert "uas-1" not in spi.event.detail.xml
    assert f'<link uid="{aircraft.event.uid}" type="a-f-A-M-H-Q" relation="p-p"/>' in (
        spi.event.detail.xml
    )
    assert spi.event.uid != aircraft.event.uid


def test_links_to_targets_the_policy_never_releases_are_dropped() -> None:
    detail = (
        '<link uid="pilot" type="a-f-G-U-C" relation="p-p"/>'
        '<link uid="chat" type="b-t-f" relation="p-p"/>'
        '<link uid="neutral" type="a-n-G" relation="p-p"/>'
        '<link uid="mystery" relation="p-p"/>'
    )
    p = decode_policy(
        HEAD + '[always_withhold]\ntypes = ["b-t-f"]\n'
        '[[rule]]\nname = "a"\ntypes = ["a-f-*"]\n'
        '[[rule]]\nname = "spi"\ntypes = ["b-m-p-s-p-i"]\n'
    )
    decision = decide(event("b-m-p-s-p-i", detail=detail), p, NOW_MS, PolicyState())
    assert isinstance(decision, Release)
    root = parse_fragment(f"<detail>{decision.event.detail.xml}</detail>")
    # pilot: a releasing rule takes a-f-G-U-C; chat: always withheld; neutral: no rule;
    # mystery: no type, the policy cannot know, kept.
    assert [link.get("uid") for link in root.iter("link")] == ["pilot", "mystery"]
    assert any("drop <link uid='chat'>" in step for step in decision.transforms)


def test_a_link_to_a_type_only_an_unconditional_withhold_rule_takes_is_dropped() -> None:
    p = decode_policy(
        HEAD + '[[rule]]\nname = "no"\ntypes = ["a-h-*"]\naction = "withhold"\n'
        '[[rule]]\nname = "all"\n'
    )
    detail = '<link uid="h" type="a-h-G" relation="p-p"/><link uid="f" type="a-f-G"/>'
    decision = decide(event(detail=detail), p, NOW_MS, PolicyState())
    assert isinstance(decision, Release)
    assert 'uid="h"' not in decision.event.detail.xml
    assert 'uid="f"' in decision.event.detail.xml


def test_route_link_points_are_coarsened_with_the_event() -> None:
    detail = '<link uid="wp1" type="b-m-p-w" point="47.0512,8.1033,512.4"/>'
    out = release_with("grid_m = 1000\naltitude_m = 10\n", detail, "b-m-r").event.detail.xml
    cell = grid_cell(47.0512, 8.1033, 1000)
    assert f'point="{cell.lat!r},{cell.lon!r},510.0"' in out


def test_unreadable_link_points_are_removed_when_coarsening() -> None:
    assert coarsen_text("x,y", 100, 0) is None
    out = release_with("grid_m = 100\n", '<link uid="w" point="north"/>', "b-m-r").event
    assert "point=" not in out.detail.xml


def test_coarsening_snaps_to_the_cell_centre_and_inflates_ce() -> None:
    p = Point(47.05123, 8.10456, 512.4, 3.0, 2.0)
    out = coarsen(p, 100.0, 10.0)
    cell = grid_cell(p.lat, p.lon, 100.0)
    assert (out.lat, out.lon) == (cell.lat, cell.lon)
    assert out.ce == math.ceil(cell.radius_m)
    assert out.ce >= distance_m(p.lat, p.lon, out.lat, out.lon)
    assert (out.hae, out.le) == (510.0, 5.0)


def test_a_larger_error_than_the_cell_is_kept() -> None:
    out = coarsen(Point(47.0, 8.0, 500.0, 250.0, 30.0), 100.0, 10.0)
    assert (out.ce, out.le) == (250.0, 30.0)


def test_unknown_errors_and_altitude_stay_unknown() -> None:
    p = Point(47.0, 8.0, UNKNOWN_VALUE, UNKNOWN_VALUE, UNKNOWN_VALUE)
    out = coarsen(p, 100.0, 10.0)
    assert (out.hae, out.ce, out.le) == (UNKNOWN_VALUE, UNKNOWN_VALUE, UNKNOWN_VALUE)


def test_altitude_rounding_alone_leaves_the_position() -> None:
    out = release_with("altitude_m = 50\n", "").event.point
    assert (out.lat, out.lon, out.hae, out.le) == (IN_REGION.lat, IN_REGION.lon, 500.0, 25.0)


@pytest.mark.parametrize("capture", uas_tool_events(), ids=["uas-tool-1", "uas-tool-2"])
def test_uas_tool_captures_come_out_stripped_and_coarse(capture: bytes) -> None:
    source = decode_xml(capture)
    p = decode_policy(
        HEAD + 'pseudonymise = true\npseudonym_prefix = "org-a."\n'
        '[[rule]]\nname = "drones"\ntypes = ["a-f-A-M-*"]\ngrid_m = 100\naltitude_m = 10\n'
    )
    decision = decide(source, p, source.time, PolicyState())
    assert isinstance(decision, Release)
    frame = encode_xml(decision.event)
    out = decode_xml(frame)
    root = etree.fromstring(frame)
    detail = root.find("detail")
    assert detail is not None
    present = {str(child.tag) for child in detail}
    assert present.isdisjoint({"__video", "remarks", "sensor", "_flow-tags_", "_route"})
    assert b"rtsp://" not in frame
    assert b"ANDROID-" not in frame  # the pilot's device: its link (a-f-G-U-C) has no rule
    assert b"TAK-Server-" not in frame
    assert source.uid.encode() not in frame
    cell = grid_cell(source.point.lat, source.point.lon, 100)
    assert (out.point.lat, out.point.lon) == (cell.lat, cell.lon)
    assert out.point.ce >= cell.radius_m
    assert out.point.hae % 10 == 0
    assert {"track", "spatial", "vehicle", "__release"} <= present


def test_a_uas_tool_capture_keeps_its_sensor_only_when_allowed() -> None:
    source = decode_xml(uas_tool_events()[1])
    p = decode_policy(HEAD + '[[rule]]\nname = "d"\nallow = ["sensor"]\n')
    decision = decide(source, p, source.time, PolicyState())
    assert isinstance(decision, Release)
    assert "<sensor " in decision.event.detail.xml


def test_a_file_offer_names_its_sender_by_the_same_pseudonym_as_its_sa() -> None:
    p = decode_policy(
        HEAD + 'pseudonymise = true\n[[rule]]\nname = "all"\ntypes = ["a-f-G*", "b-f-t-r"]\n'
    )
    sa = decide(event("a-f-G", IN_REGION, uid="ANDROID-alpha"), p, NOW_MS, PolicyState())
    offer = decide(
        event(
            "b-f-t-r",
            IN_REGION,
            uid="transfer-1",
            detail='<fileshare filename="a.zip" senderUid="ANDROID-alpha" sha256="00"/>',
        ),
        p,
        NOW_MS,
        PolicyState(),
    )
    assert isinstance(sa, Release)
    assert isinstance(offer, Release)
    assert sa.event.uid != "ANDROID-alpha"
    assert "ANDROID-alpha" not in offer.event.detail.xml
    assert f'senderUid="{sa.event.uid}"' in offer.event.detail.xml


PLAIN_DETAILS = [
    "",
    DETAIL,
    '<contact callsign="A" endpoint="*:-1:stcp"/><__group name="Cyan" role="Team Member"/>'
    '<status battery="88"/><takv os="34" version="4.10"/><track course="1" speed="0"/>',
    '<remarks>a &gt; b &amp; "c"</remarks><x a="1&gt;2"><y/><y>t</y></x><__group name="R"/>',
    "<remarks>it's</remarks><uid Droid=\"O'Brien\"/>",  # an apostrophe: the parsing path
    '<link uid="x" relation="p-p" type="a-f-G"/><contact callsign="L"/>',
    '<fileshare filename="f" senderUid="u" sha256="ab"/>',
]


@pytest.mark.parametrize("detail", PLAIN_DETAILS)
@pytest.mark.parametrize(
    "body", ["", 'strip = ["__group", "status"]\n', 'keep = ["contact"]\n', "grid_m = 100\n"]
)
def test_the_plain_path_and_the_parsing_path_release_the_same_detail(
    detail: str, body: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cutting the decoder's serialised children (no parse) gives what parsing gives."""
    from accord.policy import transform

    fast = release_with(
        body, decode_xml(encode_xml(event("a-f-G", IN_REGION, detail=detail))).detail.xml
    )
    monkeypatch.setattr(transform, "split_children", lambda xml: None)
    slow = release_with(
        body, decode_xml(encode_xml(event("a-f-G", IN_REGION, detail=detail))).detail.xml
    )
    assert fast.event == slow.event
    assert fast.transforms == slow.transforms


def test_split_children_cuts_top_level_elements_or_refuses() -> None:
    from accord.policy.transform import split_children

    assert split_children('<a x="1>2"/><b><c/>t</b>') == [
        ("a", '<a x="1>2"/>'),
        ("b", "<b><c/>t</b>"),
    ]
    for odd in ("text<a/>", "<a>", "<a/></b>", "<!-- c --><a/>", "<ns:a/>", '<a xmlns="u"/>'):
        assert split_children(odd) is None, odd


def test_a_grid_snapping_release_marks_its_precision_for_separation() -> None:
    release = release_with("grid_m = 100\n", "")
    root = parse_fragment(f"<detail>{release.event.detail.xml}</detail>")
    mark = root.find("__release")
    assert mark is not None
    assert mark.get("precision_m") == "71"  # centre to corner of a 100 m cell, rounded up
    plain = parse_fragment(f"<detail>{release_with('', '').event.detail.xml}</detail>")
    assert plain.find("__release").get("precision_m") is None  # type: ignore[union-attr]


SEPARATION = (
    '<link uid="OWN-1" type="a-f-A-M-H-Q" relation="p-p"/>'
    '<__separation level="warning" a="OWN-1" b="{b}" t_loss_s="17.0" cpa_s="19.5" cpa_m="12"/>'
    '<__conflict key="0123456789abcdef" origin="org-a" partner="{partner}"/>'
)


def separation_of(release: Release) -> dict[str, str]:
    root = parse_fragment(f"<detail>{release.event.detail.xml}</detail>")
    mark = root.find("__separation")
    assert mark is not None
    return dict(mark.attrib)


def test_a_separation_alert_names_the_receivers_own_track_as_the_receiver_does() -> None:
    head = HEAD + "pseudonymise = true\n"
    rule = 'types = ["b-a-*", "a-f-A*"]\n'
    detail = SEPARATION.format(b="org-b-pseudonym", partner="ORG-B")
    out = separation_of(release_with(rule, detail, "b-a-o-c", head=head))
    own = pseudonym("OWN-1", SECRET.encode(), "org-b")
    assert out["a"] == own  # ours: the name the partner knows our drone by
    assert out["b"] == "org-b-pseudonym"  # the partner's own drone, as it released it
    assert (out["level"], out["t_loss_s"], out["cpa_m"]) == ("warning", "17.0", "12")
    linked = release_with(rule, detail, "b-a-o-c", head=head).event.detail.xml
    assert f'<link uid="{own}"' in linked
    assert 'key="0123456789abcdef"' in linked  # the pair key crosses unchanged


def test_a_separation_alert_with_a_third_partys_track_pseudonymises_both() -> None:
    head = HEAD + "pseudonymise = true\n"
    detail = SEPARATION.format(b="LOCAL-AIRCRAFT", partner="")
    out = separation_of(release_with('types = ["b-a-*"]\n', detail, "b-a-o-c", head=head))
    assert out["a"] != "OWN-1"
    assert out["b"] == pseudonym("LOCAL-AIRCRAFT", SECRET.encode(), "org-b")
    plain = separation_of(release_with('types = ["b-a-*"]\n', detail, "b-a-o-c"))
    assert (plain["a"], plain["b"]) == ("OWN-1", "LOCAL-AIRCRAFT")  # no pseudonyms: as is


def test_a_geofence_breach_pseudonymises_uids_except_those_the_receiver_released() -> None:
    head = HEAD + "pseudonymise = true\n"
    detail = (
        '<__breach fence="FENCE-1" name="Zone" track="org-b-pseudonym" kind="entry"'
        ' track_partner="ORG-B" fence_partner="" origin="org-a"/>'
    )
    out = release_with('types = ["b-a-*"]\n', detail, "b-a-g", head=head).event.detail.xml
    mark = parse_fragment(f"<detail>{out}</detail>").find("__breach")
    assert mark is not None
    assert mark.get("track") == "org-b-pseudonym"  # the receiver's own drone, as released
    assert mark.get("fence") == pseudonym("FENCE-1", SECRET.encode(), "org-b")  # ours


def test_a_detail_cut_once_is_cut_alike_for_every_report_and_per_transform() -> None:
    # The plain cut (no parse) is cached by detail text and transform: a client's next report
    # with the same detail gets the same children, and another rule's transform its own.
    plain = '<contact callsign="ALPHA"/><track course="90" speed="3"/><remarks>pilot</remarks>'
    first = release_with("", plain).event.detail.xml
    assert release_with("", plain).event.detail.xml == first
    assert first.startswith('<contact callsign="ALPHA"/><track course="90" speed="3"/><__release')
    stripped = release_with('strip = ["track"]\n', plain).event.detail.xml
    assert stripped.startswith('<contact callsign="ALPHA"/><__release')
    assert release_with("", plain).event.detail.xml == first
