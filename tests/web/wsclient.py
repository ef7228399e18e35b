"""A small WebSocket client over a real TLS socket (wsproto), for tests that need to send
what no browser would: foreign origins, garbage, and a client that stops reading."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
from typing import Any

from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Message,
    Ping,
    RejectConnection,
    Request,
    TextMessage,
)
from wsproto.extensions import PerMessageDeflate


class WsClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.messages: list[str] = []
        self.closed: int | None = None
        self._partial = ""
        self.sock: socket.socket | None = None
        self.extensions: list[Any] = []  # what the server accepted (permessage-deflate)

    @classmethod
    async def connect(
        cls,
        port: int,
        *,
        origin: str | None,
        cookie: str = "",
        certs: tuple[Any, Any] | None = None,
        receive_buffer: int = 0,
        deflate: bool = False,
    ) -> WsClient:
        """``receive_buffer``: a small SO_RCVBUF, so a client that stops reading fills up soon;
        ``deflate``: offer permessage-deflate, as a browser does."""
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        if certs is not None:
            ctx.load_cert_chain(*certs)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if receive_buffer:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        reader, writer = await asyncio.open_connection(
            sock=sock, ssl=ctx, server_hostname="127.0.0.1"
        )
        client = cls(reader, writer)
        client.sock = sock  # uvloop works on a duplicate: this one is closed with the client
        headers = [(b"cookie", cookie.encode())] if cookie else []
        if origin is not None:
            headers.append((b"origin", origin.encode()))
        writer.write(
            client.ws.send(
                Request(
                    host=f"127.0.0.1:{port}",
                    target="/web/feed",
                    extra_headers=headers,
                    extensions=[PerMessageDeflate()] if deflate else [],
                )
            )
        )
        await writer.drain()
        return client

    async def accepted(self, timeout: float = 5.0) -> bool:
        """True once the server accepted the handshake; False when it refused or closed."""
        async with asyncio.timeout(timeout):
            while True:
                for event in await self._events():
                    if isinstance(event, AcceptConnection):
                        self.extensions = list(event.extensions)
                        return True
                    if isinstance(event, RejectConnection | CloseConnection):
                        return False

    async def send_text(self, text: str) -> None:
        self.writer.write(self.ws.send(Message(data=text)))
        await self.writer.drain()

    async def next_batch(self, timeout: float = 5.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while not self.messages:
                await self._events()
        return dict(json.loads(self.messages.pop(0)))

    async def _events(self) -> list[Any]:
        data = await self.reader.read(65536)
        if not data:
            self.closed = self.closed or 1006
            return [CloseConnection(code=1006)]
        self.ws.receive_data(data)
        events = list(self.ws.events())
        for event in events:
            if isinstance(event, TextMessage):
                self._partial += event.data
                if event.message_finished:
                    self.messages.append(self._partial)
                    self._partial = ""
            elif isinstance(event, Ping):
                self.writer.write(self.ws.send(event.response()))
            elif isinstance(event, CloseConnection):
                self.closed = event.code
        return events

    def close(self) -> None:
        self.writer.close()
        if self.sock is not None:
            self.sock.close()
