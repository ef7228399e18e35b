"""What the adapters offer each other. The HTTP API never imports the streaming server: it
reads the live picture through :class:`Directory`, which the hub implements, and the sessions
through :class:`Sessions`, which the server's census implements."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from accord.cot.model import CotEvent, WireFormat
from accord.cot.outgoing import Outgoing
from accord.domain.contacts import Party
from accord.domain.groups import Membership
from accord.domain.metrics import Tally
from accord.domain.partners import Partner


@dataclass(frozen=True, slots=True)
class ContactView:
    """One connected client, as the contact list APIs show it."""

    uid: str
    callsign: str
    membership: Membership
    last_sa: CotEvent | None
    connected: bool = True
    user: str = ""  # who signed in: certificate CN or user name; "" when anonymous


class Directory(Protocol):
    def contacts(self) -> list[ContactView]:
        """Every identified client, connected now."""
        ...

    def latest(self, uid: str) -> CotEvent | None:
        """The newest SA held for ``uid`` (connected or UDP), if any."""
        ...

    def activate(self, uid: str, principal: str, membership: Membership) -> bool:
        """Give the session of ``uid`` the groups ``membership`` (a client switching channels
        on and off), if it is signed in as ``principal``; False when there is no such session.
        The caller makes sure ``membership`` is within what ``principal`` may have."""
        ...


class Recorder(Protocol):
    """Where the hub hands every routed event for the history. Must never block or raise: the
    hub calls it on the hot path (a full recorder drops and counts)."""

    def record(self, event: CotEvent, groups: frozenset[str], item: Outgoing | None = None) -> None:
        """``groups``: the sender's IN groups, i.e. who could receive ``event``; ``item``: the
        event on its way out, whose XML frame (if a client needed one) the history reuses."""
        ...


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
    """How far the history archiver is behind the live traffic."""

    queued_events: int = 0  # routed but not yet written
    lag_s: float = 0.0  # how long the oldest of them has waited; 0 when caught up


class HistoryBacklog(Protocol):
    """What the history archiver reports (read at every scrape and status call)."""

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
    sets ``history`` when it starts an archiver and appends other sources; both are read at
    every scrape, so a part started after the HTTP API is seen from then on."""

    history: HistoryBacklog | None = None
    sources: list[MetricsSource] = field(default_factory=list)
    links: Links | None = None  # federation, when started
    release: ReleaseReport | None = None  # the partners' release policies, when any


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
    """A feed cannot be added: the message says why, ``status`` is the HTTP status to answer
    (400 a bad table or a feed that cannot start, 409 the name is taken)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


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


# -- the hub, as the other adapters (federation links) see it -------------------------------------
class Sink(Protocol):
    """What the hub delivers to: a session, or a federation link."""

    @property
    def wire_format(self) -> WireFormat | None:
        """How the sink's stream frames events; None: it encodes its own (a partner link), so
        the hub need not."""
        ...

    def send(self, items: list[Outgoing], data: bytes | None = None) -> int:
        """Write ``items`` (``data`` is their frames already joined, when the hub has them);
        return how many were taken (written or queued), the rest being dropped."""
        ...

    def close(self, reason: str, *, abort: bool = False) -> None: ...


class Exchange(Protocol):
    """The hub's fan-out, for parts that are not streaming sessions (the server's Hub)."""

    def new_party(
        self, membership: Membership, label: str, *, receives: bool = True, relays: bool = False
    ) -> Party: ...

    def attach(self, party: Party, sink: Sink) -> None: ...

    def detach(self, party: Party) -> None: ...

    def submit(self, sender: Party, event: CotEvent) -> bool: ...


# -- federation: the release decision and the ledger, behind ports --------------------------------
class ReleaseGate(Protocol):
    """Decides what crosses a partner link (the release policy engine implements it).

    Both calls are pure decisions on the event loop's hot path: no I/O, no blocking. ``now_ms``
    is wall-clock ms. A returned event may be a transformed copy (coarsened, stripped)."""

    def outbound(self, event: CotEvent, partner: Partner, now_ms: int) -> CotEvent | None:
        """The event to send to ``partner``, or None to withhold it."""
        ...

    def inbound(self, event: CotEvent, partner: Partner, now_ms: int) -> CotEvent | None:
        """The event to let in from ``partner``, or None to drop it."""
        ...


class LinkJournal(Protocol):
    """Told of every frame that crossed a link (the sharing ledger implements it). ``seq``
    counts per partner and direction from 1 for the life of a link; ``frame`` is the exact
    protobuf bytes sent or received. Must not block or raise."""

    def released(self, partner: str, seq: int, frame: bytes) -> None: ...

    def received(self, partner: str, seq: int, frame: bytes) -> None: ...

    def dropped(self, partner: str, frame: bytes) -> None:
        """``frame`` was released to ``partner`` but not sent (its send queue was full)."""
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
