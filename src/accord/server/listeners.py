"""TCP and TLS streaming listeners.

TLS handshakes are done by Accord (``loop.start_tls``) rather than by the server socket, so
that a client without a certificate, with a foreign one, or one that stalls is logged and
counted instead of disappearing into the event loop's default handler.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import cast

from accord.domain.groups import Membership
from accord.identity.peer import identity_from_peercert, membership_for
from accord.server.hub import Hub
from accord.server.session import SessionSettings, StreamSession

log = logging.getLogger("accord.listen")
BACKLOG = 4096


def server_tls_context(cert: Path, key: Path, ca: Path) -> ssl.SSLContext:
    """Mutual TLS: present our certificate, require and verify one from Accord's CA."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2  # TAK Server default: TLSv1.2,TLSv1.3
    ctx.load_cert_chain(cert, key)
    ctx.load_verify_locations(cafile=ca)
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


class _Refused(asyncio.Protocol):
    """Closes a connection over the limit straight away."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        cast(asyncio.Transport, transport).abort()


class _TlsHandshake(asyncio.Protocol):
    """Holds a raw connection while its TLS handshake runs, then hands it to a session."""

    def __init__(self, listener: TlsListener) -> None:
        self.listener = listener
        self.task: asyncio.Task[None] | None = None
        # Application bytes that arrive between the end of the handshake and the hand-over.
        self.early: list[bytes] = []
        self.eof = False
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)
        transport.pause_reading()  # the ClientHello must reach the TLS layer, not us
        self.task = asyncio.get_running_loop().create_task(self.listener.handshake(transport, self))
        self.listener.pending.add(self.task)
        self.task.add_done_callback(self.listener.pending.discard)

    def data_received(self, data: bytes) -> None:
        self.early.append(data)

    def eof_received(self) -> bool:
        self.eof = True
        return True  # keep the transport open until the session has seen the data

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True


class TcpListener:
    def __init__(
        self, hub: Hub, settings: SessionSettings, membership: Membership, max_connections: int
    ) -> None:
        self.hub = hub
        self.settings = settings
        self.membership = membership
        self.max_connections = max_connections

    def protocol(self) -> asyncio.Protocol:
        if self.hub.session_count >= self.max_connections:
            self.hub.counters.connections_refused += 1
            log.warning("refusing connection: %d sessions open", self.hub.session_count)
            return _Refused()
        return StreamSession(self.hub, self.settings, self.membership)


class TlsListener:
    def __init__(
        self,
        hub: Hub,
        settings: SessionSettings,
        context: ssl.SSLContext,
        groups_map: Mapping[str, Membership],
        default: Membership,
        max_connections: int,
        handshake_timeout_s: float,
    ) -> None:
        self.hub = hub
        self.settings = settings
        self.context = context
        self.groups_map = groups_map
        self.default = default
        self.max_connections = max_connections
        self.handshake_timeout_s = handshake_timeout_s
        self.pending: set[asyncio.Task[None]] = set()

    def protocol(self) -> asyncio.Protocol:
        if self.hub.session_count + len(self.pending) >= self.max_connections:
            self.hub.counters.connections_refused += 1
            log.warning("refusing TLS connection: %d sessions open", self.hub.session_count)
            return _Refused()
        return _TlsHandshake(self)

    async def handshake(self, raw: asyncio.Transport, holder: _TlsHandshake) -> None:
        peer = raw.get_extra_info("peername")
        loop = asyncio.get_running_loop()
        try:
            tls = await loop.start_tls(
                raw,
                holder,
                self.context,
                server_side=True,
                ssl_handshake_timeout=self.handshake_timeout_s,
            )
        except (ssl.SSLError, OSError, TimeoutError, ConnectionError) as exc:
            self.hub.counters.tls_handshake_failed += 1
            log.warning("TLS handshake failed peer=%s: %s", _label(peer), _reason(exc))
            raw.abort()
            return
        if tls is None:  # the peer went away during the handshake
            self.hub.counters.tls_handshake_failed += 1
            raw.abort()
            return
        if holder.lost or tls.is_closing():
            return
        identity = identity_from_peercert(tls.get_extra_info("peercert"))
        membership = membership_for(identity, self.groups_map, self.default)
        session = StreamSession(self.hub, self.settings, membership, who=identity.cn)
        tls.set_protocol(session)
        session.connection_made(tls)
        for data in holder.early:
            session.data_received(data)
        if holder.eof and not session.eof_received():
            tls.close()


def _label(peer: object) -> str:
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)
    if isinstance(exc, TimeoutError):
        return "handshake timed out"
    return str(exc) or type(exc).__name__


ProtocolFactory = Callable[[], asyncio.Protocol]
