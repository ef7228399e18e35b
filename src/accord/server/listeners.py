"""TCP and TLS streaming listeners.

The TLS listener accepts sockets itself and runs each handshake with
``loop.connect_accepted_socket`` so that a client without a certificate, with a foreign one,
or one that stalls is logged and counted, instead of vanishing inside the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import cast

from accord.domain.groups import Membership
from accord.identity.peer import (
    CertIdentity,
    check_client_certificate,
    identity_from_peercert,
    membership_for,
)
from accord.server.census import Census
from accord.server.hub import Hub
from accord.server.session import Identify, SessionSettings, StreamSession

log = logging.getLogger("accord.listen")
BACKLOG = 4096
# Admission (issue 13 §1): a TLS handshake costs the server more than routing a hundred SAs, and
# each newcomer brings a replay. Past this many handshakes at once, or while this many sessions
# are still catching up on SAs, an accepted connection waits (holding only its socket) before its
# handshake starts; admitted as the server gets through the work.
MAX_HANDSHAKES = 256
MAX_CATCHING_UP = 1000


def server_tls_context(cert: Path, key: Path, ca: Path, crl: Path) -> ssl.SSLContext:
    """Mutual TLS: present our certificate, require one from Accord's CA that is not revoked."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2  # TAK Server default: TLSv1.2,TLSv1.3
    ctx.load_cert_chain(cert, key)
    ctx.load_verify_locations(cafile=ca)
    ctx.load_verify_locations(cafile=crl)
    ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


