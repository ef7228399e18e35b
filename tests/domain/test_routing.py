"""Where an event goes (reference §1.3 marti/dest, §1.7 control types, §5.1 reachability)."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from accord.cot.model import EMPTY_DETAIL, CotEvent, Point
from accord.cot.xml import decode_xml, encode_xml, parse_fragment
from accord.domain.contacts import Party, Roster
from accord.domain.groups import Membership
from accord.domain.routing import (
    CONTROL_TYPES,
    Kind,
    classify,
    deleted,
    departure,
    groups_changed,
    pong,
    route,
)
from tests.cot.samples import capture_events, make_event, sa_event

NOW_MS = 1_700_000_000_000


class World:
    """A roster of parties, each bound to a uid and callsign by its own first SA."""

    def __init__(self) -> None:
        self.roster = Roster()
        self._keys = iter(range(1, 1_000_000))

    def party(
        self,
        name: str,
        groups: Iterable[str] = ("A",),
        *,
        inbound: Iterable[str] | None = None,
        outbound: Iterable[str] | None = None,
        receives: bool = True,
    ) -> Party:
        membership = (
            Membership(frozenset(inbound or ()), frozenset(outbound or ()))
            if inbound is not None or outbound is not None
            else Membership.both(groups)
        )
        party = Party(next(self._keys), membership, f"127.0.0.1:{name}", receives=receives)
        self.roster.join(party)
        if receives:
            assert self.roster.observe(party, sa_event(f"uid-{name}", name.upper()))
        return party

    def route(self, event: CotEvent, sender: Party) -> tuple[Kind, set[str], CotEvent]:
        decision = route(event, sender, self.roster, NOW_MS)
        recipients = decision.audience(sender, self.roster)
        return decision.kind, {p.label.split(":")[-1] for p in recipients}, decision.event


def directed(*dests: str, extra: str = "<remarks>hello</remarks>") -> CotEvent:
    """A marker with one <dest> per entry, each written as ``kind=value``."""
    body = "".join(f'<dest {kind}="{value}"/>' for kind, value in (d.split("=", 1) for d in dests))
    return decode_xml(
        encode_xml(make_event("marker-1", "b-m-p-s-m", detail=f"<marti>{body}</marti>{extra}"))
    )


# -- broadcast ------------------------------------------------------------------------------------


def test_broadcast_reaches_everyone_in_the_group_but_the_sender() -> None:
    world = World()
    alpha = world.party("alpha")
    world.party("bravo")
    world.party("charlie")
    kind, to, _ = world.route(sa_event("uid-alpha", "ALPHA"), alpha)
    assert kind is Kind.BROADCAST
    assert to == {"bravo", "charlie"}


def test_broadcast_is_forwarded_as_received() -> None:
    world = World()
    alpha = world.party("alpha")
    world.party("bravo")
    received = decode_xml(capture_events()[2])
    decision = route(received, alpha, world.roster, NOW_MS)
    assert decision.event is received
    assert decision.reply is None


def test_broadcast_stays_inside_the_senders_groups() -> None:
    world = World()
    alpha = world.party("alpha", ["A"])
    world.party("bravo", ["A", "B"])
    world.party("charlie", ["B"])
    world.party("delta", [])
    assert world.route(make_event(), alpha)[1] == {"bravo"}


def test_reachability_follows_in_and_out_directions_separately() -> None:
    world = World()
    feed = world.party("feed", inbound=["X"], outbound=[])  # sends into X, hears nothing
    watcher = world.party("watcher", inbound=[], outbound=["X"])  # hears X, reaches nobody
    both = world.party("both", ["X"])
    assert world.route(make_event(), feed)[1] == {"watcher", "both"}
    assert world.route(make_event(), watcher)[1] == set()
    assert world.route(make_event(), both)[1] == {"watcher"}


def test_a_party_that_cannot_receive_is_never_a_recipient() -> None:
    world = World()
    udp = world.party("udp", receives=False)
    alpha = world.party("alpha")
    assert world.route(make_event(), alpha)[1] == set()
    assert world.route(make_event(), udp)[1] == {"alpha"}


def test_a_party_that_never_sent_an_sa_still_receives_broadcasts() -> None:
    world = World()
    alpha = world.party("alpha")
    silent = Party(99, Membership.both(["A"]), "127.0.0.1:silent")
    world.roster.join(silent)
    assert world.route(make_event(), alpha)[1] == {"silent"}


# -- marti/dest -----------------------------------------------------------------------------------


@pytest.mark.parametrize("dest", ["callsign=BRAVO", "uid=uid-bravo"])
def test_marti_dest_delivers_only_to_the_target(dest: str) -> None:
    world = World()
    alpha = world.party("alpha")
    world.party("bravo")
    world.party("charlie")
    kind, to, _ = world.route(directed(dest), alpha)
    assert kind is Kind.DIRECTED
    assert to == {"bravo"}


def test_delivered_directed_event_has_no_marti() -> None:
    world = World()
    alpha = world.party("alpha")
    world.party("bravo")
    sent = directed("callsign=BRAVO")
    assert sent.detail.has_marti
    _, _, event = world.route(sent, alpha)
    assert not event.detail.has_marti
    assert event.detail.dests == ()
    assert "marti" not in event.detail.xml
    assert "<remarks>hello</remarks>" in event.detail.xml
    assert event.raw == b""  # re-encoded, never forwarded with the routing request in it
    assert b"marti" not in encode_xml(event)
    assert (event.uid, event.type, event.point) == (sent.uid, sent.type, sent.point)


def test_several_dests_deliver_to_each_target_once() -> None:
    world = World()
    alpha = world.party("alpha")
    world.party("bravo")
    world.party("charlie")
    world.party("delta")
    event = directed("callsign=BRAVO", "uid=uid-charlie", "uid=uid-bravo")
    assert world.route(event, alpha)[1] == {"bravo", "charlie"}
    decision = route(event, alpha, world.roster, NOW_MS)
    assert decision.recipients is not None
    assert len(decision.recipients) == 2


@pytest.mark.parametrize(
    "dest", ["callsign=NOBODY", "uid=uid-nobody", "callsign=ALPHA", "mission=m1"]
)
def test_dest_naming_no_one_else_delivers_to_no_one(dest: str) -> None:
    world = World()
    alpha = world.party("alpha")
    world.party("bravo")
    kind, to, _ = world.route(directed(dest), alpha)
    assert kind is Kind.DIRECTED
    assert to == set()


def test_dest_is_still_filtered_by_group_reachability() -> None:
    world = World()
    alpha = world.party("alpha", ["A"])
    world.party("bravo", ["B"])
    assert world.route(directed("callsign=BRAVO"), alpha)[1] == set()


def test_dest_all_streaming_broadcasts_without_marti() -> None:
    world = World()
    alpha = world.party("alpha")
    world.party("bravo")
    world.party("charlie")
    world.party("other", ["B"])
    kind, to, event = world.route(directed("callsign=All Streaming"), alpha)
    assert kind is Kind.DIRECTED
    assert to == {"bravo", "charlie"}
    assert not event.detail.has_marti
    assert "marti" not in event.detail.xml


def test_dest_group_narrows_delivery_to_that_group() -> None:
    world = World()
    alpha = world.party("alpha", ["A", "B"])
    world.party("bravo", ["A"])
    world.party("charlie", ["B"])
    world.party("listener", inbound=[], outbound=["A"])
    assert world.route(directed("group=A"), alpha)[1] == {"bravo", "listener"}
    # Without the dest, both groups would hear it.
    assert world.route(make_event(), alpha)[1] == {"bravo", "charlie", "listener"}


def test_dest_group_requires_the_sender_to_send_into_it() -> None:
    world = World()
    outsider = world.party("outsider", inbound=["B"], outbound=["A", "B"])
    world.party("bravo", ["A"])
    world.party("charlie", ["B"])
    assert world.route(directed("group=A"), outsider)[1] == set()
    assert world.route(directed("group=B"), outsider)[1] == {"charlie"}


def test_dest_group_and_named_target_are_merged() -> None:
    world = World()
    alpha = world.party("alpha", ["A", "B"])
    world.party("bravo", ["A"])
    world.party("charlie", ["B"])
    world.party("delta", ["B"])
    assert world.route(directed("group=A", "callsign=CHARLIE"), alpha)[1] == {"bravo", "charlie"}


# -- GeoChat --------------------------------------------------------------------------------------


def test_geochat_to_all_chat_rooms_reaches_everyone_reachable() -> None:
    world = World()
    sender = world.party("sender")
    world.party("bravo")
    world.party("charlie")
    world.party("other", ["B"])
    chat = decode_xml(capture_events()[-1])
    kind, to, event = world.route(chat, sender)
    assert kind is Kind.CHAT
    assert to == {"bravo", "charlie"}
    assert event is chat


def chat_to(*members: str, room: str = "Team Talk") -> CotEvent:
    uids = "".join(f' uid{i}="{uid}"' for i, uid in enumerate(members, start=1))
    return make_event(
        "GeoChat.uid-alpha.room.1",
        "b-t-f",
        detail=f'<__chat chatroom="{room}" id="r1"><chatgrp id="r1" uid0="uid-alpha"{uids}/>'
        f"</__chat><remarks>hi</remarks>",
    )


def test_geochat_with_a_member_list_reaches_only_those_members() -> None:
    world = World()
    alpha = world.party("alpha")
    world.party("bravo")
    world.party("charlie")
    world.party("delta")
    kind, to, _ = world.route(chat_to("uid-bravo", "uid-delta"), alpha)
    assert kind is Kind.CHAT
    assert to == {"bravo", "delta"}


def test_geochat_members_must_be_reachable_and_never_include_the_sender() -> None:
    world = World()
    alpha = world.party("alpha", ["A"])
    world.party("bravo", ["A"])
    world.party("charlie", ["B"])
    assert world.route(chat_to("uid-alpha", "uid-bravo", "uid-charlie"), alpha)[1] == {"bravo"}


def test_geochat_without_members_reaches_everyone_reachable() -> None:
    world = World()
    alpha = world.party("alpha")
    world.party("bravo")
    no_list = make_event("GeoChat.x", "b-t-f", detail='<__chat chatroom="Team"/>')
    assert world.route(no_list, alpha)[1] == {"bravo"}
    no_chat = make_event("GeoChat.y", "b-t-f", detail="<remarks>hi</remarks>")
    assert world.route(no_chat, alpha)[1] == {"bravo"}


def test_geochat_with_a_dest_is_directed() -> None:
    world = World()
    alpha = world.party("alpha")
    world.party("bravo")
    world.party("charlie")
    chat = make_event(
        "GeoChat.z",
        "b-t-f",
        detail='<__chat chatroom="All Chat Rooms"/><marti><dest callsign="CHARLIE"/></marti>',
    )
    kind, to, _ = world.route(chat, alpha)
    assert kind is Kind.DIRECTED
    assert to == {"charlie"}


# -- ping, control, departure ---------------------------------------------------------------------


def test_ping_is_answered_with_a_pong_to_the_sender_only() -> None:
    world = World()
    alpha = world.party("alpha")
    world.party("bravo")
    ping = make_event("uid-alpha-ping", "t-x-c-t", stale_s=10)
    decision = route(ping, alpha, world.roster, NOW_MS)
    assert decision.kind is Kind.PING
    assert decision.recipients == ()
    reply = decision.reply
    assert reply is not None
    assert (reply.type, reply.uid, reply.how) == ("t-x-c-t-r", "takPong", "h-g-i-g-o")
    assert (reply.time, reply.start, reply.stale) == (NOW_MS, NOW_MS, NOW_MS + 20_000)
    assert reply.detail == EMPTY_DETAIL
    assert reply == pong(NOW_MS)
    assert decode_xml(encode_xml(reply)) == reply


CONSUMED = [
    "t-x-c-t-r",
    "t-b",
    "t-b-a",
    "t-b-c",
    "t-b-q",
    "t-x-c-f",
    "t-x-c-m",
    "t-x-c-i-e",
    "t-x-c-i-d",
    "t-x-takp-v",
    "t-x-takp-q",
    "t-x-takp-r",
]


@pytest.mark.parametrize("control_type", CONSUMED)
def test_control_types_are_consumed_and_never_forwarded(control_type: str) -> None:
    world = World()
    alpha = world.party("alpha")
    world.party("bravo")
    event = make_event("ctl", control_type, detail='<marti><dest callsign="BRAVO"/></marti>')
    decision = route(event, alpha, world.roster, NOW_MS)
    assert decision.kind is Kind.CONTROL
    assert decision.recipients == ()
    assert decision.reply is None
    assert control_type in CONTROL_TYPES


@pytest.mark.parametrize(
    ("type_", "kind"),
    [
        ("a-f-G-U-C", Kind.BROADCAST),
        ("t-x-d-d", Kind.BROADCAST),
        ("b-t-f", Kind.CHAT),
        ("t-x-c-t", Kind.PING),
        ("t-x-c-t-x", Kind.BROADCAST),  # types match exactly, not by prefix
    ],
)
def test_events_are_classified_by_exact_type(type_: str, kind: Kind) -> None:
    assert classify(make_event(type_=type_)) is kind


def link_of(event: CotEvent) -> dict[str, str]:
    link = parse_fragment(f"<detail>{event.detail.xml}</detail>").find("link")
    assert link is not None
    return {str(k): str(v) for k, v in link.attrib.items()}


def test_departure_names_the_departed_uid_in_its_link() -> None:
    world = World()
    alpha = world.party("alpha")
    gone = departure(alpha, "delete-1", NOW_MS)
    assert gone is not None
    assert (gone.type, gone.uid, gone.how) == ("t-x-d-d", "delete-1", "h-g-i-g-o")
    assert (gone.time, gone.stale) == (NOW_MS, NOW_MS + 20_000)
    assert gone.point == Point()
    assert link_of(gone) == {"uid": "uid-alpha", "type": "a-f-G-U-C", "relation": "p-p"}
    assert decode_xml(encode_xml(gone)) == gone


def test_departure_without_a_known_sa_type_uses_a_generic_one() -> None:
    party = Party(1, Membership.both(["A"]), "x", uid="uid-x")
    gone = departure(party, "delete-1", NOW_MS)
    assert gone is not None
    assert link_of(gone)["type"] == "a-f-G"


def test_departure_escapes_the_uid() -> None:
    party = Party(1, Membership.both(["A"]), "x", uid='we"ird&<uid>')
    gone = departure(party, "delete-1", NOW_MS)
    assert gone is not None
    assert link_of(gone)["uid"] == 'we"ird&<uid>'


def test_no_departure_for_a_party_that_never_said_who_it_is() -> None:
    assert departure(Party(1, Membership.both(["A"]), "x"), "delete-1", NOW_MS) is None


def test_deleted_names_what_a_delete_links_to_and_nothing_else() -> None:
    party = Party(1, Membership.both(["A"]), "x", uid='we"ird&<uid>')
    gone = departure(party, "delete-1", NOW_MS)
    assert gone is not None
    assert deleted(gone) == ('we"ird&<uid>', "a-f-G")
    # ATAK deleting a marker: no link type, and a flag beside the link.
    marker = make_event("d-1", "t-x-d-d", detail='<link uid="m-1" relation="p-p"/><__forcedelete/>')
    assert deleted(marker) == ("m-1", "")
    assert deleted(make_event("d-2", "t-x-d-d")) is None  # names nothing
    assert deleted(make_event("d-3", "t-x-d-d", detail='<link type="a-f-G"/>')) is None
    # A link on anything but a delete is a relation, not a deletion.
    assert deleted(make_event("s-1", "a-f-G", detail='<link uid="x" relation="p-p"/>')) is None


def test_the_groups_changed_notice_is_a_server_control_event_that_round_trips() -> None:
    notice = groups_changed("notice-1", NOW_MS)
    assert (notice.type, notice.uid, notice.how) == ("t-x-g-c", "notice-1", "h-g-i-g-o")
    assert (notice.time, notice.stale) == (NOW_MS, NOW_MS + 20_000)
    assert classify(notice) is not Kind.PING
    assert decode_xml(encode_xml(notice)) == notice
