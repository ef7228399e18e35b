"""Link pieces without sockets: backoff, provenance mapping, partner specs."""

from __future__ import annotations

import pytest

from accord.cot.model import CotEvent, Point
from accord.cot.xml import detail_from_xml
from accord.domain.partners import Partner, PartnerError, parse_partners, server_id
from accord.federation.geo import flow_tags, from_federated, to_federated
from accord.federation.link import Seen, backoff_s

PIN = "ab" * 32


def test_backoff_doubles_to_a_ceiling_with_jitter() -> None:
    assert backoff_s(0, lambda: 0.0) == 0.25
    assert backoff_s(0, lambda: 1.0) == 0.5
    assert backoff_s(3, lambda: 1.0) == 4.0
    assert backoff_s(50, lambda: 1.0) == 30.0
    assert backoff_s(50, lambda: 0.0) == 15.0


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


def test_seen_drops_the_second_copy_only() -> None:
    seen = Seen(size=2)
    assert seen.first("a", _event())
    assert not seen.first("a", _event())
    assert seen.first("b", _event())


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
