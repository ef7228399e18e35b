"""What the store keeps and how it is asked for it: plain frozen records, no I/O."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from accord.cot.model import CotEvent, WireFormat
from accord.cot.proto import decode_proto
from accord.cot.xml import decode_xml, encode_xml

MAX_PAGE = 1000  # rows per history page, at most
DEFAULT_PAGE = 100


class Payload(enum.IntEnum):
    """The wire format a stored payload is kept in (as received: never re-encoded)."""

    XML = 0
    PROTO = 1


class StoredEvent(NamedTuple):
    """One routed event as history keeps it: the fields queries filter on, the groups that
    could receive it, and the event's own bytes. A named tuple, not a dataclass: one is made
    per routed event on the event loop, and a tuple is several times cheaper to build."""

    uid: str
    type: str
    how: str
    time_ms: int
    start_ms: int
    stale_ms: int
    lat: float
    lon: float
    hae: float
    callsign: str
    groups: tuple[str, ...]  # the sender's IN groups: who may see this event
    payload: bytes
    payload_format: Payload = Payload.XML
    id: int = 0  # assigned by the store; orders events of equal time

    @classmethod
    def of(cls, event: CotEvent, groups: tuple[str, ...], xml: bytes | None = None) -> StoredEvent:
        """Keep ``event`` as it arrived (``groups`` sorted); an event made by the server
        is encoded as XML (``xml``: that encoding, when already made)."""
        if event.raw and event.raw_format is WireFormat.PROTOBUF:
            payload, fmt = event.raw, Payload.PROTO
        elif event.raw and event.raw_format is WireFormat.XML:
            payload, fmt = event.raw, Payload.XML
        else:
            payload, fmt = (xml if xml is not None else encode_xml(event)), Payload.XML
        contact = event.detail.contact
        point = event.point
        return cls(
            event.uid,
            event.type,
            event.how,
            event.time,
            event.start,
            event.stale,
            point.lat,
            point.lon,
            point.hae,
            contact.callsign if contact is not None else "",
            groups,
            payload,
            fmt,
        )


def event_row(e: StoredEvent, groups: Any) -> tuple[Any, ...]:
    """The columns of a stored event, in table order (``uid`` … ``payload``); each backend
    encodes ``groups`` its own way."""
    return (*e[:10], groups, int(e.payload_format), e.payload)


def event_from_row(row: Sequence[Any], groups: tuple[str, ...]) -> StoredEvent:
    """A stored row ``(id, uid, …, callsign, groups, payload_format, payload)`` back to its
    record; ``groups`` as the backend decoded them."""
    return StoredEvent._make((*row[1:11], groups, bytes(row[13]), Payload(row[12]), row[0]))


def package_row(p: Package, keywords: Any, groups: Any) -> tuple[Any, ...]:
    """The columns of a stored package, in table order; lists encoded by the backend."""
    return (
        p.hash, p.name, p.size, p.mimetype, keywords, p.tool, groups, p.creator_uid,
        p.submitter, p.submitted_ms, p.lat, p.lon, p.expiration_ms,
    )  # fmt: skip


def package_from_row(
    row: Sequence[Any], keywords: tuple[str, ...], groups: tuple[str, ...]
) -> Package:
    hash_, name, size, mimetype, _, tool, _, creator, submitter, submitted, lat, lon, exp = row
    return Package(
        hash_, name, size, mimetype, keywords, tool, groups, creator, submitter, submitted,
        lat, lon, exp,
    )  # fmt: skip


def to_event(stored: StoredEvent) -> CotEvent:
    """The event a stored payload holds; raises ``MalformedEvent`` if it no longer decodes."""
    if stored.payload_format is Payload.PROTO:
        return decode_proto(stored.payload)
    return decode_xml(stored.payload)


@dataclass(frozen=True, slots=True)
class BBox:
    """A latitude/longitude box; ``west > east`` crosses the antimeridian."""

    south: float
    west: float
    north: float
    east: float

    def __post_init__(self) -> None:
        if not (-90 <= self.south <= self.north <= 90):
            raise ValueError("bbox latitudes must satisfy -90 <= south <= north <= 90")
        if not (-180 <= self.west <= 180 and -180 <= self.east <= 180):
            raise ValueError("bbox longitudes must be within -180..180")

    def lon_ranges(self) -> list[tuple[float, float]]:
        if self.west <= self.east:
            return [(self.west, self.east)]
        return [(self.west, 180.0), (-180.0, self.east)]


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where the next page starts: after the event (time_ms, id)."""

    time_ms: int
    id: int

    def encode(self) -> str:
        return f"{self.time_ms}.{self.id}"

    @classmethod
    def decode(cls, text: str) -> Cursor:
        time_text, _, id_text = text.partition(".")
        try:
            return cls(int(time_text), int(id_text))
        except ValueError:
            raise ValueError(f"cursor {text!r} is not one this server gave out") from None


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    """Filters are ANDed; ``visible_to`` None means every group (an operator's query)."""

    uid: str | None = None
    type_prefix: str | None = None
    since_ms: int | None = None  # event time >= since
    until_ms: int | None = None  # event time < until
    bbox: BBox | None = None
    visible_to: frozenset[str] | None = None
    after: Cursor | None = None
    limit: int = DEFAULT_PAGE

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_PAGE:
            raise ValueError(f"limit must be between 1 and {MAX_PAGE}")


