"""Interop gate: real client software and real captures through the whole server."""

from __future__ import annotations

import asyncio
import configparser
import socket
import struct
from dataclasses import replace

import pytest

from accord.cot.framing import frame_mesh
from accord.cot.proto import encode_proto
from accord.cot.xml import decode_xml, encode_xml
from tests.conftest import Server, ServerFactory
from tests.cot.samples import broken_captures, golden_events
from tests.e2e.clients import CotClient, canonical, client_tls_context, new_uid, sa
from tests.waiting import wait_until

pytak = pytest.importorskip("pytak")


def pytak_config(url: str, **extra: str) -> configparser.SectionProxy:
    parser = configparser.ConfigParser()
    parser["pytak"] = {"COT_URL": url, **extra}
    return parser["pytak"]


# pytak itself sets the deprecated OP_NO_TLSv1 flags on its context; that is pytak's business.
@pytest.mark.filterwarnings("ignore:ssl.OP_NO_SSL:DeprecationWarning")
async def test_pytak_over_tls_with_client_certificate(server: Server) -> None:
    # pytak checks the server's name: the self-made server certificate names 127.0.0.1.
    cert, key = server.client_cert("pytak-user")
    config = pytak_config(
        f"tls://127.0.0.1:{server.port('tls')}",
        PYTAK_TLS_CLIENT_CERT=str(cert),
        PYTAK_TLS_CLIENT_KEY=str(key),
        PYTAK_TLS_CLIENT_CAFILE=str(server.pki.ca_cert),
    )
    reader, writer = await pytak.protocol_factory(config)
    try:
        watcher = await CotClient.connect(server.port("tcp"))
        await watcher.expect_silence(0.1)
        event = pytak.gen_cot(lat=10.5, lon=20.25, uid="pytak-1", cot_type="a-f-G-U-C", stale=600)
        writer.write(event)
        await writer.drain()
        got = await watcher.recv()
        assert (got.uid, got.point.lat, got.point.lon) == ("pytak-1", 10.5, 20.25)

        # and pytak's reader gets what others send, split where pytak splits (</event>)
        reply = sa(new_uid(), "TO-PYTAK")
        await watcher.send(reply)
        async with asyncio.timeout(5):
            while True:
                data = await reader.readuntil(b"</event>")
                if b"t-x-takp-v" not in data:  # pytak is a client that never negotiates
                    break
        assert decode_xml(data).uid == reply.uid
    finally:
        writer.close()


async def test_pytak_over_plain_tcp(server: Server) -> None:
    _, writer = await pytak.protocol_factory(pytak_config(f"tcp://127.0.0.1:{server.port('tcp')}"))
    try:
        watcher = await CotClient.connect(server.port("tcp"))
        await watcher.expect_silence(0.1)
        writer.write(pytak.hello_event("pytak-hello"))
        await writer.drain()
        assert (await watcher.recv()).uid == "pytak-hello"
    finally:
        writer.close()


async def test_every_capture_replays_intact_to_xml_and_protobuf_clients(
    make_server: ServerFactory,
) -> None:
    server = await make_server(input_rate=0)
    sender = await CotClient.connect(server.port("tcp"))
    xml_client = await CotClient.connect(server.port("tcp"))
    cert, key = server.client_cert("replay")
    ctx = client_tls_context(cert, key, server.pki.ca_cert)
    proto_client = await CotClient.connect(server.port("tls"), tls=ctx, protobuf=True)
    await proto_client.negotiate()
    await xml_client.expect_silence(0.1)

    samples = golden_events()
    assert len(samples) >= 18
    await sender.send(b"\n".join(samples))  # declarations and all, as the captures have them
    first_frame = len(xml_client.raw_frames)
    for index, sample in enumerate(samples):
        expected = decode_xml(sample)
        got_xml = await xml_client.recv()
        # What XML clients get is the event exactly as the client wrote it (no declaration).
        frame = xml_client.raw_frames[first_frame + index]
        if expected.how:
            assert frame == sample[sample.index(b"<event") :].strip()
            assert got_xml == expected
        else:  # ATAK drops an event without `how`; Accord fills it in (uas-tool captures)
            assert got_xml == replace(expected, how="h-g-i-g-o")
            expected = got_xml
        got_proto = await proto_client.recv()
        assert canonical(got_proto) == canonical(expected)
    assert server.counters.malformed == 0


async def test_broken_capture_is_dropped_at_close_without_harm(server: Server) -> None:
    watcher = await CotClient.connect(server.port("tcp"))
    for broken in broken_captures():
        sender = await CotClient.connect(server.port("tcp"))
        await sender.send(broken)
        await sender.close()
    await wait_until(
        lambda: server.counters.framing_lost == len(broken_captures()), what="every stream lost"
    )
    assert server.counters.events_in == 0
    assert await watcher.expect_silence() == []


async def test_udp_xml_and_mesh_datagrams_reach_stream_clients(server: Server) -> None:
    watcher = await CotClient.connect(server.port("tcp"))
    await watcher.expect_silence(0.1)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        xml_event = sa(new_uid(), "UDP-XML")
        udp.sendto(encode_xml(xml_event), ("127.0.0.1", server.port("udp")))
        assert (await watcher.recv()).uid == xml_event.uid
        mesh_event = sa(new_uid(), "UDP-MESH")
        udp.sendto(frame_mesh(encode_proto(mesh_event)), ("127.0.0.1", server.port("udp")))
        assert canonical(await watcher.recv()) == canonical(mesh_event)
        udp.sendto(b"\x00garbage", ("127.0.0.1", server.port("udp")))
        udp.sendto(b"\xbf\x02\xbfwrong version", ("127.0.0.1", server.port("udp")))
        await wait_until(lambda: server.counters.udp_malformed == 2, what="both bad datagrams")
        # a newcomer gets the mesh sender's SA too, while it is not stale
        newcomer = await CotClient.connect(server.port("tcp"))
        assert {(await newcomer.recv()).uid for _ in range(2)} == {xml_event.uid, mesh_event.uid}
    finally:
        udp.close()


async def test_udp_multicast_group_is_joined(make_server: ServerFactory) -> None:
    server = await make_server(udp_multicast_group="239.2.3.1")
    watcher = await CotClient.connect(server.port("tcp"))
    await watcher.expect_silence(0.1)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    try:
        sender.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
        sender.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, struct.pack("b", 1))
        event = sa(new_uid(), "MCAST")
        sender.sendto(encode_xml(event), ("239.2.3.1", server.port("udp")))
        assert (await watcher.recv()).uid == event.uid
    finally:
        sender.close()
