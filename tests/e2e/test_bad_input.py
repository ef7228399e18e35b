"""Bad input over real sockets: nothing crashes, expands or leaks; everyone else keeps going."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import struct

import pytest

from accord.cot.framing import encode_varint, frame_stream
from accord.cot.xml import encode_xml
from tests.conftest import Server, ServerFactory
from tests.e2e.clients import CotClient, client_tls_context, marker, new_uid, sa
from tests.waiting import wait_until

NOW = "2026-11-29T05:00:00Z"
STALE = "2036-11-29T05:00:00Z"
ATTRS = f'how="m-g" time="{NOW}" start="{NOW}" stale="{STALE}"'
POINT = '<point lat="1" lon="2" hae="0" ce="0" le="0"/>'


async def still_routes(server: Server, watcher: CotClient | None = None) -> None:
    """The server keeps routing: a fresh client's SA reaches a fresh client and the watcher,
    and for the watcher it is the very next event (nothing of the attack came first)."""
    alpha = await CotClient.connect(server.port("tcp"))
    bravo = await CotClient.connect(server.port("tcp"))
    await bravo.expect_silence(0.2)  # let any latest-SA replay pass
    event = sa(new_uid(), "HEALTHY")
    await alpha.send(event)
    assert (await bravo.recv_until(lambda e: e.uid == event.uid)).uid == event.uid
    if watcher is not None:
        assert (await watcher.recv()).uid == event.uid
        assert await watcher.expect_silence() == []


async def bystander(server: Server) -> CotClient:
    client = await CotClient.connect(server.port("tcp"))
    await client.expect_silence(0.1)
    return client


async def assert_bystander_saw_nothing_bad(client: CotClient, bad_uid: str, needle: bytes) -> None:
    """Nothing of the attacker's event, nor what it tried to expand or read, reached anyone."""
    await client.expect_silence(0.3)
    assert not any(needle in frame for frame in client.raw_frames)
    assert not any(bad_uid.encode() in frame for frame in client.raw_frames)


@pytest.mark.parametrize(
    ("name", "payload"),
    [
        ("not well-formed", b"<event uid='x' type='a'><point></event>"),
        ("missing uid", f'<event type="a-f-G" {ATTRS}>{POINT}</event>'.encode()),
        ("missing point", f'<event uid="u" type="a-f-G" {ATTRS}></event>'.encode()),
        (
            "bad time",
            b'<event uid="u" type="a" how="m-g" time="yesterday" start="x" stale="y">'
            + POINT.encode()
            + b"</event>",
        ),
        (
            "lat out of range",
            f'<event uid="u" type="a" {ATTRS}><point lat="91" lon="0" hae="0" '
            'ce="0" le="0"/></event>'.encode(),
        ),
        ("root is not event", b"<foo></foo><bar>x</event>"),
    ],
)
async def test_malformed_event_is_dropped_and_the_stream_goes_on(
    server: Server, name: str, payload: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    watcher = await bystander(server)
    attacker = await CotClient.connect(server.port("tcp"))
    good = sa(new_uid(), "AFTER")
    with caplog.at_level(logging.WARNING, logger="accord.session"):
        await attacker.send(payload + encode_xml(good))
        got = await watcher.recv()
    assert got.uid == good.uid  # the same stream carried on after the bad event
    assert server.counters.malformed == 1, name
    assert "dropped malformed event" in caplog.text
    assert await watcher.expect_silence() == []


async def test_billion_laughs_is_refused_without_expanding(server: Server) -> None:
    watcher = await bystander(server)
    attacker = await CotClient.connect(server.port("tcp"))
    entities = '<!ENTITY lol "lol">' + "".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
        for i in range(1, 10)
    )
    bomb = (
        f'<?xml version="1.0"?><!DOCTYPE event [{entities}]>'
        f'<event version="2.0" uid="bomb" type="a-f-G" {ATTRS}>{POINT}'
        "<detail><remarks>&lol9;</remarks></detail></event>"
    ).encode()
    await attacker.send(bomb)
    await attacker.send(sa(new_uid(), "AFTER"))
    assert (await watcher.recv()).detail.contact.callsign == "AFTER"  # type: ignore[union-attr]
    assert server.counters.malformed == 1
    await assert_bystander_saw_nothing_bad(watcher, 'uid="bomb"', b"lollollol")


