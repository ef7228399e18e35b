"""Partner links over gRPC with mutual TLS: the FederatedChannel server and the dialer.

Call sequence (reference tak-protocol §6.3): the dialling side opens ``ClientEventStream``
with its ``Subscription`` (the accepting side streams its events down it), streams its own
events up ``ServerEventStream``, and calls ``HealthCheck`` every ``health_s``; the accepting
side answers SERVING while that peer's event stream is open (else NOT_CONNECTED) and ends
the stream of a peer silent for ``HEALTH_TIMEOUT_S``. The link is *up* from the first SERVING.
A partner that announces ``ACCORD_LEDGER`` also gets the two ROL streams (the ledger exchange);
group streams are not opened (Accord partners need none). The link's state is its
:class:`~accord.federation.connection.LinkConnection`; this module only moves its messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from pathlib import Path

import grpc

from accord.cot.model import CotEvent
from accord.cot.outgoing import Outgoing
from accord.domain.partners import Partner, split_address
from accord.domain.ports import Exchange
from accord.domain.views import LinkView, Sample
from accord.federation.connection import FEATURES, Own, Seen, backoff_s
from accord.federation.contract import Gate, Journal
from accord.federation.file_shares import FileShares
from accord.federation.ledger_exchange import LedgerExchange
from accord.federation.link import Link
from accord.federation.outbox import OUTBOX_EVENTS, Outbox
from accord.federation.proto import fig_pb2
from accord.federation.trust import PinnedCa, TrustError, issued_by, load_pinned
from accord.store.contract import Store

log = logging.getLogger("accord.federation")

SERVICE = "com.atakmap.FederatedChannel"
HEALTH_S = 3.0  # TAK Server healthCheckIntervalSeconds
HEALTH_TIMEOUT_S = 15.0  # TAK Server drops client streams without a health check this long
# gRPC refuses messages over 4 MiB by default; a ledger catch-up or an event batch stays below
# ~2.5 MiB, this leaves room (and bounds what a partner can make us buffer).
MESSAGE_BYTES = 16 << 20
CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", MESSAGE_BYTES),
    ("grpc.max_send_message_length", MESSAGE_BYTES),
]
VERSION = fig_pb2.TakServerVersion(major=5, minor=0, patch=0, branch="accord", variant="accord")


def _same(data: bytes) -> bytes:
    return data


def _method(name: str) -> str:
    return f"/{SERVICE}/{name}"


class Federation:
    """Every partner link of this server; reports to the admin status and /metrics."""

    def __init__(
        self,
        partners: Sequence[Partner],
        *,
        exchange: Exchange,
        gate: Gate,
        journal: Journal,
        own: Own,
        cert_chain: tuple[bytes, bytes],  # our server key and certificate PEM
        base: Path,  # partner ca_file paths are relative to this
        wall_ms: Callable[[], int],
        health_s: float = HEALTH_S,
        store: Store | None = None,  # None: no store and forward
        outbox_events: int = OUTBOX_EVENTS,
        ledger_exchange: LedgerExchange | None = None,  # None: ledgers are not exchanged
        files: FileShares | None = None,  # None: files are not shared
    ) -> None:
        self.files = files
        self.ledger_exchange = ledger_exchange
        self.features = FEATURES | (fig_pb2.ACCORD_LEDGER if ledger_exchange is not None else 0)
        self._key, self._cert = cert_chain
        self._health_s = health_s
        self._base = base
        seen = Seen()
        self.outbox = (
            None if store is None else Outbox(store, journal, limit=outbox_events, wall_ms=wall_ms)
        )

        def link(partner: Partner, direction: str) -> Link:
            return Link(
                partner,
                direction,
                exchange=exchange,
                gate=gate,
                journal=journal,
                own=own,
                seen=seen,
                wall_ms=wall_ms,
                outbox=self.outbox,
                files=files,
            )

        self.own = own
        self.incoming = {p.name: link(p, "incoming") for p in partners}
        self.outgoing = {p.name: link(p, "outgoing") for p in partners if p.address}
        self._pinned: list[PinnedCa] = []
        for p in partners:
            try:
                self._pinned.append(load_pinned(p, base))
            except TrustError as exc:
                log.error("%s", exc)
                self.incoming[p.name].set_state("down", str(exc))
        self._server: grpc.aio.Server | None = None
        self._dialers: asyncio.Task[None] | None = None  # a TaskGroup: one dial loop per link
        self._closing = False  # set by close(): a dial loop ends instead of redialling
        self._writers: asyncio.Task[None] | None = None  # a TaskGroup: outbox, exchange, files
        # Told, in one line, when a task group dies of a bug (its tasks are gone with it): the
        # owner stops the server, since releasing on without the outbox would drop durably.
        self.on_failure: Callable[[str], None] | None = None

    # -- reporting ---------------------------------------------------------------------------
    def links(self) -> list[LinkView]:
        """The links in use: an incoming link of a partner we dial shows once it dialled in."""
        return [
            link.view()
            for link in (*self.outgoing.values(), *self.incoming.values())
            if link.core.in_use
        ]

    def samples(self) -> list[Sample]:
        out: list[Sample] = []
        for v in self.links():
            labels = (("partner", v.partner), ("direction", v.direction))
            values = (
                ("federation_link_up", "gauge", "1 while the link is up", v.state == "up"),
                ("federation_events_in_total", "counter", "events let in", v.events_in),
                ("federation_events_out_total", "counter", "events sent", v.events_out),
                ("federation_withheld_total", "counter", "refused by the gate", v.withheld),
                ("federation_dropped_total", "counter", "loop, duplicate, bad, full", v.dropped),
                ("federation_messages_out_total", "counter", "messages written", v.messages_out),
            )
            out += [Sample(n, k, h, float(x), labels) for n, k, h, x in values]  # type: ignore[arg-type]
        if self.outbox is not None:
            out += self.outbox.samples()
        if self.ledger_exchange is not None:
            out += self.ledger_exchange.samples()
        return out

    def redeliver(self, partner: str, event: CotEvent) -> None:
        """Offer ``event`` again to the streaming links of ``partner`` (a release delay ended);
        they ask the release gate again, as for any event."""
        for links in (self.outgoing, self.incoming):
            link = links.get(partner)
            if link is not None and link.streaming:
                link.send([Outgoing(event)])

    def share_missions(self, on_mission: Callable[[Partner, bytes], None]) -> None:
        """Take and send shared missions (announces ACCORD_MISSIONS; before :meth:`start`)."""
        self.features |= fig_pb2.ACCORD_MISSIONS
        for link in (*self.outgoing.values(), *self.incoming.values()):
            link.core.on_mission = on_mission

    def mission_links(self, partner: str) -> list[Link]:
        """The links a mission change for ``partner`` may take: streaming ones first."""
        found = [links[partner] for links in (self.outgoing, self.incoming) if partner in links]
        return sorted(found, key=lambda link: not link.streaming)

    def partner_of(self, der: bytes) -> str | None:
        """The partner whose pinned CA issued this (DER) certificate, if any."""
        ca = issued_by(ssl.DER_cert_to_PEM_cert(der).encode(), self._pinned)
        return ca.partner.name if ca is not None else None

    def pinned_pem(self) -> bytes:
        """The pinned partner CAs, PEM: what a partner-facing TLS listener trusts."""
        return b"".join(ca.pem for ca in self._pinned)

    def partner_ca(self, partner: Partner) -> bytes:
        """The partner's pinned CA, PEM (TrustError when it no longer matches its pin)."""
        return load_pinned(partner, self._base).pem

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self, bind: str, port: int, *, listen: bool = True) -> int | None:
        """Dial the partners with an address; listen for the others on ``port`` (0 = any)
        when ``listen`` and any CA is pinned. Return the port bound, or None."""
        if self.outbox is not None:
            for link in (*self.outgoing.values(), *self.incoming.values()):
                link.restore(*await self.outbox.restore(link.key))
                link.join()
        # The one place that owns the federation's tasks: two task groups, each in one task.
        loop = asyncio.get_running_loop()
        self._writers = loop.create_task(self._run_writers(), name="federation writers")
        self._dialers = loop.create_task(self._run_dialers(), name="federation dialers")
        for task in (self._writers, self._dialers):
            task.add_done_callback(self._surface)
        if not listen or not self._pinned:
            return None
        server = grpc.aio.server(options=CHANNEL_OPTIONS)
        server.add_generic_rpc_handlers((self._handlers(),))
        creds = grpc.ssl_server_credentials(
            [(self._key, self._cert)],
            root_certificates=b"".join(ca.pem for ca in self._pinned),
            require_client_auth=True,
        )
        bound = server.add_secure_port(f"{bind}:{port}", creds)
        if not bound:
            raise OSError(f"cannot listen for partners on {bind}:{port}")
        await server.start()
        self._server = server
        return bound

    def _surface(self, task: asyncio.Task[None]) -> None:
        """A federation task group that failed says so, and tells the owner."""
        if task.cancelled() or task.exception() is None:
            return
        log.error("federation: %s failed", task.get_name(), exc_info=task.exception())
        if self.on_failure is not None:
            self.on_failure(f"federation: {task.get_name()} failed: {task.exception()!r}")

    async def _run_writers(self) -> None:
        """The outbox, the ledger exchange and the package fetches, until :meth:`close` stops
        them (the first two flush; fetches under way are cancelled)."""
        async with asyncio.TaskGroup() as group:
            if self.outbox is not None:
                group.create_task(self.outbox.run(), name="federation outbox")
            if self.ledger_exchange is not None:
                group.create_task(self.ledger_exchange.run(), name="ledger exchange")
            if self.files is not None:
                group.create_task(self.files.run(), name="partner package fetches")

    async def _run_dialers(self) -> None:
        """One dial loop per partner with an address, until cancelled."""
        async with asyncio.TaskGroup() as group:
            for link in self.outgoing.values():
                group.create_task(self._dial(link), name=f"dial {link.key}")

    async def close(self) -> None:
        self._closing = True
        if self._dialers is not None:
            self._dialers.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._dialers
            self._dialers = None
        for link in (*self.incoming.values(), *self.outgoing.values()):
            link.leave()
        if self.outbox is not None:
            self.outbox.stop()
        if self.ledger_exchange is not None:
            self.ledger_exchange.stop()
        if self.files is not None:
            self.files.stop()
        if self._writers is not None:
            await self._writers
            self._writers = None
        if self._server is not None:
            await self._server.stop(1.0)
            self._server = None

    # -- accepting ---------------------------------------------------------------------------
    def _handlers(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "ClientEventStream": grpc.unary_stream_rpc_method_handler(
                    self._client_event_stream,
                    request_deserializer=fig_pb2.Subscription.FromString,
                    response_serializer=_same,
                ),
                "ServerEventStream": grpc.stream_unary_rpc_method_handler(
                    self._server_event_stream,
                    request_deserializer=_same,
                    response_serializer=fig_pb2.Subscription.SerializeToString,
                ),
                "HealthCheck": grpc.unary_unary_rpc_method_handler(
                    self._health_check,
                    request_deserializer=fig_pb2.ClientHealth.FromString,
                    response_serializer=fig_pb2.ServerHealth.SerializeToString,
                ),
                "ClientROLStream": grpc.unary_stream_rpc_method_handler(
                    self._client_rol_stream,
                    request_deserializer=fig_pb2.Subscription.FromString,
                    response_serializer=_same,
                ),
                "ServerROLStream": grpc.stream_unary_rpc_method_handler(
                    self._server_rol_stream,
                    request_deserializer=_same,
                    response_serializer=fig_pb2.Subscription.SerializeToString,
                ),
            },
        )

    async def _peer(self, context: grpc.aio.ServicerContext[object, object]) -> Link:
        """The incoming link of the partner whose pinned CA issued the caller's certificate."""
        certs = list(context.auth_context().get("x509_pem_cert", ()))
        ca = issued_by(certs[0], self._pinned) if certs else None
        if ca is None:
            log.warning(
                "refused a federation call from %s: not issued by a pinned CA", context.peer()
            )
            await context.abort(
                grpc.StatusCode.PERMISSION_DENIED, "certificate not from a pinned partner CA"
            )
        assert ca is not None  # abort raises
        return self.incoming[ca.partner.name]  # fmt: skip

    def _subscription(self) -> fig_pb2.Subscription:
        sub = fig_pb2.Subscription(version=VERSION, accordFeatures=self.features)
        sub.identity.name, sub.identity.uid = self.own.name, self.own.server_id
        sub.identity.serverId = self.own.server_id
        sub.identity.type = fig_pb2.Identity.FEDERATION_TAK_SERVER
        return sub

    async def _client_event_stream(
        self, request: fig_pb2.Subscription, context: grpc.aio.ServicerContext[object, object]
    ) -> AsyncIterator[bytes]:
        link = await self._peer(context)
        loop = asyncio.get_running_loop()
        link.open(request.accordFeatures)
        link.set_state("up")
        stream = link.core.stream
        try:
            while True:
                if link.core.health_expired(loop.time(), HEALTH_TIMEOUT_S):
                    silent = loop.time() - link.core.last_health_s
                    link.set_state("down", f"no health check for {silent:.0f} s")
                    return
                try:
                    async with asyncio.timeout(HEALTH_TIMEOUT_S / 3):
                        messages = await link.next_messages(stream)  # safe to cancel
                except TimeoutError:
                    continue
                if messages is None:
                    return
                for message in messages:
                    yield message
        finally:
            if link.streaming and link.core.stream == stream:
                link.close("partner stream ended")
                link.set_state("down", "partner closed its event stream")

    async def _server_event_stream(
        self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[object, object]
    ) -> fig_pb2.Subscription:
        link = await self._peer(context)
        async for frame in requests:
            link.receive(frame)
        return self._subscription()

    async def _health_check(
        self, request: fig_pb2.ClientHealth, context: grpc.aio.ServicerContext[object, object]
    ) -> fig_pb2.ServerHealth:
        link = await self._peer(context)
        link.core.health(asyncio.get_running_loop().time())
        link.acknowledged(request.accordAck)
        status = (
            fig_pb2.ServerHealth.SERVING if link.streaming else fig_pb2.ServerHealth.NOT_CONNECTED
        )
        return fig_pb2.ServerHealth(status=status, accordAck=link.ack, accordFeatures=self.features)

    async def _client_rol_stream(
        self, request: fig_pb2.Subscription, context: grpc.aio.ServicerContext[object, object]
    ) -> AsyncIterator[bytes]:
        """The dialling partner's ROL stream down: our ledger messages for it."""
        link = await self._peer(context)
        ledgers = self.ledger_exchange
        if ledgers is None or not request.accordFeatures & fig_pb2.ACCORD_LEDGER:
            return
        link.rol_open()
        ledgers.opened(link.partner.name, link.rol_send)
        try:
            async for message in link.rol_messages():
                yield message
        finally:
            link.rol_close()
            ledgers.closed(link.partner.name, link.rol_send)

    async def _server_rol_stream(
        self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[object, object]
    ) -> fig_pb2.Subscription:
        link = await self._peer(context)
        async for message in requests:
            if self.ledger_exchange is not None:
                await self.ledger_exchange.receive(link.partner.name, message)
        return self._subscription()

    # -- dialling ----------------------------------------------------------------------------
    async def _dial(self, link: Link) -> None:
        """Keep the link to ``link.partner`` up: connect, run, back off, again."""
        attempt = 0
        while True:
            link.set_state("connecting")
            try:
                if await self._connect(link):
                    attempt = 0
            except* TrustError as group:
                link.set_state("down", str(group.exceptions[0]))
            except* grpc.aio.AioRpcError as group:
                rpc = group.exceptions[0]
                assert isinstance(rpc, grpc.aio.AioRpcError)
                link.set_state("down", f"{rpc.code().name}: {rpc.details()}")
            except* OSError as group:
                link.set_state("down", str(group.exceptions[0]))
            except* Exception as group:  # a bug: logged with its stack, and the link redialled
                exc = group.exceptions[0]
                log.error("partner %s: link failed: %r; redialling", link.key, exc, exc_info=exc)
                link.set_state("down", f"internal error: {exc!r}")
            finally:
                link.close("link lost")
            if link.state != "down":
                link.set_state("down", link.last_error or "stream ended")
            if self._closing:
                # Cancelled by close() as a stream failed: the connection's task group raised
                # the failure and dropped the cancellation (and Python 3.11 can leave a task's
                # cancelling() count stale, so that cannot tell): end here, not redial.
                return
            await asyncio.sleep(backoff_s(attempt, random.random))
            attempt += 1

    async def _connect(self, link: Link) -> bool:
        """One connection; returns when it ends (True if it had come up)."""
        partner = link.partner
        ca = load_pinned(partner, self._base)
        host, port = split_address(partner.address)
        creds = grpc.ssl_channel_credentials(ca.pem, self._key, self._cert)
        came_up = False
        target = f"{host}:{port}"
        async with grpc.aio.secure_channel(target, creds, options=CHANNEL_OPTIONS) as channel:
            down = channel.unary_stream(
                _method("ClientEventStream"),
                request_serializer=fig_pb2.Subscription.SerializeToString,
                response_deserializer=_same,
            )(self._subscription())
            up = channel.stream_unary(
                _method("ServerEventStream"),
                request_serializer=_same,
                response_deserializer=fig_pb2.Subscription.FromString,
            )
            health = channel.unary_unary(
                _method("HealthCheck"),
                request_serializer=fig_pb2.ClientHealth.SerializeToString,
                response_deserializer=fig_pb2.ServerHealth.FromString,
            )
            # The first answer says what the partner understands (batches, acknowledgements)
            # before anything is sent; a TAK Server says nothing and gets the plain protocol.
            first = await health(
                fig_pb2.ClientHealth(status=fig_pb2.ClientHealth.SERVING, accordAck=link.ack),
                timeout=max(self._health_s, 1.0) * 3,
            )
            link.acknowledged(first.accordAck)
            link.open(first.accordFeatures)
            up_call = up(link.frames())

            async def receive() -> None:
                async for frame in down:
                    link.receive(frame)

            async def keep_alive() -> None:
                nonlocal came_up
                while True:
                    ping = fig_pb2.ClientHealth(
                        status=fig_pb2.ClientHealth.SERVING, accordAck=link.ack
                    )
                    reply = await health(ping, timeout=max(self._health_s, 1.0) * 3)
                    link.core.peer_features = reply.accordFeatures
                    link.acknowledged(reply.accordAck)
                    if reply.status == fig_pb2.ServerHealth.SERVING:
                        came_up = True
                        link.set_state("up")
                        await asyncio.sleep(self._health_s)
                    else:  # its side of our stream is not there yet
                        await asyncio.sleep(min(0.1, self._health_s))

            rol = self._rol_streams(channel, link)
            try:
                async with asyncio.TaskGroup() as group:
                    for stream in (receive(), keep_alive(), up_call):
                        group.create_task(_ends_link(stream))
                    for task in rol:
                        group.create_task(task)
            except* _StreamEnded:
                link.last_error = "partner ended the stream"
            finally:
                if rol and self.ledger_exchange is not None:
                    link.rol_close()
                    self.ledger_exchange.closed(link.partner.name, link.rol_send)
        return came_up

    def _rol_streams(
        self, channel: grpc.aio.Channel, link: Link
    ) -> list[Coroutine[object, object, None]]:
        """The ROL streams of a partner that exchanges ledgers: ours up, its down. They are
        not the link: a failure there is logged and the events keep flowing."""
        ledgers = self.ledger_exchange
        if ledgers is None or not link.peer_features & fig_pb2.ACCORD_LEDGER:
            return []
        name = link.partner.name
        down = channel.unary_stream(
            _method("ClientROLStream"),
            request_serializer=fig_pb2.Subscription.SerializeToString,
            response_deserializer=_same,
        )(self._subscription())
        up = channel.stream_unary(
            _method("ServerROLStream"),
            request_serializer=_same,
            response_deserializer=fig_pb2.Subscription.FromString,
        )
        link.rol_open()
        ledgers.opened(name, link.rol_send)
        up_call = up(link.rol_messages())

        async def receive() -> None:
            try:
                async for message in down:
                    await ledgers.receive(name, message)
            except grpc.aio.AioRpcError as exc:
                log.warning("partner %s: ledger stream: %s", name, exc.code().name)

        async def send() -> None:
            try:
                await up_call
            except grpc.aio.AioRpcError as exc:
                log.warning("partner %s: ledger stream: %s", name, exc.code().name)

        return [receive(), send()]


class _StreamEnded(Exception):
    """One of a connection's event streams ended: the connection is over."""


async def _ends_link(stream: Awaitable[object]) -> None:
    await stream
    raise _StreamEnded
