"""One partner link's traffic: a hub party and sink on our side, protobuf frames on theirs.

A :class:`Link` is what the hub delivers to (it is a :class:`~accord.domain.ports.Sink`):
each event is checked for provenance (never back to a server it came through), passed
through the :class:`~accord.domain.ports.ReleaseGate`, encoded once as a ``FederatedEvent``
and queued for the gRPC stream. What the partner sends comes in through :meth:`Link.receive`:
decoded, deduplicated across links, gated, marked, and submitted to the hub as the link's
party. The transports (:mod:`accord.federation.transport`) only move the frames.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import DecodeError

from accord.cot.errors import MalformedEvent
from accord.cot.model import CotEvent
from accord.cot.outgoing import Outgoing
from accord.domain.groups import Membership
from accord.domain.partners import Partner
from accord.domain.ports import Exchange, LinkJournal, LinkView, ReleaseGate
from accord.federation.codec import FLOW_TAGS, flow_tags, from_federated, to_federated
from accord.federation.file_shares import FILE_REQUEST, FileShares
from accord.federation.outbox import Outbox
from accord.federation.proto import fig_pb2

log = logging.getLogger("accord.federation")

# Frames waiting for a slow partner before new ones are dropped (and counted); the
# TAK Server's federate queues are bounded the same way.
SEND_QUEUE_FRAMES = 10_000
# Events remembered to drop the second copy of one that reaches us by two paths (a triangle).
SEEN_EVENTS = 20_000
# Provenance longer than this is refused (a loop that lost its tags, or a hostile sender).
MAX_HOPS = 8
# What we understand beyond the official protocol (announced in Subscription/ServerHealth);
# ACCORD_LEDGER is added by a federation that exchanges ledgers (transport.Federation).
FEATURES = fig_pb2.ACCORD_BATCH | fig_pb2.ACCORD_STORE_FORWARD
# ROL messages (ledger exchange) waiting for the stream; more are dropped, and the exchange
# catches up from the store on the next hello.
ROL_QUEUE = 1000
# One accordBatch message at most: gRPC refuses messages over 4 MiB by default.
BATCH_FRAMES = 512
BATCH_BYTES = 1 << 20


def backoff_s(attempt: int, rand: Callable[[], float] = random.random) -> float:
    """Delay before reconnect ``attempt`` (0 = first retry): 0.5 s doubling to 30 s (the TAK
    Server's reconnectInterval), with full jitter so partners that lost each other together
    do not all redial in step."""
    ceiling = min(30.0, 0.5 * 2.0 ** min(attempt, 16))
    return ceiling / 2 + rand() * ceiling / 2


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


class Link:
    """One partner in one direction ("outgoing": we dial; "incoming": it dials us)."""

    wire_format = None  # the link encodes its own frames (FederatedEvent)

    def __init__(
        self,
        partner: Partner,
        direction: str,
        *,
        exchange: Exchange,
        gate: ReleaseGate,
        journal: LinkJournal,
        own: Own,
        seen: Seen,
        wall_ms: Callable[[], int],
        outbox: Outbox | None = None,
        files: FileShares | None = None,
    ) -> None:
        self.partner = partner
        self._files = files
        self.key = f"{partner.name}:{direction}"
        self._outbox = outbox
        # Store and forward: an outgoing link always; an incoming one once the partner has
        # opened its stream and said it acknowledges (else a partner that never dials in, or
        # never acknowledges, would fill an outbox).
        self.durable = outbox is not None and direction == "outgoing"
        self._attached = False
        self._acked = 0  # the partner's acknowledgement: resend after it
        self.direction = direction
        self._exchange = exchange
        self._gate = gate
        self._journal = journal
        self._own = own
        self._seen = seen
        self._wall_ms = wall_ms
        membership = Membership(frozenset(partner.groups_in), frozenset(partner.groups_out))
        self.party = exchange.new_party(
            membership, f"partner {partner.name} ({direction})", relays=True
        )
        self._queue: asyncio.Queue[tuple[int, bytes] | None] | None = None
        self._rol: asyncio.Queue[bytes | None] | None = None
        self.state = "down"
        self.since_s = wall_ms() / 1000
        self.last_error = ""
        self.events_in = self.events_out = self.withheld = self.dropped = 0
        self.messages_out = 0
        self._seq_out = self._seq_in = 0
        self.duplicates = 0  # resent frames dropped on receipt
        # The AccordFeature bits the partner announced (0: a TAK Server, or not known yet).
        self.peer_features = 0

    # -- state, for the admin API ------------------------------------------------------------
    def set_state(self, state: str, error: str = "") -> None:
        if error:
            self.last_error = error
        if state != self.state:
            self.state = state
            self.since_s = self._wall_ms() / 1000
            log.info(
                "partner %s (%s): link %s%s",
                self.partner.name,
                self.direction,
                state,
                f" ({error})" if error and state != "up" else "",
            )

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

    # -- the stream towards the partner ------------------------------------------------------
    @property
    def streaming(self) -> bool:
        return self._queue is not None

    def restore(self, sent: int, received: int) -> None:
        """The link's stored marks (at start): a link that has sent before is durable."""
        self._seq_out, self._seq_in = sent, received
        if self._outbox is not None and sent > 0:
            self.durable = True

    def join(self) -> None:
        """A durable link stays in the hub while down, so its releases go to the outbox."""
        if self.durable and not self._attached:
            self._attached = True
            self._exchange.attach(self.party, self)

    def leave(self) -> None:
        """Server shutdown: out of the hub for good."""
        self.close("server shutting down")
        if self._attached:
            self._attached = False
            self._exchange.detach(self.party)

    def acknowledged(self, seq: int) -> None:
        """The partner has stored everything up to ``seq``."""
        if self._outbox is not None and seq > self._acked:
            self._acked = seq
            self._outbox.acknowledged(self.key, seq)

    @property
    def ack(self) -> int:
        """What we acknowledge to the partner: the highest sequence number stored as received."""
        return 0 if self._outbox is None else self._outbox.stored_received.get(self.key, 0)

    def open(self) -> None:
        """The partner's event stream is open: join the hub (it replays the latest SAs)."""
        self.close("replaced by a new stream")
        self._queue = asyncio.Queue(SEND_QUEUE_FRAMES)
        if self._outbox is not None and self.peer_features & fig_pb2.ACCORD_STORE_FORWARD:
            self.durable = True
        if self.durable:
            self.join()
        else:
            self._exchange.attach(self.party, self)

    async def frames(self) -> AsyncIterator[bytes]:
        """The stream messages to send, until the link closes. A durable link first resends
        what the partner has not acknowledged, from the store, and goes back to the store
        whenever its in-memory queue skipped some (it was full). What is ready at once goes
        out as one ``accordBatch`` message to a partner that takes them: a gRPC stream
        message costs far more than the event in it."""
        queue = self._queue
        outbox = self._outbox if self.durable else None
        last = self._acked
        catching_up = outbox is not None
        while queue is not None and queue is self._queue:
            if catching_up and outbox is not None:
                await outbox.flush()
                rows = await outbox.read(self.key, last)
                if rows:
                    last = rows[-1].seq
                catching_up = bool(rows)
                for message in self._messages([row.frame for row in rows]):
                    yield message
                self._written(last)
                continue
            item = await queue.get()
            ready: list[bytes] = []
            while item is not None:
                seq, frame = item
                if outbox is not None and seq != last + 1:
                    if seq > last:  # a gap: the queue was full, the store has them
                        catching_up = True
                        break
                else:
                    last = seq
                    ready.append(frame)
                if len(ready) >= BATCH_FRAMES or queue.empty():
                    break
                item = queue.get_nowait()
            for message in self._messages(ready):
                yield message
            self._written(last)
            if item is None:
                return

    def _written(self, seq: int) -> None:
        """A partner that does not acknowledge (a TAK Server) has what went into its stream:
        the outbox keeps only what was never written, and resends nothing twice."""
        if not self.peer_features & fig_pb2.ACCORD_STORE_FORWARD:
            self.acknowledged(seq)

    def _messages(self, frames: list[bytes]) -> Iterator[bytes]:
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

    # -- the ROL stream (ledger exchange) ---------------------------------------------------
    def rol_open(self) -> None:
        self.rol_close()
        self._rol = asyncio.Queue(ROL_QUEUE)

    def rol_send(self, message: bytes) -> None:
        if self._rol is None:
            return
        try:
            self._rol.put_nowait(message)
        except asyncio.QueueFull:
            log.warning("partner %s: ROL stream backed up, a ledger message dropped", self.key)

    async def rol_messages(self) -> AsyncIterator[bytes]:
        queue = self._rol
        while queue is not None and queue is self._rol:
            message = await queue.get()
            if message is None:
                return
            yield message

    def rol_close(self) -> None:
        queue, self._rol = self._rol, None
        if queue is not None:
            _end(queue)

    def close(self, reason: str, *, abort: bool = False) -> None:
        """Leave the hub and end the outgoing stream (the hub calls this at shutdown too)."""
        self.rol_close()
        queue, self._queue = self._queue, None
        if queue is None:
            return
        if not self._attached:
            self._exchange.detach(self.party)
        _end(queue)

    def send(self, items: list[Outgoing], data: bytes | None = None) -> int:
        queue = self._queue
        outbox = self._outbox if self.durable else None
        if queue is None and outbox is None:
            return 0
        taken = 0
        now_ms = self._wall_ms()
        for item in items:
            event = item.event
            tags = flow_tags(event) if FLOW_TAGS in event.detail.xml else ()
            if self.partner.server_id in tags:
                self.dropped += 1  # it came from there (or went round): never back
                continue
            released = self._gate.outbound(event, self.partner, now_ms)
            if released is not None and released.type == FILE_REQUEST and self._files:
                released = self._files.outbound(self.partner, released)
            if released is None:
                self.withheld += 1
                continue
            provenance = [(t, t) for t in tags if t != self._own.server_id]
            provenance.append((self._own.server_id, self._own.name))
            msg = to_federated(released, provenance, MAX_HOPS)
            if outbox is not None:
                msg.accordSeq = seq = self._seq_out + 1
                frame = msg.SerializeToString()
                if not outbox.append(self.partner.name, self.key, seq, frame):
                    self.dropped += 1  # the store is behind: recorded, never silent
                    self._journal.dropped(self.partner.name, frame)
                    continue
                self._seq_out = seq
                self._journal.released(self.partner.name, seq, frame)
                if queue is not None and not queue.full():
                    queue.put_nowait((seq, frame))  # else frames() reads it from the store
                self.events_out += 1
                taken += 1
                continue
            assert queue is not None
            frame = msg.SerializeToString()
            if queue.full():
                self.dropped += 1
                self._journal.dropped(self.partner.name, frame)
                continue
            self._seq_out += 1
            queue.put_nowait((self._seq_out, frame))
            self._journal.released(self.partner.name, self._seq_out, frame)
            self.events_out += 1
            taken += 1
        return taken

    # -- the stream from the partner ---------------------------------------------------------
    def receive(self, message: bytes) -> None:
        """One stream message from the partner: a ``FederatedEvent`` or a batch of them."""
        msg = _decoded(message)
        if msg is not None and msg.accordBatch:
            for frame in msg.accordBatch:
                self._receive(frame, _decoded(frame))
        else:
            self._receive(message, msg)

    def _receive(self, frame: bytes, msg: fig_pb2.FederatedEvent | None) -> None:
        """One ``FederatedEvent`` (``msg``, None if ``frame`` did not decode); a sequence
        number already received (a resend after a reconnect) is dropped before anything else."""
        if (
            msg is not None
            and not msg.HasField("event")
            and msg.HasField("contact")
            and msg.contact.operation != fig_pb2.DELETE
        ):
            return  # a TAK Server's contact presence note: the contact's own SA says as much
        if msg is not None and msg.accordSeq:
            if msg.accordSeq <= self._seq_in:
                self.duplicates += 1
                return
            self._seq_in = msg.accordSeq
            if self._outbox is not None:
                self._outbox.received(self.key, self._seq_in)
        else:
            self._seq_in += 1
        self._journal.received(self.partner.name, self._seq_in, frame)
        try:
            if msg is None:
                raise DecodeError("not a FederatedEvent")
            got = from_federated(
                msg,
                via=self.partner.server_id,
                now_ms=self._wall_ms(),
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
        event = self._gate.inbound(got.event, self.partner, self._wall_ms())
        if event is None:
            self.withheld += 1
            return
        self.events_in += 1
        if event.type == FILE_REQUEST and self._files is not None:
            groups = tuple(sorted(self.partner.groups_in))
            if self._files.inbound(self.partner, event, groups, self._deliver):
                return  # delivered once the package is here
        self._exchange.submit(self.party, event)

    def _deliver(self, event: CotEvent) -> None:
        self._exchange.submit(self.party, event)


def extensions(features: int) -> tuple[str, ...]:
    """Names of the AccordFeature bits in ``features`` (for the admin status)."""
    return tuple(
        name.removeprefix("ACCORD_").lower().replace("_", "-")
        for name, bit in fig_pb2.AccordFeature.items()
        if bit and features & bit
    )


def _end(queue: asyncio.Queue[Any]) -> None:
    """Put the end marker (None) on a stream's queue, making room for it: what was queued is
    not sent any more."""
    while True:
        try:
            queue.put_nowait(None)
            return
        except asyncio.QueueFull:
            queue.get_nowait()


def _batch(frames: list[bytes]) -> bytes:
    if len(frames) == 1:
        return frames[0]
    return fig_pb2.FederatedEvent(accordBatch=frames).SerializeToString()


def _decoded(frame: bytes) -> fig_pb2.FederatedEvent | None:
    try:
        return fig_pb2.FederatedEvent.FromString(frame)
    except DecodeError:
        return None
