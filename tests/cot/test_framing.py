"""Splitters: frames come out whole whatever the read boundaries (reference §2.2 to §2.4)."""

from __future__ import annotations

import pytest

from accord.cot.errors import FramingError, MalformedEvent
from accord.cot.framing import (
    MAGIC,
    MESH_HEADER,
    ProtoSplitter,
    XmlSplitter,
    decode_varint,
    encode_varint,
    frame_mesh,
    frame_stream,
    split_datagram,
)
from accord.cot.model import WireFormat
from accord.cot.proto import decode_proto, encode_proto
from accord.cot.xml import MAX_EVENT_BYTES, decode_xml, encode_xml

from .samples import golden_events, golden_ids, make_event, split_points

GOLDEN = golden_events()
GOLDEN_IDS = golden_ids()
PAYLOADS = [encode_proto(decode_xml(sample)) for sample in GOLDEN]


def frames_of(splitter: XmlSplitter | ProtoSplitter) -> list[bytes]:
    out: list[bytes] = []
    while (frame := splitter.next_frame()) is not None:
        out.append(frame)
    return out


def feed_pieces(splitter: XmlSplitter | ProtoSplitter, pieces: list[bytes]) -> list[bytes]:
    out: list[bytes] = []
    for piece in pieces:
        splitter.feed(piece)
        out += frames_of(splitter)
    return out


def byte_by_byte(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


# -- XML stream -----------------------------------------------------------------------------------


@pytest.mark.parametrize("sample", GOLDEN, ids=GOLDEN_IDS)
def test_xml_sample_split_at_every_byte_boundary_comes_out_whole(sample: bytes) -> None:
    for head, tail in split_points(sample):
        assert feed_pieces(XmlSplitter(), [head, tail]) == [sample], len(head)


@pytest.mark.parametrize("sample", GOLDEN, ids=GOLDEN_IDS)
def test_xml_sample_fed_byte_by_byte_comes_out_whole(sample: bytes) -> None:
    splitter = XmlSplitter()
    assert feed_pieces(splitter, byte_by_byte(sample)) == [sample]
    assert splitter.pending() == 0


def test_all_golden_samples_as_one_stream_byte_by_byte_give_the_same_events() -> None:
    stream = b"\n".join(GOLDEN)
    frames = feed_pieces(XmlSplitter(), byte_by_byte(stream))
    assert [decode_xml(f) for f in frames] == [decode_xml(s) for s in GOLDEN]


def test_many_events_in_one_read_come_out_in_order() -> None:
    events = [make_event(uid=f"U{i}") for i in range(3000)]
    stream = b"".join(encode_xml(e) for e in events)
    assert len(stream) > 3 * 64 * 1024  # past the compaction threshold, several times
    # Uneven reads, so that compaction happens with a partial event buffered.
    pieces = [stream[i : i + 7001] for i in range(0, len(stream), 7001)]
    frames = feed_pieces(XmlSplitter(), pieces)
    assert [decode_xml(f).uid for f in frames] == [e.uid for e in events]


def test_xml_splitter_waits_for_the_closing_tag() -> None:
    splitter = XmlSplitter()
    splitter.feed(b"<event uid='x'><detail/></even")
    assert splitter.next_frame() is None
    assert splitter.pending() == len(b"<event uid='x'><detail/></even")
    splitter.feed(b"t>   ")
    assert splitter.next_frame() == b"<event uid='x'><detail/></event>"
    assert splitter.next_frame() is None
    assert splitter.take_rest() == b"   "
    assert splitter.pending() == 0


def test_what_precedes_an_event_stays_at_the_start_of_its_frame() -> None:
    splitter = XmlSplitter()
    splitter.feed(b'<?xml version="1.0"?>\n<auth><cot/></auth><event/></event>\n<event></event>')
    assert frames_of(splitter) == [
        b'<?xml version="1.0"?>\n<auth><cot/></auth><event/></event>',
        b"\n<event></event>",
    ]


def test_garbage_without_closing_tag_beyond_the_limit_loses_framing() -> None:
    splitter = XmlSplitter(max_frame_bytes=1000)
    splitter.feed(b"x" * 1000)
    assert splitter.next_frame() is None  # exactly the limit: still waiting
    splitter.feed(b"x")
    with pytest.raises(FramingError):
        splitter.next_frame()


def test_ten_megabytes_of_garbage_lose_framing_at_the_default_limit() -> None:
    splitter = XmlSplitter()
    chunk = bytes(range(256)) * 4096  # 1 MiB, no "</event>" in it
    fed = 0
    lost: FramingError | None = None
    while fed < 10 * 1024 * 1024:
        splitter.feed(chunk)
        fed += len(chunk)
        try:
            assert splitter.next_frame() is None
        except FramingError as exc:
            lost = exc
            break
    assert lost is not None
    assert MAX_EVENT_BYTES < fed <= MAX_EVENT_BYTES + len(chunk)


def test_oversize_event_that_arrives_whole_is_skipped_and_the_stream_goes_on() -> None:
    splitter = XmlSplitter(max_frame_bytes=100)
    big = b"<event>" + b"x" * 200 + b"</event>"
    small = b"<event></event>"
    splitter.feed(big + small)
    with pytest.raises(MalformedEvent):
        splitter.next_frame()
    assert splitter.next_frame() == small


def test_a_closing_tag_split_across_reads_is_found() -> None:
    for cut in range(1, len(b"</event>")):
        splitter = XmlSplitter()
        data = b"<event>abc</event>"
        head, tail = data[: len(data) - cut], data[len(data) - cut :]
        splitter.feed(head)
        assert splitter.next_frame() is None
        splitter.feed(tail)
        assert splitter.next_frame() == data


# -- protobuf stream ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (0, b"\x00"),
        (1, b"\x01"),
        (127, b"\x7f"),
        (128, b"\x80\x01"),
        (300, b"\xac\x02"),
        (2**64 - 1, b"\xff" * 9 + b"\x01"),
    ],
)
def test_varints_are_protobuf_varints(value: int, encoded: bytes) -> None:
    assert encode_varint(value) == encoded
    assert decode_varint(encoded, 0) == (value, len(encoded))
    assert decode_varint(b"junk" + encoded + b"more", 4) == (value, len(encoded))


