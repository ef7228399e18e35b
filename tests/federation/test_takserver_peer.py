"""A partner that speaks only the official federation v2 protocol (as a TAK Server does).

The peer here is a bare ``FederatedChannel`` written against the generated stubs, with none of
Accord's extensions: it announces no features, sends no sequence numbers and never
acknowledges. Accord must give it the plain protocol (one event per message), take its events,
and not keep an ever-growing outbox for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import pytest

from accord.domain.metrics import Counters
from accord.domain.partners import Partner
from accord.federation.connection import Own, Seen
from accord.federation.link import Link
from accord.federation.proto import fig_pb2
from accord.identity.pki import PkiPaths, ensure_federation_certificate
from accord.server.hub import Hub
from tests.e2e.clients import marker, new_uid
from tests.federation.test_link_e2e import Org, client, orgs, until, wait_up

__all__ = ["orgs"]  # the fixture

pytestmark = pytest.mark.timeout(60)

SERVICE = "/com.atakmap.FederatedChannel/"
BURST = 150


def _ca(org: Org) -> bytes:
    return Path(org.ca_file).read_bytes()


def _credentials(org: Org) -> tuple[bytes, bytes]:
    paths = PkiPaths(org.data_dir / "pki")
    ensure_federation_certificate(paths, ("localhost", "127.0.0.1"), dt.datetime.now(dt.UTC))
    return paths.federation_key.read_bytes(), paths.federation_cert.read_bytes()


def _subscription() -> fig_pb2.Subscription:
    sub = fig_pb2.Subscription(version=fig_pb2.TakServerVersion(major=5, minor=2))
    sub.identity.name, sub.identity.serverId = "tak", "takserver-1"
    sub.identity.type = fig_pb2.Identity.FEDERATION_TAK_SERVER
    return sub


def _tak_event(uid: str) -> fig_pb2.FederatedEvent:
    now = int(time.time() * 1000)
    msg = fig_pb2.FederatedEvent()
    g = msg.event
    g.sendTime, g.startTime, g.staleTime = now, now, now + 60_000
    g.lat, g.lon, g.hae, g.ce, g.le = 5.0, 6.0, 0.0, 10.0, 10.0
    g.uid, g.type, g.coordSource = uid, "a-f-G-U-C", "m-g"
    g.other = '<detail><contact callsign="tak-user"/></detail>'
    msg.federateProvenance.add(federationServerId="takserver-1", federationServerName="tak")
    return msg


def _plain(message: bytes) -> fig_pb2.FederatedEvent:
    """One stream message as a TAK Server reads it: exactly one event, no extension fields."""
    msg = fig_pb2.FederatedEvent.FromString(message)
    assert msg.HasField("event")
    assert not msg.accordBatch
    return msg


@contextlib.asynccontextmanager
async def dialled_in(tak: Org, into: Org) -> AsyncIterator[tuple[grpc.aio.Channel, Any]]:
    """``tak`` dials ``into`` as a bare TAK Server: its subscription (the stream of what it is
    sent), then health checks until the link is SERVING. Yields (channel, that stream)."""
    key, cert = _credentials(tak)
    creds = grpc.ssl_channel_credentials(_ca(into), key, cert)
    async with grpc.aio.secure_channel(f"127.0.0.1:{into.port}", creds) as channel:
        down = channel.unary_stream(
            SERVICE + "ClientEventStream",
            request_serializer=fig_pb2.Subscription.SerializeToString,
            response_deserializer=lambda data: data,
        )(_subscription())
        health = channel.unary_unary(
            SERVICE + "HealthCheck",
            request_serializer=fig_pb2.ClientHealth.SerializeToString,
            response_deserializer=fig_pb2.ServerHealth.FromString,
        )
        async with asyncio.timeout(10):
            while (await health(fig_pb2.ClientHealth(status=1))).status != 1:
                await asyncio.sleep(0.05)
        yield channel, down


async def test_a_tak_server_dialling_in_gets_one_event_per_message_and_no_outbox(
    orgs: Any,
) -> None:
    make, launch = orgs
    b, tak = make("ORG-B"), make("TAKSRV")
    await launch(b, tak.partner())
    assert b.running
    async with dialled_in(tak, b) as (channel, down):
        link = b.link("TAKSRV")
        assert link.view().extensions == ()
        assert not link.durable

        bob = await client(b.running)
        sent = [new_uid("MARK") for _ in range(BURST)]
        for uid in sent:
            await bob.send(marker(uid))
        got: list[str] = []
        async with asyncio.timeout(15):
            async for message in down:
                got.append(_plain(message).event.uid)
                if len(got) == BURST:
                    break
        assert got == sent
        assert link.view().messages_out == BURST

        # Its events come in without sequence numbers, marked as the partner's.
        async def one() -> AsyncIterator[bytes]:
            yield _tak_event("tak-uid-1").SerializeToString()
            await until(lambda: link.events_in >= 1)  # then the stream may end

        up = channel.stream_unary(
            SERVICE + "ServerEventStream",
            request_serializer=lambda data: data,
            response_deserializer=fig_pb2.Subscription.FromString,
        )
        call = up(one())
        heard = await bob.recv_until(lambda e: e.uid == "tak-uid-1")
        assert 'callsign="[TAKSRV] tak-user"' in heard.detail.xml
        await call
        down.cancel()
    fed = b.running.federation
    assert fed is not None
    assert fed.outbox is not None
    await fed.outbox.flush()
    assert b.running.store is not None
    assert await b.running.store.outbox_count(link.key) == 0


class TakServer:
    """The accepting side of a bare FederatedChannel: records what it is sent, never acks."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []
        self.arrived = asyncio.Event()
        self.server: grpc.aio.Server | None = None

    async def start(self, key: bytes, cert: bytes, partner_ca: bytes) -> int:
        async def client_events(
            request: fig_pb2.Subscription, context: Any
        ) -> AsyncIterator[bytes]:
            await asyncio.Event().wait()  # nothing to send; held open like a quiet server
            yield b""  # pragma: no cover

        async def server_events(requests: AsyncIterator[bytes], context: Any) -> bytes:
            async for message in requests:
                self.messages.append(message)
                self.arrived.set()
            return _subscription().SerializeToString()

        async def health_check(request: fig_pb2.ClientHealth, context: Any) -> bytes:
            return fig_pb2.ServerHealth(status=fig_pb2.ServerHealth.SERVING).SerializeToString()

        handlers = grpc.method_handlers_generic_handler(
            "com.atakmap.FederatedChannel",
            {
                "ClientEventStream": grpc.unary_stream_rpc_method_handler(
                    client_events,
                    request_deserializer=fig_pb2.Subscription.FromString,
                    response_serializer=lambda data: data,
                ),
                "ServerEventStream": grpc.stream_unary_rpc_method_handler(
                    server_events,
                    request_deserializer=lambda data: data,
                    response_serializer=lambda data: data,
                ),
                "HealthCheck": grpc.unary_unary_rpc_method_handler(
                    health_check,
                    request_deserializer=fig_pb2.ClientHealth.FromString,
                    response_serializer=lambda data: data,
                ),
            },
        )
        self.server = grpc.aio.server()
        self.server.add_generic_rpc_handlers((handlers,))
        creds = grpc.ssl_server_credentials(
            [(key, cert)], root_certificates=partner_ca, require_client_auth=True
        )
        port = self.server.add_secure_port("127.0.0.1:0", creds)
        await self.server.start()
        return port

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop(0.1)


