"""<auth> on the plain-TCP listener when it is required: the user's groups, or nothing."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from accord.cot.xml import encode_xml
from accord.domain.groups import Membership
from accord.identity.users import UserStore
from tests.conftest import Server, ServerFactory
from tests.e2e.clients import CotClient, new_uid, sa
from tests.waiting import wait_until

CHEAP = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


def auth(user: str, password: str) -> bytes:
    """What ATAK writes first when the connection has credentials (§8.2)."""
    return (
        f'<?xml version="1.0"?><auth><cot username="{user}" password="{password}" '
        'uid="ANDROID-1"/></auth>'
    ).encode()


@pytest.fixture
async def server(make_server: ServerFactory, tmp_path) -> Server:  # type: ignore[no-untyped-def]
    data_dir = tmp_path / "server0"
    data_dir.mkdir()
    store = UserStore(data_dir, hasher=CHEAP)
    now = int(time.time() * 1000)
    store.add("alice", "alice password", Membership.both(["Blue"]), now_ms=now)
    store.add("bob", "bob password", Membership.both(["Blue"]), now_ms=now)
    store.add("eve", "eve password", Membership.both(["Red"]), now_ms=now)
    # the sign-in deadline: on a loaded CI machine 2 s was missed
    return await make_server(tcp_auth=True, tls_handshake_timeout_s=4.0)


async def signed_in(server: Server, user: str, password: str, callsign: str) -> CotClient:
    client = await CotClient.connect(server.port("tcp"))
    await client.send(auth(user, password) + encode_xml(sa(new_uid(), callsign)))
    return client


async def test_signed_in_users_route_by_their_groups(server: Server) -> None:
    alice = await signed_in(server, "alice", "alice password", "ALICE")
    bob = await signed_in(server, "bob", "bob password", "BOB")
    eve = await signed_in(server, "eve", "eve password", "EVE")
    # bob joined after alice: he gets her SA replayed; eve (Red) gets nothing of Blue
    assert (await bob.recv()).detail.contact.callsign == "ALICE"  # type: ignore[union-attr]
    assert (await alice.recv()).detail.contact.callsign == "BOB"  # type: ignore[union-attr]
    assert await eve.expect_silence() == []


@pytest.mark.parametrize(
    ("first", "reason"),
    [
        (auth("alice", "wrong password"), "wrong user name or password"),
        (auth("mallory", "whatever pass"), "wrong user name or password"),
        (b"", "sign-in required"),
    ],
)
async def test_missing_or_wrong_auth_is_refused_and_routes_nothing(
    server: Server, first: bytes, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    watcher = await signed_in(server, "bob", "bob password", "BOB")
    intruder = await CotClient.connect(server.port("tcp"))
    await intruder.send(first + encode_xml(sa(new_uid(), "INTRUDER")))
    with pytest.raises(ConnectionError):
        await intruder.recv()
    assert await watcher.expect_silence() == []
    assert server.counters.auth_failed == 1
    assert reason in caplog.text


async def test_a_client_that_never_signs_in_is_cut(server: Server) -> None:
    silent = await CotClient.connect(server.port("tcp"))
    with pytest.raises(ConnectionError):
        await silent.recv(timeout=12)
    assert server.counters.auth_failed == 1


async def test_connections_still_signing_in_count_against_max_connections(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    (tmp_path / "server0").mkdir()
    users = UserStore(tmp_path / "server0", hasher=CHEAP)
    users.add("alice", "alice password", Membership.both(["Blue"]), now_ms=int(time.time() * 1000))
    limited = await make_server(tcp_auth=True, max_connections=2)
    writers: list[asyncio.StreamWriter] = []
    try:
        for _ in range(2):
            writers.append((await asyncio.open_connection("127.0.0.1", limited.port("tcp")))[1])
        hub = limited.running.hub
        await wait_until(lambda: hub.signing_in == 2, what="both connections signing in")
        reader, writer = await asyncio.open_connection("127.0.0.1", limited.port("tcp"))
        writers.append(writer)
        async with asyncio.timeout(5):
            assert await reader.read() == b""  # refused: closed at once
        assert limited.counters.connections_refused == 1
        # One of them leaves: its place is free again, and the count follows.
        writers[0].close()
        await wait_until(lambda: hub.signing_in == 1, what="the place freed")
        _, alice = await asyncio.open_connection("127.0.0.1", limited.port("tcp"))
        writers.append(alice)
        alice.write(auth("alice", "alice password") + encode_xml(sa(new_uid(), "ALICE")))
        await wait_until(lambda: hub.session_count >= 1, what="alice's session")
        assert limited.running.hub.signing_in == 1  # alice is a session now
    finally:
        for writer in writers:
            writer.close()
