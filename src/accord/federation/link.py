"""One partner link on the event loop: the hub's sink around a :class:`LinkConnection`.

:class:`Link` is what the hub delivers to (a :class:`~accord.domain.ports.Sink`): it hands the
events to its :class:`~accord.federation.connection.LinkConnection`, which decides, encodes and
queues them, and wakes the stream writer. What the partner sends is fed to the connection and
the events it gives back are submitted to the hub as the link's party (a file request first
fetches its package). The gRPC transports (:mod:`accord.federation.transport`) move the frames.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

from accord.cot.model import CotEvent
from accord.cot.outgoing import Outgoing
from accord.domain.groups import Membership
from accord.domain.partners import Partner
from accord.domain.ports import Exchange
from accord.domain.views import LinkView
from accord.federation.connection import (
    FILE_REQUEST,
    LinkConnection,
    Own,
    Seen,
)
from accord.federation.contract import Gate, Journal
from accord.federation.file_shares import FileShares
from accord.federation.outbox import Outbox

log = logging.getLogger("accord.federation")


class Link:
    """One partner in one direction ("outgoing": we dial; "incoming": it dials us)."""

    wire_format = None  # the link encodes its own frames (FederatedEvent)

    def __init__(
        self,
        partner: Partner,
        direction: str,
        *,
        exchange: Exchange,
        gate: Gate,
        journal: Journal,
        own: Own,
        seen: Seen,
        wall_ms: Callable[[], int],
        outbox: Outbox | None = None,
        files: FileShares | None = None,
    ) -> None:
        self.partner = partner
        self.direction = direction
        self.core = LinkConnection(
            partner,
            direction,
            gate=gate,
            journal=journal,
            own=own,
            seen=seen,
            now_s=wall_ms() / 1000,
            outbox=outbox,
            files=files,
        )
        self.key = self.core.key
        self._outbox = outbox
        self._files = files
        self._exchange = exchange
        self._wall_ms = wall_ms
        self._attached = False
        membership = Membership(frozenset(partner.groups_in), frozenset(partner.groups_out))
        self.party = exchange.new_party(
            membership, f"partner {partner.name} ({direction})", relays=True
        )
        self._ready = asyncio.Event()  # frames to write, or the stream ended
        self._rol_ready = asyncio.Event()

    # -- state, for the admin API ------------------------------------------------------------
    @property
    def state(self) -> str:
        return self.core.state

    @property
    def last_error(self) -> str:
        return self.core.last_error

    @last_error.setter
    def last_error(self, error: str) -> None:
        self.core.last_error = error

    @property
    def events_in(self) -> int:
        return self.core.events_in

    @property
    def events_out(self) -> int:
        return self.core.events_out

    @property
    def withheld(self) -> int:
        return self.core.withheld

    @property
    def dropped(self) -> int:
        return self.core.dropped

    @property
    def durable(self) -> bool:
        return self.core.durable

    @property
    def peer_features(self) -> int:
        return self.core.peer_features

    def set_state(self, state: str, error: str = "") -> None:
        if self.core.set_state(state, self._wall_ms() / 1000, error):
            log.info(
                "partner %s (%s): link %s%s",
                self.partner.name,
                self.direction,
                state,
                f" ({error})" if error and state != "up" else "",
            )

    def view(self) -> LinkView:
        return self.core.view()

    # -- the stream towards the partner ------------------------------------------------------
    @property
    def streaming(self) -> bool:
        return self.core.streaming

    def restore(self, sent: int, received: int) -> None:
        self.core.restore(sent, received)

    def join(self) -> None:
        """A durable link stays in the hub while down, so its releases go to the outbox."""
        if self.core.durable and not self._attached:
            self._attached = True
            self._exchange.attach(self.party, self)

    def leave(self) -> None:
        """Server shutdown: out of the hub for good."""
        self.close("server shutting down")
        if self._attached:
            self._attached = False
            self._exchange.detach(self.party)

    def acknowledged(self, seq: int) -> None:
        self.core.acknowledged(seq)

    @property
    def ack(self) -> int:
        return self.core.ack

    def open(self, peer_features: int) -> None:
        """The partner's event stream is open: join the hub (it replays the latest SAs)."""
        self.close("replaced by a new stream")
        self.core.hello(peer_features, asyncio.get_running_loop().time())
        self._ready.set()
        if self.core.durable:
            self.join()
        else:
            self._exchange.attach(self.party, self)

    async def frames(self) -> AsyncIterator[bytes]:
        """The stream messages to send, until the stream closes or is replaced."""
        stream = self.core.stream
        while (messages := await self.next_messages(stream)) is not None:
            for message in messages:
                yield message

    async def next_messages(self, stream: int) -> list[bytes] | None:
        """The next stream messages of stream number ``stream``; None once it closed or was
        replaced. A durable link resends from the store what the connection says the partner
        lacks. Safe to cancel: nothing is taken from the connection until it is returned."""
        core = self.core
        while core.streaming and core.stream == stream:
            after = core.resend_after
            if after is not None and self._outbox is not None:
                await self._outbox.flush()
                rows = await self._outbox.read(self.key, after)
                if core.stream != stream or core.resend_after != after:
                    return None
                messages = core.resend([(row.seq, row.frame) for row in rows])
            else:
                messages = core.messages()
            if messages:
                return messages
            if not core.pending:
                self._ready.clear()
                await self._ready.wait()
        return None

    # -- the ROL stream (ledger exchange) ---------------------------------------------------
    def rol_open(self) -> None:
        self.core.rol_open()
        self._rol_ready.set()

    def rol_send(self, message: bytes) -> None:
        self.core.rol_send(message)
        self._rol_ready.set()

    async def rol_messages(self) -> AsyncIterator[bytes]:
        core, stream = self.core, self.core.rol_stream
        while core.rol_streaming and core.rol_stream == stream:
            messages = core.rol_messages()
            if not messages:
                self._rol_ready.clear()
                await self._rol_ready.wait()
                continue
            for message in messages:
                yield message

    def rol_close(self) -> None:
        self.core.rol_close()
        self._rol_ready.set()

    def close(self, reason: str, *, abort: bool = False) -> None:
        """Leave the hub and end the outgoing stream (the hub calls this at shutdown too)."""
        rol = self.core.rol_streaming
        if self.core.close() and not self._attached:
            self._exchange.detach(self.party)
        self._ready.set()
        if rol:
            self._rol_ready.set()

    def send_mission(self, change: bytes, rule: str, policy: str) -> bool:
        """A mission change to the partner (:meth:`LinkConnection.release_mission`)."""
        taken = self.core.release_mission(change, rule, policy)
        if taken:
            self._ready.set()
        return taken

    def send(self, items: list[Outgoing], data: bytes | None = None) -> int:
        taken = self.core.release(items, self._wall_ms())
        if taken:
            self._ready.set()
        return taken

    # -- the stream from the partner ---------------------------------------------------------
    def receive(self, message: bytes) -> None:
        for event in self.core.receive(message, self._wall_ms()):
            if event.type == FILE_REQUEST and self._files is not None:
                groups = tuple(sorted(self.partner.groups_in))
                if self._files.inbound(self.partner, event, groups, self._deliver):
                    continue  # delivered once the package is here
            self._exchange.submit(self.party, event)

    def _deliver(self, event: CotEvent) -> None:
        self._exchange.submit(self.party, event)
