"""The hub's ports: what the adapters offer each other around the fan-out. The HTTP API never
imports the streaming server: it reads the live picture through :class:`Directory`, which the
hub implements; partner links reach the hub through :class:`Exchange` and :class:`Sink`, and
the release policy and the ledger through :class:`ReleaseGate` and :class:`LinkJournal`.
What the admin API shows is in :mod:`accord.domain.views`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from accord.cot.model import CotEvent, WireFormat
from accord.cot.outgoing import Outgoing
from accord.domain.contacts import Party
from accord.domain.groups import Membership
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


# Federation still imports these from here; its rewrite (issue 11) moves it to domain.views.
from accord.domain.views import LinkView, Sample  # noqa: E402

__all__ = [
    "ContactView",
    "Directory",
    "Exchange",
    "LinkJournal",
    "LinkView",
    "Recorder",
    "ReleaseGate",
    "Sample",
    "Sink",
]
