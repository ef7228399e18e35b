"""What the adapters offer each other. The HTTP API never imports the streaming server: it
reads the live picture through :class:`Directory`, which the hub implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from accord.cot.model import CotEvent
from accord.domain.groups import Membership


@dataclass(frozen=True, slots=True)
class ContactView:
    """One connected client, as the contact list APIs show it."""

    uid: str
    callsign: str
    membership: Membership
    last_sa: CotEvent | None
    connected: bool = True


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

    def record(self, event: CotEvent, groups: frozenset[str]) -> None:
        """``groups``: the sender's IN groups, i.e. who could receive ``event``."""
        ...
