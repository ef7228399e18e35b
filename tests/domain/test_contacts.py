"""The roster: who is online, bound to which uid and callsign, and their latest SA."""

from __future__ import annotations

import dataclasses

from accord.cot.xml import decode_xml
from accord.domain.contacts import Party, Roster
from accord.domain.groups import Membership
from tests.cot.samples import capture_events, make_event, sa_event, uas_tool_events

NOW_MS = 1_700_000_000_000


def new_party(
    roster: Roster, key: int, groups: tuple[str, ...] = ("A",), *, receives: bool = True
) -> Party:
    party = Party(key, Membership.both(groups), f"peer-{key}", receives=receives)
    roster.join(party)
    return party


def test_uid_and_callsign_are_bound_from_the_first_event_with_contact_endpoint() -> None:
    roster = Roster()
    party = new_party(roster, 1)
    gemini = decode_xml(capture_events()[2])
    assert roster.observe(party, gemini)
    assert (party.uid, party.callsign) == ("ANDROID-48:5A:3F:49:93:24", "GEMINI")
    assert roster.by_uid("ANDROID-48:5A:3F:49:93:24") is party
    assert roster.by_callsign("GEMINI") is party
    assert party.last_sa is gemini


def test_events_without_contact_endpoint_do_not_bind() -> None:
    roster = Roster()
    party = new_party(roster, 1)
    no_contact = make_event("marker", "b-m-p-s-m")
    callsign_only = decode_xml(uas_tool_events()[1])  # <contact callsign="UAS-Phoenix 2"/>
    assert callsign_only.detail.contact is not None
    empty_callsign = sa_event("uid-x", "")
    for event in (no_contact, callsign_only, empty_callsign):
        assert not roster.observe(party, event)
    assert (party.uid, party.callsign, party.last_sa) == ("", "", None)
    assert roster.by_uid("marker") is None
    assert roster.by_callsign("UAS-Phoenix 2") is None


def test_the_same_sa_again_changes_nothing_but_the_latest_sa() -> None:
    roster = Roster()
    party = new_party(roster, 1)
    assert roster.observe(party, sa_event("uid-1", "ALPHA"))
    later = sa_event("uid-1", "ALPHA", now_ms=NOW_MS + 5_000)
    assert not roster.observe(party, later)
    assert party.last_sa is later


def test_a_callsign_change_is_followed() -> None:
    roster = Roster()
    party = new_party(roster, 1)
    roster.observe(party, sa_event("uid-1", "ALPHA"))
    assert roster.observe(party, sa_event("uid-1", "ALPHA-2"))
    assert party.callsign == "ALPHA-2"
    assert roster.by_callsign("ALPHA-2") is party
    assert roster.by_callsign("ALPHA") is None
    assert roster.by_uid("uid-1") is party


def test_an_sa_of_another_uid_relayed_by_the_client_does_not_rebind() -> None:
    roster = Roster()
    party = new_party(roster, 1)
    own = sa_event("uid-1", "ALPHA")
    roster.observe(party, own)
    relayed = sa_event("uid-drone", "DRONE")
    assert not roster.observe(party, relayed)
    assert (party.uid, party.callsign) == ("uid-1", "ALPHA")
    assert party.last_sa is own
    assert roster.by_uid("uid-drone") is None
    assert roster.by_callsign("DRONE") is None


def test_leaving_removes_the_bindings() -> None:
    roster = Roster()
    party = new_party(roster, 1)
    roster.observe(party, sa_event("uid-1", "ALPHA"))
    roster.leave(party)
    assert len(roster) == 0
    assert roster.by_uid("uid-1") is None
    assert roster.by_callsign("ALPHA") is None
    roster.leave(party)  # twice is harmless


def test_an_old_session_leaving_does_not_unbind_its_reconnected_successor() -> None:
    roster = Roster()
    old = new_party(roster, 1)
    roster.observe(old, sa_event("uid-1", "ALPHA"))
    new = new_party(roster, 2)
    roster.observe(new, sa_event("uid-1", "ALPHA"))
    assert roster.by_uid("uid-1") is new
    roster.leave(old)
    assert roster.by_uid("uid-1") is new
    assert roster.by_callsign("ALPHA") is new


def test_receivers_are_the_parties_that_can_be_sent_to() -> None:
    roster = Roster()
    tcp = new_party(roster, 1)
    udp = new_party(roster, 2, receives=False)
    assert list(roster.receivers()) == [tcp]
    assert set(roster) == {tcp, udp}
    assert len(roster) == 2


