"""Composition root: builds the hub and listeners from a :class:`Config` and runs them."""

from __future__ import annotations

import asyncio
import datetime as dt
import errno
import logging
import resource
import signal
import socket
import ssl
import time
import tomllib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn
from starlette.requests import Request
from starlette.routing import BaseRoute
from starlette.types import ASGIApp

from accord.api.enrollment import Enrollment, build_app
from accord.api.marti import MartiState
from accord.api.marti import build_app as build_marti
from accord.api.packages import PackageSettings, package_routes
from accord.api.peers import PeerCertificates
from accord.config import Config, ConfigError
from accord.cot.connection import Limits
from accord.domain.groups import GroupsFileError, Membership, parse_groups_map
from accord.domain.metrics import Counters
from accord.identity import registry
from accord.identity.ca import PkiError, PkiPaths
from accord.identity.peer import identity_from_peercert, membership_for
from accord.identity.pki import ensure_pki
from accord.identity.signin import SignIn
from accord.identity.users import UserStore
from accord.server.hub import Hub
from accord.server.listeners import TcpListener, TlsListener
from accord.server.session import SessionSettings
from accord.server.signin import Authenticate, password_check
from accord.server.udp import UdpInput, multicast_socket
from accord.server.watch import Identities, tls_context, watch_identity
from accord.store.blobs import ORPHANS_DIR, Blobs, set_aside_orphans
from accord.store.contract import Store, StoreError
from accord.store.opening import open_store

log = logging.getLogger("accord")


class StartupError(Exception):
    """Accord cannot start; the message names the problem and the fix."""


@dataclass
class Running:
    """A started server: its hub, counters and the ports it actually bound."""

    hub: Hub
    counters: Counters
    store: Store | None = None
    ports: dict[str, int] = field(default_factory=dict)
    servers: list[asyncio.Server] = field(default_factory=list)
    tls_listeners: list[TlsListener] = field(default_factory=list)
    transports: list[asyncio.BaseTransport] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    http: list[tuple[uvicorn.Server, socket.socket]] = field(default_factory=list)

    async def close(self, grace_s: float = 5.0) -> None:
        """Stop accepting, close every session (flushing what it can), release the ports."""
        for task in self.tasks:
            task.cancel()
        for server in self.servers:
            server.close()
        for listener in self.tls_listeners:
            await listener.close()
        for transport in self.transports:
            transport.close()
        for http, sock in self.http:
            await http.shutdown(sockets=[sock])
        self.hub.close_all("server shutting down", abort=False)
        try:
            async with asyncio.timeout(grace_s):
                await self.hub.wait_empty()
        except TimeoutError:
            log.warning("%d sessions did not close in %g s", self.hub.session_count, grace_s)
            self.hub.close_all("server shutting down", abort=True)
        for server in self.servers:
            try:
                async with asyncio.timeout(grace_s):
                    await server.wait_closed()
            except TimeoutError:
                log.warning("listener did not close in %g s", grace_s)
        if self.store is not None:
            await self.store.close()
            self.store = None


