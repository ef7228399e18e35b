"""Two :class:`LinkConnection` back to back (h11's ConnectionPair): a federation link at unit speed.

A dials B: ``a`` is A's outgoing connection to B, ``b`` B's incoming one from A. Messages move
only when the test says so (:meth:`LinkPair.pump`); time is the test's; each side has its own
journal, outbox and seen-set, all in memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from accord.cot.model import CotEvent
from accord.cot.outgoing import Outgoing
from accord.domain.partners import Partner
from accord.federation.connection import FEATURES, LinkConnection, Own, Seen
from accord.federation.contract import Gate, Released

NOW_MS = 1_764_000_000_000
A = Own("accord-aaaaaaaaaaaaaaaa", "Org A")
B = Own("accord-bbbbbbbbbbbbbbbb", "Org B")


def partner(own: Own, address: str = "") -> Partner:
    """``own`` as the other side's partner entry (its server id derives from ``ca_sha256``)."""
    pin = own.server_id.removeprefix("accord-") * 4
    return Partner(name=own.name, ca_sha256=pin, share_all=True, address=address)


class ShareAll:
    """A gate that releases everything except what ``refuse`` names (by type prefix)."""

    def __init__(self, refuse: tuple[str, ...] = ()) -> None:
        self.refuse = refuse

    def release(self, event: CotEvent, partner: Partner, now_ms: int) -> Released | None:
        if self.refuse and event.type.startswith(self.refuse):
            return None
        return Released(event, "everything", "v1")

    def inbound(self, event: CotEvent, partner: Partner, now_ms: int) -> CotEvent | None:
        return event


@dataclass
class Journal:
    """What the ledger is told: each release with its rule, each receipt, each drop."""

    releases: list[tuple[str, int, str, str, bytes]] = field(default_factory=list)
    receipts: list[tuple[str, int, bytes]] = field(default_factory=list)
    drops: list[tuple[str, str, bytes]] = field(default_factory=list)

    def released(self, partner: str, seq: int, frame: bytes, rule: str, policy: str) -> None:
        self.releases.append((partner, seq, rule, policy, frame))

    def received(self, partner: str, seq: int, frame: bytes) -> None:
        self.receipts.append((partner, seq, frame))

    def dropped(self, partner: str, frame: bytes, rule: str, policy: str) -> None:
        self.drops.append((partner, rule, frame))


class MemoryOutbox:
    """The outbox in memory: rows kept until acknowledged; receive marks stored on flush."""

    def __init__(self, rows: int = 1_000_000) -> None:
        self.rows: dict[str, dict[int, bytes]] = {}
        self.limit = rows
        self.stored_received: dict[str, int] = {}
        self._received: dict[str, int] = {}

    def append(self, partner: str, key: str, seq: int, frame: bytes) -> bool:
        kept = self.rows.setdefault(key, {})
        if len(kept) >= self.limit:
            return False
        kept[seq] = frame
        return True

    def received(self, key: str, seq: int) -> None:
        self._received[key] = max(seq, self._received.get(key, 0))

    def flush(self) -> None:
        """The writer stored the receive marks: now they may be acknowledged."""
        self.stored_received.update(self._received)

    def acknowledged(self, key: str, seq: int) -> None:
        kept = self.rows.get(key, {})
        for done in [s for s in kept if s <= seq]:
            del kept[done]

    def read(self, key: str, after: int) -> list[tuple[int, bytes]]:
        return sorted((s, f) for s, f in self.rows.get(key, {}).items() if s > after)


class Side:
    def __init__(
        self,
        own: Own,
        other: Own,
        direction: str,
        *,
        durable: bool,
        gate: Gate,
        queue_frames: int,
        seen: Seen | None = None,
    ) -> None:
        self.own = own
        self.journal = Journal()
        self.outbox = MemoryOutbox() if durable else None
        self.conn = LinkConnection(
            partner(other, address="127.0.0.1:1" if direction == "outgoing" else ""),
            direction,
            gate=gate,
            journal=self.journal,
            own=own,
            seen=seen or Seen(),
            now_s=NOW_MS / 1000,
            outbox=self.outbox,
            queue_frames=queue_frames,
        )
        self.delivered: list[CotEvent] = []
        self.written: list[bytes] = []  # every stream message this side wrote

    def send(self, *events: CotEvent, now_ms: int = NOW_MS) -> int:
        return self.conn.release([Outgoing(e) for e in events], now_ms)

    def outgoing(self) -> list[bytes]:
        """Every message ready now, reading the outbox when the connection asks for it."""
        out: list[bytes] = []
        while True:
            after = self.conn.resend_after
            if after is not None and self.outbox is not None:
                out += self.conn.resend(self.outbox.read(self.conn.key, after))
                continue
            messages = self.conn.messages()
            if not messages:
                self.written += out
                return out
            out += messages


class LinkPair:
    def __init__(
        self,
        *,
        features_a: int = FEATURES,
        features_b: int = FEATURES,
        durable: bool = True,
        gate_a: Gate | None = None,
        queue_frames: int = 10_000,
    ) -> None:
        self.a = Side(
            A, B, "outgoing", durable=durable, gate=gate_a or ShareAll(), queue_frames=queue_frames
        )
        self.b = Side(B, A, "incoming", durable=durable, gate=ShareAll(), queue_frames=queue_frames)
        self.features_a, self.features_b = features_a, features_b

    def connect(self, now_s: float = 0.0) -> None:
        """A's first health answer says what B understands; then both streams open."""
        self.a.conn.acknowledged(self.b.conn.ack)
        self.a.conn.hello(self.features_b, now_s)
        self.b.conn.hello(self.features_a, now_s)

    def disconnect(self) -> None:
        self.a.conn.close()
        self.b.conn.close()

    def pump(self, now_ms: int = NOW_MS) -> int:
        """Move every ready message both ways, let B's outbox store its marks, then the health
        exchange carries B's acknowledgement to A; return how many messages moved."""
        moved = 0
        for sender, receiver in ((self.a, self.b), (self.b, self.a)):
            for message in sender.outgoing():
                moved += 1
                receiver.delivered += receiver.conn.receive(message, now_ms)
        if self.b.outbox is not None:
            self.b.outbox.flush()
        self.a.conn.acknowledged(self.b.conn.ack)
        return moved
