"""Fuzz the wire protocol in mitmproxy's shape: cut a real sample, append garbage, feed it.

Only :class:`CotError` (``MalformedEvent``, ``FramingError``) may escape, or a ``Closed`` value
be returned. Whatever a decoder accepts must be forwardable in both wire formats.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from takproto.proto import TakMessage

from accord.cot.connection import NEED_DATA, Closed, StreamConnection
from accord.cot.errors import CotError, FramingError, MalformedEvent
from accord.cot.framing import ProtoSplitter, XmlSplitter, frame_mesh, frame_stream, split_datagram
from accord.cot.model import CotEvent, WireFormat
from accord.cot.negotiation import Role
from accord.cot.proto import decode_proto, encode_proto
from accord.cot.xml import DEFAULT_HOW, decode_xml, encode_xml

from .samples import golden_events

GOLDEN = golden_events()
PAYLOADS = [encode_proto(decode_xml(sample)) for sample in GOLDEN]

# Short by default so the suite stays fast; RUN_SLOW=1 (or FUZZ_EXAMPLES=N) digs deeper.
FUZZ_EXAMPLES = int(
    os.environ.get("FUZZ_EXAMPLES", "10000" if os.environ.get("RUN_SLOW") == "1" else "200")
)
FUZZ = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    database=None,  # nothing written into the work tree
    suppress_health_check=[HealthCheck.too_slow],
)

# Garbage that is more than random bytes: XML and framing tokens a parser branches on.
TOKENS = [
    b"<",
    b">",
    b"/>",
    b"</event>",
    b"<event ",
    b"<event>",
    b"</detail>",
    b"<detail>",
    b"<point lat='1' lon='2'/>",
    b'"',
    b"'",
    b"&",
    b"&amp;",
    b"&#0;",
    b"&xxe;",
    b"<!DOCTYPE x [<!ENTITY xxe SYSTEM 'file:///etc/passwd'>]>",
    b"<?xml version='1.0'?>",
    b"<auth><cot username='u'/></auth>",
    b"<![CDATA[",
    b"]]>",
    b"<!--",
    b"-->",
    b"\xbf",
    b"\xbf\x01\xbf",
    b"\xff" * 10,
    b"\x80",
    b"\x00",
    b"\n",
    b"NaN",
    b"1e999",
    b"uid=",
    b"time='2020-01-01T00:00:00Z'",
]
garbage = st.one_of(
    st.binary(max_size=64),
    st.lists(st.sampled_from(TOKENS), max_size=12).map(b"".join),
)


@st.composite
def cut_and_garbage(draw: st.DrawFn, samples: list[bytes]) -> bytes:
    sample = draw(st.sampled_from(samples))
    cut = draw(st.integers(0, len(sample)))
    return sample[:cut] + draw(garbage)


@st.composite
def flipped(draw: st.DrawFn, samples: list[bytes]) -> bytes:
    """A sample with a few bytes overwritten: corrupt values inside a well-framed payload."""
    data = bytearray(draw(st.sampled_from(samples)))
    for _ in range(draw(st.integers(1, 4))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data)


def chunked(data: bytes, sizes: list[int]) -> list[bytes]:
    pieces: list[bytes] = []
    pos = 0
    for size in sizes:
        if pos >= len(data):
            break
        pieces.append(data[pos : pos + size])
        pos += size
    if pos < len(data):
        pieces.append(data[pos:])
    return pieces


chunk_sizes = st.lists(st.integers(1, 300), max_size=8)


def assert_forwardable(event: CotEvent) -> None:
    """What was accepted can be sent on to an XML client and to a protobuf client."""
    as_xml = decode_xml(encode_xml(event))
    assert as_xml == dataclasses.replace(event, how=event.how or DEFAULT_HOW)
    as_proto = decode_proto(encode_proto(event))
    assert as_proto.uid == event.uid
    assert as_proto.time == event.time


def drive(conn: StreamConnection, pieces: list[bytes]) -> list[CotEvent]:
    """Feed the pieces, then end of stream; return the events. Only CotError may escape."""
    events: list[CotEvent] = []
    for piece in [*pieces, b""]:
        conn.receive_data(piece, 0.0)
        for _ in range(10_000):
            try:
                item = conn.next_event()
            except MalformedEvent:
                continue
            if item is NEED_DATA:
                break
            if isinstance(item, Closed):
                assert piece == b"" or not item.clean
                return events
            assert isinstance(item, CotEvent)
            events.append(item)
        else:
            raise AssertionError("next_event() never settled")
    raise AssertionError("end of stream did not close the connection")


# -- XML ------------------------------------------------------------------------------------------


@FUZZ
@given(cut_and_garbage(GOLDEN))
def test_decode_xml_raises_only_malformed_event(data: bytes) -> None:
    try:
        event = decode_xml(data)
    except MalformedEvent:
        return
    assert_forwardable(event)


@FUZZ
@given(flipped(GOLDEN))
def test_decode_xml_of_a_corrupted_sample_raises_only_malformed_event(data: bytes) -> None:
    try:
        event = decode_xml(data)
    except MalformedEvent:
        return
    assert_forwardable(event)


@FUZZ
@given(st.lists(cut_and_garbage(GOLDEN), min_size=1, max_size=4).map(b"".join), chunk_sizes)
def test_xml_splitter_raises_only_cot_errors(data: bytes, sizes: list[int]) -> None:
    splitter = XmlSplitter(max_frame_bytes=4096)
    total = 0
    for piece in chunked(data, sizes):
        splitter.feed(piece)
        while True:
            try:
                frame = splitter.next_frame()
            except MalformedEvent:
                continue
            except FramingError:
                return
            if frame is None:
                break
            assert frame.endswith(b"</event>")
            total += len(frame)
    assert total + splitter.pending() == len(data)


@FUZZ
@given(st.lists(cut_and_garbage(GOLDEN), min_size=1, max_size=4).map(b"".join), chunk_sizes)
def test_xml_stream_connection_returns_events_or_closed(data: bytes, sizes: list[int]) -> None:
    for event in drive(StreamConnection(Role.SERVER), chunked(data, sizes)):
        assert_forwardable(event)


@FUZZ
@given(st.lists(cut_and_garbage(GOLDEN), min_size=1, max_size=4).map(b"".join), chunk_sizes)
def test_client_stream_connection_returns_events_or_closed(data: bytes, sizes: list[int]) -> None:
    drive(StreamConnection(Role.CLIENT), chunked(data, sizes))


# -- protobuf -------------------------------------------------------------------------------------


@FUZZ
@given(st.one_of(cut_and_garbage(PAYLOADS), flipped(PAYLOADS), st.binary(max_size=200)))
def test_decode_proto_raises_only_malformed_event(payload: bytes) -> None:
    try:
        event = decode_proto(payload)
    except MalformedEvent:
        return
    assert_forwardable(event)


DETAIL_PIECES = [
    child
    for sample in GOLDEN
    for child in decode_xml(sample).detail.xml.replace("><", ">\n<").splitlines()
]


@st.composite
def tak_messages(draw: st.DrawFn) -> bytes:
    """Well-framed TakMessages whose field values are anything the schema allows."""
    msg = TakMessage()
    cot = msg.cotEvent
    # Mostly plausible values, so that the checks deep inside are reached, plus anything.
    printable = st.characters(codec="ascii", min_codepoint=32)
    text = st.one_of(st.text(printable, max_size=12), st.text())
    name = st.one_of(st.text(printable, min_size=1, max_size=12), text)
    cot.uid, cot.type, cot.how = draw(name), draw(name), draw(text)
    for name in ("sendTime", "startTime", "staleTime"):
        setattr(cot, name, draw(st.one_of(st.integers(0, 2**64 - 1), st.just(1_700_000_000_000))))
    for name, limit in (("lat", 90.0), ("lon", 180.0), ("hae", 1e7), ("ce", 1e7), ("le", 1e7)):
        value = st.one_of(st.floats(-limit, limit), st.floats(allow_nan=True, allow_infinity=True))
        setattr(cot, name, draw(value))
    pieces = draw(st.lists(st.one_of(st.sampled_from(DETAIL_PIECES), text), max_size=4))
    cot.detail.xmlDetail = "".join(pieces)
    if draw(st.booleans()):
        cot.detail.contact.callsign = draw(text)
        cot.detail.contact.endpoint = draw(text)
    if draw(st.booleans()):
        cot.detail.track.speed = draw(st.floats(allow_nan=True, allow_infinity=True))
    if draw(st.booleans()):
        cot.detail.status.battery = draw(st.integers(0, 2**32 - 1))
    return bytes(msg.SerializeToString())


@FUZZ
@given(tak_messages())
def test_any_tak_message_is_decoded_to_a_forwardable_event_or_malformed(payload: bytes) -> None:
    try:
        event = decode_proto(payload)
    except MalformedEvent:
        return
    assert_forwardable(event)


@FUZZ
@given(cut_and_garbage([frame_stream(p) for p in PAYLOADS]), chunk_sizes)
def test_proto_splitter_raises_only_cot_errors(data: bytes, sizes: list[int]) -> None:
    splitter = ProtoSplitter(max_frame_bytes=4096)
    for piece in chunked(data, sizes):
        splitter.feed(piece)
        while True:
            try:
                frame = splitter.next_frame()
            except FramingError:
                return
            if frame is None:
                break
            with contextlib.suppress(MalformedEvent):
                decode_proto(frame)


@FUZZ
@given(
    st.one_of(
        cut_and_garbage([frame_stream(p) for p in PAYLOADS]),
        st.lists(flipped([frame_stream(p) for p in PAYLOADS]), max_size=3).map(b"".join),
    ),
    chunk_sizes,
)
def test_proto_stream_connection_returns_events_or_closed(data: bytes, sizes: list[int]) -> None:
    conn = StreamConnection(Role.SERVER, wire_format=WireFormat.PROTOBUF)
    for event in drive(conn, chunked(data, sizes)):
        assert_forwardable(event)


# -- mesh (UDP) -----------------------------------------------------------------------------------


@FUZZ
@given(
    st.one_of(
        cut_and_garbage([frame_mesh(p) for p in PAYLOADS]),
        cut_and_garbage(GOLDEN),
        st.binary(max_size=100),
    )
)
def test_datagrams_raise_only_malformed_event(datagram: bytes) -> None:
    try:
        fmt, body = split_datagram(datagram)
        event = decode_xml(body) if fmt is WireFormat.XML else decode_proto(body)
    except MalformedEvent:
        return
    assert_forwardable(event)


def test_every_error_the_fuzzers_allow_is_a_cot_error() -> None:
    assert issubclass(MalformedEvent, CotError)
    assert issubclass(FramingError, CotError)
