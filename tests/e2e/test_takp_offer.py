"""The ``t-x-takp-v`` offer over a real TLS stream, read as node-tak reads it, and a switch to
protocol v1 requested under a uid of the client's own (issue 12 §2)."""

from __future__ import annotations

import asyncio
import re
import uuid

from lxml import etree

from accord.cot.framing import ProtoSplitter, frame_stream
from accord.cot.negotiation import SERVER_VERSION, request
from accord.cot.proto import decode_proto, encode_proto
from accord.cot.xml import encode_xml
from tests.conftest import Server
from tests.e2e.clients import CotClient, client_tls_context, new_uid, sa


async def read_until(reader: asyncio.StreamReader, marker: bytes) -> bytes:
    data = b""
    async with asyncio.timeout(5):
        while marker not in data:
            chunk = await reader.read(65536)
            assert chunk, "the server closed the connection"
            data += chunk
    return data


async def read_until_from(reader: asyncio.StreamReader, data: bytes, start: int) -> bytes:
    """``data`` read on until the event starting at ``start`` is complete."""
    async with asyncio.timeout(5):
        while b"</event>" not in data[start:]:
            chunk = await reader.read(65536)
            assert chunk, "the server closed the connection"
            data += chunk
    return data


async def test_node_tak_recognises_the_offer_and_a_request_under_its_own_uid_switches(
    server: Server,
) -> None:
    cert, key = server.client_cert("cloudtak")
    ctx = client_tls_context(cert, key, server.pki.ca_cert)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port("tls"), ssl=ctx)
    try:
        data = await read_until(reader, b"</event>")
        # node-tak's findCoT: control characters dropped, the first <event ...</event>.
        text = re.sub(r"[\x00-\x1f\x7f-\x9f]", "", data.decode())
        match = re.search(r"(<event.*?</event>)", text)
        assert match is not None
        event = etree.fromstring(match.group(1).encode())
        assert event.get("type") == "t-x-takp-v"
        info = event.find("detail/TakControl/TakServerVersionInfo")
        assert info is not None  # else node-tak hands the offer to the app as a feature at 0,0
        assert info.get("serverVersion") == SERVER_VERSION
        assert info.get("apiVersion") == "3"

        own_uid = str(uuid.uuid4())  # not the offer's
        assert own_uid != event.get("uid")
        writer.write(encode_xml(request(own_uid, 0)))
        await writer.drain()
        answer = await read_until(reader, b"t-x-takp-r")
        start = answer.rindex(b"<event", 0, answer.index(b"t-x-takp-r"))
        answer = await read_until_from(reader, answer, start)
        response = etree.fromstring(answer[start : answer.index(b"</event>", start) + 8])
        assert response.get("uid") == own_uid
        status = response.find("detail/TakControl/TakResponse")
        assert status is not None
        assert status.get("status") == "true"

        # From here on the stream is protobuf both ways: what we send in v1 reaches an XML
        # client, and what it sends reaches us in v1.
        other_cert, other_key = server.client_cert("atak")
        other = await CotClient.connect(
            server.port("tls"),
            tls=client_tls_context(other_cert, other_key, server.pki.ca_cert),
        )
        uid = new_uid()
        writer.write(frame_stream(encode_proto(sa(uid, "CLOUDTAK"))))
        await writer.drain()
        got = await other.recv_until(lambda e: e.uid == uid)
        assert got.detail.contact is not None
        assert got.detail.contact.callsign == "CLOUDTAK"
        back = new_uid()
        await other.send(sa(back, "ATAK"))
        splitter = ProtoSplitter()
        async with asyncio.timeout(5):
            seen: list[str] = []
            while back not in seen:
                chunk = await reader.read(65536)
                assert chunk
                splitter.feed(chunk)
                while (frame := splitter.next_frame()) is not None:
                    seen.append(decode_proto(frame).uid)
    finally:
        writer.close()
