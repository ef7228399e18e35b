"""Real fakes for hub tests: a sink that records what a socket would get, a clock to turn."""

from __future__ import annotations

from accord.cot.model import WireFormat
from accord.cot.outgoing import Outgoing


class RecordingSink:
    """Takes everything. ``flushed`` holds the items a socket would have been given and
    ``writes`` the bytes of each write; bytes the hub shares must be the items' own frames."""

    def __init__(self, wire_format: WireFormat = WireFormat.XML) -> None:
        self.wire_format = wire_format
        self.flushed: list[Outgoing] = []
        self.writes: list[bytes] = []
        self.closed = ""

    def send(self, items: list[Outgoing], data: bytes | None = None) -> int:
        frames = b"".join(i.frame(self.wire_format) for i in items)
        if data is not None:
            assert data == frames
        self.flushed += items
        self.writes.append(data if data is not None else frames)
        return len(items)

    def close(self, reason: str, *, abort: bool = False) -> None:
        self.closed = reason


class Clock:
    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms
