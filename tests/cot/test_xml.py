"""CoT XML: decoding the real captures, encoding, and the hardened parser (reference §1, §2.2)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree

from accord.cot.errors import CotError, Malformation, MalformedEvent
from accord.cot.model import (
    UNKNOWN_VALUE,
    Chat,
    Contact,
    CotEvent,
    Dest,
    Point,
    WireFormat,
    iso_from_ms,
    ms_from_iso,
)
from accord.cot.xml import (
    DEFAULT_HOW,
    MAX_DEPTH,
    AuthRequest,
    decode_auth,
    decode_xml,
    detail_from_xml,
    encode_xml,
    inspect_detail,
    parse_fragment,
    without_marti,
)

from .samples import broken_captures, capture_events, golden_events, golden_ids, make_event

GOLDEN = golden_events()
GOLDEN_IDS = golden_ids()

T0 = "2016-01-13T20:43:37.842Z"
T0_MS = 1452717817842


def event_xml(
    *,
    attrs: str = f'uid="U1" type="a-f-G-U-C" how="m-g" time="{T0}" start="{T0}" stale="{T0}"',
    point: str = '<point lat="1.5" lon="2.5" hae="10" ce="5" le="9999999"/>',
    detail: str = "<detail/>",
) -> bytes:
    return f'<event version="2.0" {attrs}>{point}{detail}</event>'.encode()


# -- the golden samples ---------------------------------------------------------------------------


def test_captures_are_cut_into_seventeen_events_and_one_broken_capture() -> None:
    events, broken = capture_events(), broken_captures()
    assert len(events) == 17
    assert len(broken) == 1
    assert broken[0].startswith(b"<event")
    assert b"<\n/event>" in broken[0]
    for piece in events:
        assert piece.rstrip().endswith(b"</event>")
        assert piece.startswith((b"<event", b"<?xml"))


@pytest.mark.parametrize("sample", GOLDEN, ids=GOLDEN_IDS)
def test_every_golden_sample_decodes_and_keeps_its_bytes(sample: bytes) -> None:
    event = decode_xml(sample)
    assert event.uid
    assert event.type
    assert event.time <= event.stale
    if not event.how:
        # commo drops an event without `how` (§1.1): it is never forwarded as received.
        assert (event.raw, event.raw_format) == (b"", None)
        return
    # The raw bytes are the <event> element exactly as received, declaration cut off.
    assert event.raw_format is WireFormat.XML
    assert event.raw == sample[sample.index(b"<event") :]
    assert event.raw.endswith(b"</event>")


def test_atak_self_report_capture_decodes_field_by_field() -> None:
    gemini = decode_xml(capture_events()[2])
    assert gemini.uid == "ANDROID-48:5A:3F:49:93:24"
    assert gemini.type == "a-f-G-U-C"
    assert gemini.how == "h-e"
    assert gemini.time == T0_MS
    assert gemini.start == T0_MS
    assert gemini.stale == 1452717844842
    assert gemini.point == Point(37.954121501941216, -87.97179289978664, 80.85387849113384)
    assert gemini.detail.contact == Contact("GEMINI", "192.168.167.167:4242:tcp")
    assert gemini.detail.dests == ()
    assert not gemini.detail.has_marti
    assert gemini.detail.chat is None
    children = [el.tag for el in parse_fragment(f"<detail>{gemini.detail.xml}</detail>")]
    assert children == ["contact", "uid", "__group", "status", "track", "precisionlocation"]


def test_geochat_capture_exposes_its_room_and_members() -> None:
    chat = decode_xml(capture_events()[-1])
    assert chat.type == "b-t-f"
    assert chat.detail.chat == Chat("All Chat Rooms", "All Chat Rooms", ("All Chat Rooms",))
    assert chat.detail.contact is None


def test_one_digit_fraction_of_a_second_is_read_as_hundreds_of_milliseconds() -> None:
    mag = next(e for e in map(decode_xml, capture_events()) if e.uid.endswith("71:E5"))
    assert mag.time == 1444940631100


def test_declared_utf16_that_is_really_utf8_still_decodes() -> None:
    # WinTAK writes encoding="utf-16" in front of UTF-8 bytes; only the element is parsed.
    sample = next(s for s in capture_events() if b"utf-16" in s)
    assert decode_xml(sample).detail.contact == Contact("SkrienJ-LT", "192.168.135.185:8087:tcp")


def test_uas_tool_event_without_how_and_point_after_detail_decodes() -> None:
    uas = decode_xml(GOLDEN[GOLDEN_IDS.index("uas-tool-1")])
    assert uas.how == ""
    assert uas.raw == b""  # re-encoded with a `how` when forwarded
    assert b'how="h-g-i-g-o"' in encode_xml(uas)
    assert uas.point == Point(39.1, -108.6, 1381.333, 0.0, 0.0)
    assert uas.time == 1713976658002
    assert "<__video" in uas.detail.xml


def test_broken_capture_is_a_malformed_event() -> None:
    with pytest.raises(MalformedEvent):
        decode_xml(broken_captures()[0])


@pytest.mark.parametrize("sample", GOLDEN, ids=GOLDEN_IDS)
def test_encoded_golden_sample_decodes_to_the_same_event(sample: bytes) -> None:
    event = decode_xml(sample)
    again = decode_xml(encode_xml(event))
    # An event without `how` is written with the neutral one: commo drops events without it.
    assert again == dataclasses.replace(event, how=event.how or DEFAULT_HOW)
    assert again.raw == encode_xml(event)


# -- times ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("1970-01-01T00:00:00Z", 0),
        ("2016-01-13T20:43:37.842Z", T0_MS),
        ("2016-01-13T20:43:37.842+00:00", T0_MS),
        ("2016-01-13T21:43:37.842+01:00", T0_MS),
        ("2016-01-13T20:43:37.842", T0_MS),  # naive means UTC
        ("2016-01-13T20:43:37.8424Z", T0_MS),
    ],
)
def test_times_are_read_as_epoch_milliseconds(text: str, ms: int) -> None:
    assert ms_from_iso(text) == ms


def test_times_are_written_like_atak_writes_them() -> None:
    assert iso_from_ms(T0_MS) == T0
    assert iso_from_ms(0) == "1970-01-01T00:00:00.000Z"
    assert iso_from_ms(1444940631100) == "2015-10-15T20:23:51.100Z"


# -- encoding -------------------------------------------------------------------------------------


def test_encoded_event_has_no_declaration_and_nothing_after_the_closing_tag() -> None:
    data = encode_xml(make_event(detail='<contact callsign="A" endpoint="*:-1:stcp"/>'))
    assert data.startswith(b"<event ")
    assert data.endswith(b"</event>")
    root = etree.fromstring(data)
    assert root.get("version") == "2.0"
    assert root.find("point").get("le") == "9999999.0"
    assert root.find("detail/contact").get("callsign") == "A"


def test_attribute_values_are_escaped_on_the_way_out() -> None:
    nasty = 'a"b<c>&d\te\nf'
    event = dataclasses.replace(
        make_event(uid=nasty), access=nasty, releasable_to="USA", caveat="FOUO"
    )
    again = decode_xml(encode_xml(event))
    assert again.uid == nasty
    assert again.access == nasty
    assert again.releasable_to == "USA"
    assert again.caveat == "FOUO"


def test_event_without_detail_is_written_with_an_empty_detail() -> None:
    data = encode_xml(make_event())
    assert b"<detail/>" in data
    assert decode_xml(data).detail.xml == ""


def test_floats_survive_the_text_form_exactly() -> None:
    point = Point(-89.123456789012345, 179.99999999999997, -0.0, 1e-7, UNKNOWN_VALUE)
    assert decode_xml(encode_xml(make_event(point=point))).point == point


# -- what routing reads from <detail> -------------------------------------------------------------


def test_marti_destinations_are_read_in_order() -> None:
    detail = detail_from_xml(
        '<marti><dest callsign="BRAVO"/><dest uid="U-2"/><dest group="Red"/>'
        '<dest mission="m1"/><dest/></marti><contact callsign="A"/>'
    )
    assert detail.has_marti
    assert detail.dests == (
        Dest("callsign", "BRAVO"),
        Dest("uid", "U-2"),
        Dest("group", "Red"),
        Dest("mission", "m1"),
    )
    assert detail.contact == Contact("A", "")


def test_without_marti_removes_the_whole_element_and_the_raw_bytes() -> None:
    sent = decode_xml(
        event_xml(
            detail='<detail><marti><dest callsign="B"/></marti><remarks>hi</remarks></detail>'
        )
    )
    out = without_marti(sent)
    assert not out.detail.has_marti
    assert out.detail.dests == ()
    assert "marti" not in out.detail.xml
    assert "<remarks>hi</remarks>" in out.detail.xml
    assert out.raw == b""
    assert out.raw_format is None
    assert b"marti" not in encode_xml(out)


def test_an_event_without_marti_is_returned_unchanged_by_without_marti() -> None:
    event = decode_xml(GOLDEN[2])
    assert without_marti(event) is event


def test_chat_members_are_uid1_onwards_not_the_sender() -> None:
    detail = detail_from_xml(
        '<__chat chatroom="Team" id="r1"><chatgrp uid0="ME" uid1="A" uid2="B" uid4="X"/></__chat>'
    )
    assert detail.chat == Chat("Team", "r1", ("A", "B"))


# -- required parts -------------------------------------------------------------------------------


@pytest.mark.parametrize("missing", ["uid", "type", "time", "start", "stale"])
def test_event_missing_a_required_attribute_is_malformed(missing: str) -> None:
    attrs = {"uid": "U1", "type": "a-f-G", "how": "m-g", "time": T0, "start": T0, "stale": T0}
    del attrs[missing]
    text = " ".join(f'{k}="{v}"' for k, v in attrs.items())
    with pytest.raises(MalformedEvent, match=missing):
        decode_xml(event_xml(attrs=text))


@pytest.mark.parametrize(
    "attrs",
    [
        f'uid="" type="t" time="{T0}" start="{T0}" stale="{T0}"',
        f'uid="U" type="" time="{T0}" start="{T0}" stale="{T0}"',
    ],
    ids=["empty-uid", "empty-type"],
)
def test_event_with_an_empty_uid_or_type_is_malformed(attrs: str) -> None:
    with pytest.raises(MalformedEvent):
        decode_xml(event_xml(attrs=attrs))


@pytest.mark.parametrize("bad", ["yesterday", "2016-13-45T00:00:00Z", ""])
def test_event_with_an_unreadable_time_is_malformed(bad: str) -> None:
    attrs = f'uid="U" type="t" time="{bad}" start="{T0}" stale="{T0}"'
    with pytest.raises(MalformedEvent):
        decode_xml(event_xml(attrs=attrs))


def test_event_without_point_is_malformed() -> None:
    with pytest.raises(MalformedEvent, match="point"):
        decode_xml(event_xml(point=""))


@pytest.mark.parametrize("missing", ["lat", "lon"])
def test_point_without_lat_or_lon_is_malformed(missing: str) -> None:
    values = {"lat": "1", "lon": "2", "hae": "3", "ce": "4", "le": "5"}
    del values[missing]
    point = "<point " + " ".join(f'{k}="{v}"' for k, v in values.items()) + "/>"
    with pytest.raises(MalformedEvent, match=missing):
        decode_xml(event_xml(point=point))


def test_point_without_hae_ce_le_reads_them_as_unknown() -> None:
    event = decode_xml(event_xml(point='<point lat="1" lon="2"/>'))
    assert event.point == Point(1.0, 2.0, UNKNOWN_VALUE, UNKNOWN_VALUE, UNKNOWN_VALUE)
    # commo drops an event with a point attribute missing: it is re-encoded, gaps filled.
    assert event.raw == b""
    assert b'hae="9999999.0" ce="9999999.0" le="9999999.0"' in encode_xml(event)


@pytest.mark.parametrize("before_1970", ["1969-12-31T23:59:59.999Z", "0001-01-01T00:00:00Z"])
def test_time_before_1970_is_malformed_as_protobuf_could_not_carry_it(before_1970: str) -> None:
    for name in ("time", "start", "stale"):
        times = {"time": T0, "start": T0, "stale": T0, name: before_1970}
        attrs = 'uid="U" type="t" ' + " ".join(f'{k}="{v}"' for k, v in times.items())
        with pytest.raises(MalformedEvent, match="1970"):
            decode_xml(event_xml(attrs=attrs))


def test_latest_time_xml_can_write_is_accepted() -> None:
    last = "9999-12-31T23:59:59.999Z"
    event = decode_xml(event_xml(attrs=f'uid="U" type="t" time="{T0}" start="{T0}" stale="{last}"'))
    assert iso_from_ms(event.stale) == last


@pytest.mark.parametrize(
    "point",
    [
        '<point lat="north" lon="2"/>',
        '<point lat="1" lon="0x10"/>',
        '<point lat="1" lon="2" hae="high"/>',
        '<point lat="NaN" lon="2"/>',
        '<point lat="1" lon="nan"/>',
        '<point lat="1" lon="2" ce="NaN"/>',
        '<point lat="1" lon="2" hae="inf"/>',
        '<point lat="-Infinity" lon="2"/>',
        '<point lat="90.0001" lon="2"/>',
        '<point lat="-90.5" lon="2"/>',
        '<point lat="1" lon="180.01"/>',
        '<point lat="1" lon="-181"/>',
        '<point lat="1e308" lon="2"/>',
    ],
)
def test_non_numeric_non_finite_or_out_of_range_point_is_malformed(point: str) -> None:
    with pytest.raises(MalformedEvent):
        decode_xml(event_xml(point=point))


@pytest.mark.parametrize(("lat", "lon"), [(90, 180), (-90, -180), (0, 0)])
def test_point_on_the_edge_of_the_range_is_accepted(lat: int, lon: int) -> None:
    event = decode_xml(event_xml(point=f'<point lat="{lat}" lon="{lon}"/>'))
    assert (event.point.lat, event.point.lon) == (lat, lon)


# -- structure ------------------------------------------------------------------------------------


def test_root_other_than_event_is_malformed() -> None:
    with pytest.raises(MalformedEvent):
        decode_xml(b"<auth><cot username='u'/></auth>")
    with pytest.raises(MalformedEvent):
        parse_fragment(b"")
    with pytest.raises(MalformedEvent, match="no <event>"):
        decode_xml(b'<eventual uid="x"/>')
    with pytest.raises(MalformedEvent):
        decode_xml(b"<root>" + event_xml() + b"</root>")


def test_namespaced_event_root_is_malformed() -> None:
    data = event_xml().replace(b"<event ", b'<event xmlns="urn:x" ', 1)
    with pytest.raises(MalformedEvent, match="not <event>"):
        decode_xml(data)


@pytest.mark.parametrize(
    "prefix",
    [
        b"GARBAGE",
        b"\x00\x01\x02",
        b"</event>",
        b"<foo/>",
        b'<auth><cot username="u"/></auth>',
        b'<?xml version="1.0"?>GARBAGE',
        b'<?xml version="1.0"?><?xml version="1.0"?>',
    ],
)
def test_garbage_before_event_is_malformed(prefix: bytes) -> None:
    with pytest.raises(MalformedEvent):
        decode_xml(prefix + event_xml())


def test_whitespace_and_a_declaration_before_event_are_accepted() -> None:
    event = decode_xml(b'\r\n  <?xml version="1.0" encoding="UTF-8"?>\n' + event_xml())
    assert event.uid == "U1"
    assert event.raw == event_xml()


def test_trailing_whitespace_is_not_part_of_the_raw_bytes() -> None:
    assert decode_xml(event_xml() + b"\n\n").raw == event_xml()


def test_truncated_event_is_malformed() -> None:
    whole = event_xml()
    for cut in (10, len(whole) // 2, len(whole) - 1):
        with pytest.raises(MalformedEvent):
            decode_xml(whole[:cut])


def test_invalid_utf8_is_malformed() -> None:
    with pytest.raises(MalformedEvent):
        decode_xml(
            event_xml(detail="<detail><remarks>\xff</remarks></detail>").replace(
                b"\xc3\xbf", b"\xff"
            )
        )


def nested(levels: int) -> str:
    return "<a>" * levels + "</a>" * levels


def test_detail_nesting_up_to_max_depth_is_accepted() -> None:
    # <detail> itself is level 1.
    event = decode_xml(event_xml(detail=f"<detail>{nested(MAX_DEPTH - 1)}</detail>"))
    assert event.detail.xml.startswith("<a><a>")


def test_detail_nesting_deeper_than_max_depth_is_malformed() -> None:
    with pytest.raises(MalformedEvent, match="deeper"):
        decode_xml(event_xml(detail=f"<detail>{nested(MAX_DEPTH)}</detail>"))


def test_max_depth_is_a_parameter() -> None:
    data = event_xml(detail=f"<detail>{nested(3)}</detail>")
    assert decode_xml(data, max_depth=4).detail.xml == "<a><a><a/></a></a>"
    with pytest.raises(MalformedEvent):
        decode_xml(data, max_depth=3)


def test_nesting_beyond_libxml2s_own_limit_is_malformed_not_a_crash() -> None:
    with pytest.raises(MalformedEvent):
        decode_xml(event_xml(detail=f"<detail>{nested(100_000)}</detail>"))


# -- hostile XML ----------------------------------------------------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<event version="2.0" uid="&lol9;" type="a-f-G" how="m-g" time="2016-01-13T20:43:37.842Z"
 start="2016-01-13T20:43:37.842Z" stale="2016-01-13T20:43:37.842Z">
<point lat="1" lon="2"/><detail><remarks>&lol9;</remarks></detail></event>"""