# -- latest SA for a newcomer ---------------------------------------------------------------------


def test_latest_sa_excludes_stale_unreachable_and_the_newcomer_itself() -> None:
    roster = Roster()
    fresh = new_party(roster, 1)
    roster.observe(fresh, sa_event("uid-fresh", "FRESH", stale_s=60))
    stale = new_party(roster, 2)
    roster.observe(stale, sa_event("uid-stale", "STALE", now_ms=NOW_MS - 120_000, stale_s=60))
    edge = new_party(roster, 3)
    roster.observe(edge, sa_event("uid-edge", "EDGE", now_ms=NOW_MS - 60_000, stale_s=60))
    other_group = new_party(roster, 4, ("B",))
    roster.observe(other_group, sa_event("uid-b", "B"))
    new_party(roster, 5)  # never sent an SA
    newcomer = new_party(roster, 6)
    roster.observe(newcomer, sa_event("uid-new", "NEW"))
    assert [e.uid for e in roster.latest_sa(newcomer, NOW_MS)] == ["uid-fresh"]


def test_latest_sa_follows_the_senders_in_groups_and_the_newcomers_out_groups() -> None:
    roster = Roster()
    feed = Party(1, Membership(frozenset({"X"}), frozenset()), "feed")
    roster.join(feed)
    roster.observe(feed, sa_event("uid-feed", "FEED"))
    listener = Party(2, Membership(frozenset(), frozenset({"X"})), "listener")
    roster.join(listener)
    roster.observe(listener, sa_event("uid-listener", "LISTENER"))
    assert [e.uid for e in roster.latest_sa(listener, NOW_MS)] == ["uid-feed"]
    assert roster.latest_sa(feed, NOW_MS) == []


def test_latest_sa_gives_one_report_per_uid_the_newest() -> None:
    roster = Roster()
    old = new_party(roster, 1)
    roster.observe(old, sa_event("uid-1", "ALPHA", now_ms=NOW_MS - 1_000))
    new = new_party(roster, 2)
    newest = sa_event("uid-1", "ALPHA", now_ms=NOW_MS)
    roster.observe(new, newest)
    newcomer = new_party(roster, 3)
    assert roster.latest_sa(newcomer, NOW_MS) == [newest]


def test_mesh_senders_sa_is_kept_until_its_stale_time() -> None:
    roster = Roster()
    udp = new_party(roster, 1, receives=False)
    mesh_sa = sa_event("uid-mesh", "MESH", endpoint="192.168.1.5:4242:tcp", stale_s=30)
    assert not roster.observe(udp, mesh_sa)  # no binding: nothing can be sent back
    assert roster.by_uid("uid-mesh") is None
    newcomer = new_party(roster, 2)
    assert roster.latest_sa(newcomer, NOW_MS) == [mesh_sa]
    assert roster.latest_sa(newcomer, NOW_MS + 30_000) == []
    # Forgotten once stale, even if the clock were to go back.
    assert roster.latest_sa(newcomer, NOW_MS) == []


def test_mesh_sa_respects_groups() -> None:
    roster = Roster()
    udp = new_party(roster, 1, ("B",), receives=False)
    roster.observe(udp, sa_event("uid-mesh", "MESH"))
    assert roster.latest_sa(new_party(roster, 2, ("A",)), NOW_MS) == []
    assert [e.uid for e in roster.latest_sa(new_party(roster, 3, ("B",)), NOW_MS)] == ["uid-mesh"]


def test_party_is_compared_by_identity() -> None:
    a = Party(1, Membership.both(["A"]), "x")
    b = dataclasses.replace(a)
    assert a != b
    assert len({a, b}) == 2


def test_udp_contacts_are_bounded_oldest_first() -> None:
    from accord.domain import contacts

    roster = Roster()
    udp = Party(1, Membership.both(["__ANON__"]), "udp", receives=False)
    for i in range(contacts.MAX_MESH_CONTACTS + 5):
        roster.observe(udp, sa_event(f"mesh-{i}", f"M{i}"))
    newcomer = Party(2, Membership.both(["__ANON__"]), "new")
    roster.join(newcomer)
    uids = {e.uid for e in roster.latest_sa(newcomer, 0)}
    assert len(uids) == contacts.MAX_MESH_CONTACTS
    assert "mesh-0" not in uids
    assert f"mesh-{contacts.MAX_MESH_CONTACTS + 4}" in uids


