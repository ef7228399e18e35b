"""CoT events as immutable values, plus the bytes they arrived as.

An event keeps the frame it was decoded from (``raw`` in ``raw_format``) so that routing can
forward it as received instead of serialising it again (DESIGN principle 8).
"""

from __future__ import annotations

import enum
import functools
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

# ATAK/commo write seven nines for "unknown" ce/le/hae; the TAK Server writes six. Both are
# read as unknown; Accord writes seven, like the clients do (reference tak-protocol §1.2).
UNKNOWN_VALUE = 9999999.0
UNKNOWN_THRESHOLD = 999999.0
# The times both wire formats can carry: protobuf times are uint64 ms (nothing before 1970),
# XML times are ISO-8601 (nothing after year 9999). Decoders refuse an event outside this range,
# so that whatever was accepted can be forwarded in either format.
MIN_TIME_MS = 0
MAX_TIME_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z


class WireFormat(enum.Enum):
    """How events are written on a stream: TAK protocol version 0 (XML) or 1 (protobuf)."""

    XML = 0
    PROTOBUF = 1


@dataclass(frozen=True, slots=True)
class Point:
    """WGS-84 position: degrees, metres above the ellipsoid, circular/linear errors in metres."""

    lat: float = 0.0
    lon: float = 0.0
    hae: float = UNKNOWN_VALUE
    ce: float = UNKNOWN_VALUE
    le: float = UNKNOWN_VALUE


@dataclass(frozen=True, slots=True)
class Contact:
    """``<contact callsign endpoint>``: who sent an SA and how to reach them."""

    callsign: str
    endpoint: str = ""


@dataclass(frozen=True, slots=True)
class Dest:
    """One ``<marti><dest>`` target; ``kind`` is callsign, uid, group or mission."""

    kind: str
    value: str


@dataclass(frozen=True, slots=True)
class Chat:
    """What GeoChat routing reads from ``<__chat>``: the room and the listed member uids."""

    chatroom: str
    room_id: str = ""
    members: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TakControl:
    """``<TakControl>`` of a negotiation event (reference tak-protocol §2.7)."""

    supported: tuple[int, ...] = ()
    requested: int | None = None
    accepted: bool | None = None


@dataclass(frozen=True, slots=True)
class Detail:
    """The children of ``<detail>`` as XML text, and the facts that routing reads from them.

    ``xml`` is the serialised children without the ``<detail>`` wrapper; the other fields are
    derived from it once, at decode time, so that routing never parses again.
    """

    xml: str = ""
    contact: Contact | None = None
    dests: tuple[Dest, ...] = ()
    has_marti: bool = False
    chat: Chat | None = None
    takcontrol: TakControl | None = None


EMPTY_DETAIL = Detail()


@dataclass(frozen=True, slots=True)
class CotEvent:
    """One Cursor-on-Target event. Times are integer milliseconds since the Unix epoch."""

    uid: str
    type: str
    how: str
    time: int
    start: int
    stale: int
    point: Point = Point()
    detail: Detail = EMPTY_DETAIL
    access: str = ""
    qos: str = ""
    opex: str = ""
    caveat: str = ""
    releasable_to: str = ""
    # The frame this event was decoded from, for forwarding as received. Empty for an event
    # built or changed by Accord: such an event is always encoded afresh.
    raw: bytes = field(default=b"", compare=False, repr=False)
    raw_format: WireFormat | None = field(default=None, compare=False, repr=False)


# The form ATAK and this server write (``2016-01-13T20:43:37.842Z``): read without datetime.
_ISO_Z = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,6}))?Z", re.ASCII)


@functools.lru_cache(maxsize=4096)  # an SA's time and start are mostly the same text
def ms_from_iso(text: str) -> int:
    """Parse a CoT timestamp (ISO-8601; ``Z`` or an offset; naive means UTC) into epoch ms."""
    match = _ISO_Z.fullmatch(text)
    if match is not None:
        # Exactly what the general path computes (datetime.timestamp() divides the integer
        # microseconds by 10**6), with the seconds of the day cached.
        seconds, fraction = match.groups()
        micros = _epoch_s(seconds) * 1_000_000 + (int(fraction.ljust(6, "0")) if fraction else 0)
        stamp = micros / 1_000_000
        return int(stamp * 1000 + (0.5 if stamp >= 0 else -0.5))
    value = datetime.fromisoformat(text.strip())
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1000 + (0.5 if value.timestamp() >= 0 else -0.5))


@functools.lru_cache(maxsize=4096)
def _epoch_s(text: str) -> int:
    """``YYYY-MM-DDTHH:MM:SS`` (UTC) as epoch seconds; ValueError when it is no such time."""
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())


def iso_from_ms(ms: int) -> str:
    """Format epoch ms the way ATAK writes times: ``2016-01-13T20:43:37.842Z``."""
    return _iso_second(ms // 1000) + f"{ms % 1000:03d}Z"


@functools.lru_cache(maxsize=4096)
def _iso_second(seconds: int) -> str:
    # Every event carries three times, mostly of the same few seconds: strftime dominated
    # encoding before this cache.
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.")
