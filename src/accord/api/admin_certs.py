"""The admin API's certificates, connection packages and enrolment QR codes.

    GET    /api/admin/certificates              every certificate the CA issued, and its state
    DELETE /api/admin/certificates/{serial}     revoke one (the CRL is re-signed at once)
    POST   /api/admin/users/{name}/package      a connection package (zip) for the user:
                                                {flavour: atak|itak, enroll: bool, host}
    POST   /api/admin/users/{name}/qr?format=png|svg
                                                the enrolment QR (ATAK; a new one-time
                                                password, also in X-Accord-Password) or,
                                                with {itak: true}, iTAK's server QR

A revocation goes the way of ``accord cert revoke``: the index and the CRL are rewritten, and
the identity watcher closes that device's live sessions within ``revocation_check_s``; the
HTTPS API refuses the certificate at once. A package issues a fresh client certificate
(:mod:`accord.identity.handout`, the code path of ``accord package``). Both are POST: they
change state (a certificate, a password), so they pass the CSRF check.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from accord.api.admin_guard import BadRequest, Guard, json_object
from accord.api.admin_users import IdentityAdmin
from accord.identity import registry
from accord.identity.ca import PkiError
from accord.identity.handout import issue_package
from accord.identity.p12 import new_password
from accord.identity.package import FLAVOURS, Endpoint, safe_filename
from accord.identity.qr import encode_png, encode_svg, enrollment_uri, quick_connect_csv
from accord.identity.registry import Issued

log = logging.getLogger("accord.admin")

ZIP_MEDIA_TYPE = "application/zip"
QR_MEDIA_TYPES = {"png": "image/png", "svg": "image/svg+xml"}


def certificate_json(row: Issued) -> dict[str, Any]:
    return {
        "name": row.name,
        "kind": row.kind,
        "serial": row.serial,
        "not_after": row.not_after,
        "revoked": row.revoked,
        "revoked_at": row.revoked_at or None,
    }


async def _optional_object(request: Request) -> dict[str, Any]:
    return await json_object(request) if await request.body() else {}


def cert_routes(admin: IdentityAdmin | None, only: Guard) -> list[BaseRoute]:
    def settings() -> IdentityAdmin:
        if admin is None:
            raise BadRequest(404, "certificate administration is not available on this server")
        return admin

    async def pki(change: Any) -> Any:
        s = settings()
        async with s.lock:
            try:
                return await asyncio.to_thread(change)
            except PkiError as exc:
                text = str(exc)
                raise BadRequest(
                    404 if "no certificate" in text else 409 if "already" in text else 400, text
                ) from None

    def endpoint(body: dict[str, Any]) -> Endpoint:
        host = body.get("host")
        if host is not None and not isinstance(host, str):
            raise BadRequest(400, "'host' must be a string")
        try:
            return settings().endpoint(host or None)
        except (PkiError, ValueError) as exc:
            raise BadRequest(400, str(exc)) from None

    async def existing_user(name: str) -> None:
        s = settings()
        if await s.run(lambda: s.users.get(name)) is None:
            raise BadRequest(404, f"no user named {name!r}; add it first (POST /api/admin/users)")

    async def certificates(request: Request, caller: str) -> Response:
        rows = await pki(lambda: registry.load_index(settings().pki))
        return JSONResponse({"certificates": [certificate_json(r) for r in rows]})

    async def revoke(request: Request, caller: str) -> Response:
        s = settings()
        serial = request.path_params["serial"]
        try:
            int(serial, 16)
        except ValueError:
            raise BadRequest(400, f"{serial!r} is not a hexadecimal serial") from None
        row = await pki(lambda: registry.revoke_serial(s.pki, serial, s.now()))
        s.revoked()
        log.info("%s revoked the certificate %s of %s", caller, row.serial, row.name)
        return JSONResponse(certificate_json(row))

    async def package(request: Request, caller: str) -> Response:
        s = settings()
        name = request.path_params["name"]
        body = await _optional_object(request)
        flavour = body.get("flavour", "atak")
        if flavour not in FLAVOURS:
            raise BadRequest(400, f"'flavour' must be one of {', '.join(FLAVOURS)}")
        enroll = body.get("enroll", False)
        if not isinstance(enroll, bool):
            raise BadRequest(400, "'enroll' must be true or false")
        await existing_user(name)
        where = endpoint(body)
        data = await pki(
            lambda: issue_package(
                s.pki,
                where,
                name,
                s.now(),
                uid=str(uuid.uuid4()),
                random_bytes=secrets.token_bytes,
                flavour=flavour,
                enroll=enroll,
            )
        )
        log.info("%s downloaded a connection package for %s", caller, name)
        filename = f"{safe_filename(name)}-{safe_filename(where.host)}"
        filename += "-enroll.zip" if enroll else ".zip"
        return Response(
            data,
            media_type=ZIP_MEDIA_TYPE,
            headers={"content-disposition": f'attachment; filename="{filename}"'},
        )

    async def qr(request: Request, caller: str) -> Response:
        s = settings()
        name = request.path_params["name"]
        kind = request.query_params.get("format", "png")
        if kind not in QR_MEDIA_TYPES:
            raise BadRequest(400, "format must be png or svg")
        body = await _optional_object(request)
        await existing_user(name)
        where = endpoint(body)
        headers = {"cache-control": "no-store"}
        if body.get("itak", False) is True:
            payload = quick_connect_csv(where)
        else:
            # The QR carries the enrolment password; the store keeps only a hash, so a fresh
            # one-time password is set (as `accord qr` does) and shown once, here.
            token = new_password(secrets.token_bytes)
            await s.run(lambda: s.users.set_password(name, token, now_ms=s.now_ms()))
            payload = enrollment_uri(where, name, token)
            headers["x-accord-password"] = token
            log.info("%s made an enrolment QR for %s (new one-time password)", caller, name)
        image = encode_png(payload) if kind == "png" else encode_svg(payload)
        headers["x-accord-qr-payload"] = payload
        return Response(image, media_type=QR_MEDIA_TYPES[kind], headers=headers)

    return [
        Route("/api/admin/certificates", only(certificates), methods=["GET"]),
        Route("/api/admin/certificates/{serial}", only(revoke), methods=["DELETE"]),
        Route("/api/admin/users/{name}/package", only(package), methods=["POST"]),
        Route("/api/admin/users/{name}/qr", only(qr), methods=["POST"]),
    ]
