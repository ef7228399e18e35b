"""The bus's pure parts: subject names, a node's interest, and the routing headers.

Subjects are by organisation and group, so a node only receives what its sessions can hear:

- ``accord.<org>.ev.<group>``: every routed event that is not an SA, once per group the
  sender sends into;
- ``accord.<org>.sa.<group>.<uid>``: SAs, captured by a last-per-subject JetStream stream, so
  a node that gains interest in a group reads the latest SA of each uid of it.

An event crosses in the form it was received (its frame as payload), with the routing fields
as headers; it is never re-encoded. A sender in several groups publishes once per group;
receivers drop the copies by the event's id.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from accord.cot.model import WireFormat

PREFIX = "accord"
# Ids of events already delivered, per node, to drop the copies of a multi-group sender.
SEEN_IDS = 10_000

H_NODE = "Accord-Node"
H_ID = "Accord-Id"
H_FORMAT = "Accord-Format"
H_GROUPS = "Accord-Groups"
H_WAS = "Accord-Was"
H_SOURCE = "Accord-Source"  # what the coordination must know of the sender (see Route)

_SAFE = re.compile(r"[A-Za-z0-9_-]")
_TOKEN = re.compile(r"(?:[A-Za-z0-9_-]|~[0-9A-F]{2})+")
_KV_TOKEN = re.compile(r"(?:[A-Za-z0-9_-]|=[0-9A-F]{2})+")
_FORMATS = {"xml": WireFormat.XML, "proto": WireFormat.PROTOBUF}
_FORMAT_NAMES = {v: k for k, v in _FORMATS.items()}


class BusHeaderError(ValueError):
    """A bus message whose routing headers are missing or not of the documented shape."""


def token(name: str) -> str:
    """One NATS subject token for a group name, org or uid: letters, digits, ``_`` and ``-``
    as they are, every other byte of its UTF-8 as ``~XX`` (so ``.``, ``*``, ``>``, spaces and
    ``~`` itself never reach the subject)."""
    return _escape(name, "~")


def untoken(text: str) -> str:
    """The name a :func:`token` stands for."""
    return _unescape(text, "~", _TOKEN)


def kv_token(name: str) -> str:
    """As :func:`token`, for a JetStream KV key (which allows no ``~``): ``=XX`` escapes."""
    return _escape(name, "=")


def kv_untoken(text: str) -> str:
    """The name a :func:`kv_token` stands for."""
    return _unescape(text, "=", _KV_TOKEN)


def _escape(name: str, mark: str) -> str:
    if not name:
        raise ValueError("an empty name has no subject token")
    return "".join(
        ch if _SAFE.fullmatch(ch) else "".join(f"{mark}{b:02X}" for b in ch.encode()) for ch in name
    )


def _unescape(text: str, mark: str, shape: re.Pattern[str]) -> str:
    if not shape.fullmatch(text):
        raise BusHeaderError(f"not a subject token: {text!r}")
    out = bytearray()
    i = 0
    while i < len(text):
        if text[i] == mark:
            out.append(int(text[i + 1 : i + 3], 16))
            i += 3
        else:
            out += text[i].encode()
            i += 1
    try:
        return out.decode()
    except UnicodeDecodeError:
        raise BusHeaderError(f"not UTF-8 once decoded: {text!r}") from None


def event_subject(org: str, group: str) -> str:
    return f"{PREFIX}.{token(org)}.ev.{token(group)}"


def sa_subject(org: str, group: str, uid: str) -> str:
    return f"{PREFIX}.{token(org)}.sa.{token(group)}.{token(uid)}"


def sa_filter(org: str, group: str) -> str:
    """Every uid's SA subject of one group (a wildcard subscription or consumer filter)."""
    return f"{PREFIX}.{token(org)}.sa.{token(group)}.>"


def sa_stream(org: str) -> str:
    """The last-per-subject stream of an organisation's SAs (stream names allow no ``.``)."""
    return f"ACCORD_SA_{token(org).replace('~', '_')}"


def subjects_for(org: str, group: str) -> tuple[str, str]:
    """What a node subscribes to while its sessions hear ``group``."""
    return event_subject(org, group), sa_filter(org, group)


@dataclass(frozen=True, slots=True)
class InterestChange:
    gained: frozenset[str]
    lost: frozenset[str]


class Interest:
    """The groups this node's sessions hear; each update says which it gained and lost."""

    def __init__(self) -> None:
        self.groups: frozenset[str] = frozenset()

    def update(self, heard: Iterable[str]) -> InterestChange:
        now = frozenset(heard)
        change = InterestChange(now - self.groups, self.groups - now)
        self.groups = now
        return change


@dataclass(frozen=True, slots=True)
class Route:
    """The routing fields of one bus message."""

    node: str
    event_id: str
    wire_format: WireFormat
    groups: frozenset[str]  # the groups the sender sends into
    # A regrouped session's SA published again: the groups it sent into before (receivers
    # that heard those already have it); empty for every other event.
    was: frozenset[str] = frozenset()
    # Who the sender is to the separation monitor: "" for a client, "own" for a drone feed
    # (its aircraft are own drones), "partner NAME" for a partner link's events; only the
    # node that computes the organisation's alerts reads it.
    source: str = ""


def encode_headers(route: Route) -> dict[str, str]:
    if not route.groups:
        raise ValueError("an event sent into no group is not published")
    headers = {
        H_NODE: route.node,
        H_ID: route.event_id,
        H_FORMAT: _FORMAT_NAMES[route.wire_format],
        H_GROUPS: ",".join(sorted(token(g) for g in route.groups)),
    }
    if route.was:
        headers[H_WAS] = ",".join(sorted(token(g) for g in route.was))
    if route.source:
        headers[H_SOURCE] = token(route.source)
    return headers


def decode_headers(headers: Mapping[str, str] | None) -> Route:
    if not headers:
        raise BusHeaderError("no routing headers")
    missing = [h for h in (H_NODE, H_ID, H_FORMAT, H_GROUPS) if not headers.get(h)]
    if missing:
        raise BusHeaderError(f"missing header(s) {', '.join(missing)}")
    fmt = _FORMATS.get(headers[H_FORMAT])
    if fmt is None:
        raise BusHeaderError(f"{H_FORMAT} = {headers[H_FORMAT]!r}; expected xml or proto")
    groups = frozenset(untoken(t) for t in headers[H_GROUPS].split(","))
    was = headers.get(H_WAS) or ""
    before = frozenset(untoken(t) for t in was.split(",")) if was else frozenset()
    source = headers.get(H_SOURCE) or ""
    return Route(
        headers[H_NODE], headers[H_ID], fmt, groups, before, untoken(source) if source else ""
    )


class Seen:
    """Event ids delivered lately (bounded): a multi-group sender's copies are dropped."""

    def __init__(self, size: int = SEEN_IDS) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._size = size

    def first(self, event_id: str) -> bool:
        """True the first time ``event_id`` is offered (within the last ``size`` ids)."""
        if event_id in self._ids:
            return False
        self._ids[event_id] = None
        if len(self._ids) > self._size:
            self._ids.popitem(last=False)
        return True
