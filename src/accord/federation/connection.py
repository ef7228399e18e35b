"""One partner link's state with no I/O: the federation's counterpart of `accord.cot.connection`.

A :class:`LinkConnection` is fed what the partner said (its hello, stream messages, health
answers), each with ``now``, and gives back what to send (stream messages, ROL messages) and what
to deliver to our hub (events). It owns the link's state machine:

- **hello and extensions**: the ``accordFeatures`` the partner announced decide batching,
  acknowledgements (store and forward) and the ledger exchange; a TAK Server announces none and
  gets the plain protocol.
- **release**: each event the hub hands over is checked for provenance (never back to a server it
  came through), decided by the :class:`Gate`, encoded once as a ``FederatedEvent`` and numbered.
  The release decision travels with its frame into the :class:`Journal` (which rule, which policy
  version): nothing is parked between the gate and the journal.
- **batching, sequence numbers and acks**: what is ready goes out as ``accordBatch`` messages to a
  partner that takes them; sequence numbers count per direction; a resent frame is dropped.
- **store and forward bookkeeping**: a durable link's frames go to the :class:`OutboxPort`; when the
  in-memory queue skipped some (it was full) :attr:`resend_after` says where the adapter must read
  the store from, and :meth:`resend` turns those rows into messages.
- **the ROL queue** (ledger exchange programs) towards the partner.
- **timers as values**: :meth:`health_expired` says when an accepted stream has been silent for too
  long; the dialer's health interval is its adapter's (:mod:`accord.federation.transport`).

The asyncio adapter is :class:`accord.federation.link.Link`; tests drive two of these back to back.
"""

from __future__ import annotations

import logging
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from google.protobuf.message import DecodeError

from accord.cot.errors import MalformedEvent
from accord.cot.model import CotEvent
from accord.cot.outgoing import Outgoing
from accord.domain.partners import Partner
from accord.domain.views import LinkView
from accord.federation.codec import FLOW_TAGS, flow_tags, from_federated, to_federated
from accord.federation.contract import FileOffers, Gate, Journal, OutboxPort
from accord.federation.proto import fig_pb2

log = logging.getLogger("accord.federation")

# Frames waiting for a slow partner before new ones are dropped (and counted); the TAK Server's
# federate queues are bounded the same way.
SEND_QUEUE_FRAMES = 10_000
# Events remembered to drop the second copy of one that reaches us by two paths (a triangle).
SEEN_EVENTS = 20_000
# Provenance longer than this is refused (a loop that lost its tags, or a hostile sender).
MAX_HOPS = 8
# What we understand beyond the official protocol (announced in Subscription/ServerHealth);
# ACCORD_LEDGER is added by a federation that exchanges ledgers.
FEATURES = fig_pb2.ACCORD_BATCH | fig_pb2.ACCORD_STORE_FORWARD
# ROL messages (ledger exchange) waiting for the stream; more are dropped, and the exchange
# catches up from the store on the next hello.
ROL_QUEUE_MESSAGES = 1000
# One accordBatch message at most: gRPC refuses messages over 4 MiB by default.
BATCH_FRAMES = 512
BATCH_BYTES = 1 << 20
FILE_REQUEST = "b-f-t-r"


class Seen:
    """Recently received events across all links, by origin server and event identity."""

    def __init__(self, size: int = SEEN_EVENTS) -> None:
        self._keys: OrderedDict[tuple[str, str, str, int, int], None] = OrderedDict()
        self._size = size

    def first(self, origin: str, event: CotEvent) -> bool:
        """True the first time this event from ``origin`` is offered."""
        key = (origin, event.uid, event.type, event.time, event.stale)
        if key in self._keys:
            self._keys.move_to_end(key)
            return False
        self._keys[key] = None
        if len(self._keys) > self._size:
            self._keys.popitem(last=False)
        return True


@dataclass(frozen=True, slots=True)
class Own:
    """This server, as partners see it in provenance."""

    server_id: str
    name: str


