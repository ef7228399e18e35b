"""The hub's ports: what the adapters offer each other around the fan-out. The HTTP API never
imports the streaming server: it reads the live picture through :class:`Directory`, which the
hub implements; partner links reach the hub through :class:`Exchange` and :class:`Sink` (their
release gate and journal are the link core's ports, :mod:`accord.federation.contract`).
What the admin API shows is in :mod:`accord.domain.views`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from accord.cot.model import CotEvent, WireFormat
from accord.cot.outgoing import Outgoing
from accord.domain.contacts import Party
from accord.domain.groups import Membership


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


class MissionDests(Protocol):
    """Where the hub hands an event with ``<dest mission="...">`` (the Mission API). Must never
    block or raise: it answers at once and takes the event into the missions later."""

    def subscribers(
        self, event: CotEvent, sender: Membership, *, add: bool = True
    ) -> tuple[str, ...]:
        """The uids of the live subscribers of the missions ``event`` names that ``sender``
        may write to; the event's uid is added to those missions (unless not ``add``: another
        node of a cluster received it from its client and adds it)."""
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


__all__ = [
    "ContactView",
    "Directory",
    "Exchange",
    "MissionDests",
    "Recorder",
    "Sink",
]
