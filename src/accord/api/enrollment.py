"""Password sign-in and enrollment on port 8446 (server-authenticated TLS), as TAK Server.

``POST /oauth/token`` (OAuth 2 password grant, RFC 6749 §4.3: ``grant_type=password``,
``username``, ``password`` in the query, as node-tak sends them, or a form body) answers a
bearer token from the server's token service. ``GET /Marti/api/tls/config`` and ``POST
/Marti/api/tls/signClient/v2`` (JSON or XML) take HTTP basic auth or that bearer token;
``POST /Marti/api/tls/signClient`` (v1: a PKCS#12 of the chain) and ``GET
/Marti/api/tls/profile/enrollment`` (204: no profile) take basic auth. The Marti API is served
on this port too, to bearer-token sessions (composed in ``accord.app.http``). Wrong passwords
are counted and throttled (:mod:`accord.identity.signin`); every bad request gets a 4xx with a
reason, never a 500.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from accord.api.marti import Caller, authorised
from accord.domain.groups import Membership
from accord.domain.metrics import Counters
from accord.identity import enroll
from accord.identity.ca import PkiError, PkiPaths
from accord.identity.p12 import DEFAULT_PASSWORD, encode_truststore
from accord.identity.signin import Refusal, SignIn
from accord.identity.token import (
    ACCESS_TOKEN_LIFETIME_S,
    Audience,
    TokenError,
    TokenService,
    predates_password,
)
from accord.identity.users import User, UserStoreError

log = logging.getLogger("accord.enroll")


@dataclass
class Enrollment:
    """What the API needs: the CA, the sign-in, the counters to report into and the token
    service with the wall clock it checks tokens against (without them, no ``/oauth/token``
    and no bearer tokens)."""

    pki: PkiPaths
    signin: SignIn
    counters: Counters
    tokens: TokenService | None = None
    wall_s: Callable[[], float] | None = None
    # Password checks (argon2) and signing (RSA, the certificate index) run in a worker thread,
    # one at a time: neither the user store nor the index takes concurrent writers.
    working: asyncio.Lock = field(default_factory=asyncio.Lock)


def _plain(status: int, text: str, **headers: str) -> Response:
    return PlainTextResponse(text + "\n", status_code=status, headers=headers)


def _credentials(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        name, sep, password = base64.b64decode(value, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (name, password) if sep else None


def bearer_token(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer`` header, if the request has one."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    value = value.strip()
    return value if scheme.lower() == "bearer" and value else None


async def _sign_in(state: Enrollment, client: str, name: str, password: str) -> User | Refusal:
    """The password check, counted; raises :class:`UserStoreError` when the store is broken."""
    # argon2 costs tens of milliseconds on purpose: keep it off the event loop.
    async with state.working:
        result = await asyncio.to_thread(
            state.signin.check, client, name, password, time.monotonic()
        )
    if result is Refusal.THROTTLED:
        state.counters.enroll_throttled += 1
    elif result is Refusal.WRONG:
        state.counters.enroll_auth_failed += 1
        log.warning("sign-in failed peer=%s user=%r", client, name[:64])
    return result


def _retry_after(state: Enrollment, client: str) -> str:
    return str(math.ceil(state.signin.wait_s(client, time.monotonic())))


def bearer_user(
    tokens: TokenService,
    lookup: Callable[[str], User | None],
    token: str,
    audience: Audience,
    now_s: float,
) -> str | None:
    """The user a token of ours was issued to, if it is valid at ``now_s`` and its user still
    exists, is not disabled and has not set a new password since. Blocking: ``lookup`` may
    re-read the user store (run it off the event loop, see :func:`bearer_subject`)."""
    try:
        claims = tokens.verify(token, audience, now_s)
    except TokenError as exc:
        log.info("bearer token refused: %s", exc)
        return None
    try:
        user = lookup(claims.subject)
    except UserStoreError as exc:
        log.error("bearer token not checked: %s", exc)
        return None
    if user is None or user.disabled:
        return None
    if predates_password(claims, user.password_changed_ms):
        log.info("bearer token refused: issued before %s's password was set", user.name)
        return None
    return user.name


async def bearer_subject(
    tokens: TokenService,
    lookup: Callable[[str], User | None],
    token: str,
    audience: Audience,
    now_s: float,
) -> str | None:
    """:func:`bearer_user` in a worker thread (the store may be read from disk)."""
    return await asyncio.to_thread(bearer_user, tokens, lookup, token, audience, now_s)


async def token_subject(state: Enrollment, token: str, audience: Audience) -> str | None:
    """The user a token of ours was issued to, if it is valid now and the user still is."""
    if state.tokens is None or state.wall_s is None:
        return None
    return await bearer_subject(state.tokens, state.signin.user, token, audience, state.wall_s())


async def _authenticate(
    state: Enrollment, request: Request, *, bearer: bool = False
) -> str | Response:
    """The signed-in user name (basic auth, or a bearer token where ``bearer``), or the
    response that refuses the request."""
    client = request.client.host if request.client else "?"
    challenge = {"WWW-Authenticate": 'Basic realm="Accord enrollment"'}
    token = bearer_token(request) if bearer else None
    if token is not None:
        who = await token_subject(state, token, Audience.API)
        if who is None:
            state.counters.enroll_auth_failed += 1
            bad = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
            return _plain(401, "the bearer token is not valid: sign in again", **bad)
        return who
    creds = _credentials(request)
    if creds is None:
        return _plain(401, "sign in with your Accord user name and password", **challenge)
    name, password = creds
    try:
        result = await _sign_in(state, client, name, password)
    except UserStoreError as exc:
        log.error("enrollment refused: %s", exc)
        return _plain(503, "the user store cannot be read; ask the operator")
    if result is Refusal.THROTTLED:
        return _plain(429, result.value, **{"Retry-After": _retry_after(state, client)})
    if result is Refusal.WRONG:
        return _plain(401, result.value, **challenge)
    assert not isinstance(result, Refusal)
    return result.name


def _oauth_error(status: int, error: str, description: str) -> Response:
    # RFC 6749 §5.2; node-tak tells wrong credentials by invalid_grant + "Bad credentials".
    body = {"error": error, "error_description": description}
    return JSONResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


async def _token(state: Enrollment, request: Request) -> Response:
    """``POST /oauth/token``: the password grant."""
    if state.tokens is None or state.wall_s is None:
        return _oauth_error(404, "unsupported_grant_type", "no token service on this port")
    body = await _body(request)
    if isinstance(body, Response):
        return body
    params = dict(request.query_params)
    if body and "application/x-www-form-urlencoded" in request.headers.get("content-type", ""):
        try:
            params.update(parse_qsl(body.decode(), max_num_fields=16))
        except (UnicodeDecodeError, ValueError):
            return _oauth_error(400, "invalid_request", "the form body cannot be read")
    grant = params.get("grant_type", "")
    if grant != "password":
        return _oauth_error(
            400, "unsupported_grant_type", f"grant_type {grant[:32]!r}: use password"
        )
    name, password = params.get("username", ""), params.get("password", "")
    if not name or not password:
        return _oauth_error(400, "invalid_request", "username and password are required")
    client = request.client.host if request.client else "?"
    try:
        result = await _sign_in(state, client, name, password)
    except UserStoreError as exc:
        log.error("sign-in refused: %s", exc)
        return _oauth_error(503, "temporarily_unavailable", "the user store cannot be read")
    if result is Refusal.THROTTLED:
        return JSONResponse(
            {"error": "invalid_grant", "error_description": result.value},
            status_code=429,
            headers={"Retry-After": _retry_after(state, client), "Cache-Control": "no-store"},
        )
    if result is Refusal.WRONG:
        return _oauth_error(400, "invalid_grant", "Bad credentials")
    assert not isinstance(result, Refusal)
    try:
        token = state.tokens.issue(result.name, Audience.API, state.wall_s())
    except TokenError as exc:
        return _oauth_error(400, "invalid_grant", str(exc))
    log.info("token issued user=%s peer=%s", result.name, client)
    answer = {
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": ACCESS_TOKEN_LIFETIME_S,
        "scope": "read write",
    }
    return JSONResponse(answer, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


async def _body(request: Request) -> bytes | Response:
    """The request body, refused with 413 past the size a CSR can have."""
    size = 0
    chunks: list[bytes] = []
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > enroll.MAX_CSR_BYTES:
                return _plain(413, f"body larger than {enroll.MAX_CSR_BYTES} bytes")
            chunks.append(chunk)
    except ClientDisconnect:  # gone, or closed for sending too slowly (app.http_serve deadlines)
        return _plain(400, "the client went away before the body was complete")
    return b"".join(chunks)


def _certificate_config() -> Response:
    return Response(enroll.certificate_config(), media_type="application/xml")


def config_routes(caller: Caller) -> list[BaseRoute]:
    """``GET /Marti/api/tls/config`` where callers are client certificates (8443), as the
    official server serves it there too."""

    async def tls_config(request: Request, caller: Membership) -> Response:
        return _certificate_config()

    return [Route("/Marti/api/tls/config", authorised(caller, tls_config), methods=["GET"])]


def routes(state: Enrollment) -> list[BaseRoute]:
    """The routes of the 8446 port besides the Marti API."""

    async def token(request: Request) -> Response:
        return await _token(state, request)

    async def tls_config(request: Request) -> Response:
        who = await _authenticate(state, request, bearer=True)
        if isinstance(who, Response):
            return who
        return _certificate_config()

    async def sign(request: Request, *, v2: bool) -> Response:
        who = await _authenticate(state, request, bearer=v2)
        if isinstance(who, Response):
            return who
        body = await _body(request)
        if isinstance(body, Response):
            return body
        try:
            async with state.working:
                signed = await asyncio.to_thread(
                    enroll.sign, state.pki, who, body, dt.datetime.now(dt.UTC)
                )
        except enroll.EnrollError as exc:
            state.counters.enroll_refused += 1
            log.warning("enrollment refused user=%s: %s", who, exc)
            return _plain(400, str(exc))
        except PkiError as exc:
            log.error("enrollment failed: %s", exc)
            return _plain(503, "the CA cannot be read; ask the operator")
        state.counters.enrolled += 1
        log.info(
            "enrolled user=%s uid=%s serial=%X",
            who,
            request.query_params.get("clientUid", "-")[:128],
            signed.cert.serial_number,
        )
        if not v2:  # v1: the chain as a PKCS#12 truststore, password atakatak (§4.9)
            chain = encode_truststore([signed.cert, *signed.chain], DEFAULT_PASSWORD)
            return Response(chain, media_type="application/x-pkcs12")
        if "application/xml" in request.headers.get("accept", ""):
            return Response(enroll.encode_xml(signed), media_type="application/xml")
        return JSONResponse(enroll.encode_json(signed))

    async def sign_v1(request: Request) -> Response:
        return await sign(request, v2=False)

    async def sign_v2(request: Request) -> Response:
        return await sign(request, v2=True)

    async def profile(request: Request) -> Response:
        who = await _authenticate(state, request)
        if isinstance(who, Response):
            return who
        return Response(status_code=204)  # no enrollment profile to hand out (yet)

    return [
        Route("/oauth/token", token, methods=["POST"]),
        Route("/Marti/api/tls/config", tls_config, methods=["GET"]),
        Route("/Marti/api/tls/signClient", sign_v1, methods=["POST"]),
        Route("/Marti/api/tls/signClient/v2", sign_v2, methods=["POST"]),
        Route("/Marti/api/tls/profile/enrollment", profile, methods=["GET"]),
    ]


def build_app(state: Enrollment) -> Starlette:
    """The 8446 routes alone (the server serves them with the Marti API, see app.http)."""
    return Starlette(routes=routes(state))
