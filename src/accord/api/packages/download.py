"""Sending a package's bytes: one open blob streamed under flow control, stopped when the
client leaves, always closed."""

from __future__ import annotations

import asyncio
import urllib.parse

from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from accord.store.blobs import BlobReader

FALLBACK_FILENAME = "EnterpriseSync.dat"  # TAK Server's ContentServlet default


def disposition(name: str) -> str:
    """``inline`` with an ASCII ``filename`` and, when needed, the exact UTF-8 ``filename*``."""
    plain = "".join(c if c.isascii() and c not in '"\\' else "_" for c in name) or FALLBACK_FILENAME
    header = f'inline; filename="{plain}"'
    if plain != name:
        header += f"; filename*=UTF-8''{urllib.parse.quote(name, safe='')}"
    return header


class BlobResponse(Response):
    """Streams ``length`` bytes of an open blob from ``offset``; stops when the client goes
    away (uvicorn drops what is sent after that, so reading on would only waste the disk) and
    always closes the blob."""

    def __init__(
        self,
        reader: BlobReader,
        offset: int,
        length: int,
        status_code: int,
        headers: dict[str, str],
        head: bool,
    ) -> None:
        self.reader, self.offset, self.length, self.head = reader, offset, length, head
        self.status_code = status_code
        self.background = None
        self.init_headers({**headers, "content-length": str(length)})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            streaming = asyncio.ensure_future(self._stream(send))
            leaving = asyncio.ensure_future(_disconnect(receive))
            try:
                await asyncio.wait((streaming, leaving), return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (streaming, leaving):
                    task.cancel()
                await asyncio.gather(streaming, leaving, return_exceptions=True)
            error = None if streaming.cancelled() else streaming.exception()
            if isinstance(error, OSError):
                raise ClientDisconnect() from error
            if error is not None:
                raise error
        finally:
            await self.reader.close()

    async def _stream(self, send: Send) -> None:
        start = {"type": "http.response.start", "status": self.status_code}
        await send({**start, "headers": self.raw_headers})
        if not self.head:
            async for chunk in self.reader.chunks(self.offset, self.length):
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
