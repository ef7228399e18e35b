"""The TLS client certificate behind an HTTP request.

uvicorn does not put the peer certificate into the ASGI scope, but the scope does carry the
peer address. This protocol records each connection's certificate by address for as long as
the connection lives, and :meth:`PeerCertificates.of` finds it for a request.

A connection that upgrades to a WebSocket changes protocol: uvicorn hands the transport to
its WebSocket protocol, and the HTTP protocol never hears the connection end. The WebSocket
protocol of such a connection (:func:`_releasing`) releases the entry when it is lost.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import HTTPConnection
from uvicorn.protocols.http.h11_impl import H11Protocol

Peer = tuple[str, int]


def _peer_of(transport: asyncio.BaseTransport) -> Peer | None:
    peer = transport.get_extra_info("peername")
    return (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) else None


def _releasing(base: type[Any], registry: dict[Peer, dict[str, Any]]) -> type[Any]:
    """``base`` (uvicorn's WebSocket protocol) that drops its connection's certificate."""

    class ReleasingWebSocket(base):  # type: ignore[misc]
        _accord_peer: Peer | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:
            self._accord_peer = _peer_of(transport)
            super().connection_made(transport)

        def connection_lost(self, exc: Exception | None) -> None:
            if self._accord_peer is not None:
                registry.pop(self._accord_peer, None)
            super().connection_lost(exc)

    ReleasingWebSocket.__name__ = f"Releasing{base.__name__}"
    return ReleasingWebSocket


class PeerCertificates:
    def __init__(self) -> None:
        self._by_peer: dict[Peer, dict[str, Any]] = {}

    def __len__(self) -> int:
        """Connections whose certificate is held (open ones only)."""
        return len(self._by_peer)

    def of(self, request: HTTPConnection) -> dict[str, Any] | None:
        client = request.client
        return self._by_peer.get((client.host, client.port)) if client else None

    def protocol_class(self) -> type[H11Protocol]:
        registry = self._by_peer
        websockets: dict[type[Any], type[Any]] = {}  # uvicorn's class -> its releasing one

        class CertRecordingH11(H11Protocol):
            _accord_peer: Peer | None = None

            def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
                super().connection_made(transport)
                peer, cert = _peer_of(transport), transport.get_extra_info("peercert")
                if peer is not None and cert:
                    self._accord_peer = peer
                    registry[peer] = cert
                    base = self.ws_protocol_class
                    if base is not None:
                        if base not in websockets:
                            websockets[base] = _releasing(base, registry)
                        self.ws_protocol_class = websockets[base]

            def connection_lost(self, exc: Exception | None) -> None:
                if self._accord_peer is not None:
                    registry.pop(self._accord_peer, None)
                super().connection_lost(exc)

        return CertRecordingH11
