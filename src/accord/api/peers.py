"""The TLS client certificate behind an HTTP request.

uvicorn does not put the peer certificate into the ASGI scope, but the scope does carry the
peer address. This protocol records each connection's certificate by address for as long as
the connection lives, and :meth:`PeerCertificates.of` finds it for a request.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import HTTPConnection
from uvicorn.protocols.http.h11_impl import H11Protocol


class PeerCertificates:
    def __init__(self) -> None:
        self._by_peer: dict[tuple[str, int], dict[str, Any]] = {}

    def of(self, request: HTTPConnection) -> dict[str, Any] | None:
        client = request.client
        return self._by_peer.get((client.host, client.port)) if client else None

    def protocol_class(self) -> type[H11Protocol]:
        registry = self._by_peer

        class CertRecordingH11(H11Protocol):
            def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
                super().connection_made(transport)
                peer, cert = (
                    transport.get_extra_info("peername"),
                    transport.get_extra_info("peercert"),
                )
                if isinstance(peer, tuple) and cert:
                    self._accord_peer = (str(peer[0]), int(peer[1]))
                    registry[self._accord_peer] = cert

            def connection_lost(self, exc: Exception | None) -> None:
                registry.pop(getattr(self, "_accord_peer", ("", 0)), None)
                super().connection_lost(exc)

        return CertRecordingH11
