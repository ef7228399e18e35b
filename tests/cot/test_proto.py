"""TAK protocol version 1: TakMessage <-> CotEvent, and the typed-field rules of reference §2.6."""

from __future__ import annotations

import dataclasses
import math
import struct
from collections import Counter
from typing import Any

import pytest
from lxml import etree
from takproto.proto import TakMessage

from accord.cot.errors import MalformedEvent
from accord.cot.framing import encode_varint
from accord.cot.model import EMPTY_DETAIL, Contact, CotEvent, WireFormat
from accord.cot.proto import decode_proto, encode_proto, from_message, to_message
from accord.cot.xml import DEFAULT_HOW, decode_xml, encode_xml, parse_fragment

from .samples import golden_events, golden_ids, make_event

GOLDEN = golden_events()
GOLDEN_IDS = golden_ids()

Canonical = tuple[str, tuple[tuple[str, Any], ...], str, tuple[Any, ...]]


def canonical(el: etree._Element) -> Canonical:
    """An element as a comparable value: attribute order and numeric spelling do not matter
    for the typed elements, whose values the protobuf carries as numbers."""
    attrs: list[tuple[str, Any]] = []
    for name, value in el.attrib.items():
        attrs.append((str(name), float(value) if el.tag in ("track", "status") else str(value)))
    children = tuple(sorted(canonical(child) for child in el))
    return (str(el.tag), tuple(sorted(attrs)), (el.text or "").strip(), children)


def detail_children(xml: str) -> Counter[Canonical]:
    """The children of <detail> as a multiset: their order is not carried by protobuf."""
    return Counter(canonical(child) for child in parse_fragment(f"<detail>{xml}</detail>"))


def same_event(received: CotEvent, sent: CotEvent) -> None:
    """Model equality after an XML -> protobuf -> XML trip (§2.6 moves typed elements)."""
    expected = dataclasses.replace(sent, how=sent.how or DEFAULT_HOW)
    assert dataclasses.replace(received, detail=EMPTY_DETAIL) == dataclasses.replace(
        expected, detail=EMPTY_DETAIL
    )
    assert detail_children(received.detail.xml) == detail_children(expected.detail.xml)
    for fact in ("contact", "dests", "has_marti", "chat", "takcontrol"):
        assert getattr(received.detail, fact) == getattr(expected.detail, fact), fact


def typed(detail_xml: str) -> Any:
    """The protobuf Detail an event with this <detail> content is encoded with."""
    return to_message(make_event(detail=detail_xml)).cotEvent.detail


# -- round trips ----------------------------------------------------------------------------------


@pytest.mark.parametrize("sample", GOLDEN, ids=GOLDEN_IDS)
def test_golden_sample_survives_xml_to_protobuf_to_xml(sample: bytes) -> None:
    sent = decode_xml(sample)
    payload = encode_proto(sent)
    via_proto = decode_proto(payload)
    same_event(via_proto, sent)
    assert via_proto.raw == payload
    assert via_proto.raw_format is WireFormat.PROTOBUF
    back_to_xml = decode_xml(encode_xml(via_proto))
    same_event(back_to_xml, sent)
    assert back_to_xml == via_proto


@pytest.mark.parametrize("sample", GOLDEN, ids=GOLDEN_IDS)
def test_a_second_protobuf_round_trip_changes_nothing(sample: bytes) -> None:
    once = decode_proto(encode_proto(decode_xml(sample)))
    twice = decode_proto(encode_proto(once))
    assert twice == once
    assert twice.detail.xml == once.detail.xml


