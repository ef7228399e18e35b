"""Golden samples and small helpers shared by the wire-protocol tests (and the e2e tests).

The samples are real client captures read at test time from ``../shared/data/captures``; they
are never copied into the repository. ``atakcotcaptures.txt`` is prose with XML pasted in, so
the events are cut out of it: each runs from ``<event`` (with the ``<?xml …?>`` declaration
just before it, if there is one) to ``</event>``. One capture was broken by its source (a
truncated URL attribute, then ``<`` newline ``/event>``): it is returned by
:func:`broken_captures`, never by :func:`capture_events`.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from accord.cot.connection import NEED_DATA, Closed, StreamConnection
from accord.cot.errors import MalformedEvent
from accord.cot.model import CotEvent, Point
from accord.cot.negotiation import Role
from accord.cot.xml import detail_from_xml

CAPTURES_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "captures"
ATAK_CAPTURES = CAPTURES_DIR / "atakcotcaptures.txt"
UAS_TOOL_DIR = CAPTURES_DIR / "uas-tool"

# An event start, with the declaration that immediately precedes it (whitespace allowed).
_START = re.compile(rb"(?:<\?xml[^>]*\?>\s*)?<event\b")
_END = b"</event>"


def _cut(text: bytes) -> tuple[list[bytes], list[bytes]]:
    starts = [m.start() for m in _START.finditer(text)] + [len(text)]
    good: list[bytes] = []
    broken: list[bytes] = []
    for begin, limit in itertools.pairwise(starts):
        segment = text[begin:limit]
        end = segment.find(_END)
        if end >= 0:
            good.append(segment[: end + len(_END)])
        else:
            # No </event> before the next event starts: keep it up to its last tag end.
            broken.append(segment[: segment.rfind(b">") + 1])
    return good, broken


def capture_events() -> list[bytes]:
    """The well-formed events of ``atakcotcaptures.txt``, in file order, exactly as pasted."""
    return _cut(ATAK_CAPTURES.read_bytes())[0]


def broken_captures() -> list[bytes]:
    """The captures of ``atakcotcaptures.txt`` that were broken by their source."""
    return _cut(ATAK_CAPTURES.read_bytes())[1]


def uas_tool_events() -> list[bytes]:
    """The UAS Tool captures, one event per file."""
    return [path.read_bytes().strip() for path in sorted(UAS_TOOL_DIR.glob("uas-tool-*.xml"))]


def golden_events() -> list[bytes]:
    """Every well-formed golden sample: the ATAK captures, then the UAS Tool ones."""
    return capture_events() + uas_tool_events()


def golden_ids() -> list[str]:
    """Test ids for :func:`golden_events`, in the same order."""
    n_atak = len(capture_events())
    return [f"atak{i}" for i in range(n_atak)] + [
        path.stem for path in sorted(UAS_TOOL_DIR.glob("uas-tool-*.xml"))
    ]


SOMEWHERE = Point(1.5, 2.5, 10.0, 5.0, 9999999.0)


def make_event(
    uid: str = "ANDROID-test",
    type_: str = "a-f-G-U-C",
    *,
    detail: str = "",
    now_ms: int = 1_700_000_000_000,
    stale_s: int = 375,
    point: Point = SOMEWHERE,
    how: str = "m-g",
) -> CotEvent:
    """A CoT event built in memory (no ``raw``): the sender of the tests."""
    return CotEvent(
        uid=uid,
        type=type_,
        how=how,
        time=now_ms,
        start=now_ms,
        stale=now_ms + stale_s * 1000,
        point=point,
        detail=detail_from_xml(detail),
    )


def sa_event(
    uid: str,
    callsign: str,
    *,
    endpoint: str = "*:-1:stcp",
    now_ms: int = 1_700_000_000_000,
    stale_s: int = 375,
) -> CotEvent:
    """An ATAK-like self report naming ``callsign`` and ``endpoint`` in ``<contact>``.

    The attributes are in the order ATAK writes them, which is also the order the protobuf
    decoder rebuilds them in, so the event is equal to itself after a protobuf trip.
    """
    detail = f'<contact endpoint="{endpoint}" callsign="{callsign}"/>'
    return make_event(uid, detail=detail, now_ms=now_ms, stale_s=stale_s)


def drain(conn: StreamConnection, now: float = 0.0) -> tuple[list[CotEvent], Closed | None]:
    """Every event ``conn`` can hand out now; a malformed one fails the test."""
    events: list[CotEvent] = []
    while True:
        item = conn.next_event(now)
        if item is NEED_DATA:
            return events, None
        if isinstance(item, Closed):
            return events, item
        assert isinstance(item, CotEvent)
        events.append(item)


@dataclass
class Drained:
    """What :func:`drain_all` saw: events, malformed-event errors, and the close if any."""

    events: list[CotEvent] = field(default_factory=list)
    malformed: list[MalformedEvent] = field(default_factory=list)
    closed: Closed | None = None


def drain_all(conn: StreamConnection, now: float = 0.0, *, limit: int = 10_000) -> Drained:
    """Like :func:`drain` but counting malformed events instead of failing on them."""
    out = Drained()
    for _ in range(limit):
        try:
            item = conn.next_event(now)
        except MalformedEvent as exc:
            out.malformed.append(exc)
            continue
        if item is NEED_DATA:
            return out
        if isinstance(item, Closed):
            out.closed = item
            return out
        assert isinstance(item, CotEvent)
        out.events.append(item)
    raise AssertionError(f"next_event() did not settle within {limit} calls")


class ConnectionPair:
    """A server and a client :class:`StreamConnection` back to back (h11's ``ConnectionPair``).

    Nothing moves by itself: ``server_to_client`` / ``client_to_server`` carry bytes written
    on one side to the other and return what the receiver could decode.
    """

    def __init__(self) -> None:
        self.server = StreamConnection(Role.SERVER)
        self.client = StreamConnection(Role.CLIENT)
        self.now = 1_700_000_000.0
        # Every byte that crossed, per direction, for byte-level assertions.
        self.to_client: list[bytes] = []
        self.to_server: list[bytes] = []

    def _carry(
        self, sender: StreamConnection, receiver: StreamConnection, log: list[bytes], data: bytes
    ) -> list[CotEvent]:
        data = sender.data_to_send() + data
        log.append(data)
        if data:
            receiver.receive_data(data, self.now)
        events, closed = drain(receiver, self.now)
        assert closed is None, closed
        return events

    def server_to_client(self, data: bytes = b"") -> list[CotEvent]:
        """Write the server's pending protocol bytes, then ``data``; the client reads them."""
        return self._carry(self.server, self.client, self.to_client, data)

    def client_to_server(self, data: bytes = b"") -> list[CotEvent]:
        """Write the client's pending protocol bytes, then ``data``; the server reads them."""
        return self._carry(self.client, self.server, self.to_server, data)

    def negotiate(self, uid: str = "offer-1") -> None:
        """Run the whole ``t-x-takp-v/q/r`` exchange to the switch."""
        self.server.offer_protocol(uid, self.now)
        assert self.server_to_client() == []
        assert self.client_to_server() == []
        assert self.server_to_client() == []


def split_points(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    """Every way to cut ``data`` in two (both pieces may be empty at the ends)."""
    for i in range(len(data) + 1):
        yield data[:i], data[i:]
