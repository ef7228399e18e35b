"""The HTTP side of the composition: uvicorn in Accord's loop, who a request's caller is,
and which routes each port serves."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import logging
import socket
import ssl
import time
from collections.abc import Callable, Sequence

import uvicorn
from starlette.requests import Request
from starlette.routing import BaseRoute
from starlette.types import ASGIApp

from accord.api import admin
from accord.api.history import history_routes
from accord.api.marti import Caller, MartiState
from accord.api.marti import build_app as build_marti
from accord.api.packages import PackageSettings, package_routes
from accord.api.peers import PeerCertificates
from accord.api.video import video_routes
from accord.app.drones import DroneFeedControl
from accord.app.running import Running, StartupError, listen_error, wall_ms
from accord.config import Config
from accord.domain.groups import Membership
from accord.identity import registry
from accord.identity.ca import PkiError, PkiPaths
from accord.identity.peer import identity_from_peercert, membership_for
from accord.identity.pki import (
    ensure_admin_certificate,
)
from accord.identity.signin import SignIn
from accord.identity.users import UserStore
from accord.server.signin import password_check
from accord.server.watch import Identities
from accord.store.blobs import Blobs

log = logging.getLogger("accord")


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
    protocol: type[asyncio.Protocol] | None = None,
    bind: str | None = None,
) -> None:
    """Run an ASGI app on uvicorn in this event loop; ``where`` = (name, port to bind,
    configured port, flag); plain HTTP when ``context`` is None; ``bind`` overrides the
    configured address."""
    name, port, configured, flag = where
    bind = bind or config.bind
    settings = uvicorn.Config(
        app,
        log_config=None,
        lifespan="off",
        timeout_graceful_shutdown=2,
        limit_concurrency=256,
        server_header=False,
        http=protocol or "h11",
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
    server.lifespan = settings.lifespan_class(settings)
    try:
        await server.startup(sockets=[sock])
    except BaseException:
        sock.close()
        raise
    running.stack.push_async_callback(shut_down, server, sock)
    running.ports[name] = sock.getsockname()[1]


async def shut_down(server: uvicorn.Server, sock: socket.socket) -> None:
    """uvicorn's shutdown, then drop what outlived its grace: uvicorn ends such a response
    with a graceful close, which waits for the peer to read the rest, so a client that stopped
    reading would hold that connection (and the event loop's close) open forever."""
    await server.shutdown([sock])
    for connection in list(server.server_state.connections):
        connection.transport.abort()


def marti_app(
    running: Running,
    config: Config,
    caller: Caller,
    principal: Callable[[Request], str | None],
    more: Sequence[BaseRoute] = (),
    blobs: Blobs | None = None,
) -> ASGIApp:
    state = MartiState(running.hub, caller, config.server_names[0], principal)
    extra: list[BaseRoute] = [*more]  # the routes of the other API modules, each added below
    if running.store is not None:
        extra += history_routes(running.store, running.hub, caller, wall_ms)
        extra += video_routes(running.store, caller)
        if blobs is not None:
            extra += package_routes(
                running.store,
                blobs,
                caller,
                PackageSettings(
                    hostname=config.server_names[0],
                    max_bytes=config.max_package_bytes,
                    now_ms=wall_ms,
                    submitter=lambda request: principal(request) or "",
                ),
            )
    return build_marti(state, extra)


def certificate_caller(
    config: Config, identities: Identities, peers: PeerCertificates
) -> tuple[Caller, Callable[[Request], str | None]]:
    """HTTPS: the caller is the client certificate (not revoked), its groups as on 8089."""
    default = Membership.both(config.tls_default_groups)

    def caller(request: Request) -> Membership | None:
        cert = peers.of(request)
        if cert is None:
            return None
        identity = identity_from_peercert(cert)
        if identity.serial in identities.revoked:
            return None
        return membership_for(identity, identities.groups, default)

    def principal(request: Request) -> str | None:
        cert = peers.of(request)
        return identity_from_peercert(cert).cn if cert is not None else None

    return caller, principal


def password_caller(config: Config) -> tuple[Caller, Callable[[Request], str | None]]:
    """Plain HTTP (ATAK on a TCP stream uses http://host:8080/Marti): HTTP basic auth with the
    users of ``accord user``, or, unless ``tcp_auth`` is on, anonymous with the TCP groups."""
    default = Membership.both(config.tcp_groups)
    check = password_check(SignIn(UserStore(config.data_dir)), default)

    def credentials(request: Request) -> tuple[str, str] | None:
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            name, sep, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        return (name, password) if sep else None

    async def caller(request: Request) -> Membership | None:
        given = credentials(request)
        if given is None:
            return None if config.tcp_auth else default
        peer = request.client.host if request.client else "-"
        result = await check(peer, *given)
        return None if isinstance(result, str) else result

    def principal(request: Request) -> str | None:
        given = credentials(request)
        return given[0] if given is not None else None

    return caller, principal


def admin_state(
    running: Running, config: Config, identities: Identities, peers: PeerCertificates
) -> admin.AdminState:
    def admin_cn(request: Request) -> str | None:
        cert = peers.of(request)
        if cert is None:
            return None
        identity = identity_from_peercert(cert)
        return None if identity.serial in identities.revoked else identity.cn

    return admin.AdminState(
        running.census,
        running.counters,
        running.probes,
        running.ports,
        config.bind,
        running.store,
        frozenset(config.admin_users),
        admin_cn,
        running.started_s,
        time.time,
        DroneFeedControl(running),
    )


def keep_admin_certificate(config: Config, pki: PkiPaths) -> None:
    """The certificate `accord status` signs in with, kept in the PKI directory."""
    if not config.https_port:
        return
    try:
        now = dt.datetime.now(dt.UTC)
        if ensure_admin_certificate(pki, config.admin_users, now, registry.revoked_serials(pki)):
            log.info(
                "issued the admin certificate %s for %s", pki.admin_cert, config.admin_users[0]
            )
    except (PkiError, OSError) as exc:
        raise StartupError(f"cannot issue the admin certificate in {pki.root}: {exc}") from None
