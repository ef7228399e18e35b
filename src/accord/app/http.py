"""The HTTP side of the composition: who a request's caller is, and which routes each port
serves (the serving itself, with its deadlines and TLS, is :mod:`accord.app.http_serve`)."""

from __future__ import annotations

import base64
import datetime as dt
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from starlette.requests import Request
from starlette.routing import BaseRoute
from starlette.types import ASGIApp

from accord.api import admin
from accord.api.admin_guard import csrf_refusal
from accord.api.admin_partners import StoreAdmin
from accord.api.admin_users import IdentityAdmin
from accord.api.certadmin import CertAdminSettings, certadmin_routes
from accord.api.enrollment import Enrollment, bearer_subject, bearer_token, bearer_user
from accord.api.enrollment import routes as enrollment_routes
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
from accord.api.web import session_refusal
from accord.app.coordination import cluster_changed
from accord.app.drones import DroneFeedControl
from accord.app.http_serve import enroll_tls_context, serve_http
from accord.app.running import Running, StartupError, wall_ms
from accord.app.tasks import Policy
from accord.app.web import password_web, session_admin
from accord.config import Config
from accord.domain.groups import Membership
from accord.identity import registry
from accord.identity.ca import LEAF_DAYS, PkiError, PkiPaths
from accord.identity.package import API_PORT, ENROLLMENT_PORT, STREAM_PORT, Endpoint
from accord.identity.peer import identity_from_peercert, membership_for
from accord.identity.pki import (
    ensure_admin_certificate,
)
from accord.identity.signin import SignIn
from accord.identity.token import Audience, TokenService, ensure_token_key
from accord.identity.users import UserStore
from accord.server.signin import password_check
from accord.server.watch import Identities
from accord.store.blobs import Blobs

log = logging.getLogger("accord")
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
        tokens = token_service(running, config, PkiPaths(config.data_dir / "pki"))
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


def bearer_caller(
    config: Config, identities: Identities, tokens: TokenService
) -> tuple[Caller, Callable[[Request], str | None]]:
    """8446: the caller is the user of an ``Authorization: Bearer`` token from ``/oauth/token``
    (still a user, not disabled), with the groups a certificate of that user would get."""
    default = Membership.both(config.tls_default_groups)

    def subject(request: Request) -> str | None:
        # What caller() found for this request (checked off the loop); else checked here.
        if hasattr(request.state, "bearer_subject"):
            found: str | None = request.state.bearer_subject
            return found
        token = bearer_token(request)
        if token is None:
            return None
        return bearer_user(tokens, identities.users.get, token, Audience.API, time.time())

    async def caller(request: Request) -> Membership | None:
        token = bearer_token(request)
        name = None
        if token is not None:
            lookup = identities.users.get
            name = await bearer_subject(tokens, lookup, token, Audience.API, time.time())
        request.state.bearer_subject = name
        return None if name is None else identities.groups.get(name, default)

    return caller, subject


def shared_signin(running: Running, config: Config) -> SignIn:
    """The password check every port uses (8446, basic auth on 8080, ``<auth>`` on TCP), so
    an address's wrong passwords count once whichever port they come through."""
    if running.signin is None:
        running.signin = SignIn(UserStore(config.data_dir))
    return running.signin


def token_service(running: Running, config: Config, pki: PkiPaths) -> TokenService:
    """The server's one token service (key ``pki/token.key``, made on first use)."""
    if running.tokens is None:
        try:
            key = ensure_token_key(pki.root)
        except (PkiError, OSError) as exc:
            raise StartupError(f"cannot make or read the token key in {pki.root}: {exc}") from None
        running.tokens = TokenService(key, config.server_names[0])
    return running.tokens


async def serve_enrollment(
    running: Running,
    config: Config,
    pki: PkiPaths,
    identities: Identities,
    blobs: Blobs,
    port: int,
) -> None:
    """8446: ``/oauth/token``, enrollment, the Marti API to bearer-token sessions, the web
    app to password sessions, and the admin API to the sessions of ``admin_users``."""
    tokens = token_service(running, config, pki)
    state = Enrollment(pki, shared_signin(running, config), running.counters, tokens, time.time)
    caller, principal = bearer_caller(config, identities, tokens)
    more = enrollment_routes(state) + password_web(
        running, config, identities, tokens, shared_signin(running, config)
    )
    web_admin = session_admin(config, identities, tokens)
    more += admin.routes(
        admin_state(
            running, config, identities, PeerCertificates(), pki, blobs, web_admin, session_refusal
        )
    )
    app = marti_app(running, config, caller, principal, more, blobs)
    where = ("enroll", port, config.enroll_port, "--enroll-port")
    await serve_http(running, config, app, enroll_tls_context(pki), where)


def password_caller(
    config: Config, signin: SignIn
) -> tuple[Caller, Callable[[Request], str | None]]:
    """Plain HTTP (ATAK on a TCP stream uses http://host:8080/Marti): HTTP basic auth with the
    users of ``accord user``, or, unless ``tcp_auth`` is on, anonymous with the TCP groups."""
    default = Membership.both(config.tcp_groups)
    check = password_check(signin, default)

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


def device_endpoint(config: Config) -> Callable[[str | None], Endpoint]:
    """Where devices dial this server (the host given, else ``server_names[0]``), as
    ``accord package`` writes it into a connection package."""

    def endpoint(host: str | None) -> Endpoint:
        host = host or config.server_names[0]
        return Endpoint(
            host,
            f"Accord {host}",
            stream_port=config.tls_port or STREAM_PORT,
            api_port=config.https_port or API_PORT,
            enrollment_port=config.enroll_port or ENROLLMENT_PORT,
        )

    return endpoint


def admin_state(
    running: Running,
    config: Config,
    identities: Identities,
    peers: PeerCertificates,
    pki: PkiPaths | None = None,
    blobs: Blobs | None = None,
    caller: admin.AdminCaller | None = None,
    refusal: Callable[[Request], str | None] | None = None,
) -> admin.AdminState:
    """The admin API's state; its caller is the client certificate (8443) unless ``caller``
    (and its CSRF rule ``refusal``) says otherwise (8446's web session)."""
    admin_cn = caller or certificate_cn(identities, peers)

    def revoked() -> None:
        if pki is not None:
            identities.revoked = registry.revoked_serials(pki)

    identity = (
        IdentityAdmin(
            UserStore(config.data_dir),
            pki,
            device_endpoint(config),
            revoked,
            lambda: dt.datetime.now(dt.UTC),
            changed=lambda: cluster_changed(running).set(),
        )
        if pki is not None
        else None
    )
    stores = (
        StoreAdmin(running.store, running.store, blobs, pki.root)
        if running.store is not None and pki is not None
        else None
    )
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
        identity,
        stores,
        refusal or csrf_refusal,
        cluster=None if running.cluster_status is None else running.cluster_status.gather,
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