def test_a_cut_varint_needs_more_data() -> None:
    assert decode_varint(b"\x80\x80", 0) == (None, 0)
    assert decode_varint(b"", 0) == (None, 0)


def test_a_varint_longer_than_ten_bytes_is_lost_framing() -> None:
    with pytest.raises(FramingError):
        decode_varint(b"\x80" * 10 + b"\x01", 0)


def test_stream_frame_is_magic_varint_length_payload() -> None:
    assert frame_stream(b"abc") == b"\xbf\x03abc"
    assert frame_stream(b"x" * 300) == b"\xbf\xac\x02" + b"x" * 300
    assert MAGIC == 0xBF


@pytest.mark.parametrize("payload", PAYLOADS, ids=GOLDEN_IDS)
def test_proto_frame_split_at_every_byte_boundary_comes_out_whole(payload: bytes) -> None:
    data = frame_stream(payload)
    for head, tail in split_points(data):
        assert feed_pieces(ProtoSplitter(), [head, tail]) == [payload], len(head)


def test_proto_frames_fed_byte_by_byte_come_out_whole_and_in_order() -> None:
    stream = b"".join(frame_stream(p) for p in PAYLOADS)
    splitter = ProtoSplitter()
    assert feed_pieces(splitter, byte_by_byte(stream)) == PAYLOADS
    assert splitter.pending() == 0


def test_an_empty_payload_is_a_frame() -> None:
    splitter = ProtoSplitter()
    splitter.feed(b"\xbf\x00\xbf\x01z")
    assert frames_of(splitter) == [b"", b"z"]


def test_proto_splitter_with_nothing_buffered_needs_data() -> None:
    assert ProtoSplitter().next_frame() is None


@pytest.mark.parametrize("first", [b"<", b"\x00", b"\xbe", b"\n"])
def test_wrong_magic_byte_is_lost_framing(first: bytes) -> None:
    splitter = ProtoSplitter()
    splitter.feed(first + b"\x03abc")
    with pytest.raises(FramingError):
        splitter.next_frame()


def test_wrong_magic_after_a_good_frame_is_lost_framing_after_that_frame() -> None:
    splitter = ProtoSplitter()
    splitter.feed(frame_stream(b"ok") + b"\x00\x02no")
    assert splitter.next_frame() == b"ok"
    with pytest.raises(FramingError):
        splitter.next_frame()


def test_a_length_of_two_to_the_sixtieth_is_lost_framing() -> None:
    splitter = ProtoSplitter()
    splitter.feed(b"\xbf" + encode_varint(2**60) + b"tiny")
    with pytest.raises(FramingError, match="exceeds"):
        splitter.next_frame()


def test_a_length_varint_longer_than_ten_bytes_is_lost_framing() -> None:
    splitter = ProtoSplitter()
    splitter.feed(b"\xbf" + b"\xff" * 11)
    with pytest.raises(FramingError):
        splitter.next_frame()


def test_frame_length_is_limited_by_max_frame_bytes() -> None:
    ok = ProtoSplitter(max_frame_bytes=10)
    ok.feed(frame_stream(b"x" * 10))
    assert ok.next_frame() == b"x" * 10
    too_big = ProtoSplitter(max_frame_bytes=10)
    too_big.feed(b"\xbf\x0b")  # the header alone is enough to refuse
    with pytest.raises(FramingError):
        too_big.next_frame()


def test_proto_splitter_returns_what_is_left_of_a_truncated_frame() -> None:
    splitter = ProtoSplitter()
    splitter.feed(b"\xbf\x05ab")
    assert splitter.next_frame() is None
    assert splitter.pending() == 4
    assert splitter.take_rest() == b"\xbf\x05ab"
    assert splitter.pending() == 0


# -- mesh (UDP) -----------------------------------------------------------------------------------


def test_mesh_datagram_header_is_bf_01_bf() -> None:
    assert MESH_HEADER == b"\xbf\x01\xbf"
    assert frame_mesh(b"payload") == b"\xbf\x01\xbfpayload"


@pytest.mark.parametrize("payload", PAYLOADS[:3])
def test_mesh_datagram_gives_back_its_payload(payload: bytes) -> None:
    fmt, body = split_datagram(frame_mesh(payload))
    assert fmt is WireFormat.PROTOBUF
    assert body == payload
    assert decode_proto(body).uid


@pytest.mark.parametrize("sample", GOLDEN[:3])
def test_xml_datagram_is_passed_through(sample: bytes) -> None:
    assert split_datagram(sample) == (WireFormat.XML, sample)
    assert split_datagram(b"\n  " + sample) == (WireFormat.XML, b"\n  " + sample)


@pytest.mark.parametrize(
    "datagram",
    [b"", b"   ", b"GARBAGE", b"\x00\x01", b"{json}", b"\xbf", b"\xbf\x02\xbfxx", b"\xbf\x01\x00"],
)
def test_datagram_that_is_neither_xml_nor_mesh_v1_is_malformed(datagram: bytes) -> None:
    with pytest.raises(MalformedEvent):
        split_datagram(datagram)