class LinkConnection:
    """One partner in one direction ("outgoing": we dial; "incoming": it dials us)."""

    def __init__(
        self,
        partner: Partner,
        direction: str,
        *,
        gate: Gate,
        journal: Journal,
        own: Own,
        seen: Seen,
        now_s: float,
        outbox: OutboxPort | None = None,
        files: FileOffers | None = None,
        queue_frames: int = SEND_QUEUE_FRAMES,
    ) -> None:
        self.partner = partner
        self.direction = direction
        self.key = f"{partner.name}:{direction}"
        self._gate = gate
        self._journal = journal
        self._own = own
        self._seen = seen
        self._outbox = outbox
        self._files = files
        self._queue_frames = queue_frames
        # Store and forward: an outgoing link always; an incoming one once the partner has opened
        # its stream and said it acknowledges (else a partner that never dials in, or never
        # acknowledges, would fill an outbox).
        self.durable = outbox is not None and direction == "outgoing"
        self.peer_features = 0  # the AccordFeature bits the partner announced (0: a TAK Server)
        self.state = "down"
        self.since_s = now_s
        self.last_error = ""
        self.events_in = self.events_out = self.withheld = self.dropped = 0
        self.messages_out = 0
        self.duplicates = 0  # resent frames dropped on receipt
        self._seq_out = self._seq_in = 0
        self._frames_in = 0
        self._acked = 0  # the partner's acknowledgement: resend after it
        self._queue: deque[tuple[int, bytes]] = deque()
        self._rol: deque[bytes] = deque()
        self.streaming = False  # the partner's event stream is open
        self.rol_streaming = False
        self.rol_stream = 0  # counts ROL stream openings, likewise
        self.stream = 0  # counts stream openings: an adapter's reader ends when it changes
        self._sent = 0  # the last sequence number handed out as a message on this stream
        self.resend_after: int | None = None  # durable: read the outbox after this, then resend
        self.last_health_s = 0.0  # the adapter's monotonic clock
        # Shared missions (accord.federation.missions): where received changes go.
        self.on_mission: Callable[[Partner, bytes], None] | None = None

    # -- state -----------------------------------------------------------------------------
    def set_state(self, state: str, now_s: float, error: str = "") -> bool:
        """Change state; True when it changed. A link that comes up has no error any more: the
        last one stays only while it is down or connecting."""
        if state == "up":
            self.last_error = ""
        elif error:
            self.last_error = error
        if state == self.state:
            return False
        self.state, self.since_s = state, now_s
        return True

    def view(self) -> LinkView:
        return LinkView(
            self.partner.name,
            self.direction,
            self.state,
            self.since_s,
            self.last_error,
            self.events_in,
            self.events_out,
            self.withheld,
            self.dropped,
            self.messages_out,
            extensions(self.peer_features),
        )

    @property
    def in_use(self) -> bool:
        """Whether this direction means anything yet: an outgoing link always (we dial), an
        incoming one once the partner has dialled (or an error, such as a bad pin, is known)."""
        return (
            self.direction == "outgoing"
            or not self.partner.address
            or self.stream > 0
            or bool(self.last_error)
        )

    # -- hello and acknowledgements --------------------------------------------------------
    def restore(self, sent: int, received: int) -> None:
        """The link's stored marks (at start): a link that has sent before is durable."""
        self._seq_out, self._seq_in = sent, received
        if self._outbox is not None and sent > 0:
            self.durable = True

    def hello(self, peer_features: int, now_s: float) -> None:
        """The partner's event stream opened, announcing ``peer_features``: a new stream (what
        was queued for an earlier one is dropped; a durable link resends it from the store)."""
        self.peer_features = peer_features
        self.health(now_s)
        self._queue.clear()
        self.streaming = True
        self.stream += 1
        if self._outbox is not None and peer_features & fig_pb2.ACCORD_STORE_FORWARD:
            self.durable = True
        self._sent = self._acked
        self.resend_after = self._acked if self.durable else None

    def health(self, now_s: float) -> None:
        """A health check (or answer) from the partner arrived."""
        self.last_health_s = now_s

    def health_expired(self, now_s: float, timeout_s: float) -> bool:
        return now_s - self.last_health_s > timeout_s

    def acknowledged(self, seq: int) -> None:
        """The partner has stored everything up to ``seq``."""
        if self._outbox is not None and seq > self._acked:
            self._acked = seq
            self._outbox.acknowledged(self.key, seq)

    @property
    def ack(self) -> int:
        """What we acknowledge to the partner: the highest sequence number stored as received."""
        return 0 if self._outbox is None else self._outbox.stored_received.get(self.key, 0)

    def close(self) -> bool:
        """The event stream ended (what is queued is not sent); True if it was open."""
        was = self.streaming
        self.streaming = False
        self._queue.clear()
        self.resend_after = None
        self.rol_close()
        return was

    # -- towards the partner ---------------------------------------------------------------
    @property
    def takes_releases(self) -> bool:
        """Whether released events have somewhere to go: the stream, or the outbox."""
        return self.streaming or (self.durable and self._outbox is not None)

    def release(self, items: Iterable[Outgoing], now_ms: int) -> int:
        """Decide, encode, number and queue each event for the partner; return how many were
        taken. Every frame is journalled once, with the rule that released it."""
        outbox = self._outbox if self.durable else None
        if not self.streaming and outbox is None:
            return 0
        taken = 0
        partner, name = self.partner, self.partner.name
        own_id = self._own.server_id
        own_hop = ((own_id, self._own.name),)  # the provenance of an event that began here
        for item in items:
            event = item.event
            tags = flow_tags(event) if FLOW_TAGS in event.detail.xml else ()
            if partner.server_id in tags:
                self.dropped += 1  # it came from there (or went round): never back
                continue
            verdict = self._gate.release(event, partner, now_ms)
            released = None if verdict is None else verdict.event
            if released is not None and released.type == FILE_REQUEST and self._files:
                released = self._files.outbound(partner, released)
            if verdict is None or released is None:
                self.withheld += 1
                continue
            if tags:
                provenance = [(t, t) for t in tags if t != own_id]
                provenance += own_hop
                msg = to_federated(released, provenance, MAX_HOPS)
            else:
                msg = to_federated(released, own_hop, MAX_HOPS)
            seq = self._seq_out + 1
            if outbox is not None:
                msg.accordSeq = seq
                frame = msg.SerializeToString()
                if not outbox.append(name, self.key, seq, frame):
                    self.dropped += 1  # the store is behind: recorded, never silent
                    self._journal.dropped(name, frame, verdict.rule, verdict.policy)
                    continue
                self._seq_out = seq
                self._journal.released(name, seq, frame, verdict.rule, verdict.policy)
                if self.streaming and len(self._queue) < self._queue_frames:
                    self._queue.append((seq, frame))  # else resent from the store
            else:
                frame = msg.SerializeToString()
                if len(self._queue) >= self._queue_frames:
                    self.dropped += 1
                    self._journal.dropped(name, frame, verdict.rule, verdict.policy)
                    continue
                self._seq_out = seq
                self._queue.append((seq, frame))
                self._journal.released(name, seq, frame, verdict.rule, verdict.policy)
            self.events_out += 1
            taken += 1
        return taken

    def release_mission(self, change: bytes, rule: str, policy: str) -> bool:
        """One mission change (already decided by the policy) as an ``accordMission`` frame,
        numbered, kept in the outbox and journalled like an event; False when it cannot go
        (no stream nor outbox, a partner that does not take missions, no room: dropped)."""
        outbox = self._outbox if self.durable else None
        # What the partner takes is known once its stream has opened (this run; before, a
        # durable link keeps the change for when it does).
        known = self.stream > 0
        if (not self.streaming and outbox is None) or (
            known and not self.peer_features & fig_pb2.ACCORD_MISSIONS
        ):
            return False
        seq = self._seq_out + 1
        msg = fig_pb2.FederatedEvent(accordMission=change, accordSeq=seq if outbox else 0)
        frame = msg.SerializeToString()
        name = self.partner.name
        if outbox is not None and not outbox.append(name, self.key, seq, frame):
            self.dropped += 1
            self._journal.dropped(name, frame, rule, policy)
            return False
        if outbox is None and len(self._queue) >= self._queue_frames:
            self.dropped += 1
            self._journal.dropped(name, frame, rule, policy)
            return False
        self._seq_out = seq
        self._journal.released(name, seq, frame, rule, policy)
        if self.streaming and len(self._queue) < self._queue_frames:
            self._queue.append((seq, frame))
        return True

    @property
    def pending(self) -> bool:
        """Whether :meth:`messages` has something (or the store must be read first)."""
        return bool(self._queue) or self.resend_after is not None

    def messages(self) -> list[bytes]:
        """The stream messages ready to send (at most ``BATCH_FRAMES`` frames' worth). A durable
        link that finds a gap (its queue was full) stops and sets :attr:`resend_after`."""
        if self.resend_after is not None or not self._queue:
            return []
        durable = self.durable and self._outbox is not None
        last = self._sent
        ready: list[bytes] = []
        queue = self._queue
        while queue and len(ready) < BATCH_FRAMES:
            seq, frame = queue[0]
            if durable and seq != last + 1:
                if seq > last:  # a gap: the queue was full, the store has them
                    self.resend_after = last
                    break
                queue.popleft()  # already resent from the store
                continue
            queue.popleft()
            last = seq
            ready.append(frame)
        return self._written(last, ready)

    def resend(self, rows: list[tuple[int, bytes]]) -> list[bytes]:
        """Rows the adapter read from the outbox after :attr:`resend_after` (seq order): their
        messages. An empty read means the store holds no more: the queue takes over again."""
        if self.resend_after is None:
            return []
        if not rows:
            self.resend_after = None
            return []
        last = rows[-1][0]
        self.resend_after = last
        return self._written(last, [frame for _, frame in rows])

    def _written(self, last: int, frames: list[bytes]) -> list[bytes]:
        self._sent = max(self._sent, last)
        # A partner that does not acknowledge (a TAK Server) has what went into its stream: the
        # outbox keeps only what was never written, and resends nothing twice.
        if not self.peer_features & fig_pb2.ACCORD_STORE_FORWARD:
            self.acknowledged(last)
        return list(self._batched(frames))

    def _batched(self, frames: list[bytes]) -> Iterator[bytes]:
        """``frames`` as stream messages: one each, or batches if the partner takes them."""
        if not self.peer_features & fig_pb2.ACCORD_BATCH:
            self.messages_out += len(frames)
            yield from frames
            return
        batch: list[bytes] = []
        size = 0
        for frame in frames:
            if batch and (size + len(frame) > BATCH_BYTES or len(batch) >= BATCH_FRAMES):
                self.messages_out += 1
                yield _batch(batch)
                batch, size = [], 0
            batch.append(frame)
            size += len(frame) + 8
        if batch:
            self.messages_out += 1
            yield _batch(batch)

    # -- the ROL stream (ledger exchange) --------------------------------------------------
    def rol_open(self) -> None:
        self._rol.clear()
        self.rol_streaming = True
        self.rol_stream += 1

    def rol_send(self, message: bytes) -> None:
        if not self.rol_streaming:
            return
        if len(self._rol) >= ROL_QUEUE_MESSAGES:
            log.warning("partner %s: ROL stream backed up, a ledger message dropped", self.key)
            return
        self._rol.append(message)

    def rol_messages(self) -> list[bytes]:
        out = list(self._rol)
        self._rol.clear()
        return out

    def rol_close(self) -> None:
        self.rol_streaming = False
        self._rol.clear()

    # -- from the partner ------------------------------------------------------------------
    def receive(self, message: bytes, now_ms: int) -> list[CotEvent]:
        """One stream message from the partner (a ``FederatedEvent`` or a batch of them): the
        events to deliver to our side. Bad ones are dropped and counted, never raised."""
        msg = _decoded(message)
        out: list[CotEvent] = []
        if msg is not None and msg.accordBatch:
            for frame in msg.accordBatch:
                self._receive(frame, _decoded(frame), now_ms, out)
        else:
            self._receive(message, msg, now_ms, out)
        return out

    def _receive(
        self, frame: bytes, msg: fig_pb2.FederatedEvent | None, now_ms: int, out: list[CotEvent]
    ) -> None:
        """One ``FederatedEvent`` (``msg``, None if ``frame`` did not decode); a sequence number
        already received (a resend after a reconnect) is dropped before anything else."""
        if (
            msg is not None
            and not msg.HasField("event")
            and msg.HasField("contact")
            and msg.contact.operation != fig_pb2.DELETE
        ):
            return  # a TAK Server's contact presence note: the contact's own SA says as much
        self._frames_in += 1
        if msg is not None and msg.accordSeq:
            if msg.accordSeq <= self._seq_in:
                self.duplicates += 1
                return
            self._seq_in = msg.accordSeq
            if self._outbox is not None:
                self._outbox.received(self.key, self._seq_in)
        # Unnumbered frames (a TAK Server's, or bad bytes) do not move the sequence numbers:
        # a bad frame must not make the partner's next numbered one look like a resend.
        self._journal.received(self.partner.name, msg.accordSeq if msg else 0, frame)
        if msg is not None and msg.accordMission:
            if self.on_mission is not None:
                self.on_mission(self.partner, msg.accordMission)
            return
        try:
            if msg is None:
                raise DecodeError("not a FederatedEvent")
            got = from_federated(
                msg,
                via=self.partner.server_id,
                now_ms=now_ms,
                callsign_prefix=self.partner.callsign_prefix,
            )
        except (DecodeError, MalformedEvent) as exc:
            self.dropped += 1
            log.debug("partner %s sent a bad event: %s", self.partner.name, exc)
            return
        if (
            self._own.server_id in got.provenance
            or len(got.provenance) > MAX_HOPS
            or (got.max_hops > 0 and got.hops > got.max_hops)
            or not self._seen.first(got.provenance[0], got.event)
        ):
            self.dropped += 1
            return
        event = self._gate.inbound(got.event, self.partner, now_ms)
        if event is None:
            self.withheld += 1
            return
        self.events_in += 1
        out.append(event)


def extensions(features: int) -> tuple[str, ...]:
    """Names of the AccordFeature bits in ``features`` (for the admin status)."""
    return tuple(
        name.removeprefix("ACCORD_").lower().replace("_", "-")
        for name, bit in fig_pb2.AccordFeature.items()
        if bit and features & bit
    )


def backoff_s(attempt: int, rand: Callable[[], float]) -> float:
    """Delay before reconnect ``attempt`` (0 = first retry): 0.5 s doubling to 30 s (the TAK
    Server's reconnectInterval), with full jitter so partners that lost each other together do
    not all redial in step."""
    ceiling = min(30.0, 0.5 * 2.0 ** min(attempt, 16))
    return ceiling / 2 + rand() * ceiling / 2


def _batch(frames: list[bytes]) -> bytes:
    if len(frames) == 1:
        return frames[0]
    return fig_pb2.FederatedEvent(accordBatch=frames).SerializeToString()


def _decoded(frame: bytes) -> fig_pb2.FederatedEvent | None:
    try:
        return fig_pb2.FederatedEvent.FromString(frame)
    except DecodeError:
        return None
