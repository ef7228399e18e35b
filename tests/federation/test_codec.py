"""The codec (CoT <-> FederatedEvent): provenance and contact mapping; partner entries."""

from __future__ import annotations

import pytest

from accord.cot.errors import MalformedEvent
from accord.cot.model import CotEvent, Point
from accord.cot.xml import detail_from_xml
from accord.domain.partners import Partner, PartnerError, parse_partners, server_id
from accord.domain.routing import deleted
from accord.federation.codec import flow_tags, from_federated, to_federated
from accord.federation.proto import fig_pb2

PIN = "ab" * 32


def _event() -> CotEvent:
    detail = detail_from_xml(
        '<contact callsign="alice" endpoint="*:-1:stcp"/><remarks>hi</remarks>'
    )
    return CotEvent("u1", "a-f-G", "m-g", 1000, 1000, 61_000, Point(1.5, 2.5), detail)


def test_an_event_round_trips_with_prefix_and_provenance() -> None:
    msg = to_federated(_event(), [("accord-a", "Org A")], 8)
    assert msg.event.screenName == "alice"
    assert msg.event.other.startswith("<detail>")
    got = from_federated(msg, via="accord-a", now_ms=5000, callsign_prefix="[A] ")
    assert got.provenance == ("accord-a",)
    assert got.event.detail.contact is not None
    assert got.event.detail.contact.callsign == "[A] alice"
    assert flow_tags(got.event) == ("accord-a",)
    assert got.event.point == Point(1.5, 2.5)
    # Forwarded on, the tags travel as provenance and leave the detail.
    onward = to_federated(got.event, [("accord-a", "accord-a"), ("accord-b", "Org B")], 8)
    assert "_flow-tags_" not in onward.event.other
    assert [p.federationServerId for p in onward.federateProvenance] == ["accord-a", "accord-b"]
    assert onward.federateHops.currentHops == 2


def _delete(uid: str, target: str, link_type: str = "a-f-G-U-C") -> CotEvent:
    link = f'<link uid="{target}" type="{link_type}" relation="p-p"/>'
    return CotEvent(uid, "t-x-d-d", "h-g-i-g-o", 9000, 9000, 29_000, Point(), detail_from_xml(link))


def test_a_contacts_own_report_carries_a_contact_create_as_released() -> None:
    msg = to_federated(_event(), [("accord-a", "Org A")], 8)
    assert msg.contact.operation == fig_pb2.CREATE
    assert (msg.contact.uid, msg.contact.callsign) == ("u1", "alice")
    # A marker's callsign (no endpoint) is not a contact, nor is an event with no <contact>.
    marker = CotEvent("m1", "b-m-p-s-m", "h-g-i-g-o", 0, 0, 1, Point(), detail_from_xml(
        '<contact callsign="Marker 1"/>'
    ))  # fmt: skip
    assert not to_federated(marker, [], 8).HasField("contact")
    bare = CotEvent("b1", "a-f-G", "m-g", 0, 0, 1, Point())
    assert not to_federated(bare, [], 8).HasField("contact")


def test_a_departure_carries_a_contact_delete_and_arrives_as_one_delete() -> None:
    msg = to_federated(_delete("d-1", "u1"), [("accord-a", "Org A")], 8)
    assert msg.HasField("event")
    assert msg.contact.operation == fig_pb2.DELETE
    # The TAK Server puts the deleted object's type in callsign (delContact2protoBuf).
    assert (msg.contact.uid, msg.contact.callsign) == ("u1", "a-f-G-U-C")
    got = from_federated(msg, via="accord-a", now_ms=9500)
    assert (got.event.uid, got.event.type) == ("d-1", "t-x-d-d")  # the event, not a second
    assert deleted(got.event) == ("u1", "a-f-G-U-C")
    assert got.provenance == ("accord-a",)


def test_a_tak_servers_bare_contact_delete_becomes_a_delete_event() -> None:
    msg = fig_pb2.FederatedEvent()
    msg.contact.operation, msg.contact.uid = fig_pb2.DELETE, "ANDROID-x"
    msg.contact.callsign = "a-f-G-U-C"
    got = from_federated(msg, via="takserver-1", now_ms=5000, callsign_prefix="[T] ")
    event = got.event
    assert (event.uid, event.type, event.how) == ("ANDROID-x.departed", "t-x-d-d", "h-g-i-g-o")
    assert (event.time, event.start, event.stale) == (5000, 5000, 25_000)
    assert event.point == Point()
    assert deleted(event) == ("ANDROID-x", "a-f-G-U-C")
    assert got.provenance == ("takserver-1",)
    assert flow_tags(event) == ("takserver-1",)  # never sent back to where it came from
    # A callsign that is not a CoT type is not taken for the link type.
    msg.contact.callsign = "alice"
    assert deleted(from_federated(msg, via="t", now_ms=5000).event) == ("ANDROID-x", "a-f-G")


def test_a_delete_beside_an_event_that_is_not_the_delete_is_read_as_the_departure() -> None:
    msg = to_federated(_event(), [("accord-a", "Org A")], 8)
    msg.contact.operation = fig_pb2.DELETE
    got = from_federated(msg, via="accord-a", now_ms=5000)
    assert got.event.type == "t-x-d-d"
    assert deleted(got.event) == ("u1", "a-f-G")


def test_contact_entries_that_are_not_a_departure_are_not_events() -> None:
    create = fig_pb2.FederatedEvent()
    create.contact.operation, create.contact.uid = fig_pb2.CREATE, "u1"
    with pytest.raises(MalformedEvent, match="without an event"):
        from_federated(create, via="t", now_ms=0)
    nameless = fig_pb2.FederatedEvent()
    nameless.contact.operation = fig_pb2.DELETE
    with pytest.raises(MalformedEvent, match="without an event"):
        from_federated(nameless, via="t", now_ms=0)
    unwritable = fig_pb2.FederatedEvent()
    unwritable.contact.operation, unwritable.contact.uid = fig_pb2.DELETE, "bad\x00uid"
    with pytest.raises(MalformedEvent, match="not XML text"):
        from_federated(unwritable, via="t", now_ms=0)


def test_partner_entries_are_checked() -> None:
    (p,) = parse_partners([{"name": "org-b", "ca_sha256": PIN.upper(), "address": "h:9001"}], "f")
    assert p == Partner(name="org-b", ca_sha256=PIN, address="h:9001")
    assert p.server_id == server_id(PIN) == "accord-" + PIN[:16]
    with pytest.raises(PartnerError, match="ca_sha256"):
        parse_partners([{"name": "x"}], "f")
    with pytest.raises(PartnerError, match="not a SHA-256"):
        parse_partners([{"name": "x", "ca_sha256": "abc"}], "f")
    with pytest.raises(PartnerError, match="host:port"):
        parse_partners([{"name": "x", "ca_sha256": PIN, "address": "nope"}], "f")
    with pytest.raises(PartnerError, match="unknown key"):
        parse_partners([{"name": "x", "ca_sha256": PIN, "colour": 1}], "f")
    with pytest.raises(PartnerError, match="same CA"):
        parse_partners([{"name": "x", "ca_sha256": PIN}, {"name": "y", "ca_sha256": PIN}], "f")