async def test_dialling_a_tak_server_sends_the_plain_protocol_once_and_trims_the_outbox(
    orgs: Any,
) -> None:
    make, launch = orgs
    a, tak = make("ORG-A"), make("TAKSRV")
    server = TakServer()
    key, cert = _credentials(tak)
    port = await server.start(key, cert, _ca(a))
    try:
        target = replace(tak.partner(), address=f"127.0.0.1:{port}")
        await launch(a, target)
        assert a.running
        await wait_up(a, "TAKSRV")
        link = a.link("TAKSRV")
        assert link.view().extensions == ()
        alice = await client(a.running)
        sent = [new_uid("MARK") for _ in range(BURST)]
        for uid in sent:
            await alice.send(marker(uid))
        async with asyncio.timeout(15):
            while len(server.messages) < BURST:
                server.arrived.clear()
                await server.arrived.wait()
        assert [_plain(m).event.uid for m in server.messages] == sent
        assert all(_plain(m).accordSeq for m in server.messages)  # skipped by a TAK Server
        # Nothing stays queued for a partner that cannot acknowledge: a reconnect resends
        # nothing it already has.
        fed = a.running.federation
        assert fed is not None
        assert fed.outbox is not None
        assert a.running.store is not None
        async with asyncio.timeout(5):
            while await a.running.store.outbox_count(link.key):
                await fed.outbox.flush()
                await asyncio.sleep(0.05)
    finally:
        await server.stop()


def test_a_contact_presence_note_without_an_event_is_not_a_bad_message() -> None:
    hub = Hub(Counters(), wall_ms=lambda: 0, new_uid=lambda: "u")

    class Gate:
        def release(self, *args: Any) -> None:
            return None

        def inbound(self, event: Any, *args: Any) -> Any:
            return event

    class Journal:
        def released(self, *args: Any) -> None: ...
        def received(self, *args: Any) -> None: ...
        def dropped(self, *args: Any) -> None: ...

    partner = Partner(name="TAKSRV", ca_sha256="ab" * 32)
    link = Link(
        partner, "incoming", exchange=hub, gate=Gate(), journal=Journal(),  # type: ignore[arg-type]
        own=Own("accord-x", "x"), seen=Seen(), wall_ms=lambda: 0,
    )  # fmt: skip
    note = fig_pb2.FederatedEvent()
    note.contact.operation, note.contact.uid = fig_pb2.CREATE, "tak-uid-2"
    link.receive(note.SerializeToString())
    assert (link.dropped, link.events_in) == (0, 0)
    link.receive(b"\xff\xff not protobuf")
    assert link.dropped == 1