def test_a_restored_sa_is_replayed_by_group_until_its_owner_reports_again() -> None:
    roster = Roster()
    before = sa_event("uid-r", "RESTORED", stale_s=60)
    roster.restore(Membership(frozenset({"A"}), frozenset()), before)
    assert roster.latest_sa(new_party(roster, 1, ("B",)), NOW_MS) == []
    assert roster.latest_sa(new_party(roster, 2, ("A",)), NOW_MS) == [before]
    # The owner reconnects and reports: only its live SA counts, and once it leaves its
    # restored report does not come back.
    owner = new_party(roster, 3, ("A",))
    fresh = sa_event("uid-r", "RESTORED", stale_s=60)
    roster.observe(owner, fresh)
    assert roster.latest_sa(new_party(roster, 4, ("A",)), NOW_MS) == [fresh]
    roster.leave(owner)
    assert roster.latest_sa(new_party(roster, 5, ("A",)), NOW_MS) == []


def test_a_restored_sa_goes_when_stale() -> None:
    roster = Roster()
    roster.restore(Membership.both(["A"]), sa_event("uid-r", "R", stale_s=10))
    assert roster.latest_sa(new_party(roster, 1, ("A",)), NOW_MS + 10_000) == []


def relay(roster: Roster, key: int) -> Party:
    party = Party(key, Membership.both(["A"]), f"partner-{key}", relays=True)
    roster.join(party)
    return party


def test_a_partner_link_may_forget_a_contact_a_partner_link_brought() -> None:
    roster = Roster()
    outgoing, incoming = relay(roster, 1), relay(roster, 2)
    roster.observe(outgoing, sa_event("uid-p", "PARTNER"))
    assert not roster.forget(incoming, "uid-unknown")
    # The other link of the same partner (both sides dial) may bring the departure.
    assert roster.forget(incoming, "uid-p")
    assert roster.latest_sa(new_party(roster, 3), NOW_MS) == []
    assert not roster.forget(incoming, "uid-p")  # once


def test_only_partner_links_forget_and_only_what_partners_brought() -> None:
    roster = Roster()
    link = relay(roster, 1)
    client = new_party(roster, 2)
    udp = new_party(roster, 3, receives=False)
    roster.observe(link, sa_event("uid-p", "PARTNER"))
    roster.observe(udp, sa_event("uid-mesh", "MESH"))
    roster.restore(Membership.both(["A"]), sa_event("uid-r", "RESTORED"))
    assert not roster.forget(client, "uid-p")  # a local client cannot hide a contact
    assert not roster.forget(udp, "uid-p")  # nor a datagram anyone could forge
    assert not roster.forget(link, "uid-mesh")  # a partner names its own contacts only
    assert not roster.forget(link, "uid-r")
    uids = {e.uid for e in roster.latest_sa(new_party(roster, 4), NOW_MS)}
    assert uids == {"uid-p", "uid-mesh", "uid-r"}


def test_an_sa_is_known_while_it_is_the_latest_of_its_sender_connected_or_udp() -> None:
    roster = Roster()
    client = new_party(roster, 1)
    first, second = sa_event("uid-1", "ONE"), sa_event("uid-1", "ONE")
    roster.observe(client, first)
    assert roster.knows_sa(first)
    roster.observe(client, second)
    assert roster.knows_sa(second)
    assert not roster.knows_sa(first)  # superseded: not replayed any more
    udp = new_party(roster, 2, receives=False)
    mesh = sa_event("uid-mesh", "MESH")
    assert not roster.knows_sa(mesh)
    roster.observe(udp, mesh)
    assert roster.knows_sa(mesh)
    assert not roster.knows_sa(sa_event("uid-mesh", "MESH"))  # the same uid, another event


def test_compacting_the_indexes_keeps_every_binding() -> None:
    roster = Roster()
    parties = [new_party(roster, key) for key in range(1, 6)]
    for party in parties:
        roster.observe(party, sa_event(f"uid-{party.key}", f"CALL-{party.key}"))
    for party in parties[:3]:
        roster.leave(party)
    roster.compact()
    assert [p.key for p in roster] == [4, 5]
    assert roster.by_uid("uid-4") is parties[3]
    assert roster.by_callsign("CALL-5") is parties[4]
    assert roster.by_uid("uid-1") is None