def test_protobuf_fields_follow_the_reference_numbers() -> None:
    # A TakMessage written by hand from reference §2.5, without the generated classes.
    def tag(number: int, wire_type: int) -> bytes:
        return encode_varint(number << 3 | wire_type)

    def nested(number: int, body: bytes) -> bytes:
        return tag(number, 2) + encode_varint(len(body)) + body

    def text(number: int, value: str) -> bytes:
        return nested(number, value.encode())

    def uint(number: int, value: int) -> bytes:
        return tag(number, 0) + encode_varint(value)

    def double(number: int, value: float) -> bytes:
        return tag(number, 1) + struct.pack("<d", value)

    contact = text(1, "*:-1:stcp") + text(2, "ALPHA")
    detail = text(1, '<uid Droid="ALPHA"/>') + nested(2, contact)
    cot = (
        text(1, "a-f-G-U-C")
        + text(5, "ANDROID-1")
        + uint(6, 1452717817842)
        + uint(7, 1452717817842)
        + uint(8, 1452718192842)
        + text(9, "m-g")
        + double(10, 37.5)
        + double(11, -87.25)
        + double(12, 80.0)
        + double(13, 9999999.0)
        + double(14, 9999999.0)
        + nested(15, detail)
    )
    payload = nested(2, cot)
    event = decode_proto(payload)
    assert (event.uid, event.type, event.how) == ("ANDROID-1", "a-f-G-U-C", "m-g")
    assert (event.time, event.stale) == (1452717817842, 1452718192842)
    assert (event.point.lat, event.point.lon, event.point.hae) == (37.5, -87.25, 80.0)
    assert event.detail.contact == Contact("ALPHA", "*:-1:stcp")
    assert '<uid Droid="ALPHA"/>' in event.detail.xml


def test_encoded_message_carries_the_event_fields() -> None:
    event = dataclasses.replace(make_event(), access="Undefined", qos="1-r-c", opex="e-x")
    cot = to_message(event).cotEvent
    assert (cot.uid, cot.type, cot.how) == (event.uid, event.type, event.how)
    assert (cot.sendTime, cot.startTime, cot.staleTime) == (event.time, event.start, event.stale)
    assert (cot.lat, cot.lon, cot.hae, cot.ce, cot.le) == dataclasses.astuple(event.point)
    assert (cot.access, cot.qos, cot.opex) == ("Undefined", "1-r-c", "e-x")
    assert decode_proto(encode_proto(event)) == event


def test_an_event_without_how_is_sent_with_the_neutral_one() -> None:
    assert to_message(make_event(how="")).cotEvent.how == DEFAULT_HOW


# -- typed fields (§2.6) --------------------------------------------------------------------------


def test_contact_with_only_callsign_and_endpoint_goes_to_the_typed_field() -> None:
    detail = typed('<contact callsign="ALPHA" endpoint="*:-1:stcp"/>')
    assert detail.HasField("contact")
    assert (detail.contact.callsign, detail.contact.endpoint) == ("ALPHA", "*:-1:stcp")
    assert detail.xmlDetail == ""


def test_contact_with_only_callsign_goes_to_the_typed_field() -> None:
    detail = typed('<contact callsign="ALPHA"/>')
    assert detail.HasField("contact")
    assert (detail.contact.callsign, detail.contact.endpoint) == ("ALPHA", "")
    again = decode_proto(encode_proto(make_event(detail='<contact callsign="ALPHA"/>')))
    assert again.detail.xml == '<contact callsign="ALPHA"/>'


