"""The TLS accept loop: one connection's unexpected failure leaves the others' handshakes be."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import socket
from pathlib import Path

from accord.cot.connection import Limits
from accord.domain.groups import Membership
from accord.domain.metrics import Counters
from accord.identity.pki import ensure_pki, issue_client
from accord.server.census import Census
from accord.server.hub import Hub
from accord.server.listeners import TlsListener
from accord.server.session import SessionSettings, StreamSession
from accord.server.watch import tls_context
from tests.e2e.clients import client_tls_context
from tests.server.fakes import Clock
from tests.waiting import wait_until


class FailingSecond(TlsListener):
    """A listener whose second connection's setup raises (a bug in one session's start)."""

    calls = 0

    def session(self) -> StreamSession:
        self.calls += 1
        if self.calls == 2:
            raise RuntimeError("bug in one connection's setup")
        return super().session()


async def test_one_connections_unexpected_failure_leaves_the_other_handshakes(
    tmp_path: Path,
) -> None:
    now = dt.datetime.now(dt.UTC)
    pki = ensure_pki(tmp_path / "pki", ("localhost",), now)
    alice = issue_client(pki, "alice", tmp_path / "alice", now)
    uids = itertools.count()
    hub = Hub(Counters(), wall_ms=Clock(0), new_uid=lambda: f"u{next(uids)}")
    settings = SessionSettings("tls", False, Limits(), 100, 5.0, 1 << 20, 100.0, 100.0)
    listener = FailingSecond(
        hub, settings, tls_context(pki), {}, Membership.both(["A"]), 10, 10.0, Census()
    )
    port = listener.listen("127.0.0.1", 0)
    accepting = asyncio.create_task(listener.accept())
    client = client_tls_context(alice.cert, alice.key, pki.ca_cert)
    waiting = socket.create_connection(("127.0.0.1", port))  # handshake not started yet
    waiting.setblocking(False)
    try:
        await wait_until(lambda: listener.calls == 1)
        # The server drops this one (OSError covers ssl.SSLError and TimeoutError).
        with contextlib.suppress(OSError):
            async with asyncio.timeout(10):
                _, broken = await asyncio.open_connection("127.0.0.1", port, ssl=client)
            broken.close()
        await wait_until(lambda: hub.counters.tls_handshake_failed == 1)
        assert not accepting.done()
        # The connection that was mid-handshake all along still completes it.
        async with asyncio.timeout(10):
            _reader, writer = await asyncio.open_connection(
                sock=waiting, ssl=client, server_hostname="localhost"
            )
        assert writer.get_extra_info("peercert") is not None
        writer.close()
        assert not accepting.done()
    finally:
        accepting.cancel()
        await asyncio.gather(accepting, return_exceptions=True)
        listener.close()
        waiting.close()
