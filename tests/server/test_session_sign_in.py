"""The sign-in task a session owns: a check that fails ends the session, logged, not hung."""

from __future__ import annotations

import asyncio
import socket

import pytest

from accord.cot.connection import Limits
from accord.cot.xml import encode_xml
from accord.domain.groups import ANONYMOUS, Membership
from accord.server.census import Census
from accord.server.session import SessionSettings, StreamSession
from tests.e2e.clients import marker
from tests.server.fakes import Clock
from tests.server.test_hub import make_hub

AUTH = b'<?xml version="1.0"?><auth><cot username="alice" password="pw" uid="A-1"/></auth>'


async def test_a_sign_in_check_that_raises_closes_the_session_and_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(peer: str, user: str, password: str) -> Membership | str:
        raise RuntimeError("user store unreadable")

    loop = asyncio.get_running_loop()
    hub = make_hub(Clock(0))
    settings = SessionSettings(
        transport="tcp",
        negotiate=False,
        limits=Limits(),
        send_queue_events=100,
        blocked_timeout_s=10.0,
        write_buffer_bytes=1 << 20,
        input_rate=0.0,
        input_burst=0.0,
        authenticate=broken,
        sign_in_timeout_s=60.0,  # far beyond the test: the close must come from the failure
    )
    session = StreamSession(hub, settings, lambda transport: (ANONYMOUS, None), Census())
    ours, theirs = socket.socketpair()
    theirs.setblocking(False)
    transport, _ = await loop.connect_accepted_socket(lambda: session, ours)
    try:
        await loop.sock_sendall(theirs, AUTH + encode_xml(marker("first")))
        async with asyncio.timeout(5):
            while await loop.sock_recv(theirs, 4096):
                pass  # until the server closes the connection
        assert hub.counters.auth_failed == 1
        assert session.party is None  # never joined the hub
        assert "sign-in check failed" in caplog.text
        assert "RuntimeError: user store unreadable" in caplog.text
    finally:
        transport.close()
        theirs.close()
