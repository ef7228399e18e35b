"""StreamConnection: bytes in, events out, whatever the reads; errors as values (DESIGN §Errors)."""

from __future__ import annotations

from pathlib import Path

import pytest

from accord.cot.connection import NEED_DATA, Closed, Limits, StreamConnection, frame
from accord.cot.errors import MalformedEvent
from accord.cot.framing import encode_varint, frame_stream
from accord.cot.model import CotEvent, WireFormat
from accord.cot.negotiation import Role
from accord.cot.outgoing import Outgoing
from accord.cot.proto import decode_proto, encode_proto
from accord.cot.xml import AuthRequest, decode_xml, encode_xml

from .samples import (
    ATAK_CAPTURES,
    broken_captures,
    capture_events,
    drain,
    drain_all,
    golden_events,
    golden_ids,
    make_event,
    sa_event,
    split_points,
)

GOLDEN = golden_events()
GOLDEN_IDS = golden_ids()
PAYLOADS = [encode_proto(decode_xml(sample)) for sample in GOLDEN]


def xml_conn(**limits: int) -> StreamConnection:
    return StreamConnection(Role.SERVER, limits=Limits(**limits))


def proto_conn(**limits: int) -> StreamConnection:
    return StreamConnection(Role.SERVER, wire_format=WireFormat.PROTOBUF, limits=Limits(**limits))


def feed(conn: StreamConnection, *pieces: bytes) -> list[CotEvent]:
    """Feed non-empty pieces (``b""`` is end of stream), collecting events as they come."""
    events: list[CotEvent] = []
    for piece in pieces:
        if piece:
            conn.receive_data(piece, 0.0)
            got, closed = drain(conn)
            assert closed is None, closed
            events += got
    return events


# -- golden samples through a connection ----------------------------------------------------------


@pytest.mark.parametrize("sample", GOLDEN, ids=GOLDEN_IDS)
def test_xml_sample_split_at_every_byte_boundary_gives_the_same_event(sample: bytes) -> None:
    expected = [decode_xml(sample)]
    for head, tail in split_points(sample):
        assert feed(xml_conn(), head, tail) == expected, len(head)


@pytest.mark.parametrize("sample", GOLDEN, ids=GOLDEN_IDS)
def test_xml_sample_fed_byte_by_byte_gives_the_same_event(sample: bytes) -> None:
    conn = xml_conn()
    pieces = [sample[i : i + 1] for i in range(len(sample))]
    events = feed(conn, *pieces)
    assert events == [decode_xml(sample)]
    assert events[0].raw == decode_xml(sample).raw
    conn.receive_data(b"", 0.0)
    assert conn.next_event() == Closed("peer closed", clean=True)


@pytest.mark.parametrize("payload", PAYLOADS, ids=GOLDEN_IDS)
def test_proto_frame_split_at_every_byte_boundary_gives_the_same_event(payload: bytes) -> None:
    expected = [decode_proto(payload)]
    data = frame_stream(payload)
    for head, tail in split_points(data):
        assert feed(proto_conn(), head, tail) == expected, len(head)


def test_proto_frames_fed_byte_by_byte_give_the_same_events() -> None:
    stream = b"".join(frame_stream(p) for p in PAYLOADS)
    events = feed(proto_conn(), *(stream[i : i + 1] for i in range(len(stream))))
    assert events == [decode_proto(p) for p in PAYLOADS]
    assert [e.raw for e in events] == PAYLOADS


def test_the_capture_file_as_one_stream_loses_only_the_broken_event_and_its_neighbour() -> None:
    # The broken capture has no </event>: the splitter cuts at the next event's end, so that
    # frame is malformed and the stream carries on (commo and TAK Server cut the same way).
    good = capture_events()
    broken = broken_captures()[0]
    data = ATAK_CAPTURES.read_bytes()
    ordered = sorted([*good, broken], key=data.index)
    stream = b"\n\n".join(ordered)
    conn = xml_conn()
    conn.receive_data(stream, 0.0)
    conn.receive_data(b"", 0.0)
    out = drain_all(conn)
    victim = ordered[ordered.index(broken) + 1]
    assert len(out.malformed) == 1
    assert out.events == [decode_xml(p) for p in good if p != victim]
    assert out.closed == Closed("peer closed", clean=True)


# -- end of stream --------------------------------------------------------------------------------


def test_peer_closing_between_events_is_a_clean_close() -> None:
    conn = xml_conn()
    conn.receive_data(GOLDEN[0] + b"\n", 0.0)
    conn.receive_data(b"", 0.0)
    assert conn.next_event() == decode_xml(GOLDEN[0])
    closed = conn.next_event()
    assert closed == Closed("peer closed", clean=True)
    # A closed connection stays closed and ignores later bytes.
    conn.receive_data(GOLDEN[1], 0.0)
    assert conn.next_event() is closed


