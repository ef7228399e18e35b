"""The presence table's pure core: joins, leaves and node deaths in, departures out."""

from __future__ import annotations

import pytest
from nats.js.kv import _is_key_valid

from accord.cluster.presence import (
    Contact,
    Departed,
    Key,
    NodeDead,
    PresenceError,
    PresenceTable,
    Regrouped,
    contact_key,
    decode_contact,
    departure_of,
    encode_contact,
    node_key,
    parse_key,
)
from accord.cluster.state import user_key
from accord.domain.groups import Membership
from accord.domain.routing import deleted

BLUE = Membership.both(["Blue"])
RED = Membership.both(["Red"])


def contact(node: str, uid: str, membership: Membership = BLUE) -> Contact:
    return Contact(node, uid, uid.upper(), membership, "user-" + uid, "a-f-G-U-C", b"<event/>")


def test_keys_round_trip_names_that_are_not_subject_tokens() -> None:
    key = contact_key("node a.1", "ANDROID.x*>")
    assert key.count(".") == 2
    assert _is_key_valid(key)  # what JetStream KV accepts as a key
    assert _is_key_valid(node_key("node a.1"))
    assert _is_key_valid(user_key("alice.b"))
    assert not set("*> ") & set(key)
    assert parse_key(key) == Key("node a.1", "ANDROID.x*>")
    assert parse_key(node_key("n~1")) == Key("n~1")
    assert parse_key(contact_key("a", "u:1/2=3~")) == Key("a", "u:1/2=3~")
    for bad in ("x.y", "c.a", "n.a.b", "c.a b.c", "c.=ZZ.u", "c.~41.u"):
        with pytest.raises(PresenceError):
            parse_key(bad)


def test_contact_values_round_trip_and_bad_ones_are_refused() -> None:
    c = Contact("a", "u1", "ALPHA", Membership(frozenset({"In"}), frozenset({"Out"})), "al")
    assert decode_contact("a", encode_contact(c)) == c
    long = Contact("a", "u1", "A", BLUE, sa=b"x" * 9000)
    assert decode_contact("a", encode_contact(long)).sa == b""
    for bad in (b"not json", b"[1]", b'{"uid": ""}', b'{"uid": "u", "in": "Blue"}', b"\xff"):
        with pytest.raises(PresenceError):
            decode_contact("a", bad)


def test_a_leave_departs_unless_the_uid_is_on_another_node() -> None:
    table = PresenceTable("b")
    assert table.put(contact("a", "u1"), 0) == []
    assert table.put(contact("c", "u2"), 0) == []
    assert [c.uid for c in table.remote()] == ["u1", "u2"]
    assert table.delete("a", "u1") == [Departed("u1", BLUE, "a-f-G-U-C")]
    # u2 reconnected to node b (this node) before its old session on c was dropped.
    table.put(contact("b", "u2"), 0)
    assert table.delete("c", "u2") == []
    assert table.where("u2") == ["b"]
    # This node's own leaves are told by its own hub, not here; unknown keys are no-ops.
    assert table.delete("b", "u2") == []
    assert table.delete("a", "nobody") == []
    assert table.remote() == []


def test_a_regroup_elsewhere_is_an_event_and_a_rename_is_not() -> None:
    table = PresenceTable("b")
    table.put(contact("a", "u1"), 0)
    assert table.put(contact("a", "u1"), 0) == []
    assert table.put(contact("a", "u1", RED), 0) == [Regrouped("a", "u1", BLUE, RED)]
    table.put(contact("b", "me"), 0)
    assert table.put(contact("b", "me", RED), 0) == []  # our own: the hub regrouped it


def test_a_node_that_stops_beating_is_dead_and_its_contacts_depart() -> None:
    table = PresenceTable("b", dead_after_ms=5_000)
    table.beat("a", 0)
    table.beat("b", 0)
    table.put(contact("a", "u1"), 0)
    table.put(contact("a", "u2", RED), 0)
    table.put(contact("c", "u2", RED), 0)  # u2 is on c too: it does not depart
    assert table.tick(4_000) == []
    table.beat("a", 4_000)
    table.beat("c", 8_000)
    assert table.tick(8_000) == []
    events = table.tick(9_001)
    assert events[0] == NodeDead("a", ("u1", "u2"))
    assert events[1:] == [Departed("u1", BLUE, "a-f-G-U-C")]
    assert table.tick(20_000) == [NodeDead("c", ("u2",)), Departed("u2", RED, "a-f-G-U-C")]
    assert table.alive() == ["b"]  # this node never declares itself dead
    # A node that comes back is alive again.
    table.beat("a", 21_000)
    assert table.alive() == ["a", "b"]


def test_a_node_leaving_cleanly_departs_what_it_still_held() -> None:
    table = PresenceTable("b")
    table.beat("a", 0)
    table.put(contact("a", "u1"), 0)
    assert table.gone("a") == [Departed("u1", BLUE, "a-f-G-U-C")]
    assert table.gone("b") == []


def test_the_departure_names_the_contact_as_a_single_server_does() -> None:
    event = departure_of("u1", "a-f-G-U-C", "notice-1", 1_000)
    assert event.type == "t-x-d-d"
    assert event.uid == "notice-1"
    assert deleted(event) == ("u1", "a-f-G-U-C")
    assert event.stale > event.time == 1_000


def test_beats_missed_while_this_node_was_cut_off_kill_no_one() -> None:
    table = PresenceTable("b", dead_after_ms=5_000)
    table.beat("a", 0)
    table.put(contact("a", "u1"), 0)
    table.grace(60_000)  # back after a minute without NATS
    assert table.tick(64_000) == []
    assert table.alive() == ["a"]
    assert [NodeDead("a", ("u1",)), Departed("u1", BLUE, "a-f-G-U-C")] == table.tick(65_001)
