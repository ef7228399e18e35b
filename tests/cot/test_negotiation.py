"""``t-x-takp-v/q/r``: the move from XML to TAK protocol version 1 (reference §2.7)."""

from __future__ import annotations

import logging

import pytest
from lxml import etree

from accord.cot.connection import NEED_DATA, StreamConnection
from accord.cot.framing import ProtoSplitter, frame_stream
from accord.cot.model import UNKNOWN_VALUE, CotEvent, Point, TakControl, WireFormat
from accord.cot.negotiation import (
    NEGOTIATION_TYPES,
    SERVER_VERSION,
    Negotiation,
    Role,
    State,
    Step,
    offer,
    request,
    response,
)
from accord.cot.proto import decode_proto, encode_proto
from accord.cot.xml import decode_xml, encode_xml

from .samples import ConnectionPair, drain, golden_events, make_event, sa_event

NOW_MS = 1_700_000_000_000


# -- the events -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "kind", "control"),
    [
        (offer("tx-1", NOW_MS), "t-x-takp-v", TakControl(supported=(1,))),
        (request("tx-1", NOW_MS), "t-x-takp-q", TakControl(requested=1)),
        (response("tx-1", NOW_MS, True), "t-x-takp-r", TakControl(accepted=True)),
        (response("tx-1", NOW_MS, False), "t-x-takp-r", TakControl(accepted=False)),
    ],
    ids=["offer", "request", "response-true", "response-false"],
)
def test_negotiation_events_have_the_shape_the_spec_gives(
    event: CotEvent, kind: str, control: TakControl
) -> None:
    assert event.type == kind
    assert event.uid == "tx-1"
    assert event.how == "m-g"
    assert event.point == Point(0.0, 0.0, UNKNOWN_VALUE, UNKNOWN_VALUE, UNKNOWN_VALUE)
    assert (event.time, event.start, event.stale) == (NOW_MS, NOW_MS, NOW_MS + 60_000)
    assert event.detail.takcontrol == control
    # And they survive the wire, which is XML for all three.
    assert decode_xml(encode_xml(event)).detail.takcontrol == control


def test_offer_lists_version_one_then_the_server_version_in_tak_control() -> None:
    # node-tak reads detail.TakControl.TakServerVersionInfo@serverVersion to know an offer; TAK
    # Server puts it after the TakProtocolSupport elements.
    assert (
        '<TakControl><TakProtocolSupport version="1"/>'
        '<TakServerVersionInfo serverVersion="9.9-test" apiVersion="3"/></TakControl>'
    ) in offer("tx", NOW_MS, server_version="9.9-test").detail.xml
    assert 'serverVersion="&quot;x&lt;"' in offer("tx", NOW_MS, server_version='"x<').detail.xml
    root = etree.fromstring(encode_xml(offer("tx", NOW_MS)))
    info = root.find("detail/TakControl/TakServerVersionInfo")
    assert info is not None
    assert info.get("serverVersion") == SERVER_VERSION
    assert info.get("apiVersion") == "3"
    assert '<TakResponse status="true"/>' in response("tx", NOW_MS, True).detail.xml
    assert '<TakRequest version="1"/>' in request("tx", NOW_MS).detail.xml


# -- the state machine ----------------------------------------------------------------------------


def test_server_offers_once() -> None:
    server = Negotiation(Role.SERVER)
    assert server.make_offer("tx", NOW_MS).uid == "tx"
    assert server.state is State.OFFERED
    with pytest.raises(RuntimeError):
        server.make_offer("tx2", NOW_MS)


def test_client_never_offers() -> None:
    with pytest.raises(RuntimeError):
        Negotiation(Role.CLIENT).make_offer("tx", NOW_MS)


def test_server_accepts_a_request_with_the_offer_uid_and_version_one() -> None:
    server = Negotiation(Role.SERVER)
    server.make_offer("tx", NOW_MS)
    step = server.receive(request("tx", NOW_MS + 5), NOW_MS + 10)
    assert step.switch
    assert step.reply is not None
    assert step.reply.type == "t-x-takp-r"
    assert step.reply.uid == "tx"
    assert step.reply.time == NOW_MS + 10
    assert step.reply.detail.takcontrol == TakControl(accepted=True)
    assert server.state is State.PROTOBUF


