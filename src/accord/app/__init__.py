"""Composition root: builds the hub and listeners from a :class:`Config` and runs them."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import resource
import signal
import time
import tomllib
import uuid
from collections.abc import Mapping
from pathlib import Path

from accord.api import admin
from accord.api.enrollment import config_routes
from accord.api.peers import PeerCertificates
from accord.app.cluster_partners import start_cluster_partners
from accord.app.cluster_status import start_cluster_status
from accord.app.coordination import cluster_changed, start_cluster, start_coordination
from accord.app.drones import start_drone_feeds
from accord.app.http import (
    admin_state,
    certificate_caller,
    certificate_parts,
    keep_admin_certificate,
    marti_app,
    password_caller,
    serve_enrollment,
    shared_signin,
    token_service,
)
from accord.app.http_serve import CurrentTls, serve_http
from accord.app.partners import read_partners, start_federation
from accord.app.running import (
    Running,
    ServerFailed,
    StartupError,
    WorkerRole,
    check_ports,
    listen_error,
    remove_record,
    wall_ms,
    write_record,
)
from accord.app.shared_store import shared_blobs
from accord.app.tasks import Policy
from accord.app.web import certificate_web
from accord.config import Config, ConfigError
from accord.cot.connection import Limits
from accord.cot.errors import MalformedEvent
from accord.domain.groups import GroupsFileError, Membership, parse_groups_map
from accord.domain.metrics import Counters
from accord.federation.contract import Gate, Journal
from accord.identity import registry
from accord.identity.ca import PkiError, PkiPaths
from accord.identity.ledger_key import ensure_ledger_key
from accord.identity.pki import (
    ensure_pki,
)
from accord.identity.users import UserStore
from accord.server import memory
from accord.server.history import HistoryRules, HistoryWriter
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


async def _start_tcp(running: Running, config: Config, port: int, reuse_port: bool = False) -> None:
    default = Membership.both(config.tcp_groups)
    check = password_check(shared_signin(running, config), default) if config.tcp_auth else None
    tcp = TcpListener(
        running.hub,
        _settings(config, "tcp", config.tcp_negotiate, check),
        default,
        config.max_connections,
        running.census,
    )
    try:
        server = await tcp.start(config.bind, port, reuse_port=reuse_port)
    except OSError as exc:
        raise listen_error(exc, config.bind, config.tcp_port, "--tcp-port") from None
    running.servers.append(server)
    running.stack.callback(server.close)  # its sessions close with the others
    running.ports["tcp"] = server.sockets[0].getsockname()[1]


def _start_tls(
    running: Running,
    config: Config,
    port: int,
    pki: PkiPaths,
    identities: Identities,
    reuse_port: bool = False,
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
        running.ports["tls"] = tls.listen(config.bind, port, reuse_port=reuse_port)
    except OSError as exc:
        raise listen_error(exc, config.bind, config.tls_port, "--tls-port") from None
    running.stack.callback(tls.close)
    # Restarted when it fails: it holds no state but the socket, and without it the TLS port
    # would stop accepting while looking open.
    accepting = running.tasks.start("TLS accept loop", tls.accept, Policy.RESTART)
    running.stack.push_async_callback(running.tasks.stop, accepting)
    return tls


async def _start_udp(running: Running, config: Config, port: int, reuse_port: bool = False) -> None:
    loop = asyncio.get_running_loop()
    hub, limits = running.hub, Limits(config.max_event_bytes, config.max_depth)
    party = hub.new_party(Membership.both(config.udp_groups), "udp", receives=False)
    try:
        transport, _ = await loop.create_datagram_endpoint(
            lambda: UdpInput(hub, party, limits, running.census),
            local_addr=(config.bind, port),
            reuse_port=reuse_port or None,
        )
    except OSError as exc:
        raise listen_error(exc, config.bind, config.udp_port, "--udp-port") from None
    running.stack.callback(transport.close)
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
        running.stack.callback(transport.close)


async def _start_store(running: Running, config: Config) -> None:
    """Open the store, give newcomers the SAs that were live before a restart, and start the
    history writer."""
    try:
        store = running.store = await open_store(config.database_url, config.data_dir)
    except StoreError as exc:
        raise StartupError(str(exc)) from None
    running.stack.push_async_callback(_close_store, running)
    await running.enter_tasks()  # inside the store's lifetime: every task ends before it
    try:
        latest = await store.latest_fresh(wall_ms())
    except StoreError as exc:
        raise StartupError(str(exc)) from None
    for stored in latest:
        try:
            event = to_event(stored)
        except MalformedEvent:
            continue  # stored by an older decoder; not worth failing a start for
        contact = event.detail.contact
        if contact is not None and contact.endpoint and contact.callsign:
            running.hub.restore(event, frozenset(stored.groups))
    rules = HistoryRules(
        config.archive,
        config.archive_skip_types,
        config.history_max_age_days,
        config.history_max_events,
    )
    writer = running.history_writer = HistoryWriter(
        store,
        rules,
        running.counters,
        wall_ms=wall_ms,
        queue_events=config.archive_queue_events,
    )
    running.hub.recorder = writer
    running.probes.history = writer
    # Restarted when it fails: its queue outlives the task, and routing goes on either way;
    # stopping the server because one history batch hit a bug would lose more than it saves.
    writing = running.tasks.start("history writer", writer.run, Policy.RESTART)
    if memory.can_trim():  # free pages back after a storm's queues drain (issue 13 §2)
        running.tasks.start("memory trim", memory.trim_periodically, Policy.RESTART)
    running.stack.push_async_callback(_stop_history_writer, running, writer, writing)
    # Sessions close after every listener and link stopped, before the history is flushed.
    running.stack.push_async_callback(running.close_sessions)


async def _stop_history_writer(
    running: Running, writer: HistoryWriter, writing: asyncio.Task[None]
) -> None:
    try:
        async with asyncio.timeout(running.grace_s):
            await writer.flush()
    except TimeoutError:
        log.warning(
            "%d events were not written to the history in %g s", writer.queued, running.grace_s
        )
    await running.tasks.stop(writing)


async def _close_store(running: Running) -> None:
    if running.store is not None:
        await running.store.close()
        running.store = None


async def _open_blobs(config: Config, store: Store) -> Blobs:
    """The data package files; those without metadata (a crash) are set aside."""
    try:
        blobs = await Blobs.open(config.data_dir / "packages", shared_blobs(config, store))
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
        pki = ensure_pki(config.data_dir / "pki", config.server_names, dt.datetime.now(dt.UTC))
        # Made with the CA, so that `accord partner self` can print it before any partner.
        ensure_ledger_key(pki.root, config.federation_name or config.server_names[0])
        return pki
    except PkiError as exc:
        raise StartupError(str(exc)) from None
    except OSError as exc:
        raise StartupError(
            f"cannot write to data directory {config.data_dir}: {exc.strerror}; "
            "choose another with --data-dir"
        ) from None


async def prepare(config: Config, *, check: bool = True) -> None:
    """What ``serve --workers N`` does once before its workers start (they then skip it): the
    ports checked, the CA, server and admin certificates and the keys made, the database made
    or migrated, and package files with no metadata set aside."""
    partners = read_partners(config)
    if check:
        check_ports(config, bool(partners))
    pki = _ensure_pki(config)
    keep_admin_certificate(config, pki)
    token_service(
        Running(Hub(Counters(), wall_ms=wall_ms, new_uid=lambda: ""), Counters()), config, pki
    )
    try:
        store = await open_store(config.database_url, config.data_dir)
    except StoreError as exc:
        raise StartupError(str(exc)) from None
    try:
        await _open_blobs(config, store)
    finally:
        await store.close()


async def start(
    config: Config,
    *,
    any_port: bool = False,
    gate: Gate | None = None,
    journal: Journal | None = None,
    worker: WorkerRole | None = None,
) -> Running:
    """Start every configured listener; raise :class:`StartupError` with a fix on failure.

    ``any_port`` binds each enabled listener to a free port the OS picks (tests, benchmarks);
    ``Running.ports`` tells which. ``gate`` and ``journal`` decide and record what crosses
    partner links (default: the partners' release policies and the sharing ledger).
    ``worker``: one process of ``serve --workers N`` (see :class:`WorkerRole`): the
    streaming ports are shared, :func:`prepare` has been run, and no ``running.json`` is
    written (the supervisor writes it).
    """

    def port(configured: int) -> int:
        return 0 if any_port else configured

    partners = read_partners(config)  # a bad partners.toml fails before anything is made
    if worker is not None and not worker.primary:
        partners = ()  # partner links on the primary only (one link per partner)
    reuse = worker is not None
    if not any_port and worker is None:  # a busy port fails the start before a CA or a database
        check_ports(config, bool(partners))
    pki = _ensure_pki(config)
    keep_admin_certificate(config, pki)
    raise_fd_limit(config.max_connections)
    counters = Counters()
    hub = Hub(counters, wall_ms=lambda: int(time.time() * 1000), new_uid=lambda: str(uuid.uuid4()))
    running = Running(hub, counters)
    try:
        token_service(running, config, pki)  # the one token service, its key made on first start
        await _start_store(running, config)
        assert running.store is not None
        if config.cluster.enabled:
            await start_cluster(running, config)
            await start_cluster_status(running, config, worker)
            if worker is None or worker.primary:  # the one that runs partner links
                partners = await start_cluster_partners(running, config, partners)
        if worker is None:
            blobs = await _open_blobs(config, running.store)
        else:  # set aside by `prepare`: another worker may be writing a package right now
            blobs = await Blobs.open(config.data_dir / "packages")
        start_coordination(running, config, partners)
        if config.tcp_port:
            await _start_tcp(running, config, port(config.tcp_port), reuse)
        identities = Identities(load_groups_file(config.groups_file), UserStore(config.data_dir))
        identities.revoked = registry.revoked_serials(pki)
        tls = None
        if config.tls_port:
            tls = _start_tls(running, config, port(config.tls_port), pki, identities, reuse)
        if config.https_port:
            peers = PeerCertificates()
            caller, principal = certificate_caller(config, identities, peers)
            # The admin API only where callers are certificates, never on plain HTTP.
            more = admin.routes(admin_state(running, config, identities, peers, pki, blobs))
            more += certificate_web(running, config, identities, peers)
            await serve_http(
                running,
                config,
                marti_app(
                    running,
                    config,
                    caller,
                    principal,
                    more + config_routes(caller),
                    blobs,
                    certificate_parts(config, identities, peers, pki),
                ),
                CurrentTls(pki, identities).outer,
                ("https", port(config.https_port), config.https_port, "--https-port"),
                peers.protocol_class(),
            )
        if config.metrics_port:
            await serve_http(
                running,
                config,
                admin.metrics_app(running.census, running.counters, running.probes),
                None,
                ("metrics", port(config.metrics_port), config.metrics_port, "--metrics-port"),
                bind="127.0.0.1",  # no sign-in: loopback only (see Config.metrics_port)
            )
        if config.tls_port or config.https_port:
            # Restarted when it fails: it re-reads files each round (no state to lose), and
            # without it a revoked certificate would keep working.
            watcher = running.tasks.start(
                "identity watcher",
                lambda: watch_identity(
                    tls, pki, identities, config.revocation_check_s, cluster_changed(running)
                ),
                Policy.RESTART,
            )
            running.stack.push_async_callback(running.tasks.stop, watcher)
        if config.udp_port:
            await _start_udp(running, config, port(config.udp_port), reuse)
        await start_drone_feeds(running, config, port(config.drone_port))
        await start_federation(
            running,
            config,
            partners,
            pki,
            port(config.federation_port),
            gate,
            journal,
            blobs,
            port(config.federation_files_port),
        )
        if config.enroll_port:
            await serve_enrollment(
                running, config, pki, identities, blobs, port(config.enroll_port)
            )
        if config.http_port:
            await serve_http(
                running,
                config,
                marti_app(
                    running,
                    config,
                    *password_caller(config, shared_signin(running, config)),
                    blobs=blobs,
                ),
                None,
                ("http", port(config.http_port), config.http_port, "--http-port"),
            )
        if worker is None:
            running.record = write_record(config, running.ports, os.getpid(), running.started_s)
            running.stack.callback(remove_record, running.record)
        running.started.set()
    except BaseException:
        await running.close()
        raise
    return running


async def serve(
    config: Config, *, ready: asyncio.Event | None = None, worker: WorkerRole | None = None
) -> Counters:
    """Run until SIGINT/SIGTERM; return the final counters. Raise :class:`ServerFailed` when
    a background task whose death stops the server died (the server is closed by then)."""
    running = await start(config, worker=worker)
    memory.settle_collector()  # this process is the server's: its collector policy (issue 11)
    return await run(running, config, ready=ready)


async def run(running: Running, config: Config, *, ready: asyncio.Event | None = None) -> Counters:
    """Serve a started server until a signal or a failed task stops it, then close it."""
    stop = running.stopping
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    # `kill -HUP` (systemctl reload): release policies edited in place take effect now.
    def reload() -> None:
        if running.shared_partners is not None:  # in a cluster: checked, then published
            running.shared_partners.reload_wanted.set()
            log.info("release policies: this node's files are read again for the cluster")
        else:
            ok, what = running.reload_policies()
            log.log(logging.INFO if ok else logging.ERROR, "%s", what)
        if running.coordination is not None and config.geofence_files:
            ok, what = running.coordination.load_fence_files(config.geofence_files)
            log.log(logging.INFO if ok else logging.ERROR, "%s", what)

    loop.add_signal_handler(signal.SIGHUP, reload)
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
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        log.info("stopping: closing %d sessions", running.hub.session_count)
        await running.close()
        log.info("stopped; counters: %s", running.counters.snapshot())
    if running.failure is not None:
        raise ServerFailed(running.failure)
    return running.counters


__all__ = [
    "Running",
    "ServerFailed",
    "StartupError",
    "WorkerRole",
    "prepare",
    "run",
    "serve",
    "start",
]