def test_peer_closing_inside_an_xml_event_is_not_clean() -> None:
    conn = xml_conn()
    conn.receive_data(GOLDEN[0][:50], 0.0)
    assert conn.next_event() is NEED_DATA
    conn.receive_data(b"", 0.0)
    closed = conn.next_event()
    assert isinstance(closed, Closed)
    assert not closed.clean
    assert "50 bytes" in closed.reason


def test_truncated_proto_frame_then_eof_is_not_clean() -> None:
    conn = proto_conn()
    conn.receive_data(frame_stream(PAYLOADS[0])[:-1], 0.0)
    assert conn.next_event() is NEED_DATA
    conn.receive_data(b"", 0.0)
    closed = conn.next_event()
    assert isinstance(closed, Closed)
    assert not closed.clean


def test_no_data_is_need_data() -> None:
    assert xml_conn().next_event() is NEED_DATA
    assert proto_conn().next_event() is NEED_DATA


# -- lost framing ---------------------------------------------------------------------------------


def closed_after(conn: StreamConnection, data: bytes, chunk: int) -> Closed:
    for start in range(0, len(data), chunk):
        conn.receive_data(data[start : start + chunk], 0.0)
        item = conn.next_event()
        if isinstance(item, Closed):
            return item
        assert item is NEED_DATA
    raise AssertionError("the stream was never closed")


def test_garbage_without_closing_tag_closes_the_stream_at_the_limit() -> None:
    conn = xml_conn(max_event_bytes=4096)
    closed = closed_after(conn, b"A" * 10 * 1024 * 1024, 1024)
    assert not closed.clean
    assert "4096" in closed.reason


