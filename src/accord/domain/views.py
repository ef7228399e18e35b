"""What the admin API and /metrics show of the running parts, and the protocols that give it.

The views are plain values built by the parts that know them (the server's census, the drone
feeds, the federation links) and read by ``accord.api.admin`` and ``accord.api.metrics``; they
live here, below both, because those adapters never import each other. The hub's own ports
are in :mod:`accord.domain.ports`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from accord.domain.groups import Membership
from accord.domain.metrics import Tally


# -- sessions, for the admin API and /metrics -----------------------------------------------------
@dataclass(frozen=True, slots=True)
class Device:
    """What a TAK client says it runs on, from the ``<takv>`` of its latest SA."""

    device: str = ""
    platform: str = ""
    os: str = ""
    version: str = ""


@dataclass(frozen=True, slots=True)
class SessionView:
    """One connected streaming client, read when asked (nothing here costs per event)."""

    key: int  # the admin API's id for it; unique for the process lifetime
    listener: str  # "tcp" or "tls"
    address: str  # the peer's "ip:port"
    user: str  # certificate CN, or the <auth> user name on plain TCP; "" when anonymous
    uid: str  # "" until its first SA
    callsign: str
    membership: Membership
    wire_format: str  # "xml" or "protobuf"
    device: Device
    connected_s: float  # wall clock, seconds since the epoch
    last_event_s: float | None  # when its latest event came in; None: nothing yet
    tally: Tally  # a copy
    queued_events: int  # waiting in its send queue (only while its socket is full)
    write_buffer_bytes: int  # written but not yet taken by the kernel


@dataclass(frozen=True, slots=True)
class ListenerView:
    """One listener's totals: its closed sessions plus its live ones."""

    name: str  # "tcp", "tls" or "udp"
    sessions: int  # live now
    tally: Tally
    malformed: Mapping[str, int]  # by :class:`accord.cot.errors.Malformation` value
    queued_events: int  # summed over its live sessions
    max_queued_events: int  # the fullest of its send queues
    write_buffer_bytes: int


class Sessions(Protocol):
    def sessions(self) -> list[SessionView]:
        """Every streaming client connected now (signed in, when sign-in is required)."""
        ...

    def listeners(self) -> list[ListenerView]: ...

    def disconnect(self, key: int, reason: str) -> bool:
        """Close the session ``key`` (its client may reconnect); False when there is none."""
        ...


# -- optional reporters, plugged in by the composition root ----------------------------------------
@dataclass(frozen=True, slots=True)
class Backlog:
    """How far the history writer is behind the live traffic."""

    queued_events: int = 0  # routed but not yet written
    lag_s: float = 0.0  # how long the oldest of them has waited; 0 when caught up


class HistoryBacklog(Protocol):
    """What the history writer reports (read at every scrape and status call)."""

    def backlog(self) -> Backlog: ...


@dataclass(frozen=True, slots=True)
class Sample:
    """One number for /metrics. ``name`` has no ``accord_`` prefix; a counter's ends in
    ``_total``. Samples of one name are one metric family (same kind and help)."""

    name: str
    kind: Literal["gauge", "counter"]
    help: str
    value: float
    labels: tuple[tuple[str, str], ...] = ()


class MetricsSource(Protocol):
    def samples(self) -> Iterable[Sample]:
        """The current values; called at every scrape, on the event loop: keep it cheap."""
        ...


@dataclass
class Probes:
    """Where optional parts report to /metrics and the admin status. The composition root
    sets ``history`` when it starts the history writer and appends other sources; both are read at
    every scrape, so a part started after the HTTP API is seen from then on."""

    history: HistoryBacklog | None = None
    sources: list[MetricsSource] = field(default_factory=list)
    links: Links | None = None  # federation, when started
    release: ReleaseReport | None = None  # the partners' release policies, when any
    coordination: MetricsSource | None = None  # separation, geofences, intents (status lines)


# -- drone feeds, added and removed at run time by the admin API --------------------------------
@dataclass(frozen=True, slots=True)
class DroneFeedView:
    """One running MAVLink feed, for the admin API."""

    name: str
    kind: str  # udp, udpout, tcp, tlog, serial
    where: str  # its address, or its file or device path
    adhoc: bool  # added at run time: gone at the next start (not written to the config)
    port: int | None  # the UDP port it listens on (udp), else None
    vehicles: int  # vehicles seen
    vehicles_live: int  # of which heard from within the link timeout
    counters: Mapping[str, int]  # what its bridge parsed, skipped and emitted


class DroneFeedError(Exception):
    """A feed cannot be added: the message says why; ``name_taken`` when a feed of that name
    runs already (else the table is bad or the feed cannot start)."""

    def __init__(self, message: str, *, name_taken: bool = False) -> None:
        super().__init__(message)
        self.name_taken = name_taken


class DroneFeeds(Protocol):
    """The running drone feeds (the composition root implements it with the feed adapters)."""

    def views(self) -> list[DroneFeedView]: ...

    async def add(self, table: Mapping[str, Any]) -> DroneFeedView:
        """Start a feed from one ``[[drone_feeds]]`` table (as parsed JSON); raise
        :class:`DroneFeedError`."""
        ...

    def remove(self, name: str) -> bool:
        """Stop the feed ``name`` (configured or ad hoc); False when there is none."""
        ...


@dataclass(frozen=True, slots=True)
class LinkView:
    """One partner link, for the admin status and /metrics."""

    partner: str
    direction: str  # "outgoing" (we dial) or "incoming" (it dials us)
    state: str  # "connecting", "up" or "down"
    since_s: float  # wall clock, seconds since the epoch, of the last state change
    last_error: str  # "" when none yet
    events_in: int
    events_out: int
    withheld: int  # refused by the release gate, either way
    dropped: int  # its send queue was full, or it looped back
    messages_out: int = 0  # stream messages written (fewer than events when batched)
    extensions: tuple[str, ...] = ()  # the Accord extensions the partner announced


class Links(Protocol):
    def links(self) -> list[LinkView]: ...


class ReleaseReport(Protocol):
    def decisions(self, partner: str) -> dict[str, dict[str, int]]:
        """The release decisions so far for ``partner``: {rule: {outcome: count}}."""
        ...