@pytest.mark.parametrize(
    "element",
    [
        '<contact callsign="JDOG" endpoint="*:-1:stcp" phone="3152545187"/>',
        '<contact endpoint="*:-1:stcp"/>',
        '<contact callsign="A">text</contact>',
        '<contact callsign="A"><x/></contact>',
        '<__group name="Cyan"/>',
        '<__group name="Cyan" role="Team Member" extra="1"/>',
        '<status battery="87" readiness="true"/>',
        '<status battery="high"/>',
        '<status battery="-1"/>',
        f'<status battery="{2**32}"/>',
        '<takv device="d" platform="p" os="o"/>',
        '<takv device="d" platform="p" os="o" version="v" extra="e"/>',
        '<track speed="1.5" course="90" slope="0"/>',
        '<track speed="fast" course="90"/>',
        '<track speed="1.5"/>',
        '<precisionlocation geopointsrc="GPS"/>',
        '<uid Droid="ALPHA"/>',
    ],
)
def test_element_the_typed_message_cannot_hold_whole_stays_in_xml_detail(element: str) -> None:
    detail = typed(element)
    tag = etree.fromstring(element).tag
    assert detail.xmlDetail == element
    for name in ("contact", "group", "precisionLocation", "status", "takv", "track"):
        assert not detail.HasField(name), (tag, name)
    assert decode_proto(encode_proto(make_event(detail=element))).detail.xml == element


def test_group_with_exactly_name_and_role_goes_to_the_typed_field() -> None:
    detail = typed('<__group role="Team Member" name="Cyan"/>')
    assert (detail.group.name, detail.group.role) == ("Cyan", "Team Member")
    assert detail.xmlDetail == ""


def test_status_battery_goes_to_the_typed_field_as_a_number() -> None:
    detail = typed('<status battery="87"/>')
    assert detail.HasField("status")
    assert detail.status.battery == 87
    # Zero is a real battery level, not "absent".
    zero = decode_proto(encode_proto(make_event(detail='<status battery="0"/>')))
    assert zero.detail.xml == '<status battery="0"/>'


def test_takv_with_exactly_four_attributes_goes_to_the_typed_field() -> None:
    detail = typed('<takv device="Pixel" platform="ATAK-CIV" os="34" version="5.2"/>')
    assert (detail.takv.device, detail.takv.platform, detail.takv.os, detail.takv.version) == (
        "Pixel",
        "ATAK-CIV",
        "34",
        "5.2",
    )
    assert detail.xmlDetail == ""
    # And back: the receiving side writes the same element from the typed field.
    takv = '<takv device="Pixel" platform="ATAK-CIV" os="34" version="5.2"/>'
    assert decode_proto(encode_proto(make_event(detail=takv))).detail.xml == takv


def test_track_speed_and_course_go_to_the_typed_field_as_numbers() -> None:
    detail = typed('<track course="114.66817017909176" speed="0.0"/>')
    assert (detail.track.speed, detail.track.course) == (0.0, 114.66817017909176)
    assert detail.xmlDetail == ""


def test_precisionlocation_with_both_sources_goes_to_the_typed_field() -> None:
    detail = typed('<precisionlocation geopointsrc="GPS" altsrc="DTED0"/>')
    assert (detail.precisionLocation.geopointsrc, detail.precisionLocation.altsrc) == (
        "GPS",
        "DTED0",
    )


def test_untyped_children_keep_their_order_in_xml_detail() -> None:
    detail = typed('<uid Droid="A"/><contact callsign="A"/><remarks>x</remarks><link uid="p"/>')
    assert detail.xmlDetail == '<uid Droid="A"/><remarks>x</remarks><link uid="p"/>'


def test_repeated_typed_elements_all_survive_the_trip() -> None:
    xml = '<__group name="Cyan" role="Team Member"/><__group name="Red" role="HQ"/>'
    detail = typed(xml)
    assert not detail.HasField("group")
    again = decode_proto(encode_proto(make_event(detail=xml)))
    assert again.detail.xml == xml


def test_atak_self_report_uses_every_typed_field_it_can() -> None:
    gemini = decode_xml(GOLDEN[2])
    detail = to_message(gemini).cotEvent.detail
    for name in ("contact", "group", "precisionLocation", "status", "track"):
        assert detail.HasField(name), name
    assert detail.xmlDetail == '<uid Droid="GEMINI"/>'


