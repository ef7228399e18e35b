"""Routing over real sockets: what stock clients see from Accord."""

from __future__ import annotations

import dataclasses

from accord.cot.model import WireFormat
from accord.cot.xml import encode_xml
from tests.conftest import Server, ServerFactory
from tests.e2e.clients import CotClient, canonical, client_tls_context, marker, new_uid, sa
from tests.waiting import wait_until


async def tls_client(
    server: Server, name: str, *, protobuf: bool = False, group: str | None = None
) -> CotClient:
    cert, key = server.client_cert(name, group)
    ctx = client_tls_context(cert, key, server.pki.ca_cert)
    return await CotClient.connect(server.port("tls"), tls=ctx, protobuf=protobuf)


async def test_xml_event_is_forwarded_to_others_byte_for_byte(server: Server) -> None:
    alpha = await CotClient.connect(server.port("tcp"))
    bravo = await CotClient.connect(server.port("tcp"))
    event = sa(new_uid(), "ALPHA")
    sent = b'<?xml version="1.0" encoding="UTF-8"?>\n' + encode_xml(event)
    await alpha.send(sent)
    got = await bravo.recv()
    assert got == event
    assert bravo.raw_frames[-1] == encode_xml(event)  # as received, declaration dropped
    assert await alpha.expect_silence() == []  # never echoed to the sender


async def test_ping_is_answered_with_pong_and_never_forwarded(server: Server) -> None:
    alpha = await CotClient.connect(server.port("tcp"))
    bravo = await CotClient.connect(server.port("tcp"))
    uid = new_uid()
    ping = marker(f"{uid}-ping", type_="t-x-c-t")
    await alpha.send(ping)
    pong = await alpha.recv()
    assert (pong.type, pong.uid) == ("t-x-c-t-r", "takPong")
    assert await bravo.expect_silence() == []
    assert server.counters.pings == 1


async def test_control_types_are_consumed(server: Server) -> None:
    alpha = await CotClient.connect(server.port("tcp"))
    bravo = await CotClient.connect(server.port("tcp"))
    for kind in ("t-x-c-m", "t-b", "t-x-c-i-e", "t-x-takp-q"):
        await alpha.send(marker(new_uid(), type_=kind))
    assert await bravo.expect_silence() == []
    # t-x-takp-q is taken by the stream's negotiation itself and never reaches the hub.
    assert server.counters.control_consumed == 3


async def test_newcomer_receives_latest_sa_of_connected_clients(server: Server) -> None:
    alpha = await CotClient.connect(server.port("tcp"))
    bravo = await CotClient.connect(server.port("tcp"))
    first, latest = sa("ALPHA-1", "ALPHA", lat=1.0), sa("ALPHA-1", "ALPHA", lat=5.0)
    await alpha.send(first)
    await alpha.send(latest)
    assert (await bravo.recv()).point.lat == 1.0
    assert (await bravo.recv()).point.lat == 5.0
    charlie = await CotClient.connect(server.port("tcp"))
    got = await charlie.recv()
    assert (got.uid, got.point.lat) == ("ALPHA-1", 5.0)
    assert await charlie.expect_silence() == []


async def test_stale_sa_is_not_replayed_to_newcomers(server: Server) -> None:
    alpha = await CotClient.connect(server.port("tcp"))
    fresh = sa("ALPHA-2", "ALPHA")
    old = dataclasses.replace(fresh, stale=fresh.time - 1)
    await alpha.send(old)
    await wait_until(lambda: server.counters.events_in == 1, what="the stale SA routed")
    bravo = await CotClient.connect(server.port("tcp"))
    assert await bravo.expect_silence() == []


async def test_departure_sends_delete_naming_the_client(server: Server) -> None:
    alpha = await CotClient.connect(server.port("tcp"))
    bravo = await CotClient.connect(server.port("tcp"))
    await alpha.send(sa("ALPHA-3", "ALPHA"))
    await bravo.recv()
    await alpha.close()
    delete = await bravo.recv()
    assert delete.type == "t-x-d-d"
    assert 'uid="ALPHA-3"' in delete.detail.xml
    assert 'relation="p-p"' in delete.detail.xml


async def test_directed_message_reaches_only_target_without_marti(server: Server) -> None:
    alpha, bravo, charlie = [await CotClient.connect(server.port("tcp")) for _ in range(3)]
    await bravo.send(sa("BRAVO-1", "BRAVO"))
    await charlie.send(sa("CHARLIE-1", "CHARLIE"))
    await alpha.recv(), await alpha.recv(), await bravo.recv(), await charlie.recv()
    directed = marker(
        new_uid(), detail='<marti><dest callsign="BRAVO"/></marti><remarks>hi</remarks>'
    )
    await alpha.send(directed)
    got = await bravo.recv()
    assert got.uid == directed.uid
    assert "marti" not in got.detail.xml
    assert "<remarks>hi</remarks>" in got.detail.xml
    assert await charlie.expect_silence() == []


