"""Every malformed event carries a fixed reason label (metrics count by it)."""

from __future__ import annotations

import pytest

from accord.cot.errors import Malformation, MalformedEvent
from accord.cot.framing import XmlSplitter, split_datagram
from accord.cot.proto import decode_proto
from accord.cot.xml import decode_xml

GOOD = (
    b'<event version="2.0" uid="U" type="a-f-G" time="2026-01-01T00:00:00Z" '
    b'start="2026-01-01T00:00:00Z" stale="2026-01-01T00:05:00Z" how="m-g">'
    b'<point lat="1" lon="2" hae="0" ce="1" le="1"/><detail>DETAIL</detail></event>'
)


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"<event><unclosed></event>", Malformation.NOT_WELL_FORMED),
        (b'<!DOCTYPE x [<!ENTITY a "b">]>' + GOOD, Malformation.FORBIDDEN_XML),
        (b"garbage" + GOOD, Malformation.NOT_WELL_FORMED),
        (GOOD.replace(b"DETAIL", b"<a>" * 40 + b"</a>" * 40), Malformation.TOO_DEEP),
        (GOOD.replace(b' lat="1"', b""), Malformation.INVALID_EVENT),
        (GOOD.replace(b' uid="U"', b""), Malformation.INVALID_EVENT),
    ],
)
def test_xml_refusals_say_why(frame: bytes, reason: Malformation) -> None:
    with pytest.raises(MalformedEvent) as caught:
        decode_xml(frame.replace(b"DETAIL", b""))
    assert caught.value.reason is reason


def test_oversized_event_protobuf_garbage_and_unknown_datagram_say_why() -> None:
    splitter = XmlSplitter(max_frame_bytes=64)
    splitter.feed(GOOD)
    with pytest.raises(MalformedEvent) as caught:
        splitter.next_frame()
    assert caught.value.reason is Malformation.TOO_LARGE
    with pytest.raises(MalformedEvent) as caught:
        decode_proto(b"\xff\xff\xff")
    assert caught.value.reason is Malformation.NOT_PROTOBUF
    with pytest.raises(MalformedEvent) as caught:
        split_datagram(b"hello")
    assert caught.value.reason is Malformation.UNKNOWN_FORMAT