def test_xml_detail_copy_wins_over_a_typed_duplicate() -> None:
    msg = to_message(make_event(detail='<contact callsign="TYPED" endpoint="*:-1:stcp"/>'))
    msg.cotEvent.detail.xmlDetail = '<contact callsign="FROM-XML" phone="1"/>'
    msg.cotEvent.detail.group.name = "Cyan"
    msg.cotEvent.detail.group.role = "HQ"
    event = decode_proto(msg.SerializeToString())
    assert event.detail.contact == Contact("FROM-XML", "")
    children = [el.tag for el in parse_fragment(f"<detail>{event.detail.xml}</detail>")]
    assert children.count("contact") == 1
    assert "TYPED" not in event.detail.xml
    assert '<__group name="Cyan" role="HQ"/>' in event.detail.xml


# -- refusals -------------------------------------------------------------------------------------


def message(**fields: Any) -> TakMessage:
    msg = to_message(make_event())
    for name, value in fields.items():
        setattr(msg.cotEvent, name, value)
    return msg


@pytest.mark.parametrize(
    "payload",
    [b"\xff\xff\xff", b"\x12\x05ab", b"\x0a", b"GARBAGE!", b"\x12\x80\x80\x80\x80\x80\x80"],
)
def test_garbage_payload_is_malformed(payload: bytes) -> None:
    with pytest.raises(MalformedEvent):
        decode_proto(payload)


def test_message_without_cot_event_is_malformed() -> None:
    control = TakMessage()
    control.takControl.minProtoVersion = 1
    with pytest.raises(MalformedEvent, match="no cotEvent"):
        decode_proto(control.SerializeToString())
    with pytest.raises(MalformedEvent):
        decode_proto(b"")


@pytest.mark.parametrize("name", ["uid", "type"])
def test_cot_event_without_uid_or_type_is_malformed(name: str) -> None:
    with pytest.raises(MalformedEvent, match=name):
        from_message(message(**{name: ""}))


@pytest.mark.parametrize(
    "fields",
    [
        {"lat": 90.5},
        {"lat": -91.0},
        {"lon": 181.0},
        {"lon": -180.5},
        {"lat": math.nan},
        {"lon": math.inf},
        {"hae": math.nan},
        {"ce": math.inf},
        {"le": -math.inf},
    ],
)
def test_point_that_xml_could_not_carry_is_malformed(fields: dict[str, float]) -> None:
    with pytest.raises(MalformedEvent):
        decode_proto(message(**fields).SerializeToString())


@pytest.mark.parametrize("name", ["sendTime", "startTime", "staleTime"])
def test_time_past_year_9999_is_malformed(name: str) -> None:
    with pytest.raises(MalformedEvent, match="9999"):
        decode_proto(message(**{name: 2**64 - 1}).SerializeToString())


@pytest.mark.parametrize("name", ["uid", "type", "how", "access", "qos", "opex"])
def test_strings_xml_cannot_carry_are_malformed(name: str) -> None:
    with pytest.raises(MalformedEvent):
        decode_proto(message(**{name: "bad\x00value"}).SerializeToString())


def test_typed_detail_string_xml_cannot_carry_is_malformed() -> None:
    msg = message()
    msg.cotEvent.detail.contact.callsign = "bad\x01"
    with pytest.raises(MalformedEvent):
        decode_proto(msg.SerializeToString())


@pytest.mark.parametrize(
    "xml_detail",
    [
        "<unclosed>",
        "</detail><evil/>",
        '<!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>',
        "&undefined;",
        "<a>" * 40 + "</a>" * 40,
    ],
)
def test_bad_xml_detail_is_malformed(xml_detail: str) -> None:
    msg = message()
    msg.cotEvent.detail.xmlDetail = xml_detail
    with pytest.raises(MalformedEvent):
        decode_proto(msg.SerializeToString())


def test_decoded_events_can_be_forwarded_as_xml() -> None:
    for sample in GOLDEN:
        event = decode_proto(encode_proto(decode_xml(sample)))
        assert decode_xml(encode_xml(event)).uid == event.uid