class _Refused(asyncio.Protocol):
    """Closes a connection over the limit straight away."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        cast(asyncio.Transport, transport).abort()


class TcpListener:
    """Plain TCP streaming (TAK Server's ``stcp``): a session per connection."""

    def __init__(
        self,
        hub: Hub,
        settings: SessionSettings,
        membership: Membership,
        max_connections: int,
        census: Census,
    ) -> None:
        self.hub = hub
        self.settings = settings
        self.max_connections = max_connections
        self.census = census
        census.listen(settings.transport)
        self._identify: Identify = lambda transport: (membership, None)

    def protocol(self) -> asyncio.Protocol:
        if self.hub.connections >= self.max_connections:
            self.hub.counters.connections_refused += 1
            log.warning("refusing connection: %d connections open", self.hub.connections)
            return _Refused()
        return StreamSession(self.hub, self.settings, self._identify, self.census)

    async def start(self, bind: str, port: int, *, reuse_port: bool = False) -> asyncio.Server:
        """``reuse_port``: share the port with the other workers of ``serve --workers``."""
        loop = asyncio.get_running_loop()
        return await loop.create_server(
            self.protocol, bind, port, backlog=BACKLOG, reuse_port=reuse_port or None
        )


class TlsListener:
    """TLS streaming with client certificates. A client's groups come from its user record
    (by CN), the groups file, its certificate's OU, or the listener default, in that order."""

    def __init__(
        self,
        hub: Hub,
        settings: SessionSettings,
        context: ssl.SSLContext,
        groups_map: Mapping[str, Membership],
        default: Membership,
        max_connections: int,
        handshake_timeout_s: float,
        census: Census,
    ) -> None:
        self.hub = hub
        self.census = census
        census.listen(settings.transport)
        self.settings = settings
        self.context = context
        self.groups_map = groups_map
        self.default = default
        self.max_connections = max_connections
        self.handshake_timeout_s = handshake_timeout_s
        self._handshakes: set[asyncio.Task[None]] = set()
        self._admitting = asyncio.Semaphore(MAX_HANDSHAKES)
        self._sessions: weakref.WeakSet[StreamSession] = weakref.WeakSet()
        self._sock: socket.socket | None = None

    def identify(self, transport: asyncio.BaseTransport) -> tuple[Membership, CertIdentity]:
        ssl_object = transport.get_extra_info("ssl_object")
        check_client_certificate(ssl_object.getpeercert(binary_form=True) if ssl_object else None)
        identity = identity_from_peercert(transport.get_extra_info("peercert"))
        return membership_for(identity, self.groups_map, self.default), identity

    def regroup(self, groups_map: Mapping[str, Membership]) -> int:
        """Apply changed user groups to live sessions; each one moved is told (``t-x-g-c``)."""
        self.groups_map = groups_map
        moved = 0
        for session in list(self._sessions):
            if session.identity is None or session.party is None:
                continue
            membership = membership_for(session.identity, groups_map, self.default)
            if membership != session.party.membership:
                self.hub.regroup(session.party, membership)
                moved += 1
        return moved

    def session(self) -> StreamSession:
        session = StreamSession(self.hub, self.settings, self.identify, self.census)
        self._sessions.add(session)
        return session

    def reload(self, context: ssl.SSLContext, revoked: frozenset[str]) -> int:
        """Use a new context (new CRL) for new handshakes; close live revoked sessions."""
        self.context = context
        closed = 0
        for session in list(self._sessions):
            peer = session.identity
            if peer is not None and peer.serial in revoked:
                log.warning("closing %s: certificate %s revoked", peer.cn, peer.serial)
                session.close("certificate revoked", abort=True)
                closed += 1
        return closed

    def listen(self, bind: str, port: int, *, reuse_port: bool = False) -> int:
        """Bind; return the bound port. :meth:`accept` then serves it (its owner runs it).
        ``reuse_port``: share the port with the other workers of ``serve --workers``."""
        sock = socket.create_server((bind, port), backlog=BACKLOG, reuse_port=reuse_port)
        sock.setblocking(False)
        self._sock = sock
        return int(sock.getsockname()[1])

    async def accept(self) -> None:
        """Accept until cancelled; each handshake is a task of this loop's group, so
        cancelling the loop cancels them. A handshake that fails unexpectedly is logged and
        counted on its own (:meth:`_handshake_admitted`): it never ends the group, which would
        cancel every other handshake in flight."""
        sock = self._sock
        if sock is None:
            raise RuntimeError("TlsListener.accept before listen")
        loop = asyncio.get_running_loop()
        async with asyncio.TaskGroup() as handshakes:
            while True:
                try:
                    conn, _ = await loop.sock_accept(sock)
                except OSError as exc:  # EMFILE and friends: back off, keep serving
                    log.error("accept failed on TLS port: %s", exc)
                    await asyncio.sleep(0.1)
                    continue
                if self.hub.connections + len(self._handshakes) >= self.max_connections:
                    self.hub.counters.connections_refused += 1
                    log.warning("refusing TLS connection: %d sessions open", self.hub.session_count)
                    conn.close()
                    continue
                task = handshakes.create_task(self._handshake(conn))
                self._handshakes.add(task)
                task.add_done_callback(self._handshakes.discard)

    async def _handshake(self, conn: socket.socket) -> None:
        try:
            peer = conn.getpeername()
        except OSError:
            conn.close()
            return
        loop = asyncio.get_running_loop()
        # Accepted at once (a connection left in the kernel's backlog past its length would be
        # retried by the client after seconds), handshaken when admitted.
        async with self._admitting:
            try:
                await self.hub.admit(MAX_CATCHING_UP)
            except asyncio.CancelledError:  # the listener closes while it waits
                conn.close()
                raise
            await self._handshake_admitted(loop, conn, peer)

    async def _handshake_admitted(
        self, loop: asyncio.AbstractEventLoop, conn: socket.socket, peer: tuple[str, int]
    ) -> None:
        try:
            await loop.connect_accepted_socket(
                self.session,
                conn,
                ssl=self.context,
                ssl_handshake_timeout=self.handshake_timeout_s,
            )
        except (OSError, TimeoutError, ConnectionError) as exc:  # ssl.SSLError is an OSError
            self.hub.counters.tls_handshake_failed += 1
            log.warning("TLS handshake failed peer=%s:%s: %s", peer[0], peer[1], _reason(exc))
            conn.close()
        except Exception:  # a bug in one connection's setup: that connection only
            self.hub.counters.tls_handshake_failed += 1
            log.exception("TLS connection setup failed peer=%s:%s", peer[0], peer[1])
            conn.close()

    def close(self) -> None:
        """Release the port (the owner of :meth:`accept` cancels it first)."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"client certificate refused: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)
    if isinstance(exc, TimeoutError):
        return "handshake timed out"
    return str(exc) or type(exc).__name__
