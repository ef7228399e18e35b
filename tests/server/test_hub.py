"""The hub with real sessions replaced by recording sinks and a clock the test turns."""

from __future__ import annotations

import itertools
from typing import Any

from accord.cot.model import CotEvent, WireFormat
from accord.cot.xml import detail_from_xml
from accord.domain.groups import ANONYMOUS, Membership
from accord.domain.metrics import Counters
from accord.domain.routing import DELETE_STALE_MS, DELETE_TYPE, notice
from accord.server.hub import Hub
from tests.e2e.clients import sa
from tests.server.fakes import Clock, RecordingSink
from tests.waiting import next_turn


def make_hub(clock: Clock) -> Hub:
    uids = (f"uid-{n}" for n in itertools.count())
    return Hub(Counters(), wall_ms=clock, new_uid=lambda: next(uids))


def join(
    hub: Hub, name: str, wire_format: WireFormat = WireFormat.XML
) -> tuple[object, RecordingSink]:
    party = hub.new_party(ANONYMOUS, name)
    sink = RecordingSink(wire_format)
    hub.attach(party, sink)
    return party, sink


async def test_one_event_is_shared_by_all_recipients_and_encoded_once_per_format() -> None:
    event = sa("S-1", "SENDER")
    hub = make_hub(Clock(event.time))
    sender, _ = join(hub, "sender")
    sinks = [join(hub, f"r{i}", fmt)[1] for i in range(3) for fmt in WireFormat]
    hub.submit(sender, event)  # type: ignore[arg-type]
    await next_turn()  # the flush runs at the end of the loop turn
    items = [sink.flushed[0] for sink in sinks]
    assert all(item is items[0] for item in items)
    # Sessions of one class and format are handed the very same bytes: joined once per turn.
    for fmt in WireFormat:
        writes = [sink.writes[0] for sink in sinks if sink.wire_format is fmt]
        assert len(writes) == 3
        assert all(w is writes[0] for w in writes)


async def test_deliveries_of_one_turn_are_flushed_together() -> None:
    hub = make_hub(Clock(0))
    sender, _ = join(hub, "sender")
    _, sink = join(hub, "receiver")
    for i in range(10):
        hub.submit(sender, sa(f"S-{i}", f"S{i}"))  # type: ignore[arg-type]
    assert sink.flushed == []  # nothing written mid-turn
    await next_turn()
    assert [item.event.uid for item in sink.flushed] == [f"S-{i}" for i in range(10)]
    assert len(sink.writes) == 1


async def test_stationary_client_sa_is_replayed_until_its_own_stale_time() -> None:
    event = sa("QUIET-1", "QUIET")  # stale = time + 375 s, as ATAK sends when stationary
    clock = Clock(event.time)
    hub = make_hub(clock)
    quiet, _ = join(hub, "quiet")
    hub.submit(quiet, event)  # type: ignore[arg-type]

    clock.ms = event.time + 300_000  # well past the 180 s report interval
    _, early = join(hub, "early")
    await next_turn()
    assert [item.event.uid for item in early.flushed] == ["QUIET-1"]

    clock.ms = event.stale + 1
    _, late = join(hub, "late")
    await next_turn()
    assert late.flushed == []
    assert hub.roster.by_uid("QUIET-1") is quiet  # stale SA, but the client stays connected


async def test_departure_names_the_client_unless_its_uid_reconnected_meanwhile() -> None:
    event = sa("DUP-1", "DUP")
    hub = make_hub(Clock(event.time))
    old, _ = join(hub, "10.0.0.7:40001")
    hub.submit(old, event)  # type: ignore[arg-type]
    new, _ = join(hub, "10.0.0.7:40002")  # ATAK reconnected before the old socket timed out
    hub.submit(new, event)  # type: ignore[arg-type]
    _, watcher = join(hub, "watcher")
    hub.detach(old)  # type: ignore[arg-type]
    await next_turn()
    assert [i.event.type for i in watcher.flushed] == ["a-f-G-U-C"]  # replay only, no delete

    hub.detach(new)  # type: ignore[arg-type]
    await next_turn()
    deletes = [i.event for i in watcher.flushed if i.event.type == "t-x-d-d"]
    assert len(deletes) == 1
    assert 'uid="DUP-1"' in deletes[0].detail.xml


