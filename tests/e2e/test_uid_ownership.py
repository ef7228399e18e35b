"""Nobody speaks under another client's own uid (issue 13 §3), over real TCP and TLS sockets."""

from __future__ import annotations

import asyncio

from tests.conftest import Server
from tests.e2e.clients import OPEN_CLIENTS, CotClient, client_tls_context, new_uid, sa

DEADLINE_S = 5.0


async def tcp_from(server: Server, source: str) -> CotClient:
    """A plain-TCP client from another loopback address (Linux routes all of 127/8 locally)."""
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", server.port("tcp"), local_addr=(source, 0)
    )
    client = CotClient(reader, writer, protobuf=False)
    OPEN_CLIENTS.append(client)
    return client


async def tls_client(server: Server, name: str, group: str) -> CotClient:
    cert, key = server.client_cert(name, group)
    ctx = client_tls_context(cert, key, server.pki.ca_cert)
    return await CotClient.connect(server.port("tls"), tls=ctx)


async def until(condition: object) -> None:
    assert callable(condition)
    async with asyncio.timeout(DEADLINE_S):
        while not condition():
            await asyncio.sleep(0.01)


async def test_plain_tcp_client_cannot_take_over_a_live_clients_uid(server: Server) -> None:
    uid = new_uid()
    victim = await tcp_from(server, "127.0.0.1")
    watcher = await tcp_from(server, "127.0.0.3")
    await victim.send(sa(uid, "VICTIM", lat=1.0))
    assert (await watcher.recv()).detail.contact.callsign == "VICTIM"  # type: ignore[union-attr]
    attacker = await tcp_from(server, "127.0.0.2")
    await attacker.recv()  # the replay: the victim's SA
    await attacker.send(sa(uid, "ATTACKER", lat=50.0))
    await until(lambda: server.counters.uid_conflict == 1)
    assert await watcher.expect_silence() == []
    newcomer = await tcp_from(server, "127.0.0.4")
    replay = await newcomer.recv()
    assert replay.point.lat == 1.0
    assert replay.detail.contact.callsign == "VICTIM"
    assert [c.uid for c in server.running.hub.contacts()].count(uid) == 1


async def test_tls_user_cannot_speak_as_another_user_of_its_group(server: Server) -> None:
    uid = new_uid()
    blue1 = await tls_client(server, "blue1", "Blue")
    blue2 = await tls_client(server, "blue2", "Blue")
    await blue1.send(sa(uid, "BLUE1"))
    assert (await blue2.recv()).detail.contact.callsign == "BLUE1"  # type: ignore[union-attr]
    await blue2.send(sa(uid, "FAKE"))
    await until(lambda: server.counters.uid_conflict == 1)
    assert await blue1.expect_silence() == []
    callsigns = {c.uid: c.callsign for c in server.running.hub.contacts()}
    assert callsigns[uid] == "BLUE1"  # what contacts/all shows

    # blue1 leaves: the uid stays blue1's, and blue1 reconnecting takes it back at once.
    await blue1.close()
    await until(lambda: server.running.hub.roster.by_uid(uid) is None)
    await blue2.send(sa(uid, "FAKE"))
    await until(lambda: server.counters.uid_conflict == 2)
    again = await tls_client(server, "blue1", "Blue")
    await again.send(sa(uid, "BLUE1-BACK"))
    got = await blue2.recv_until(lambda e: e.uid == uid)
    assert got.detail.contact.callsign == "BLUE1-BACK"  # type: ignore[union-attr]
    assert server.counters.uid_conflict == 2
