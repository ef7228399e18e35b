"""The partner-facing package port: partners fetch what was announced to them, nothing else.

A separate HTTPS listener (``federation_files_port``) whose TLS trusts only the partners' pinned
CAs: a partner's federation certificate never reaches the users' API on 8443, and the users'
certificates are not accepted here. The one route is TAK's content download; a hash is served
to a partner only after a ``b-f-t-r`` naming it was released to that partner.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from uvicorn.protocols.http.h11_impl import H11Protocol

from accord.api.packages.download import BlobResponse, disposition
from accord.store.blobs import Blobs, is_hash
from accord.store.contract import PackageStore

log = logging.getLogger("accord.federation")


class PartnerCertificates:
    """The DER certificate of each connection (the partner is told apart by which pinned CA
    signed it, which the parsed form ``getpeercert()`` returns cannot show)."""

    def __init__(self) -> None:
        self._by_peer: dict[tuple[str, int], bytes] = {}

    def of(self, request: Request) -> bytes | None:
        client = request.client
        return self._by_peer.get((client.host, client.port)) if client else None

    def protocol_class(self) -> type[H11Protocol]:
        registry = self._by_peer

        class PartnerH11(H11Protocol):
            def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
                super().connection_made(transport)
                peer = transport.get_extra_info("peername")
                tls = transport.get_extra_info("ssl_object")
                der = tls.getpeercert(binary_form=True) if tls is not None else None
                if isinstance(peer, tuple) and der:
                    self._accord_peer = (str(peer[0]), int(peer[1]))
                    registry[self._accord_peer] = der

            def connection_lost(self, exc: Exception | None) -> None:
                registry.pop(getattr(self, "_accord_peer", ("", 0)), None)
                super().connection_lost(exc)

        return PartnerH11


def partner_files_app(
    store: PackageStore,
    blobs: Blobs,
    certificates: PartnerCertificates,
    partner_of: Callable[[bytes], str | None],  # DER certificate -> partner name
    may_fetch: Callable[[str, str], bool],  # (partner, hash) -> announced to it
) -> Starlette:
    async def content(request: Request) -> Response:
        der = certificates.of(request)
        partner = partner_of(der) if der is not None else None
        if partner is None:
            return PlainTextResponse("a partner's federation certificate is required", 403)
        digest = (request.query_params.get("hash") or "").lower()
        if not is_hash(digest) or not may_fetch(partner, digest):
            log.info("partner %s asked for package %r, not announced to it", partner, digest)
            return PlainTextResponse("no such package for this partner", 404)
        package = await store.package(digest)
        reader = await blobs.reader(digest)
        if package is None or reader is None:
            if reader is not None:
                await reader.close()
            return PlainTextResponse("no such package for this partner", 404)
        headers = {
            "content-type": package.mimetype,
            "content-disposition": disposition(package.name),
        }
        log.info("partner %s fetches package %s (%d bytes)", partner, digest, reader.size)
        return BlobResponse(reader, 0, reader.size, 200, headers, request.method == "HEAD")

    return Starlette(routes=[Route("/Marti/sync/content", content, methods=["GET", "HEAD"])])
