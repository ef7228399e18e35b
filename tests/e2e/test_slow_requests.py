"""Slowloris: requests whose headers or body come too slowly are answered 408 and closed
within the bound on every HTTP port, and the server goes on serving everyone else."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time

import httpx
import pytest

from tests.conftest import Server, ServerFactory

HEADER_TIMEOUT_S = 0.5
BODY_TIMEOUT_S = 0.5
CLOSED_WITHIN_S = 4.0  # the deadline plus a shared machine's slack
PORTS = ("https", "enroll", "http", "metrics")


@pytest.fixture
async def server(make_server: ServerFactory) -> Server:
    return await make_server(
        http_port=8080,
        metrics_port=9464,
        http_header_timeout_s=HEADER_TIMEOUT_S,
        http_body_timeout_s=BODY_TIMEOUT_S,
    )


def tls_for(server: Server, port: str) -> ssl.SSLContext | None:
    if port in ("http", "metrics"):
        return None
    ctx = ssl.create_default_context(cafile=str(server.pki.ca_cert))
    if port == "https":
        ctx.load_cert_chain(*server.client_cert("slow"))
    return ctx


async def connect(server: Server, port: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    async with asyncio.timeout(10):
        return await asyncio.open_connection(
            "127.0.0.1", server.port(port), ssl=tls_for(server, port)
        )


async def until_closed(
    reader: asyncio.StreamReader, since: float | None = None
) -> tuple[bytes, float]:
    """Everything the server sends until it closes, and how long after ``since`` (default:
    now) that was."""
    start = time.monotonic() if since is None else since
    got = b""
    async with asyncio.timeout(CLOSED_WITHIN_S + HEADER_TIMEOUT_S):
        with contextlib.suppress(ConnectionError):
            while chunk := await reader.read(4096):
                got += chunk
    return got, time.monotonic() - start


async def version_answers(server: Server, port: str) -> None:
    """Someone else is served meanwhile, at once."""
    ctx = tls_for(server, port)
    scheme = "https" if ctx is not None else "http"
    path = "/metrics" if port == "metrics" else "/Marti/api/version"
    async with httpx.AsyncClient(verify=ctx or False, timeout=2) as http:
        answer = await http.get(f"{scheme}://127.0.0.1:{server.port(port)}{path}")
    assert answer.status_code == 200


@pytest.mark.parametrize("port", PORTS)
async def test_headers_that_never_end_are_cut_at_the_deadline(server: Server, port: str) -> None:
    reader, writer = await connect(server, port)
    writer.write(b"GET /Marti/api/version HTTP/1.1\r\nHost: accord\r\nX-Slow: ")
    await writer.drain()
    sent = time.monotonic()
    await version_answers(server, port)
    got, took = await until_closed(reader, sent)
    assert got.startswith(b"HTTP/1.1 408 "), got
    assert HEADER_TIMEOUT_S * 0.8 <= took <= CLOSED_WITHIN_S
    writer.close()
    await version_answers(server, port)


@pytest.mark.parametrize("port", PORTS)
async def test_a_connection_that_sends_nothing_is_closed(server: Server, port: str) -> None:
    reader, writer = await connect(server, port)
    got, took = await until_closed(reader)
    assert got.startswith(b"HTTP/1.1 408 "), got
    assert took <= CLOSED_WITHIN_S
    writer.close()


async def test_headers_dripped_a_byte_at_a_time_are_cut_at_the_deadline(server: Server) -> None:
    # A byte every 0.1 s would keep an idle timer from ever firing; the deadline is the total.
    reader, writer = await connect(server, "https")
    request = b"GET /Marti/api/version HTTP/1.1\r\nHost: accord\r\n" + b"X-Drip: " + b"a" * 200

    async def drip() -> None:
        with contextlib.suppress(ConnectionError):
            for byte in request:
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(0.1)

    dripping = asyncio.create_task(drip())
    try:
        got, took = await until_closed(reader)
    finally:
        dripping.cancel()
    assert got.startswith(b"HTTP/1.1 408 "), got
    assert took <= CLOSED_WITHIN_S
    writer.close()


@pytest.mark.parametrize(
    ("port", "target"),
    [
        ("https", "/Marti/sync/upload?name=slow.zip"),
        ("http", "/Marti/sync/upload?name=slow.zip"),
        ("enroll", "/oauth/token"),
    ],
)
async def test_a_body_declared_and_never_sent_is_cut(
    server: Server, port: str, target: str
) -> None:
    reader, writer = await connect(server, port)
    writer.write(
        f"POST {target} HTTP/1.1\r\nHost: accord\r\nContent-Length: 1000000\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n\r\n".encode()
        + b"grant_type=pass"
    )
    await writer.drain()
    sent = time.monotonic()
    await version_answers(server, port)
    got, took = await until_closed(reader, sent)
    assert got.startswith(b"HTTP/1.1 408 "), got
    assert BODY_TIMEOUT_S * 0.8 <= took <= CLOSED_WITHIN_S
    writer.close()
    await version_answers(server, port)
    assert server.running.store is not None


async def test_a_slow_but_steady_body_is_not_cut(server: Server) -> None:
    # The body deadline is a pause between bytes, not a total: a slow link still uploads.
    body = b"grant_type=password&username=nobody&password=nothing-at-all"
    reader, writer = await connect(server, "enroll")
    writer.write(
        b"POST /oauth/token HTTP/1.1\r\nHost: accord\r\nConnection: close\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
    )
    for i in range(0, len(body), 6):  # about 1 s in all, never 0.5 s without a byte
        writer.write(body[i : i + 6])
        await writer.drain()
        await asyncio.sleep(0.1)
    got, _ = await until_closed(reader)
    assert got.startswith(b"HTTP/1.1 400 "), got  # the form was read: wrong credentials
    assert b"invalid_grant" in got
    writer.close()


async def test_many_slow_connections_do_not_stop_the_server(server: Server) -> None:
    slow = [await connect(server, "http") for _ in range(30)]
    for _, writer in slow:
        writer.write(b"GET / HTTP/1.1\r\nHost: a")
        await writer.drain()
    await version_answers(server, "http")
    outcomes = await asyncio.gather(*(until_closed(reader) for reader, _ in slow))
    assert all(got.startswith(b"HTTP/1.1 408 ") for got, _ in outcomes)
    assert server.counters.http_timed_out == 30
    for _, writer in slow:
        writer.close()
    await version_answers(server, "http")
