"""The web app's wiring: who a browser is on each HTTPS port, and its routes.

8443: the client certificate of the connection (not revoked), with the groups a streaming
client with that certificate gets. 8446: the session cookie, a token of the server's token
service for the web-session audience, of a user that still exists and is not disabled, with
the groups of that user; sign-in goes through the same throttled password check as every
other sign-in. A session of a user in ``admin_users`` is also the admin API's caller on 8446
(:func:`session_admin`), under the web app's CSRF rule (``accord.api.web.session_refusal``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from starlette.requests import HTTPConnection, Request
from starlette.routing import BaseRoute

from accord.api.peers import PeerCertificates
from accord.api.web import (
    BUILTIN_BASEMAP,
    SESSION_COOKIE,
    SESSION_LIFETIME_S,
    WEB_DIR,
    Basemaps,
    WebAccess,
    same_origin,
    web_routes,
)
from accord.api.web_alerts import alert_routes
from accord.api.web_batches import FeedSettings
from accord.api.web_feed import WebFeed, WebUser
from accord.app.running import Running, wall_ms
from accord.config import Config
from accord.domain.groups import Membership
from accord.identity.peer import identity_from_peercert, membership_for
from accord.identity.signin import SignIn
from accord.identity.token import Audience, TokenError, TokenService
from accord.identity.users import UserStoreError
from accord.server.signin import password_check
from accord.server.watch import Identities

log = logging.getLogger("accord.web")


def basemaps(config: Config) -> Basemaps:
    detail = Path(config.web_basemap) if config.web_basemap else None
    return Basemaps(WEB_DIR / "vendor" / BUILTIN_BASEMAP, detail, config.web_tiles_url)


def _feed(running: Running, config: Config, access: WebAccess) -> WebFeed:
    if running.web_feed is None:
        running.web_feed = FeedSettings(
            config.web_queue_items, config.blocked_timeout_s, wall_ms, running.counters
        )
    return WebFeed(running.hub, running.web_feed, access.user, same_origin)


def certificate_web(
    running: Running, config: Config, identities: Identities, peers: PeerCertificates
) -> list[BaseRoute]:
    """8443's ``/web/``: the browser's client certificate is its user."""
    default = Membership.both(config.tls_default_groups)

    async def user(connection: HTTPConnection) -> WebUser | None:
        cert = peers.of(connection)
        if cert is None:
            return None
        identity = identity_from_peercert(cert)
        if identity.serial in identities.revoked:
            return None
        return WebUser(identity.cn, membership_for(identity, identities.groups, default))

    access = WebAccess(user)
    return web_routes(
        access, _feed(running, config, access), basemaps(config), running.store, wall_ms
    ) + alert_routes(access, lambda: running.alert_acks, wall_ms)


def session_user(
    config: Config, identities: Identities, tokens: TokenService
) -> Callable[[HTTPConnection], WebUser | None]:
    """8446: the user of a request's session cookie (a web-audience token of a user that
    still exists and is not disabled), with that user's groups; None without one."""
    default = Membership.both(config.tls_default_groups)

    def user(connection: HTTPConnection) -> WebUser | None:
        token = connection.cookies.get(SESSION_COOKIE)
        if not token:
            return None
        try:
            name = tokens.verify(token, Audience.WEB, time.time()).subject
            known = identities.users.get(name)
        except TokenError as exc:
            log.info("web session refused: %s", exc)
            return None
        except UserStoreError as exc:
            log.error("web session not checked: %s", exc)
            return None
        if known is None or known.disabled:
            return None
        return WebUser(name, identities.groups.get(name, default))

    return user


def session_admin(
    config: Config, identities: Identities, tokens: TokenService
) -> Callable[[Request], str | None]:
    """The admin API's caller on 8446: the name of the request's web session (the admin
    check against ``admin_users`` is the admin API's own)."""
    of = session_user(config, identities, tokens)

    def name(request: Request) -> str | None:
        found = of(request)
        return found.name if found is not None else None

    return name


def password_web(
    running: Running,
    config: Config,
    identities: Identities,
    tokens: TokenService,
    signin: SignIn,
) -> list[BaseRoute]:
    """8446's ``/web/``: a password signs in; the session cookie is its user after that."""
    default = Membership.both(config.tls_default_groups)
    check = password_check(signin, default)
    of = session_user(config, identities, tokens)

    async def user(connection: HTTPConnection) -> WebUser | None:
        return of(connection)

    async def sign_in(peer: str, name: str, password: str) -> str | None:
        result = await check(peer, name, password)
        return result if isinstance(result, str) else None

    def issue(name: str) -> str:
        return tokens.issue(name, Audience.WEB, time.time(), SESSION_LIFETIME_S)

    access = WebAccess(user, sign_in, issue)
    return web_routes(
        access, _feed(running, config, access), basemaps(config), running.store, wall_ms
    ) + alert_routes(access, lambda: running.alert_acks, wall_ms)
