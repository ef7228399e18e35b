"""One CoT stream's protocol state, with no I/O (h11's shape).

``receive_data(bytes, now)`` feeds what the socket read; ``next_event()`` hands out events one at
a time; ``data_to_send()`` returns the bytes the protocol itself must write (negotiation
replies); ``send(event)`` / :func:`frame` encode outgoing events in the current wire format.
Negotiation events are consumed here and never reach the caller.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from accord.cot.errors import FramingError, MalformedEvent
from accord.cot.framing import ProtoSplitter, XmlSplitter, frame_stream
from accord.cot.model import CotEvent, WireFormat
from accord.cot.negotiation import NEGOTIATION_TYPES, Negotiation, Role, State
from accord.cot.proto import decode_proto, encode_proto
from accord.cot.xml import (
    MAX_DEPTH,
    MAX_EVENT_BYTES,
    AuthRequest,
    decode_auth,
    decode_xml,
    encode_xml,
    split_prefix,
)


class NeedData(enum.Enum):
    """``next_event()`` has nothing whole yet: read more."""

    NEED_DATA = "need-data"


NEED_DATA = NeedData.NEED_DATA


@dataclass(frozen=True, slots=True)
class Closed:
    """The stream is over: the peer closed it, or its framing was lost (``reason`` says)."""

    reason: str
    clean: bool = False


@dataclass(frozen=True, slots=True)
class Limits:
    max_event_bytes: int = MAX_EVENT_BYTES
    max_depth: int = MAX_DEPTH


class StreamConnection:
    """Protocol state of one CoT stream, for a server or a client."""

    def __init__(
        self,
        role: Role = Role.SERVER,
        *,
        wire_format: WireFormat = WireFormat.XML,
        limits: Limits = Limits(),
    ) -> None:
        self.role = role
        self.limits = limits
        self.negotiation = Negotiation(role)
        self.auth: AuthRequest | None = None
        self._splitter: XmlSplitter | ProtoSplitter = self._make_splitter(wire_format)
        self._out = bytearray()
        self._eof = False
        self._closed: Closed | None = None
        self._first_frame = True
        self._now = 0.0  # the clock of the last receive_data(), for negotiation replies
        if wire_format is WireFormat.PROTOBUF:
            # A protobuf-only input (TAK Server's "prototls") starts switched: no negotiation.
            self.negotiation.state = State.PROTOBUF

    def _make_splitter(self, fmt: WireFormat) -> XmlSplitter | ProtoSplitter:
        if fmt is WireFormat.XML:
            return XmlSplitter(self.limits.max_event_bytes)
        return ProtoSplitter(self.limits.max_event_bytes)

    @property
    def wire_format(self) -> WireFormat:
        """The format outgoing events are written in (and incoming ones are read in)."""
        return self._splitter.wire_format

    # -- input ---------------------------------------------------------------------------------
    def receive_data(self, data: bytes, now: float) -> None:
        """Feed bytes read from the stream; ``b""`` means the peer closed its side."""
        # Fix: `now` used to be discarded, so a caller of next_event() without a clock (as
        # h11-style callers do) got negotiation replies dated 1970; remember it instead.
        self._now = now
        if self._closed is not None:
            return
        if data:
            self._splitter.feed(data)
        else:
            self._eof = True

    def next_event(self, now: float | None = None) -> CotEvent | NeedData | Closed:
        """The next event, ``NEED_DATA`` or ``Closed``; raises :class:`MalformedEvent`.

        After a ``MalformedEvent`` the stream is intact: call again for the next event.
        ``now`` dates negotiation replies; by default, the clock given to ``receive_data``.
        """
        if now is None:
            now = self._now
        while True:
            if self._closed is not None:
                return self._closed
            try:
                frame = self._splitter.next_frame()
            except FramingError as exc:
                self._closed = Closed(str(exc))
                return self._closed
            if frame is None:
                if not self._eof:
                    return NEED_DATA
                rest = self._splitter.take_rest().strip()
                self._closed = (
                    Closed(f"peer closed in the middle of an event ({len(rest)} bytes)")
                    if rest
                    else Closed("peer closed", clean=True)
                )
                return self._closed
            event = self._decode(frame)
            if event.type in NEGOTIATION_TYPES:
                self._negotiate(event, now)
                continue
            return event

    def _decode(self, frame: bytes) -> CotEvent:
        depth = self.limits.max_depth
        first, self._first_frame = self._first_frame, False
        if self._splitter.wire_format is WireFormat.PROTOBUF:
            return decode_proto(frame, max_depth=depth)
        if first and b"<auth" in frame:
            # ATAK sends <auth> only as the very first document of a stream (§8.2).
            prefix, _ = split_prefix(frame)
            self.auth = decode_auth(prefix)
            if self.auth is not None:
                frame = frame[frame.index(b"</auth>") + len(b"</auth>") :]
        return decode_xml(frame, max_depth=depth)

    def _negotiate(self, event: CotEvent, now: float) -> None:
        step = self.negotiation.receive(event, int(now * 1000))
        if step.reply is not None:
            # Negotiation replies are always XML: they precede any switch.
            self._out += encode_xml(step.reply)
        if step.switch:
            # Both directions switch at the byte after the request/response: whatever is
            # already buffered beyond it belongs to the new format.
            rest = self._splitter.take_rest()
            self._splitter = self._make_splitter(WireFormat.PROTOBUF)
            if rest:
                self._splitter.feed(rest)

    # -- output --------------------------------------------------------------------------------
    def offer_protocol(self, uid: str, now: float) -> None:
        """Server: queue the one ``t-x-takp-v`` offer of this connection."""
        self._out += encode_xml(self.negotiation.make_offer(uid, int(now * 1000)))

    def data_to_send(self) -> bytes:
        """Bytes the protocol itself needs written; write them before anything else."""
        if not self._out:
            return b""
        out = bytes(self._out)
        self._out.clear()
        return out

    def send(self, event: CotEvent) -> bytes:
        """Encode one event in the current wire format (convenience for clients and tests)."""
        return frame(event, self.wire_format)


def frame(event: CotEvent, wire_format: WireFormat) -> bytes:
    """One event as a stream frame, reusing the received bytes when the format matches."""
    if wire_format is WireFormat.XML:
        if event.raw_format is WireFormat.XML and event.raw:
            return event.raw
        return encode_xml(event)
    if event.raw_format is WireFormat.PROTOBUF and event.raw:
        return frame_stream(event.raw)
    return frame_stream(encode_proto(event))


__all__ = [
    "NEED_DATA",
    "Closed",
    "Limits",
    "MalformedEvent",
    "NeedData",
    "Role",
    "StreamConnection",
]
