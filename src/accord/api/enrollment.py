"""The enrollment HTTPS API (port 8446, server-authenticated TLS, HTTP basic auth).

``GET /Marti/api/tls/config``, ``POST /Marti/api/tls/signClient`` (v1: a PKCS#12 of the
chain), ``POST /Marti/api/tls/signClient/v2`` (JSON or XML), ``GET
/Marti/api/tls/profile/enrollment`` (204: no profile). Wrong passwords are counted and
throttled per address and per user; every bad request gets a 4xx with a reason, never a 500.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import logging
import time
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from accord.domain.metrics import Counters
from accord.identity import enroll
from accord.identity.ca import PkiError, PkiPaths
from accord.identity.p12 import DEFAULT_PASSWORD, encode_truststore
from accord.identity.signin import Refusal, SignIn
from accord.identity.users import UserStoreError

log = logging.getLogger("accord.enroll")


@dataclass
class Enrollment:
    """What the API needs: the CA, the sign-in, and the counters to report into."""

    pki: PkiPaths
    signin: SignIn
    counters: Counters
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


async def _authenticate(state: Enrollment, request: Request) -> str | Response:
    """The signed-in user name, or the response that refuses the request."""
    client = request.client.host if request.client else "?"
    now = time.monotonic()
    creds = _credentials(request)
    challenge = {"WWW-Authenticate": 'Basic realm="Accord enrollment"'}
    if creds is None:
        return _plain(401, "sign in with your Accord user name and password", **challenge)
    name, password = creds
    try:
        # argon2 costs tens of milliseconds on purpose: keep it off the event loop.
        async with state.working:
            result = await asyncio.to_thread(state.signin.check, client, name, password, now)
    except UserStoreError as exc:
        log.error("enrollment refused: %s", exc)
        return _plain(503, "the user store cannot be read; ask the operator")
    if result is Refusal.THROTTLED:
        state.counters.enroll_throttled += 1
        return _plain(429, result.value, **{"Retry-After": "60"})
    if result is Refusal.WRONG:
        state.counters.enroll_auth_failed += 1
        log.warning("enrollment sign-in failed peer=%s user=%r", client, name[:64])
        return _plain(401, result.value, **challenge)
    assert not isinstance(result, Refusal)
    return result.name


async def _body(request: Request) -> bytes | Response:
    """The request body, refused with 413 past the size a CSR can have."""
    size = 0
    chunks: list[bytes] = []
    async for chunk in request.stream():
        size += len(chunk)
        if size > enroll.MAX_CSR_BYTES:
            return _plain(413, f"body larger than {enroll.MAX_CSR_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def build_app(state: Enrollment) -> Starlette:
    async def tls_config(request: Request) -> Response:
        who = await _authenticate(state, request)
        if isinstance(who, Response):
            return who
        return Response(enroll.certificate_config(), media_type="application/xml")

    async def sign(request: Request, *, v2: bool) -> Response:
        who = await _authenticate(state, request)
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

    return Starlette(
        routes=[
            Route("/Marti/api/tls/config", tls_config, methods=["GET"]),
            Route("/Marti/api/tls/signClient", sign_v1, methods=["POST"]),
            Route("/Marti/api/tls/signClient/v2", sign_v2, methods=["POST"]),
            Route("/Marti/api/tls/profile/enrollment", profile, methods=["GET"]),
        ]
    )