def load_groups_file(path: str) -> Mapping[str, Membership]:
    if not path:
        return {}
    try:
        with Path(path).open("rb") as fh:
            return parse_groups_map(tomllib.load(fh))
    except OSError as exc:
        raise ConfigError(f"cannot read groups_file {path}: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, GroupsFileError) as exc:
        raise ConfigError(f"groups_file {path}: {exc}") from None


def raise_fd_limit(wanted: int) -> None:
    """Allow as many sockets as connections are configured (up to the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(hard, max(soft, wanted + 256)) if hard != resource.RLIM_INFINITY else wanted + 256
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def _listen_error(exc: OSError, bind: str, port: int, flag: str) -> StartupError:
    """Translate a bind failure into what the operator should do about it."""
    if exc.errno == errno.EADDRINUSE:
        return StartupError(
            f"port {port} on {bind} is already in use: stop the other program or pick another "
            f"port with {flag}"
        )
    if exc.errno == errno.EACCES:
        return StartupError(
            f"port {port} needs privileges Accord does not have: pick a port above 1023 with {flag}"
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return StartupError(f"address {bind} is not on this machine: fix --bind")
    return StartupError(f"cannot listen on {bind}:{port}: {exc.strerror or exc}")


def _settings(
    config: Config, transport: str, negotiate: bool, authenticate: Authenticate | None = None
) -> SessionSettings:
    return SessionSettings(
        transport=transport,
        negotiate=negotiate,
        limits=Limits(config.max_event_bytes, config.max_depth),
        send_queue_events=config.send_queue_events,
        blocked_timeout_s=config.blocked_timeout_s,
        write_buffer_bytes=config.write_buffer_bytes,
        input_rate=config.input_rate,
        input_burst=config.input_burst,
        authenticate=authenticate,
        sign_in_timeout_s=config.tls_handshake_timeout_s,
    )


async def _start_tcp(running: Running, config: Config, port: int) -> None:
    default = Membership.both(config.tcp_groups)
    check = password_check(SignIn(UserStore(config.data_dir)), default) if config.tcp_auth else None
    tcp = TcpListener(
        running.hub,
        _settings(config, "tcp", config.tcp_negotiate, check),
        default,
        config.max_connections,
    )
    try:
        server = await tcp.start(config.bind, port)
    except OSError as exc:
        raise _listen_error(exc, config.bind, config.tcp_port, "--tcp-port") from None
    running.servers.append(server)
    running.ports["tcp"] = server.sockets[0].getsockname()[1]


def _start_tls(
    running: Running, config: Config, port: int, pki: PkiPaths, identities: Identities
) -> TlsListener:
    try:
        context = tls_context(pki)
    except (OSError, ValueError) as exc:
        raise StartupError(
            f"cannot load the server certificate from {pki.root} ({exc}); fix or remove "
            "server.pem/server.key to have a new one issued"
        ) from None
    tls = TlsListener(
        running.hub,
        _settings(config, "tls", config.tls_negotiate),
        context,
        identities.groups,
        Membership.both(config.tls_default_groups),
        config.max_connections,
        config.tls_handshake_timeout_s,
    )
    try:
        running.ports["tls"] = tls.start(config.bind, port)
    except OSError as exc:
        raise _listen_error(exc, config.bind, config.tls_port, "--tls-port") from None
    running.tls_listeners.append(tls)
    return tls


def _enroll_tls_context(pki: PkiPaths) -> ssl.SSLContext:
    """Server authentication only: a device enrolls because it has no certificate yet."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(pki.server_cert, pki.server_key)
    return ctx


async def _serve_http(
    running: Running,
    config: Config,
    app: ASGIApp,
    context: ssl.SSLContext,
    where: tuple[str, int, int, str],
    protocol: type[asyncio.Protocol] | None = None,
) -> None:
    """Run an ASGI app on uvicorn in this event loop; ``where`` = (name, port to bind,
    configured port, flag)."""
    name, port, configured, flag = where
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
        sock = socket.create_server((config.bind, port), backlog=256)
    except OSError as exc:
        raise _listen_error(exc, config.bind, configured, flag) from None
    # uvicorn's serve() would add its own signal handlers and a 10 Hz housekeeping loop; the
    # startup/shutdown halves are all Accord needs (signals and idle CPU stay Accord's).
    server = uvicorn.Server(settings)
    server.lifespan = settings.lifespan_class(settings)
    try:
        await server.startup(sockets=[sock])
    except BaseException:
        sock.close()
        raise
    running.http.append((server, sock))
    running.ports[name] = sock.getsockname()[1]


def _marti_app(
    running: Running,
    config: Config,
    identities: Identities,
    peers: PeerCertificates,
    blobs: Blobs,
) -> ASGIApp:
    default = Membership.both(config.tls_default_groups)

    def caller(request: Request) -> Membership | None:
        cert = peers.of(request)
        if cert is None:
            return None
        identity = identity_from_peercert(cert)
        if identity.serial in identities.revoked:
            return None
        return membership_for(identity, identities.groups, default)

    state = MartiState(running.hub, caller, config.server_names[0])
    extra: list[BaseRoute] = []  # the routes of the other API modules, each added below
    assert running.store is not None  # opened before any listener
    extra += package_routes(
        running.store,
        blobs,
        caller,
        PackageSettings(
            hostname=config.server_names[0],
            max_bytes=config.max_package_bytes,
            now_ms=lambda: int(time.time() * 1000),
            submitter=lambda request: identity_from_peercert(peers.of(request)).cn,
        ),
    )
    return build_marti(state, extra)


async def _start_udp(running: Running, config: Config, port: int) -> None:
    loop = asyncio.get_running_loop()
    hub, limits = running.hub, Limits(config.max_event_bytes, config.max_depth)
    party = hub.new_party(Membership.both(config.udp_groups), "udp", receives=False)
    try:
        transport, _ = await loop.create_datagram_endpoint(
            lambda: UdpInput(hub, party, limits), local_addr=(config.bind, port)
        )
    except OSError as exc:
        raise _listen_error(exc, config.bind, config.udp_port, "--udp-port") from None
    running.transports.append(transport)
    running.ports["udp"] = transport.get_extra_info("sockname")[1]
    if config.udp_multicast_group:
        try:
            sock = multicast_socket(config.bind, running.ports["udp"], config.udp_multicast_group)
        except OSError as exc:
            raise StartupError(
                f"cannot join multicast group {config.udp_multicast_group}: {exc.strerror}; "
                "check the address or leave udp_multicast_group empty"
            ) from None
        transport, _ = await loop.create_datagram_endpoint(
            lambda: UdpInput(hub, party, limits), sock=sock
        )
        running.transports.append(transport)


async def _open_blobs(config: Config, store: Store) -> Blobs:
    """The data package files; those without metadata (a crash) are set aside."""
    try:
        blobs = await Blobs.open(config.data_dir / "packages")
        moved = await set_aside_orphans(blobs, store)
    except OSError as exc:
        raise StartupError(
            f"cannot use {config.data_dir / 'packages'}: {exc.strerror}; "
            "check its permissions or choose another --data-dir"
        ) from None
    if moved:
        log.warning(
            "moved %d package files that no package in the database names to %s; delete them "
            "if no package is missing (else check database_url)",
            moved,
            blobs.root / ORPHANS_DIR,
        )
    return blobs


def _ensure_pki(config: Config) -> PkiPaths:
    try:
        return ensure_pki(config.data_dir / "pki", config.server_names, dt.datetime.now(dt.UTC))
    except PkiError as exc:
        raise StartupError(str(exc)) from None
    except OSError as exc:
        raise StartupError(
            f"cannot write to data directory {config.data_dir}: {exc.strerror}; "
            "choose another with --data-dir"
        ) from None


async def start(config: Config, *, any_port: bool = False) -> Running:
    """Start every configured listener; raise :class:`StartupError` with a fix on failure.

    ``any_port`` binds each enabled listener to a free port the OS picks (tests, benchmarks);
    ``Running.ports`` tells which.
    """

    def port(configured: int) -> int:
        return 0 if any_port else configured

    pki = _ensure_pki(config)
    raise_fd_limit(config.max_connections)
    counters = Counters()
    hub = Hub(counters, wall_ms=lambda: int(time.time() * 1000), new_uid=lambda: str(uuid.uuid4()))
    running = Running(hub, counters)
    try:
        try:
            running.store = await open_store(config.database_url, config.data_dir)
        except StoreError as exc:
            raise StartupError(str(exc)) from None
        blobs = await _open_blobs(config, running.store)
        if config.tcp_port:
            await _start_tcp(running, config, port(config.tcp_port))
        identities = Identities(load_groups_file(config.groups_file), UserStore(config.data_dir))
        identities.revoked = registry.revoked_serials(pki)
        tls = None
        if config.tls_port:
            tls = _start_tls(running, config, port(config.tls_port), pki, identities)
        if config.https_port:
            peers = PeerCertificates()
            await _serve_http(
                running,
                config,
                _marti_app(running, config, identities, peers, blobs),
                tls_context(pki),
                ("https", port(config.https_port), config.https_port, "--https-port"),
                peers.protocol_class(),
            )
        if config.tls_port or config.https_port:
            watcher = watch_identity(tls, pki, identities, config.revocation_check_s)
            running.tasks.append(asyncio.get_running_loop().create_task(watcher))
        if config.udp_port:
            await _start_udp(running, config, port(config.udp_port))
        if config.enroll_port:
            enrollment = build_app(Enrollment(pki, SignIn(UserStore(config.data_dir)), counters))
            await _serve_http(
                running,
                config,
                enrollment,
                _enroll_tls_context(pki),
                ("enroll", port(config.enroll_port), config.enroll_port, "--enroll-port"),
            )
    except BaseException:
        await running.close()
        raise
    return running


async def serve(config: Config, *, ready: asyncio.Event | None = None) -> Counters:
    """Run until SIGINT/SIGTERM; return the final counters."""
    running = await start(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    listening = ", ".join(f"{name}={config.bind}:{port}" for name, port in running.ports.items())
    log.info("Accord listening: %s; data in %s", listening, config.data_dir.resolve())
    if ready is not None:
        ready.set()
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        log.info("stopping: closing %d sessions", running.hub.session_count)
        await running.close()
        log.info("stopped; counters: %s", running.counters.snapshot())
    return running.counters