@dataclass(frozen=True, slots=True)
class HistoryPage:
    events: list[StoredEvent]
    next: Cursor | None  # None when this is the last page


@dataclass(frozen=True, slots=True)
class HistoryStats:
    events: int
    oldest_ms: int | None
    newest_ms: int | None


@dataclass(frozen=True, slots=True)
class Package:
    """A data package's metadata; its bytes are the blob named by ``hash`` (sha256 hex)."""

    hash: str
    name: str
    size: int
    mimetype: str = "application/x-zip-compressed"
    keywords: tuple[str, ...] = ("missionpackage",)
    tool: str = "public"
    groups: tuple[str, ...] = ()
    creator_uid: str = ""
    submitter: str = ""
    submitted_ms: int = 0
    lat: float | None = None
    lon: float | None = None
    expiration_ms: int | None = None


@dataclass(frozen=True, slots=True)
class PackageQuery:
    visible_to: frozenset[str] | None = None
    name: str | None = None  # exact file name
    keyword: str | None = None
    tool: str | None = None
    mimetype: str | None = None
    creator_uid: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None


@dataclass(frozen=True, slots=True)
class VideoFeed:
    """One entry of ``/Marti/vcm``: a stream a client can open (reference §4.12)."""

    uid: str
    alias: str
    url: str  # protocol://address:port/path
    groups: tuple[str, ...] = ()
    fields: dict[str, str] = field(default_factory=dict)  # the other feed elements, verbatim
    active: bool = True


def group_key(groups: Iterable[str]) -> str:
    """Groups as one text column: ``\\x1fA\\x1fB\\x1f`` (unit separators never occur in names)."""
    return "\x1f" + "\x1f".join(sorted(groups)) + "\x1f"


def groups_of(key: str) -> tuple[str, ...]:
    return tuple(g for g in key.split("\x1f") if g)


# -- sharing ledger (accord.ledger): rows as stored, checked by accord.ledger.verify -----------
LEDGER_PAGE = 10_000  # entries per read, at most


class LedgerEntry(NamedTuple):
    """One entry of the log of ``partner`` in ``direction`` ("out" or "in")."""

    partner: str
    direction: str
    seq: int  # the entry's index in its log
    data: bytes  # the canonical entry bytes (the Merkle leaf data)
    leaf: bytes  # its leaf hash, as computed when appended


OUTBOX_PAGE = 1_000  # outbox rows per read, at most


class OutboxRow(NamedTuple):
    """One frame a federation link released, waiting for the partner's acknowledgement."""

    partner: str  # the link's key: partner name and direction ("org-b:outgoing")
    seq: int  # the link's sequence number, from 1, increasing
    frame: bytes  # the encoded FederatedEvent, exactly as it is (re)sent
    created_ms: int


class LedgerCheckpoint(NamedTuple):
    partner: str
    direction: str
    size: int
    note: bytes  # the signed note


class LedgerCosignature(NamedTuple):
    partner: str
    direction: str
    size: int  # of the checkpoint cosigned
    line: str  # the partner's cosignature line


class LedgerReceipt(NamedTuple):
    partner: str
    direction: str
    seq: int  # the entry the receipt is for
    note: bytes  # the partner's signed receipt


class MissionRow(NamedTuple):
    """One mission's state, as a document (:mod:`accord.missions.codec` reads it)."""

    guid: str
    name: str
    doc: str


class MissionChangeRow(NamedTuple):
    """One entry of a mission's append-only change log."""

    guid: str
    seq: int  # from 1, one more per change of this mission
    time_ms: int
    doc: str


class MissionContentRow(NamedTuple):
    """One item (key ``uid:<uid>``) or file (``hash:<sha256>``) of a mission."""

    guid: str
    key: str
    doc: str
