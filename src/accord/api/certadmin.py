"""TAK Server's certificate admin API over Accord's CA (administrators only).

The client certificates the CA issued (``accord cert client``, enrollment, the admin
certificate), from its index (:mod:`accord.identity.registry`), as TAK Server's ``TakCert``:

    GET    /Marti/api/certadmin/cert[?username=]      every one (of that user)
    GET    /Marti/api/certadmin/cert/active           the newest valid one of each user
    GET    /Marti/api/certadmin/cert/revoked|expired|replaced
    GET    /Marti/api/certadmin/cert/{hash}           one, by SHA-256 of its DER (``hash``)
    GET    /Marti/api/certadmin/cert/{hash}/download  its PEM
    GET    /Marti/api/certadmin/cert/download/{ids}   a ZIP of PEMs (``{n}_{user}_ClientCert.pem``)
    DELETE /Marti/api/certadmin/cert/{hash}           revoke it (the CRL is re-signed at once)
    DELETE /Marti/api/certadmin/cert/revoke/{ids}     revoke those (ids comma-separated)

``id`` is the row's place in the index (1 = first issued), stable because the index only grows.
Deleting records (``cert/delete/{ids}``) is not served: a revoked certificate stays listed,
which is what an audit needs. Server and federation certificates are not listed here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import io
import logging
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from accord.api.marti import AdminCheck, Caller, admin_only, envelope
from accord.domain.groups import Membership
from accord.identity import registry
from accord.identity.ca import LEAF_DAYS, PkiError, PkiPaths
from accord.identity.registry import Issued

log = logging.getLogger("accord.certadmin")

CERT_TYPE = "TakCert"
PEM_MEDIA_TYPE = "application/x-pem-file"
MAX_IDS = 1000  # ids in one download or revoke request


@dataclass(frozen=True)
class CertAdminSettings:
    pki: PkiPaths
    now: Callable[[], dt.datetime]  # wall clock, aware UTC
    revoked: Callable[[], None]  # told after a revocation (the live sessions' view of it)


@dataclass(frozen=True, slots=True)
class Row:
    """One issued client certificate, read from the index."""

    id: int
    issued: Issued
    cert: x509.Certificate | None  # None for rows written before certificates were kept

    @property
    def hash(self) -> str:
        if self.cert is None:
            return ""
        return hashlib.sha256(self.cert.public_bytes(serialization.Encoding.DER)).hexdigest()

    @property
    def not_after(self) -> dt.datetime:
        return dt.datetime.fromisoformat(self.issued.not_after)

    @property
    def not_before(self) -> dt.datetime:
        if self.cert is not None:
            return self.cert.not_valid_before_utc
        return self.not_after - dt.timedelta(days=LEAF_DAYS)  # the CA's fixed lifetime


def _stamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{moment.microsecond // 1000:03d}Z"
    )


def _load(pem: str) -> x509.Certificate | None:
    if not pem:
        return None
    try:
        return x509.load_pem_x509_certificate(pem.encode("ascii"))
    except ValueError:
        return None


def rows(pki: PkiPaths) -> list[Row]:
    """The client certificates, oldest first."""
    return [
        Row(index, issued, _load(issued.pem))
        for index, issued in enumerate(registry.load_index(pki), start=1)
        if issued.kind == "client"
    ]


def cert_json(row: Row) -> dict[str, Any]:
    """TAK Server's ``TakCert`` (node-tak's ``Certificate``)."""
    cert = row.cert
    out: dict[str, Any] = {
        "id": row.id,
        "creatorDn": cert.issuer.rfc4514_string() if cert is not None else "",
        "subjectDn": cert.subject.rfc4514_string() if cert is not None else f"CN={row.issued.name}",
        "userDn": row.issued.name,
        "certificate": row.issued.pem,
        "hash": row.hash,
        "clientUid": "",
        "issuanceDate": _stamp(row.not_before),
        "expirationDate": _stamp(row.not_after),
        "effectiveDate": _stamp(row.not_before),
        "token": "",
        "serialNumber": row.issued.serial,
    }
    if row.issued.revoked:
        out["revocationDate"] = _stamp(dt.datetime.fromisoformat(row.issued.revoked_at))
    return out


def _normal_hash(text: str) -> str:
    return text.replace(":", "").strip().lower()


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def certadmin_routes(
    settings: CertAdminSettings, caller: Caller, is_admin: AdminCheck
) -> list[BaseRoute]:
    def listing(select: Callable[[list[Row], dt.datetime], list[Row]]) -> Any:
        async def handler(request: Request, who: Membership) -> Response:
            try:
                found = select(rows(settings.pki), settings.now())
            except PkiError as exc:
                return _error(503, str(exc))
            return JSONResponse(envelope(CERT_TYPE, [cert_json(r) for r in found]))

        return admin_only(caller, is_admin, handler)

    def every(found: list[Row], now: dt.datetime) -> list[Row]:
        return found

    def revoked(found: list[Row], now: dt.datetime) -> list[Row]:
        return [r for r in found if r.issued.revoked]

    def expired(found: list[Row], now: dt.datetime) -> list[Row]:
        return [r for r in found if r.not_after <= now]

    def newest_valid(found: list[Row], now: dt.datetime) -> dict[str, Row]:
        newest: dict[str, Row] = {}
        for r in found:
            if not r.issued.revoked and r.not_after > now:
                newest[r.issued.name] = r  # oldest first: the last one wins
        return newest

    def active(found: list[Row], now: dt.datetime) -> list[Row]:
        return sorted(newest_valid(found, now).values(), key=lambda r: r.id)

    def replaced(found: list[Row], now: dt.datetime) -> list[Row]:
        newest = newest_valid(found, now)
        return [
            r
            for r in found
            if not r.issued.revoked and r.issued.name in newest and newest[r.issued.name].id > r.id
        ]

    async def by_user(request: Request, who: Membership) -> Response:
        name = request.query_params.get("username")
        try:
            found = rows(settings.pki)
        except PkiError as exc:
            return _error(503, str(exc))
        if name is not None:
            found = [r for r in found if r.issued.name == name]
        return JSONResponse(envelope(CERT_TYPE, [cert_json(r) for r in found]))

    def find(hash: str) -> Row | None:
        wanted = _normal_hash(hash)
        return next((r for r in rows(settings.pki) if wanted and r.hash == wanted), None)

    def by_ids(text: str) -> list[Row] | str:
        parts = [p.strip() for p in text.split(",") if p.strip()]
        if not parts or len(parts) > MAX_IDS or not all(p.isdigit() for p in parts):
            return f"ids must be 1 to {MAX_IDS} whole numbers, comma-separated"
        known = {r.id: r for r in rows(settings.pki)}
        missing = [p for p in parts if int(p) not in known]
        if missing:
            return f"no client certificate with id {', '.join(missing)}"
        return [known[int(p)] for p in parts]

    async def one(request: Request, who: Membership) -> Response:
        row = find(request.path_params["hash"])
        if row is None:
            return _error(404, f"no client certificate with hash {request.path_params['hash']}")
        return JSONResponse(envelope(CERT_TYPE, cert_json(row)))

    async def download(request: Request, who: Membership) -> Response:
        row = find(request.path_params["hash"])
        if row is None or not row.issued.pem:
            return _error(404, f"no client certificate with hash {request.path_params['hash']}")
        return Response(
            row.issued.pem,
            media_type=PEM_MEDIA_TYPE,
            headers={"content-disposition": f'attachment; filename="{row.issued.name}.pem"'},
        )

    async def download_ids(request: Request, who: Membership) -> Response:
        found = by_ids(request.path_params["ids"])
        if isinstance(found, str):
            return _error(400 if "whole numbers" in found else 404, found)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for n, row in enumerate(found, start=1):
                if row.issued.pem:
                    archive.writestr(f"{n}_{row.issued.name}_ClientCert.pem", row.issued.pem)
        return Response(
            buffer.getvalue(),
            media_type="application/zip",
            headers={"content-disposition": 'attachment; filename="certificates.zip"'},
        )

    async def revoke(found: list[Row], admin: str) -> list[Row] | PkiError:
        """Revoke the rows not yet revoked: one index write and one CRL, in a worker thread
        (under the index's lock); the rows as they are now, or the first refusal."""
        todo = [row for row in found if not row.issued.revoked]
        serials = [row.issued.serial for row in todo]
        results = await asyncio.to_thread(
            registry.revoke_serials, settings.pki, serials, settings.now()
        )
        done: dict[str, Issued] = {}
        for row, result in zip(todo, results, strict=True):
            if isinstance(result, Issued):
                done[row.issued.serial] = result
                log.warning(
                    "certificate %s of %s revoked by %s", row.issued.serial, row.issued.name, admin
                )
        if done:
            settings.revoked()
        refused = next((r for r in results if isinstance(r, PkiError)), None)
        if refused is not None:
            return refused
        return [
            dataclasses.replace(row, issued=done[row.issued.serial])
            if row.issued.serial in done
            else row
            for row in found
        ]

    async def revoke_one(request: Request, who: Membership) -> Response:
        row = find(request.path_params["hash"])
        if row is None:
            return _error(404, f"no client certificate with hash {request.path_params['hash']}")
        if row.issued.revoked:
            return _error(
                409, f"the certificate with serial {row.issued.serial} is already revoked"
            )
        done = await revoke([row], is_admin(request) or "-")
        if isinstance(done, PkiError):
            return _error(409, str(done))
        return JSONResponse(envelope(CERT_TYPE, cert_json(done[0])))

    async def revoke_ids(request: Request, who: Membership) -> Response:
        found = by_ids(request.path_params["ids"])
        if isinstance(found, str):
            return _error(400 if "whole numbers" in found else 404, found)
        done = await revoke(found, is_admin(request) or "-")
        if isinstance(done, PkiError):
            return _error(409, str(done))
        return JSONResponse(envelope(CERT_TYPE, [cert_json(r) for r in done]))

    def only(handler: Any) -> Any:
        return admin_only(caller, is_admin, handler)

    base = "/Marti/api/certadmin/cert"
    return [
        Route(base, only(by_user), methods=["GET"]),
        Route(f"{base}/active", listing(active), methods=["GET"]),
        Route(f"{base}/revoked", listing(revoked), methods=["GET"]),
        Route(f"{base}/expired", listing(expired), methods=["GET"]),
        Route(f"{base}/replaced", listing(replaced), methods=["GET"]),
        Route(f"{base}/all", listing(every), methods=["GET"]),
        Route(f"{base}/download/{{ids}}", only(download_ids), methods=["GET"]),
        Route(f"{base}/revoke/{{ids}}", only(revoke_ids), methods=["DELETE"]),
        Route(f"{base}/{{hash}}/download", only(download), methods=["GET"]),
        Route(f"{base}/{{hash}}", only(one), methods=["GET"]),
        Route(f"{base}/{{hash}}", only(revoke_one), methods=["DELETE"]),
    ]
