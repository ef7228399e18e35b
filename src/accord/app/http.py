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
from dataclasses import dataclass

import uvicorn
from starlette.requests import Request
from starlette.routing import BaseRoute
from starlette.types import ASGIApp

from accord.api import admin
from accord.api.certadmin import CertAdminSettings, certadmin_routes
from accord.api.history import history_routes
from accord.api.kml_export import kml_export_routes
from accord.api.marti import AdminCheck, Caller, MartiState, nobody
from accord.api.marti import build_app as build_marti
from accord.api.missions import mission_routes
from accord.api.missions_book import MissionBook
from accord.api.missions_content import content_routes
from accord.api.packages import PackageSettings, package_routes
from accord.api.peers import PeerCertificates
from accord.api.security import SecuritySettings, security_routes
from accord.api.subscriptions import subscription_routes
from accord.api.video import video_routes
from accord.api.videos_v2 import LiveVideo, video_v2_routes
from accord.app.drones import DroneFeedControl
from accord.app.running import Running, StartupError, listen_error, wall_ms
from accord.app.tasks import Policy
from accord.config import Config
from accord.domain.groups import Membership
from accord.identity import registry
from accord.identity.ca import LEAF_DAYS, PkiError, PkiPaths
from accord.identity.peer import identity_from_peercert, membership_for
from accord.identity.pki import (
    ensure_admin_certificate,
)
from accord.identity.signin import SignIn
from accord.identity.token import TokenService, ensure_token_key
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
    running.stack.push_async_callback(server.shutdown, [sock])
    running.ports[name] = sock.getsockname()[1]


PLAIN_LISTENERS = ("tcp", "udp", "http")  # what isSecure reports: traffic without TLS


@dataclass(frozen=True)
class CertificateParts:
    """What only the certificate API (HTTPS) has: who is an administrator, and the CA."""

    admin: AdminCheck
    pki: PkiPaths
    revoked: Callable[[], None]  # re-read the revoked serials after a revocation


def certificate_parts(
    config: Config, identities: Identities, peers: PeerCertificates, pki: PkiPaths
) -> CertificateParts:
    admins = frozenset(config.admin_users)
    cn_of = certificate_cn(identities, peers)

    def admin(request: Request) -> str | None:
        cn = cn_of(request)
        return cn if cn is not None and cn in admins else None

    def revoked() -> None:
        identities.revoked = registry.revoked_serials(pki)

    return CertificateParts(admin, pki, revoked)


def mission_book(running: Running, config: Config) -> MissionBook:
    """The one Mission API state both apps (HTTPS, HTTP) serve; its tokens are signed with
    the server's token key (``pki/token.key``) under their own audience."""
    if running.missions is None:
        if running.store is None:
            raise StartupError("missions need the store")
        root = config.data_dir / "pki"
        try:
            key = ensure_token_key(root)
        except (PkiError, OSError) as exc:
            raise StartupError(f"cannot make or read the token key in {root}: {exc}") from None
        tokens = TokenService(key, config.server_names[0])
        book = running.missions = MissionBook(running.store, tokens, running.hub, wall_ms)
        running.hub.missions = book
        intake = running.tasks.start("mission intake", book.run, Policy.RESTART)
        running.stack.push_async_callback(running.tasks.stop, intake)
    return running.missions


def drone_videos(running: Running) -> Callable[[], list[LiveVideo]]:
    """The running drone feeds' ``<__video>`` streams, one per vehicle seen."""

    def videos() -> list[LiveVideo]:
        out = []
        for feed in running.feeds.values():
            settings = feed.bridge.settings
            if not settings.video_url:
                continue
            groups = tuple(sorted(feed.party.membership.inbound))
            for sysid in sorted(feed.bridge.vehicles):
                out.append(
                    (groups, settings.uid(sysid), settings.callsign_of(sysid), settings.video_url)
                )
        return out

    return videos


def marti_app(
    running: Running,
    config: Config,
    caller: Caller,
    principal: Callable[[Request], str | None],
    more: Sequence[BaseRoute] = (),
    blobs: Blobs | None = None,
    certificates: CertificateParts | None = None,
) -> ASGIApp:
    state = MartiState(running.hub, caller, config.server_names[0], principal)
    is_admin = certificates.admin if certificates is not None else nobody
    extra: list[BaseRoute] = [*more]  # the routes of the other API modules, each added below
    extra += subscription_routes(running.census, running.hub, caller, is_admin, wall_ms)
    if certificates is not None:
        extra += certadmin_routes(
            CertAdminSettings(
                certificates.pki, lambda: dt.datetime.now(dt.UTC), certificates.revoked
            ),
            caller,
            is_admin,
        )
        extra += security_routes(
            SecuritySettings(
                certificates.pki,
                enrollment=config.enroll_port != 0,
                validity_days=LEAF_DAYS,
                plain_ports=lambda: [
                    port for name, port in running.ports.items() if name in PLAIN_LISTENERS
                ],
            ),
            caller,
            is_admin,
        )
    if running.store is not None:
        extra += history_routes(running.store, running.hub, caller, wall_ms)
        extra += kml_export_routes(running.store, caller, is_admin, wall_ms)
        extra += video_routes(running.store, caller)
        extra += video_v2_routes(running.store, caller, drone_videos(running))
        book = mission_book(running, config)
        extra += content_routes(book, running.store, running.hub, caller, principal)
        extra += mission_routes(book, running.hub, running.store, caller, principal)
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
                    admin=is_admin,
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


def certificate_cn(identities: Identities, peers: PeerCertificates) -> admin.AdminCaller:
    """The CN of the valid (not revoked) client certificate behind a request, or None."""

    def cn(request: Request) -> str | None:
        cert = peers.of(request)
        if cert is None:
            return None
        identity = identity_from_peercert(cert)
        return None if identity.serial in identities.revoked else identity.cn

    return cn


def admin_state(
    running: Running, config: Config, identities: Identities, peers: PeerCertificates
) -> admin.AdminState:
    admin_cn = certificate_cn(identities, peers)
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