XXE_FILE = b"""<?xml version="1.0"?>
<!DOCTYPE event [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<event version="2.0" uid="x" type="a-f-G" how="m-g" time="2016-01-13T20:43:37.842Z"
 start="2016-01-13T20:43:37.842Z" stale="2016-01-13T20:43:37.842Z">
<point lat="1" lon="2"/><detail><remarks>&xxe;</remarks></detail></event>"""

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE event SYSTEM "http://127.0.0.1:9/evil.dtd">
<event version="2.0" uid="x" type="a-f-G" how="m-g" time="2016-01-13T20:43:37.842Z"
 start="2016-01-13T20:43:37.842Z" stale="2016-01-13T20:43:37.842Z">
<point lat="1" lon="2"/><detail/></event>"""

PARAMETER_ENTITY = b"""<!DOCTYPE event [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]>
<event uid="x" type="t" time="2016-01-13T20:43:37.842Z" start="2016-01-13T20:43:37.842Z"
 stale="2016-01-13T20:43:37.842Z"><point lat="1" lon="2"/></event>"""

HOSTILE = {
    "billion-laughs": BILLION_LAUGHS,
    "xxe-file": XXE_FILE,
    "external-dtd": EXTERNAL_DTD,
    "parameter-entity": PARAMETER_ENTITY,
    # No declaration before the event: the DOCTYPE is what the prefix is.
    "doctype-without-declaration": XXE_FILE.split(b"\n", 1)[1],
    # An event element hidden inside the internal subset.
    "event-in-entity": b'<!DOCTYPE x [<!ENTITY e "<event uid=\'a\'/>">]><event uid="&e;"/>',
}


def passwd_needle() -> bytes:
    text = Path("/etc/passwd").read_bytes()
    line = next(line for line in text.splitlines() if line.strip())
    return line.strip()


@pytest.mark.parametrize("document", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_documents_are_refused(document: bytes) -> None:
    with pytest.raises(MalformedEvent) as caught:
        decode_xml(document)
    assert passwd_needle() not in str(caught.value).encode()


def test_xxe_never_returns_the_file_content_from_any_entry_point() -> None:
    needle = passwd_needle()
    body = XXE_FILE[XXE_FILE.index(b"<!DOCTYPE") :]
    for attempt in (
        lambda: decode_xml(XXE_FILE),
        lambda: parse_fragment(body),
        lambda: detail_from_xml(body.decode()),
        lambda: detail_from_xml('<!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>&x;'),
    ):
        with pytest.raises(MalformedEvent) as caught:
            attempt()
        assert needle not in str(caught.value).encode()
        assert needle.decode() not in repr(caught.value)


def test_an_entity_reference_without_a_declaration_is_malformed() -> None:
    with pytest.raises(MalformedEvent):
        decode_xml(event_xml(detail="<detail><remarks>&xxe;</remarks></detail>"))


def test_predefined_and_character_entities_still_work() -> None:
    event = decode_xml(event_xml(detail="<detail><remarks>&lt;&amp;&#65;&#x42;</remarks></detail>"))
    assert "<remarks>&lt;&amp;AB</remarks>" in event.detail.xml


def test_comments_and_cdata_in_detail_are_harmless() -> None:
    event = decode_xml(
        event_xml(detail="<detail><!-- note --><remarks><![CDATA[a<b]]></remarks></detail>")
    )
    assert event.detail.xml == "<remarks>a&lt;b</remarks>"


def test_every_decode_failure_is_a_cot_error() -> None:
    assert issubclass(MalformedEvent, CotError)


# -- <auth> ---------------------------------------------------------------------------------------


def test_auth_document_is_read_from_the_bytes_before_an_event() -> None:
    prefix = (
        b'<?xml version="1.0"?>\n<auth><cot username="alice" password="s3cret" uid="A-1"/></auth>'
    )
    assert decode_auth(prefix) == AuthRequest("alice", "s3cret", "A-1")


def test_no_auth_document_is_none() -> None:
    assert decode_auth(b'<?xml version="1.0"?>\n') is None


@pytest.mark.parametrize(
    "prefix", [b"<auth><cot username='u'/>", b"<auth></auth>", b"<auth><cot username='u'></auth>"]
)
def test_bad_auth_document_is_malformed(prefix: bytes) -> None:
    with pytest.raises(MalformedEvent):
        decode_auth(prefix)


def test_events_built_in_memory_have_no_raw_bytes() -> None:
    event = make_event()
    assert event.raw == b""
    assert event.raw_format is None
    assert isinstance(event, CotEvent)


@pytest.mark.parametrize(
    "detail",
    [
        '<detail><contact callsign="a"/><__group name="Cyan" role="x"/></detail>',
        '<detail>\n  <contact callsign="a"/>\n  <remarks>hi &amp; bye</remarks>\n</detail>',
        '<detail><contact callsign="a"/>tail<track speed="1"/></detail>',
        '<detail xmlns:x="urn:x"><x:thing a="1"/><plain/></detail>',
        '<detail><a xmlns="urn:y"><b/></a><!-- note --><c/></detail>',
        '<detail extra="1"><contact callsign="a"/></detail>',
        "<detail>text<contact/></detail>",
        "<detail/>",
    ],
)
def test_detail_children_serialise_alike_on_the_fast_and_the_general_path(detail: str) -> None:
    root = parse_fragment(detail)
    per_child = "".join(etree.tostring(c, encoding="unicode", with_tail=False) for c in root)
    assert inspect_detail(root).xml == per_child


def _times_by_datetime(text: str) -> int:
    value = datetime.fromisoformat(text.strip())
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1000 + (0.5 if value.timestamp() >= 0 else -0.5))


@given(
    when=st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 30)),
    digits=st.integers(0, 6),
)
def test_the_zulu_fast_path_reads_times_exactly_as_datetime_does(
    when: datetime, digits: int
) -> None:
    text = when.isoformat(timespec="seconds")
    if digits:
        text += "." + f"{when.microsecond:06d}"[:digits]
    assert ms_from_iso(text + "Z") == _times_by_datetime(text + "Z")


@pytest.mark.parametrize(
    "text", ["2016-13-13T20:43:37Z", "2016-01-13T20:61:37.1Z", "0000-01-01T00:00:00Z"]
)
def test_an_impossible_zulu_time_is_refused_as_before(text: str) -> None:
    with pytest.raises(ValueError, match=r"must be in|out of range"):
        ms_from_iso(text)


@pytest.mark.parametrize(
    "control",
    [
        '<TakControl><TakProtocolSupport version="one"/></TakControl>',
        "<TakControl><TakRequest/></TakControl>",
    ],
)
def test_a_tak_control_version_that_is_not_a_number_is_malformed(control: str) -> None:
    good = encode_xml(make_event("takp-1", "t-x-takp-q", detail="<TakControl/>"))
    data = good.replace(b"<TakControl/>", control.encode())
    assert data != good
    with pytest.raises(MalformedEvent, match="TakControl version is not a number"):
        decode_xml(data)


UTF16_ENTITY = (
    '<?xml version="1.0" encoding="UTF-16"?>'
    '<!DOCTYPE event [<!ENTITY x "PWNED">]>'
    '<event version="2.0" uid="u" type="a-f-G" time="2026-01-01T00:00:00Z"'
    ' start="2026-01-01T00:00:00Z" stale="2026-01-01T00:01:00Z" how="m-g">'
    '<point lat="1" lon="2" hae="0" ce="9" le="9"/><detail><remarks>&x;</remarks></detail></event>'
)


@pytest.mark.parametrize(
    "raw",
    [
        UTF16_ENTITY.encode("utf-16"),  # with a BOM
        UTF16_ENTITY.encode("utf-16-le"),  # NUL bytes, no BOM
        UTF16_ENTITY.encode("utf-16-be"),
        b"\xef\xbb\xbf" + UTF16_ENTITY.replace("UTF-16", "UTF-8").encode(),
    ],
)
def test_xml_in_another_encoding_is_refused_before_it_is_parsed(raw: bytes) -> None:
    for decode in (decode_xml, parse_fragment):
        with pytest.raises(MalformedEvent) as caught:
            decode(raw)
        assert caught.value.reason is Malformation.FORBIDDEN_XML, decode


@pytest.mark.parametrize("encoding", ["UTF-16", "ebcdic-cp-us", "utf-7"])
def test_a_fragment_declaring_another_encoding_is_refused(encoding: str) -> None:
    with pytest.raises(MalformedEvent, match="must be UTF-8") as caught:
        parse_fragment(f'<?xml version="1.0" encoding="{encoding}"?><feed/>'.encode())
    assert caught.value.reason is Malformation.FORBIDDEN_XML
    assert parse_fragment(b'<?xml version="1.0" encoding="us-ascii"?><feed/>').tag == "feed"