async def test_xxe_never_reads_local_files(server: Server) -> None:
    watcher = await bystander(server)
    attacker = await CotClient.connect(server.port("tcp"))
    xxe = (
        '<?xml version="1.0"?><!DOCTYPE event [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
        f'<event version="2.0" uid="xxe" type="a-f-G" {ATTRS}>{POINT}'
        "<detail><remarks>&xxe;</remarks></detail></event>"
    ).encode()
    await attacker.send(xxe)
    await still_routes(server)
    assert server.counters.malformed == 1
    await assert_bystander_saw_nothing_bad(watcher, 'uid="xxe"', b"root:")


async def test_ten_megabytes_without_end_tag_closes_only_that_stream(server: Server) -> None:
    watcher = await bystander(server)
    attacker = await CotClient.connect(server.port("tcp"))
    chunk = b"A" * 65536
    for _ in range(160):  # 10 MiB; the server hangs up once 8 MiB pass without </event>
        try:
            await attacker.send(chunk)
        except ConnectionError:
            break
    with pytest.raises(ConnectionError):
        await attacker.recv()
    assert server.counters.framing_lost == 1
    await still_routes(server, watcher)


async def _protobuf_client(server: Server) -> CotClient:
    client = await CotClient.connect(server.port("tcp"), protobuf=True)
    await client.negotiate()
    return client


async def test_garbage_protobuf_payload_is_dropped_and_the_stream_goes_on(
    make_server: ServerFactory,
) -> None:
    server = await make_server(tcp_negotiate=True)
    watcher = await bystander(server)
    attacker = await _protobuf_client(server)
    good = sa(new_uid(), "AFTER")
    await attacker.send(frame_stream(b"\xff\xfe\xfd garbage") + attacker.conn.send(good))
    assert (await watcher.recv_until(lambda e: e.uid == good.uid)).uid == good.uid
    assert server.counters.malformed == 1


@pytest.mark.parametrize(
    ("name", "payload"),
    [
        ("varint length 2**60", b"\xbf" + encode_varint(2**60) + b"x"),
        ("varint over 10 bytes", b"\xbf" + b"\xff" * 11),
        ("wrong magic byte", b"\x00\x05hello"),
    ],
)
async def test_lost_protobuf_framing_closes_only_that_stream(
    make_server: ServerFactory, name: str, payload: bytes
) -> None:
    server = await make_server(tcp_negotiate=True)
    watcher = await bystander(server)
    attacker = await _protobuf_client(server)
    await attacker.send(payload)
    with pytest.raises(ConnectionError):
        await attacker.recv()
    assert server.counters.framing_lost == 1, name
    await still_routes(server, watcher)


