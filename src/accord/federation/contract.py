"""What a partner link's core needs from the rest of the server, as Protocols.

:class:`~accord.federation.connection.LinkConnection` decides through a :class:`Gate` (the
release policy: :class:`accord.federation.gate.PolicyGate`), records every frame in a
:class:`Journal` (the sharing ledger: :class:`accord.federation.journal.LedgerJournal`), keeps a
durable link's frames in an :class:`OutboxPort` (:class:`accord.federation.outbox.Outbox`) and
rewrites released file requests through :class:`FileOffers`
(:class:`accord.federation.file_shares.FileShares`). All of them are called on the hot path and
never block.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from accord.cot.model import CotEvent
from accord.domain.partners import Partner


@dataclass(frozen=True, slots=True)
class Released:
    """A release decision: the event as the partner gets it, and the rule that released it."""

    event: CotEvent
    rule: str
    policy: str  # the policy's version ("" without a policy)


class Gate(Protocol):
    """Decides what crosses the link (:class:`accord.federation.gate.PolicyGate`). Pure, on the
    hot path; ``now_ms`` is wall-clock ms."""

    def release(self, event: CotEvent, partner: Partner, now_ms: int) -> Released | None:
        """The event to send to ``partner`` and why, or None to withhold (or delay) it."""
        ...

    def inbound(self, event: CotEvent, partner: Partner, now_ms: int) -> CotEvent | None:
        """The event to let in from ``partner``, or None to drop it."""
        ...


class Journal(Protocol):
    """Told of every frame that crossed the link (the sharing ledger). ``seq`` counts per partner
    and direction from 1; ``frame`` is the exact protobuf bytes. Must not block or raise."""

    def released(self, partner: str, seq: int, frame: bytes, rule: str, policy: str) -> None: ...

    def received(self, partner: str, seq: int, frame: bytes) -> None: ...

    def dropped(self, partner: str, frame: bytes, rule: str, policy: str) -> None:
        """``frame`` was released to ``partner`` but not sent (no room to keep it)."""
        ...


class OutboxPort(Protocol):
    """The durable outbox's hot path (:class:`accord.federation.outbox.Outbox`): never blocks."""

    stored_received: dict[str, int]

    def append(self, partner: str, key: str, seq: int, frame: bytes) -> bool: ...

    def received(self, key: str, seq: int) -> None: ...

    def acknowledged(self, key: str, seq: int) -> None: ...


class FileOffers(Protocol):
    """What a released file request becomes (:class:`accord.federation.file_shares.FileShares`)."""

    def outbound(self, partner: Partner, event: CotEvent) -> CotEvent | None: ...
