"""An event on its way out, encoded at most once per wire format however many get it."""

from __future__ import annotations

from accord.cot.connection import frame
from accord.cot.model import CotEvent, WireFormat


class Outgoing:
    """One event to deliver, with its frames cached per wire format (DESIGN principle 8)."""

    __slots__ = ("_proto", "_xml", "event")

    def __init__(self, event: CotEvent) -> None:
        self.event = event
        self._xml: bytes | None = None
        self._proto: bytes | None = None

    def frame(self, wire_format: WireFormat) -> bytes:
        """The stream frame in ``wire_format``, encoded on first use and then reused."""
        if wire_format is WireFormat.XML:
            if self._xml is None:
                self._xml = frame(self.event, WireFormat.XML)
            return self._xml
        if self._proto is None:
            self._proto = frame(self.event, WireFormat.PROTOBUF)
        return self._proto

    @property
    def is_position(self) -> bool:
        """A position report (an atom, ``a-…``): a newer one of the same uid supersedes it."""
        return self.event.type.startswith("a-")