async def test_turn_keeps_order_for_a_session_named_by_a_directed_event() -> None:
    hub = make_hub(Clock(0))
    alpha, _ = join(hub, "alpha")
    bravo, bravo_sink = join(hub, "bravo")
    _, charlie_sink = join(hub, "charlie")
    hub.submit(bravo, sa("BRAVO-1", "BRAVO"))  # type: ignore[arg-type]
    hub.submit(alpha, sa("A-1", "ALPHA"))  # type: ignore[arg-type]
    await next_turn()
    directed = sa("D-1", "ALPHA", extra='<marti><dest callsign="BRAVO"/></marti>')
    hub.submit(alpha, sa("A-2", "ALPHA"))  # type: ignore[arg-type]
    hub.submit(alpha, directed)  # type: ignore[arg-type]
    hub.submit(alpha, sa("A-3", "ALPHA"))  # type: ignore[arg-type]
    await next_turn()
    assert [i.event.uid for i in bravo_sink.flushed] == ["A-1", "A-2", "D-1", "A-3"]
    assert [i.event.uid for i in charlie_sink.flushed] == ["BRAVO-1", "A-1", "A-2", "A-3"]
    assert "marti" not in bravo_sink.flushed[2].event.detail.xml


async def test_a_session_joining_mid_turn_gets_the_latest_sa_once() -> None:
    event = sa("EARLY-1", "EARLY")
    hub = make_hub(Clock(event.time))
    early, _ = join(hub, "early")
    hub.submit(early, event)  # type: ignore[arg-type]
    _, late = join(hub, "late")  # same turn: the SA is known and still being delivered
    await next_turn()
    assert [i.event.uid for i in late.flushed] == ["EARLY-1"]


async def test_newcomers_share_the_encoding_of_the_latest_sa() -> None:
    event = sa("SA-1", "SHARED")
    hub = make_hub(Clock(event.time))
    sender, _ = join(hub, "sender")
    _, early = join(hub, "early", WireFormat.PROTOBUF)
    hub.submit(sender, event)  # type: ignore[arg-type]
    _, late1 = join(hub, "late1", WireFormat.PROTOBUF)
    await next_turn()
    _, late2 = join(hub, "late2", WireFormat.PROTOBUF)
    await next_turn()
    items = [early.flushed[0], late1.flushed[0], late2.flushed[0]]
    assert all(item is items[0] for item in items)  # one Outgoing: one protobuf encoding


def delete_of(uid: str, now_ms: int) -> CotEvent:
    link = detail_from_xml(f'<link uid="{uid}" type="a-f-G-U-C" relation="p-p"/>')
    return notice(f"{uid}.departed", DELETE_TYPE, now_ms, DELETE_STALE_MS, link)


async def test_a_partners_departed_contact_is_not_replayed_to_newcomers() -> None:
    event = sa("PARTNER-1", "[ORG-A] alice")
    hub = make_hub(Clock(event.time))
    link = hub.new_party(ANONYMOUS, "partner ORG-A (incoming)", relays=True)
    hub.attach(link, RecordingSink())
    local, _ = join(hub, "local")
    hub.submit(link, event)
    # A local client's delete names objects, not partner contacts: nothing is forgotten.
    hub.submit(local, delete_of("PARTNER-1", event.time))  # type: ignore[arg-type]
    _, early = join(hub, "early")
    await next_turn()
    assert [i.event.uid for i in early.flushed] == ["PARTNER-1"]

    hub.submit(link, delete_of("PARTNER-1", event.time))
    _, late = join(hub, "late")
    await next_turn()
    assert late.flushed == []  # not shown the departed contact
    assert hub.latest("PARTNER-1") is None
    # The delete itself is routed as before (the hub only stops replaying the SA).
    assert [i.event.type for i in early.flushed] == ["a-f-G-U-C", DELETE_TYPE]


async def test_a_regrouped_party_and_its_new_group_see_each_others_latest_sa() -> None:
    alice_sa, bob_sa, carol_sa = sa("A-1", "ALICE"), sa("B-1", "BOB"), sa("C-1", "CAROL")
    hub = make_hub(Clock(alice_sa.time))
    blue, red = Membership.both(["Blue"]), Membership.both(["Red"])

    def party(name: str, membership: Membership) -> tuple[Any, RecordingSink]:
        p = hub.new_party(membership, name)
        sink = RecordingSink()
        hub.attach(p, sink)
        return p, sink

    alice, alice_sink = party("alice", blue)
    bob, bob_sink = party("bob", red)
    carol, carol_sink = party("carol", red)
    hub.submit(alice, alice_sa)
    hub.submit(bob, bob_sa)
    hub.submit(carol, carol_sa)
    await next_turn()
    assert [i.event.uid for i in alice_sink.flushed] == []
    assert [i.event.uid for i in bob_sink.flushed] == ["C-1"]

    hub.regroup(bob, blue)  # bob moves to Blue
    await next_turn()
    got = [i.event.type if i.event.type.startswith("t-") else i.event.uid for i in bob_sink.flushed]
    assert got == ["C-1", "t-x-g-c", "A-1"]  # told, then synced like a newcomer
    assert [i.event.uid for i in alice_sink.flushed] == ["B-1"]  # Blue now hears bob
    assert [i.event.uid for i in carol_sink.flushed] == ["B-1"]  # nothing new for Red
