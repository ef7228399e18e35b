"""The client certificates PeerCertificates holds: one per open connection, released when it
closes, also when the connection became a WebSocket (uvicorn swaps the protocol then, so the
HTTP protocol never hears the end). Real TLS with client certificates, real uvicorn."""

from __future__ import annotations

import asyncio
import time

import pytest
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from accord.api.peers import PeerCertificates
from accord.app.http_serve import serve_http
from accord.identity.peer import identity_from_peercert
from accord.server.watch import tls_context
from tests.conftest import ServerFactory
from tests.web.wsclient import WsClient

pytestmark = pytest.mark.timeout(60)
CONNECTIONS = 40


async def until_empty(peers: PeerCertificates, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while len(peers):
        assert time.monotonic() < deadline, f"{len(peers)} certificates still held"
        await asyncio.sleep(0.02)


async def test_closed_websockets_release_their_certificates(make_server: ServerFactory) -> None:
    server = await make_server()
    peers = PeerCertificates()
    seen: list[str] = []

    async def feed(websocket: WebSocket) -> None:
        cert = peers.of(websocket)
        seen.append(identity_from_peercert(cert).cn if cert else "")
        await websocket.accept()
        await websocket.send_text('{"hello": 1}')
        try:
            while True:
                await websocket.receive_text()
        except WebSocketDisconnect:
            return

    app = Starlette(routes=[WebSocketRoute("/web/feed", feed)])
    where = ("peers-test", 0, 0, "--peers-test")
    await serve_http(
        server.running, server.config, app, tls_context(server.pki), where, peers.protocol_class()
    )
    port = server.port("peers-test")
    certs = server.client_cert("carol", group="Blue")

    held = await WsClient.connect(port, origin=None, certs=certs)
    assert await held.accepted()
    await held.next_batch()
    assert len(peers) == 1  # an open WebSocket keeps its certificate (the app may ask again)
    for _ in range(CONNECTIONS):
        client = await WsClient.connect(port, origin=None, certs=certs)
        assert await client.accepted()
        await client.next_batch()
        client.close()
    held.close()
    await until_empty(peers)
    assert seen == ["carol"] * (CONNECTIONS + 1)
