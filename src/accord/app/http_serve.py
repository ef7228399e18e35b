"""Serving HTTP in Accord's loop: uvicorn on a listener, deadlines on every connection, the
HTTPS port's TLS context that follows the CRL, and the shutdown that does not wait on a client.

Every HTTP port (8443, 8446, 8080, metrics, the partners' files port) is served by
:func:`serve_http`, whose connections have deadlines (:func:`with_deadlines`): the headers of a
request must arrive within ``http_header_timeout_s`` of its first byte (or of the connection),
and a body may pause no longer than ``http_body_timeout_s``; a connection that misses one gets
a 408 and is closed (slowloris). The HTTPS port's TLS context follows the CRL
(:class:`CurrentTls`): a revoked certificate is refused at the handshake, as on 8089.
"""

import asyncio
import logging
import socket
import ssl
from contextlib import AsyncExitStack
from typing import Any

import h11
import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from accord.app.running import Running, listen_error
from accord.config import Config
from accord.domain.metrics import Counters
from accord.identity.ca import PkiPaths
from accord.server.watch import Identities, tls_context

log = logging.getLogger("accord")
# A WebSocket message larger than this closes its connection (1009); below it, the feed drops
# and counts what is too long for it (accord.api.web_feed.MAX_CLIENT_MESSAGE_BYTES).
WS_MAX_MESSAGE_BYTES = 1 << 20
# The answer to a request too slow to arrive; the connection closes after it.
REQUEST_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain\r\nconnection: close\r\n"
    b"content-length: 33\r\n\r\nthe request was too slow to come\n"
)


def with_deadlines(
    base: type[H11Protocol],
    header_timeout_s: float,
    body_timeout_s: float,
    counters: Counters,
) -> type[H11Protocol]:
    """``base`` with slowloris deadlines: a request's headers must be complete within
    ``header_timeout_s`` of its first byte (of the connection for the first request), and
    its body may go ``body_timeout_s`` without a byte (unless the server is the one not
    reading). Idle keep-alive connections are uvicorn's (``timeout_keep_alive``)."""

    class Deadlines(base):  # type: ignore[valid-type,misc]
        _accord_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:
            super().connection_made(transport)
            self._accord_arm(header_timeout_s, "headers")

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            state = self.conn.their_state
            if state is h11.SEND_BODY:
                self._accord_arm(body_timeout_s, "body")  # each byte restarts the wait
            elif state is h11.IDLE:
                if self._accord_timer is None:
                    self._accord_arm(header_timeout_s, "headers")
            else:
                self._accord_cancel()  # a whole request: the server's turn, not timed here

        def on_response_complete(self) -> None:
            self._accord_cancel()
            super().on_response_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._accord_cancel()
            super().connection_lost(exc)

        def _accord_arm(self, delay_s: float, phase: str) -> None:
            self._accord_cancel()
            loop = asyncio.get_running_loop()
            self._accord_timer = loop.call_later(delay_s, self._accord_expired, delay_s, phase)

        def _accord_cancel(self) -> None:
            if self._accord_timer is not None:
                self._accord_timer.cancel()
                self._accord_timer = None

        def _accord_expired(self, delay_s: float, phase: str) -> None:
            self._accord_timer = None
            if self.transport.is_closing():
                return
            if phase == "body" and self.flow.read_paused:
                self._accord_arm(delay_s, phase)  # the app is behind, not the client
                return
            counters.http_timed_out += 1
            peer = f"{self.client[0]}:{self.client[1]}" if self.client else "-"
            log.info(
                "closing HTTP connection from %s: %s not received in %.1f s", peer, phase, delay_s
            )
            if self.conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                self.transport.write(REQUEST_TIMEOUT_RESPONSE)
            self.transport.close()

    Deadlines.__name__ = f"Deadlines{base.__name__}"
    return Deadlines


class CurrentTls:
    """The HTTPS port's TLS context, kept current with the CRL as the streaming port's is.

    uvicorn holds one context for its listening socket; its SNI callback (which OpenSSL calls
    for every ClientHello, with or without a server name) hands each handshake the context
    built from the newest CRL, so certificates revoked while the server runs are refused at
    the handshake, not only by the API's caller check.
    """

    def __init__(self, pki: PkiPaths, identities: Identities) -> None:
        self.pki = pki
        self.identities = identities
        self.outer = tls_context(pki)
        self.outer.sni_callback = self._pick
        self._current = self.outer
        self._seen = identities.revoked

    def _pick(self, tls: ssl.SSLObject, name: str | None, context: ssl.SSLContext) -> None:
        # The watcher replaces ``identities.revoked`` whenever the CRL file changed.
        if self.identities.revoked is not self._seen:
            self._seen = self.identities.revoked
            try:
                self._current = tls_context(self.pki)
            except (OSError, ValueError, ssl.SSLError) as exc:
                log.error("HTTPS keeps the old revocation list: %s", exc)
        if self._current is not self.outer:
            tls.context = self._current