async def test_directed_by_uid_and_after_callsign_change(server: Server) -> None:
    alpha, bravo = [await CotClient.connect(server.port("tcp")) for _ in range(2)]
    await bravo.send(sa("BRAVO-2", "BRAVO"))
    await alpha.recv()
    await bravo.send(sa("BRAVO-2", "BRAVO-RENAMED"))
    await alpha.recv()
    await alpha.send(marker("m1", detail='<marti><dest callsign="BRAVO-RENAMED"/></marti>'))
    assert (await bravo.recv()).uid == "m1"
    await alpha.send(marker("m2", detail='<marti><dest callsign="BRAVO"/></marti>'))
    await alpha.send(marker("m3", detail='<marti><dest uid="BRAVO-2"/></marti>'))
    assert (await bravo.recv()).uid == "m3"  # m2 named the old callsign: nobody


async def test_geochat_to_all_rooms_and_to_members(server: Server) -> None:
    alpha, bravo, charlie = [await CotClient.connect(server.port("tcp")) for _ in range(3)]
    for client, name in ((alpha, "ALPHA"), (bravo, "BRAVO"), (charlie, "CHARLIE")):
        await client.send(sa(f"{name}-UID", name))
    for client in (alpha, bravo, charlie):
        await client.recv(), await client.recv()
    room = (
        '<__chat chatroom="All Chat Rooms" id="All Chat Rooms">'
        '<chatgrp uid0="ALPHA-UID" uid1="All Chat Rooms" id="All Chat Rooms"/></__chat>'
    )
    await alpha.send(marker("GeoChat.ALPHA-UID.All Chat Rooms.1", detail=room, type_="b-t-f"))
    assert (await bravo.recv()).type == "b-t-f"
    assert (await charlie.recv()).type == "b-t-f"
    direct = (
        '<__chat chatroom="BRAVO" id="BRAVO-UID">'
        '<chatgrp uid0="ALPHA-UID" uid1="BRAVO-UID" id="BRAVO-UID"/></__chat>'
    )
    await alpha.send(marker("GeoChat.ALPHA-UID.BRAVO-UID.2", detail=direct, type_="b-t-f"))
    assert (await bravo.recv()).uid == "GeoChat.ALPHA-UID.BRAVO-UID.2"
    assert await charlie.expect_silence() == []


async def test_groups_separate_tls_clients_by_certificate_ou(server: Server) -> None:
    blue1 = await tls_client(server, "blue1", group="Blue")
    blue2 = await tls_client(server, "blue2", group="Blue")
    red = await tls_client(server, "red1", group="Red")
    await blue1.send(sa("BLUE-1", "BLUE1"))
    assert (await blue2.recv()).uid == "BLUE-1"
    assert await red.expect_silence() == []


async def test_groups_file_maps_cn_to_in_and_out_groups(
    make_server: ServerFactory, tmp_path
) -> None:
    groups = tmp_path / "groups.toml"
    groups.write_text(
        'hq = { in = ["Field"], out = ["HQ"] }\nfield = ["Field"]\nlisten = { out = ["Field"] }\n'
    )
    server = await make_server(groups_file=str(groups))
    hq = await tls_client(server, "hq")
    field = await tls_client(server, "field")
    listener = await tls_client(server, "listen")
    await field.send(sa("FIELD-1", "FIELD"))
    assert (await listener.recv()).uid == "FIELD-1"
    assert await hq.expect_silence() == []  # hq hears only HQ
    # hq sends into Field, so field and listener hear it; hq only hears HQ, which nobody sends into.
    await hq.send(sa("HQ-1", "HQ"))
    assert (await field.recv()).uid == "HQ-1"
    assert (await listener.recv()).uid == "HQ-1"
    assert await hq.expect_silence() == []


async def test_protobuf_and_xml_clients_see_each_other_in_their_own_format(server: Server) -> None:
    xml_client = await tls_client(server, "xml")
    proto_client = await tls_client(server, "proto", protobuf=True)
    await proto_client.negotiate()
    assert proto_client.wire_format is WireFormat.PROTOBUF

    from_proto = sa("PROTO-1", "PROTO", extra='<remarks source="x">from protobuf</remarks>')
    await proto_client.send(from_proto)
    got = await xml_client.recv()
    assert canonical(got) == canonical(from_proto)
    assert xml_client.raw_frames[-1].startswith(b"<event")
    assert len(xml_client.offers) == 1  # offered once; it never asked, so it stays XML

    from_xml = sa("XML-1", "XML")
    await xml_client.send(from_xml)
    assert canonical(await proto_client.recv()) == canonical(from_xml)


async def test_tcp_listener_can_offer_protocol_when_configured(make_server: ServerFactory) -> None:
    server = await make_server(tcp_negotiate=True)
    client = await CotClient.connect(server.port("tcp"), protobuf=True)
    await client.negotiate()
    other = await CotClient.connect(server.port("tcp"))
    await client.send(sa("P-1", "P"))
    assert (await other.recv()).uid == "P-1"
    await other.send(sa("X-1", "X"))
    assert (await client.recv()).uid == "X-1"
