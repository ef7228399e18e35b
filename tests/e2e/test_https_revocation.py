"""A certificate revoked while the server runs is refused at the HTTPS port's handshake, as
on the streaming port (issue 13 §4), and other certificates go on being served."""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
import time
from pathlib import Path

import httpx

from accord.identity import registry
from tests.conftest import Server, ServerFactory


async def version(server: Server, cert: Path, key: Path) -> int | str:
    """The status of ``GET /Marti/api/version`` on a fresh connection, or how it failed."""
    ctx = ssl.create_default_context(cafile=str(server.pki.ca_cert))
    ctx.load_cert_chain(cert, key)
    # TLS 1.2 (what many TAK clients use): the client certificate is checked inside the
    # handshake, so a refusal fails the connect itself (under 1.3 it comes after it).
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    base = f"https://127.0.0.1:{server.port('https')}"
    try:
        async with httpx.AsyncClient(base_url=base, verify=ctx, timeout=5) as http:
            return (await http.get("/Marti/api/version")).status_code
    except httpx.TransportError as exc:
        causes: list[BaseException] = [exc]
        while (cause := causes[-1].__cause__ or causes[-1].__context__) and len(causes) < 5:
            causes.append(cause)
        return " / ".join(f"{type(c).__name__}: {c}" for c in causes)


async def test_a_revoked_certificate_is_refused_at_the_https_handshake(
    make_server: ServerFactory,
) -> None:
    server = await make_server(revocation_check_s=0.1)
    mallory = server.client_cert("mallory")
    alice = server.client_cert("alice")
    assert await version(server, *mallory) == 200
    registry.revoke(server.pki, "mallory", dt.datetime.now(dt.UTC))

    deadline = time.monotonic() + 10
    while (outcome := await version(server, *mallory)) == 200:
        assert time.monotonic() < deadline, "the revoked certificate is still served"
        await asyncio.sleep(0.05)
    assert isinstance(outcome, str)
    assert outcome.startswith("ConnectError"), outcome
    assert "SSL" in outcome, outcome
    for _ in range(3):  # refused every time, and the others are served between
        assert await version(server, *mallory) != 200
        assert await version(server, *alice) == 200