async def test_truncated_protobuf_frame_then_close_is_counted(make_server: ServerFactory) -> None:
    server = await make_server(tcp_negotiate=True)
    attacker = await _protobuf_client(server)
    frame = attacker.conn.send(sa(new_uid(), "CUT"))
    await attacker.send(frame[: len(frame) // 2])
    await attacker.close()
    await wait_until(lambda: server.counters.framing_lost == 1, what="the cut frame is counted")
    assert server.counters.events_in == 0
    await still_routes(server)


def _reset(sock: socket.socket) -> None:
    """Close with RST instead of FIN, like a client that crashes or loses its network."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


async def test_half_an_event_then_reset_delivers_nothing(server: Server) -> None:
    watcher = await bystander(server)
    sock = socket.create_connection(("127.0.0.1", server.port("tcp")))
    data = encode_xml(sa(new_uid(), "HALF"))
    sock.sendall(data[: len(data) // 2])
    await wait_until(lambda: server.counters.sessions_opened >= 2, what="the half sender attached")
    _reset(sock)
    await wait_until(lambda: server.counters.sessions_closed >= 1, what="the reset session closed")
    assert await watcher.expect_silence() == []
    await still_routes(server)


async def test_fifty_clients_aborting_at_once(server: Server) -> None:
    watcher = await bystander(server)
    socks = []
    for i in range(50):
        sock = socket.create_connection(("127.0.0.1", server.port("tcp")))
        sock.sendall(encode_xml(sa(f"ABORT-{i}", f"ABORT{i}")))
        socks.append(sock)
    seen = {(await watcher.recv()).uid for _ in range(50)}
    assert len(seen) == 50
    for sock in socks:
        _reset(sock)
    deletes = {(await watcher.recv()).type for _ in range(50)}
    assert deletes == {"t-x-d-d"}
    assert server.running.hub.session_count == 1
    await still_routes(server)


async def _refused(server: Server, ctx: ssl.SSLContext) -> None:
    """TLS 1.3 reports a refused client certificate on the first read, not at connect."""
    try:
        client = await CotClient.connect(server.port("tls"), tls=ctx)
    except (ssl.SSLError, ConnectionError):
        return
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await client.recv()


async def test_tls_client_without_certificate_is_refused_and_counted(server: Server) -> None:
    ctx = ssl.create_default_context(cafile=str(server.pki.ca_cert))
    ctx.check_hostname = False
    await _refused(server, ctx)
    await wait_until(lambda: server.counters.tls_handshake_failed == 1, what="the refusal counted")
    await still_routes(server)


async def test_tls_client_with_foreign_certificate_is_refused(
    make_server: ServerFactory,
) -> None:
    server = await make_server()
    foreign = await make_server()  # another CA entirely
    cert, key = foreign.client_cert("mallory")
    ctx = client_tls_context(cert, key, server.pki.ca_cert)
    await _refused(server, ctx)
    await wait_until(lambda: server.counters.tls_handshake_failed == 1, what="the refusal counted")
    assert server.running.hub.session_count == 0


async def test_input_rate_limit_drops_and_counts(make_server: ServerFactory) -> None:
    server = await make_server(input_rate=5.0, input_burst=10.0)
    watcher = await bystander(server)
    flooder = await CotClient.connect(server.port("tcp"))
    await flooder.send(b"".join(encode_xml(marker(f"flood-{i}")) for i in range(100)))
    got = await watcher.expect_silence(0.5)
    assert 10 <= len(got) <= 14  # the burst, plus what the rate refilled meanwhile
    assert server.counters.rate_limited == 100 - len(got)


async def test_connection_limit_refuses_and_counts(make_server: ServerFactory) -> None:
    server = await make_server(max_connections=3)
    clients = [await CotClient.connect(server.port("tcp")) for _ in range(3)]
    await clients[0].expect_silence(0.1)
    extra = await CotClient.connect(server.port("tcp"))
    with pytest.raises(ConnectionError):
        await extra.recv()
    assert server.counters.connections_refused == 1
    await clients[0].send(sa(new_uid(), "STILL"))
    assert (await clients[1].recv()).detail.contact.callsign == "STILL"  # type: ignore[union-attr]


async def test_a_client_that_stops_reading_never_delays_the_others(
    make_server: ServerFactory,
) -> None:
    server = await make_server(
        write_buffer_bytes=16 * 1024,
        send_queue_events=50,
        # long enough that its queue overflows before it is closed, however slowly a loaded
        # machine lets the sender send (at 1 s a slow sender saw it closed with nothing dropped)
        blocked_timeout_s=5.0,
        input_rate=0,
    )
    stuck = socket.socket()
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window, never read
    stuck.connect(("127.0.0.1", server.port("tcp")))
    watcher = await bystander(server)
    sender = await CotClient.connect(server.port("tcp"))
    filler = "<remarks>" + "x" * 2000 + "</remarks>"
    total = 3000  # ~6 MB: more than the kernel buffers of a loopback socket can hide

    async def send_all() -> None:
        for i in range(total):
            if i % 2:
                await sender.send(marker(f"m-{i}", detail=filler))
            else:
                await sender.send(sa("MOVER", "MOVER", lat=i / 1000, extra=filler))

    # The watcher reads while the sender sends, as a live client does.
    sending = asyncio.create_task(send_all())
    got = [await watcher.recv() for _ in range(total)]
    await sending
    assert len(got) == total  # the watcher received everything, in order
    assert [e.uid for e in got[1::2]] == [f"m-{i}" for i in range(1, total, 2)]
    counters = server.counters
    assert counters.queue_dropped > 0
    assert counters.queue_coalesced > 0
    await wait_until(lambda: counters.blocked_closed == 1, what="the blocked client is closed")
    stuck.close()
    await still_routes(server)