def test_ten_megabytes_of_garbage_close_the_stream_at_the_default_limit() -> None:
    conn = xml_conn()
    garbage = bytes(range(256)) * (10 * 1024 * 1024 // 256)
    closed = closed_after(conn, garbage, 1024 * 1024)
    assert not closed.clean


@pytest.mark.parametrize(
    "data",
    [
        b"<event/>",  # XML on a protobuf stream: wrong magic
        b"\x00\x03abc",
        b"\xbf" + encode_varint(2**60) + b"payload",
        b"\xbf" + b"\xff" * 10 + b"\x01",
    ],
    ids=["xml", "wrong-magic", "length-2^60", "varint-over-10-bytes"],
)
def test_lost_protobuf_framing_closes_the_stream(data: bytes) -> None:
    conn = proto_conn()
    conn.receive_data(frame_stream(PAYLOADS[0]) + data, 0.0)
    assert conn.next_event() == decode_proto(PAYLOADS[0])
    closed = conn.next_event()
    assert isinstance(closed, Closed)
    assert not closed.clean
    assert conn.next_event() is closed


def test_proto_frame_over_the_limit_closes_the_stream() -> None:
    conn = proto_conn(max_event_bytes=100)
    conn.receive_data(frame_stream(b"x" * 101), 0.0)
    closed = conn.next_event()
    assert isinstance(closed, Closed)
    assert not closed.clean


# -- one bad event, stream kept -------------------------------------------------------------------


def test_garbage_payload_in_a_valid_frame_is_malformed_and_the_next_frame_decodes() -> None:
    conn = proto_conn()
    conn.receive_data(frame_stream(b"\xff\xfe garbage") + frame_stream(PAYLOADS[1]), 0.0)
    with pytest.raises(MalformedEvent):
        conn.next_event()
    assert conn.next_event() == decode_proto(PAYLOADS[1])
    assert conn.next_event() is NEED_DATA


def test_malformed_xml_event_is_skipped_and_the_next_event_decodes() -> None:
    conn = xml_conn()
    bad = b'<event uid="x" type="t"><point lat="1" lon="2"/></event>'  # no times
    conn.receive_data(bad + GOLDEN[0], 0.0)
    with pytest.raises(MalformedEvent):
        conn.next_event()
    assert conn.next_event() == decode_xml(GOLDEN[0])


def test_oversize_xml_event_arriving_whole_is_skipped() -> None:
    conn = xml_conn(max_event_bytes=2000)
    big = encode_xml(make_event(detail="<remarks>" + "x" * 3000 + "</remarks>"))
    conn.receive_data(big + GOLDEN[0], 0.0)
    with pytest.raises(MalformedEvent):
        conn.next_event()
    assert conn.next_event() == decode_xml(GOLDEN[0])


def test_depth_limit_applies_on_the_stream() -> None:
    conn = xml_conn(max_depth=3)
    deep = encode_xml(make_event(detail="<a><b><c/></b></a>"))
    shallow = encode_xml(make_event(detail="<a><b/></a>"))
    conn.receive_data(deep + shallow, 0.0)
    with pytest.raises(MalformedEvent):
        conn.next_event()
    assert conn.next_event() == decode_xml(shallow)


def test_xxe_on_the_stream_is_malformed_and_leaks_nothing() -> None:
    needle = next(line for line in Path("/etc/passwd").read_bytes().splitlines() if line)
    xxe = (
        b'<?xml version="1.0"?><!DOCTYPE event [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b'<event uid="u" type="t" time="2020-01-01T00:00:00Z" start="2020-01-01T00:00:00Z"'
        b' stale="2020-01-01T00:00:00Z"><point lat="1" lon="2"/><detail><remarks>&x;'
        b"</remarks></detail></event>"
    )
    conn = xml_conn()
    conn.receive_data(xxe + GOLDEN[0], 0.0)
    out = drain_all(conn)
    assert len(out.malformed) == 1
    assert needle not in str(out.malformed[0]).encode()
    assert out.events == [decode_xml(GOLDEN[0])]
    assert all(needle not in e.raw and needle.decode() not in e.detail.xml for e in out.events)
    assert needle not in conn.data_to_send()


# -- <auth> ---------------------------------------------------------------------------------------

AUTH = b'<?xml version="1.0"?>\n<auth><cot username="alice" password="pw" uid="ANDROID-1"/></auth>'


def test_leading_auth_document_is_recorded_and_the_event_after_it_is_yielded() -> None:
    conn = xml_conn()
    assert feed(conn, AUTH + GOLDEN[2]) == [decode_xml(GOLDEN[2])]
    assert conn.auth == AuthRequest("alice", "pw", "ANDROID-1")


def test_leading_auth_document_fed_byte_by_byte_is_recorded() -> None:
    conn = xml_conn()
    data = AUTH + GOLDEN[2]
    assert feed(conn, *(data[i : i + 1] for i in range(len(data)))) == [decode_xml(GOLDEN[2])]
    assert conn.auth == AuthRequest("alice", "pw", "ANDROID-1")


def test_auth_document_after_the_first_event_is_not_honoured() -> None:
    conn = xml_conn()
    conn.receive_data(GOLDEN[0] + AUTH + GOLDEN[2], 0.0)
    assert conn.next_event() == decode_xml(GOLDEN[0])
    with pytest.raises(MalformedEvent):
        conn.next_event()
    assert conn.auth is None


def test_bad_auth_document_is_malformed_and_the_stream_goes_on() -> None:
    conn = xml_conn()
    conn.receive_data(b"<auth><nope/></auth>" + GOLDEN[0] + GOLDEN[1], 0.0)
    with pytest.raises(MalformedEvent):
        conn.next_event()
    assert conn.next_event() == decode_xml(GOLDEN[1])


def test_word_auth_inside_an_event_is_not_an_auth_document() -> None:
    event = make_event(detail="<remarks>&lt;auth&gt; is a word</remarks><auth_x/>")
    conn = xml_conn()
    assert feed(conn, encode_xml(event)) == [event]
    assert conn.auth is None


# -- sending --------------------------------------------------------------------------------------


def test_received_xml_is_forwarded_as_the_same_bytes() -> None:
    event = decode_xml(GOLDEN[2])
    assert frame(event, WireFormat.XML) is event.raw
    assert xml_conn().send(event) is event.raw


def test_received_protobuf_is_forwarded_without_reencoding() -> None:
    event = decode_proto(PAYLOADS[2])
    assert frame(event, WireFormat.PROTOBUF) == frame_stream(PAYLOADS[2])
    assert proto_conn().send(event) == frame_stream(PAYLOADS[2])


def test_events_are_converted_when_the_format_differs() -> None:
    from_xml = decode_xml(GOLDEN[2])
    as_proto = frame(from_xml, WireFormat.PROTOBUF)
    assert as_proto == frame_stream(encode_proto(from_xml))
    from_proto = decode_proto(PAYLOADS[2])
    assert frame(from_proto, WireFormat.XML) == encode_xml(from_proto)
    built = sa_event("ANDROID-1", "ALPHA")
    assert frame(built, WireFormat.XML) == encode_xml(built)


def test_outgoing_encodes_once_per_format() -> None:
    out = Outgoing(sa_event("ANDROID-1", "ALPHA"))
    xml = out.frame(WireFormat.XML)
    proto = out.frame(WireFormat.PROTOBUF)
    assert out.frame(WireFormat.XML) is xml
    assert out.frame(WireFormat.PROTOBUF) is proto
    assert decode_xml(xml) == out.event
    assert proto[0] == 0xBF


def test_only_atoms_are_position_reports() -> None:
    assert Outgoing(make_event(type_="a-f-G-U-C")).is_position
    assert not Outgoing(make_event(type_="b-t-f")).is_position
    assert not Outgoing(make_event(type_="t-x-d-d")).is_position


def test_nothing_to_send_until_the_protocol_needs_it() -> None:
    conn = xml_conn()
    conn.receive_data(b"".join(GOLDEN), 0.0)
    drain(conn)
    assert conn.data_to_send() == b""
