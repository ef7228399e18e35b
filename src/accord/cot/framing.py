"""Incremental splitters: cut a byte stream into frames, whatever the read boundaries were.

Each splitter owns a buffer and a read position; ``feed`` appends, ``next_frame`` returns the
next whole frame or ``None`` when more bytes are needed. Lost framing raises
:class:`FramingError`; the caller closes that stream.
"""

from __future__ import annotations

from accord.cot.errors import FramingError, Malformation, MalformedEvent
from accord.cot.model import WireFormat
from accord.cot.xml import MAX_EVENT_BYTES

_END = b"</event>"
MAGIC = 0xBF
# TAK protocol v1 mesh header: magic, varint(version=1), magic (reference tak-protocol §2.4).
MESH_HEADER = b"\xbf\x01\xbf"
MAX_VARINT_BYTES = 10
# Compact the buffer only when the consumed prefix is large: avoids O(n^2) memmoves when one
# read carries many small events.
_COMPACT_AT = 64 * 1024


class _Buffer:
    """A bytearray with a consumed-prefix offset."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.pos = 0

    def feed(self, data: bytes) -> None:
        if self.pos and (self.pos >= _COMPACT_AT or self.pos == len(self.data)):
            del self.data[: self.pos]
            self.pos = 0
        self.data += data

    def pending(self) -> int:
        return len(self.data) - self.pos

    def take_rest(self) -> bytes:
        rest = bytes(self.data[self.pos :])
        self.data.clear()
        self.pos = 0
        return rest


class XmlSplitter:
    """Splits a TAK protocol version 0 stream after each literal ``</event>``.

    What precedes an event (whitespace, an XML declaration, an ``<auth>`` document) stays at the
    start of the frame; :func:`accord.cot.xml.decode_xml` deals with it.
    """

    wire_format = WireFormat.XML

    def __init__(self, max_frame_bytes: int = MAX_EVENT_BYTES) -> None:
        self._buf = _Buffer()
        self._scan = 0  # where the search for </event> resumes, relative to pos
        self._max = max_frame_bytes

    def feed(self, data: bytes) -> None:
        self._buf.feed(data)  # _scan is relative to the read position: compaction keeps it

    def next_frame(self) -> bytes | None:
        buf = self._buf
        start = buf.pos
        idx = buf.data.find(_END, start + self._scan)
        if idx < 0:
            pending = buf.pending()
            if pending > self._max:
                raise FramingError(f"no </event> within {self._max} bytes")
            # Resume just before the end: the marker may be split across reads.
            self._scan = max(0, pending - (len(_END) - 1))
            return None
        end = idx + len(_END)
        self._scan = 0
        buf.pos = end
        if end - start > self._max:
            raise MalformedEvent(
                f"event of {end - start} bytes exceeds {self._max}", Malformation.TOO_LARGE
            )
        return bytes(buf.data[start:end])

    def pending(self) -> int:
        return self._buf.pending()

    def take_rest(self) -> bytes:
        self._scan = 0
        return self._buf.take_rest()


class ProtoSplitter:
    """Splits a TAK protocol version 1 stream: ``0xBF`` varint(length) payload, back to back."""

    wire_format = WireFormat.PROTOBUF

    def __init__(self, max_frame_bytes: int = MAX_EVENT_BYTES) -> None:
        self._buf = _Buffer()
        self._max = max_frame_bytes

    def feed(self, data: bytes) -> None:
        self._buf.feed(data)

    def next_frame(self) -> bytes | None:
        buf = self._buf
        data, pos = buf.data, buf.pos
        if pos >= len(data):
            return None
        if data[pos] != MAGIC:
            raise FramingError(f"expected 0xBF frame start, got 0x{data[pos]:02X}")
        length, header = decode_varint(data, pos + 1)
        if length is None:
            return None
        if length > self._max:
            raise FramingError(f"frame length {length} exceeds {self._max}")
        start = pos + 1 + header
        end = start + length
        if end > len(data):
            return None
        buf.pos = end
        return bytes(data[start:end])

    def pending(self) -> int:
        return self._buf.pending()

    def take_rest(self) -> bytes:
        return self._buf.take_rest()


def decode_varint(data: bytes | bytearray, pos: int) -> tuple[int | None, int]:
    """Read an unsigned protobuf varint at ``pos``: (value, bytes used), or (None, 0) if cut."""
    value = 0
    for i in range(MAX_VARINT_BYTES):
        if pos + i >= len(data):
            return None, 0
        byte = data[pos + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return value, i + 1
    raise FramingError("varint longer than 10 bytes")


def encode_varint(value: int) -> bytes:
    """Write an unsigned protobuf varint."""
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def frame_stream(payload: bytes) -> bytes:
    """Frame a serialised ``TakMessage`` for a version 1 stream."""
    return b"\xbf" + encode_varint(len(payload)) + payload


def frame_mesh(payload: bytes) -> bytes:
    """Frame a serialised ``TakMessage`` as one version 1 mesh (UDP) datagram."""
    return MESH_HEADER + payload


def split_datagram(datagram: bytes) -> tuple[WireFormat, bytes]:
    """Tell an XML datagram from a mesh protobuf one and return its payload."""
    if datagram[:1] == b"\xbf":
        if datagram[:3] != MESH_HEADER:
            raise MalformedEvent(
                "unsupported mesh header (only TAK protocol version 1)",
                Malformation.UNKNOWN_FORMAT,
            )
        return WireFormat.PROTOBUF, datagram[3:]
    if datagram.lstrip()[:1] == b"<":
        return WireFormat.XML, datagram
    raise MalformedEvent(
        "datagram is neither XML nor TAK protocol mesh", Malformation.UNKNOWN_FORMAT
    )