def test_server_accepts_a_request_under_another_uid_and_logs_it_at_debug(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # TAK Server checks only the version; node-tak and others answer with a uid of their own.
    server = Negotiation(Role.SERVER)
    server.make_offer("tx", NOW_MS)
    with caplog.at_level(logging.DEBUG, logger="accord.cot"):
        step = server.receive(request("someone-else", NOW_MS), NOW_MS)
    assert step.switch
    assert step.reply is not None
    assert step.reply.uid == "someone-else"
    assert step.reply.detail.takcontrol == TakControl(accepted=True)
    assert server.state is State.PROTOBUF
    assert [r.levelno for r in caplog.records] == [logging.DEBUG]
    assert "someone-else" in caplog.records[0].getMessage()


@pytest.mark.parametrize("bad_request", [request("tx", NOW_MS, version=2)])
def test_server_refuses_a_wrong_version_and_listens_again(bad_request: CotEvent) -> None:
    server = Negotiation(Role.SERVER)
    server.make_offer("tx", NOW_MS)
    step = server.receive(bad_request, NOW_MS)
    assert not step.switch
    assert step.reply is not None
    assert step.reply.uid == bad_request.uid
    assert step.reply.detail.takcontrol == TakControl(accepted=False)
    assert server.state is State.OFFERED
    # Re-armed: a good request is still accepted.
    assert server.receive(request("tx", NOW_MS), NOW_MS).switch


def test_server_ignores_a_request_it_never_invited() -> None:
    server = Negotiation(Role.SERVER)
    assert server.receive(request("tx", NOW_MS), NOW_MS) == Step()
    assert server.state is State.XML


def test_server_ignores_offers_and_responses() -> None:
    server = Negotiation(Role.SERVER)
    server.make_offer("tx", NOW_MS)
    assert server.receive(offer("tx", NOW_MS), NOW_MS) == Step()
    assert server.receive(response("tx", NOW_MS, True), NOW_MS) == Step()
    assert server.state is State.OFFERED


def test_client_answers_an_offer_of_version_one_with_a_request_of_the_same_uid() -> None:
    client = Negotiation(Role.CLIENT)
    step = client.receive(offer("tx", NOW_MS), NOW_MS + 1)
    assert not step.switch
    assert step.reply is not None
    assert step.reply.type == "t-x-takp-q"
    assert step.reply.uid == "tx"
    assert step.reply.detail.takcontrol == TakControl(requested=1)
    assert client.state is State.REQUESTED


def test_client_without_a_common_version_stays_xml_for_good() -> None:
    client = Negotiation(Role.CLIENT)
    only_v2 = offer("tx", NOW_MS)
    only_v2 = decode_xml(
        encode_xml(only_v2).replace(
            b'TakProtocolSupport version="1"', b'TakProtocolSupport version="2"'
        )
    )
    assert client.receive(only_v2, NOW_MS) == Step()
    assert client.state is State.XML_ONLY
    assert client.receive(offer("tx2", NOW_MS), NOW_MS) == Step()


def test_client_ignores_a_second_offer() -> None:
    client = Negotiation(Role.CLIENT)
    client.receive(offer("tx", NOW_MS), NOW_MS)
    assert client.receive(offer("tx2", NOW_MS), NOW_MS) == Step()
    assert client.uid == "tx"


def test_client_switches_on_a_true_response_to_its_own_request() -> None:
    client = Negotiation(Role.CLIENT)
    client.receive(offer("tx", NOW_MS), NOW_MS)
    assert client.receive(response("other", NOW_MS, True), NOW_MS) == Step()
    assert client.state is State.REQUESTED
    assert client.receive(response("tx", NOW_MS, True), NOW_MS) == Step(switch=True)
    assert client.state is State.PROTOBUF


def test_client_stays_xml_after_a_false_response() -> None:
    client = Negotiation(Role.CLIENT)
    client.receive(offer("tx", NOW_MS), NOW_MS)
    assert client.receive(response("tx", NOW_MS, False), NOW_MS) == Step()
    assert client.state is State.XML_ONLY


# -- two connections back to back -----------------------------------------------------------------


def test_full_exchange_switches_both_directions_to_protobuf() -> None:
    pair = ConnectionPair()
    pair.server.offer_protocol("tx-1", pair.now)
    offered = pair.server.data_to_send()
    assert decode_xml(offered).type == "t-x-takp-v"
    assert decode_xml(offered).uid == "tx-1"

    pair.client.receive_data(offered, pair.now)
    assert pair.client.next_event() is NEED_DATA  # the offer is consumed, never handed out
    asked = pair.client.data_to_send()
    assert decode_xml(asked).type == "t-x-takp-q"
    assert decode_xml(asked).uid == "tx-1"
    assert pair.client.wire_format is WireFormat.XML

    pair.server.receive_data(asked, pair.now)
    assert pair.server.next_event() is NEED_DATA
    answer = pair.server.data_to_send()
    assert answer.startswith(b"<event")  # the response itself is XML
    assert decode_xml(answer).type == "t-x-takp-r"
    assert decode_xml(answer).uid == "tx-1"
    assert decode_xml(answer).detail.takcontrol == TakControl(accepted=True)
    assert pair.server.wire_format is WireFormat.PROTOBUF

    pair.client.receive_data(answer, pair.now)
    assert pair.client.next_event() is NEED_DATA
    assert pair.client.wire_format is WireFormat.PROTOBUF
    assert pair.client.data_to_send() == b""


def test_after_the_switch_bytes_are_bf_framed_both_ways() -> None:
    pair = ConnectionPair()
    pair.negotiate()
    sa = sa_event("ANDROID-1", "ALPHA")
    to_client = pair.server.send(sa)
    to_server = pair.client.send(sa)
    for data in (to_client, to_server):
        assert data[0] == 0xBF
        splitter = ProtoSplitter()
        splitter.feed(data)
        frame = splitter.next_frame()
        assert frame is not None
        assert decode_proto(frame) == sa
        assert splitter.pending() == 0
    assert pair.server_to_client(to_client) == [sa]
    assert pair.client_to_server(to_server) == [sa]


def test_events_before_the_switch_are_xml_and_after_it_protobuf() -> None:
    pair = ConnectionPair()
    before = make_event("before", "b-m-p-s-m")
    after = make_event("after", "b-m-p-s-m")
    pair.server.offer_protocol("tx", pair.now)
    # The server may send other XML until it answers (§2.7 step 4).
    first = pair.server.send(before)
    assert first.startswith(b"<event")
    assert pair.server_to_client(first) == [before]
    assert pair.client_to_server() == []  # the request
    second = pair.server.send(after)
    assert second[0] == 0xBF
    # The response and the first protobuf frame arrive in one read: the client switches at
    # the byte after the response's </event>.
    assert pair.server_to_client(second) == [after]
    assert pair.to_client[-1].index(b"</event>") + len(b"</event>") == pair.to_client[-1].index(
        b"\xbf"
    )


def test_request_and_a_following_protobuf_frame_in_one_read_are_both_understood() -> None:
    pair = ConnectionPair()
    pair.server.offer_protocol("tx", pair.now)
    assert pair.server_to_client() == []
    sa = sa_event("ANDROID-1", "ALPHA")
    one_read = pair.client.data_to_send() + frame_stream(encode_proto(sa))
    pair.server.receive_data(one_read, pair.now)
    events, closed = drain(pair.server, pair.now)
    assert closed is None
    assert events == [sa]
    assert events[0].raw_format is WireFormat.PROTOBUF
    assert decode_xml(pair.server.data_to_send()).type == "t-x-takp-r"


def test_request_split_at_every_byte_with_protobuf_behind_it_is_understood() -> None:
    sa = sa_event("ANDROID-1", "ALPHA")
    asked = encode_xml(request("tx", NOW_MS))
    stream = asked + frame_stream(encode_proto(sa))
    for cut in range(len(stream) + 1):
        server = StreamConnection(Role.SERVER)
        server.offer_protocol("tx", 0.0)
        events: list[CotEvent] = []
        for piece in (stream[:cut], stream[cut:]):
            if not piece:
                continue  # b"" would mean end of stream
            server.receive_data(piece, 0.0)
            got, closed = drain(server)
            assert closed is None, cut
            events += got
        assert events == [sa], cut
        assert server.wire_format is WireFormat.PROTOBUF


def test_a_request_under_another_uid_switches_the_stream_as_on_tak_server() -> None:
    pair = ConnectionPair()
    pair.server.offer_protocol("tx", pair.now)
    pair.server.data_to_send()
    assert pair.client_to_server(encode_xml(request("not-the-offer", NOW_MS))) == []
    answer = decode_xml(pair.server.data_to_send())
    assert answer.uid == "not-the-offer"
    assert answer.detail.takcontrol == TakControl(accepted=True)
    assert pair.server.wire_format is WireFormat.PROTOBUF


@pytest.mark.parametrize(
    "bad_request", [request("tx", NOW_MS, version=2)], ids=["unsupported-version"]
)
def test_refused_request_gets_status_false_and_the_stream_stays_xml(bad_request: CotEvent) -> None:
    pair = ConnectionPair()
    pair.server.offer_protocol("tx", pair.now)
    pair.server.data_to_send()
    assert pair.client_to_server(encode_xml(bad_request)) == []
    answer = decode_xml(pair.server.data_to_send())
    assert answer.type == "t-x-takp-r"
    assert answer.uid == bad_request.uid
    assert answer.detail.takcontrol == TakControl(accepted=False)
    assert pair.server.wire_format is WireFormat.XML
    sa = sa_event("ANDROID-1", "ALPHA")
    assert pair.server.send(sa).startswith(b"<event")
    assert pair.client_to_server(encode_xml(sa)) == [sa]


def test_client_that_receives_false_stays_xml() -> None:
    client = StreamConnection(Role.CLIENT)
    client.receive_data(encode_xml(offer("tx", NOW_MS)), 0.0)
    assert client.next_event() is NEED_DATA
    assert decode_xml(client.data_to_send()).type == "t-x-takp-q"
    sa = sa_event("ANDROID-1", "ALPHA")
    client.receive_data(encode_xml(response("tx", NOW_MS, False)) + encode_xml(sa), 0.0)
    assert drain(client) == ([sa], None)
    assert client.wire_format is WireFormat.XML
    assert client.negotiation.state is State.XML_ONLY


def test_a_client_that_never_asks_stays_xml() -> None:
    server = StreamConnection(Role.SERVER)
    server.offer_protocol("tx", 0.0)
    server.data_to_send()
    # pytak-like: ignores the offer and goes on with plain XML.
    samples = golden_events()
    server.receive_data(b"".join(samples), 0.0)
    events, closed = drain(server)
    assert closed is None
    assert events == [decode_xml(s) for s in samples]
    assert server.wire_format is WireFormat.XML
    assert server.send(events[0]).startswith(b"<event")
    assert server.data_to_send() == b""


def test_stray_negotiation_events_are_consumed_and_never_handed_out() -> None:
    server = StreamConnection(Role.SERVER)
    stray = [
        offer("x", NOW_MS),
        response("x", NOW_MS, True),
        request("x", NOW_MS),  # no offer was made: ignored, not answered
    ]
    sa = sa_event("ANDROID-1", "ALPHA")
    server.receive_data(b"".join(encode_xml(e) for e in stray) + encode_xml(sa), 0.0)
    assert drain(server) == ([sa], None)
    assert server.data_to_send() == b""
    assert server.wire_format is WireFormat.XML
    assert {e.type for e in stray} == NEGOTIATION_TYPES


def test_replies_are_dated_with_the_clock_given_to_receive_data() -> None:
    client = StreamConnection(Role.CLIENT)
    client.receive_data(encode_xml(offer("tx", NOW_MS)), 1_700_000_123.456)
    assert client.next_event() is NEED_DATA
    asked = decode_xml(client.data_to_send())
    assert asked.time == 1_700_000_123_456
    assert asked.stale == 1_700_000_183_456


def test_an_explicit_clock_for_next_event_dates_the_reply() -> None:
    server = StreamConnection(Role.SERVER)
    server.offer_protocol("tx", 100.0)
    assert decode_xml(server.data_to_send()).time == 100_000
    server.receive_data(encode_xml(request("tx", NOW_MS)), 200.0)
    assert server.next_event(300.0) is NEED_DATA
    assert decode_xml(server.data_to_send()).time == 300_000


def test_a_second_offer_on_one_connection_is_refused() -> None:
    server = StreamConnection(Role.SERVER)
    server.offer_protocol("tx", 0.0)
    with pytest.raises(RuntimeError):
        server.offer_protocol("tx2", 0.0)


def test_a_protobuf_only_input_starts_switched_and_never_offers() -> None:
    server = StreamConnection(Role.SERVER, wire_format=WireFormat.PROTOBUF)
    assert server.negotiation.state is State.PROTOBUF
    assert server.wire_format is WireFormat.PROTOBUF
    with pytest.raises(RuntimeError):
        server.offer_protocol("tx", 0.0)


def test_xml_after_the_switch_loses_the_stream() -> None:
    pair = ConnectionPair()
    pair.negotiate()
    pair.server.receive_data(encode_xml(sa_event("ANDROID-1", "ALPHA")), pair.now)
    events, closed = drain(pair.server)
    assert events == []
    assert closed is not None
    assert not closed.clean