def enroll_tls_context(pki: PkiPaths) -> ssl.SSLContext:
    """Server authentication only: a device enrolls because it has no certificate yet."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(pki.server_cert, pki.server_key)
    return ctx


async def serve_http(
    running: Running,
    config: Config,
    app: ASGIApp,
    context: ssl.SSLContext | None,
    where: tuple[str, int, int, str],
    protocol: type[H11Protocol] | None = None,
    bind: str | None = None,
    stack: AsyncExitStack | None = None,
) -> None:
    """Run an ASGI app on uvicorn in this event loop; ``where`` = (name, port to bind,
    configured port, flag); plain HTTP when ``context`` is None; ``bind`` overrides the
    configured address; ``stack``: what shuts it down (default ``running.stack``)."""
    name, port, configured, flag = where
    bind = bind or config.bind
    settings = uvicorn.Config(
        app,
        log_config=None,
        # No access log: /oauth/token takes the password in the query string (as node-tak
        # sends it), and a request line must never put a password in the server's log.
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=2,
        limit_concurrency=256,
        server_header=False,
        ws="wsproto",  # the web app's feed (accord.api.web_feed)
        ws_max_size=WS_MAX_MESSAGE_BYTES,
        # Compressing is per connection (each has its own deflate context): a browser's share
        # of the server would be about twice a streaming client's (benchmarks/webmap.py).
        ws_per_message_deflate=config.web_compress,
        http=with_deadlines(
            protocol or H11Protocol,
            config.http_header_timeout_s,
            config.http_body_timeout_s,
            running.counters,
        ),
    )
    settings.load()
    settings.ssl = context
    try:
        sock = socket.create_server((bind, port), backlog=256)
    except OSError as exc:
        raise listen_error(exc, bind, configured, flag) from None
    # uvicorn's serve() would add its own signal handlers and a 10 Hz housekeeping loop; the
    # startup/shutdown halves are all Accord needs (signals and idle CPU stay Accord's).
    server = uvicorn.Server(settings)
    changed = watch_connections(server.server_state)
    server.lifespan = settings.lifespan_class(settings)
    try:
        await server.startup(sockets=[sock])
    except BaseException:
        sock.close()
        raise
    (stack or running.stack).push_async_callback(shut_down, server, sock, name, changed)
    running.ports[name] = sock.getsockname()[1]


class _Watched(set[Any]):
    """A set uvicorn keeps (a port's open connections, its running request tasks) that sets
    ``changed`` whenever something leaves it: uvicorn itself only lets a caller poll them."""

    def __init__(self, changed: asyncio.Event) -> None:
        super().__init__()
        self.changed = changed

    def discard(self, item: Any) -> None:
        super().discard(item)
        self.changed.set()

    def remove(self, item: Any) -> None:
        super().remove(item)
        self.changed.set()


def watch_connections(state: ServerState) -> asyncio.Event:
    """Replace ``state``'s connection and task sets (before the port starts: each connection
    keeps a reference) with ones that say when they change; the event they set."""
    changed = asyncio.Event()
    state.connections = _Watched(changed)
    state.tasks = _Watched(changed)
    return changed


async def shut_down(
    server: uvicorn.Server, sock: socket.socket, name: str, changed: asyncio.Event
) -> None:
    """Stop accepting, let the requests under way finish (up to uvicorn's graceful timeout),
    then drop what outlived it.

    uvicorn's own ``Server.shutdown`` does the same but sleeps a fixed 0.1 s after asking the
    connections to close and then looks again only every 0.1 s, so every port cost a close at
    least 0.1 s with nothing to drain; here the wait ends when the last connection is gone.
    What outlived the grace is aborted: uvicorn ends such a response with a graceful close,
    which waits for the peer to read the rest, so a client that stopped reading would hold
    that connection (and the event loop's close) open forever."""
    state = server.server_state
    for listener in server.servers:
        listener.close()
    sock.close()
    for connection in list(state.connections):
        connection.shutdown()  # idle: closed now; mid-response: closed once it is sent
    grace_s = server.config.timeout_graceful_shutdown
    try:
        async with asyncio.timeout(grace_s):
            while state.connections or state.tasks:
                changed.clear()
                await changed.wait()
    except TimeoutError:
        log.warning(
            "%s port: %d connections still open after %g s; dropped",
            name,
            len(state.connections),
            grace_s,
        )
        for task in list(state.tasks):
            task.cancel(msg="the server is closing and the graceful shutdown timed out")
    for connection in list(state.connections):
        connection.transport.abort()
    await server.lifespan.shutdown()
