"""Uid ownership (issue 13 §3): the pure rule, then the hub applying it with recording sinks."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from accord.cot.model import CotEvent
from accord.domain.contacts import Party
from accord.domain.groups import ANONYMOUS
from accord.domain.metrics import Counters
from accord.domain.ownership import Speaker, UidOwners
from accord.server.hub import Hub
from tests.e2e.clients import marker, sa
from tests.server.fakes import Clock, RecordingSink

ALICE = Speaker("alice", "10.0.0.1", session=True)
ALICE_PHONE = Speaker("alice", "10.9.9.9", session=True)
BOB = Speaker("bob", "10.0.0.1", session=True)
ANON_A = Speaker("", "10.0.0.5", session=True)
ANON_A_AGAIN = Speaker("", "10.0.0.5", session=True)
ANON_B = Speaker("", "10.0.0.6", session=True)
MESH = Speaker("", "udp", session=False)


def test_a_free_uid_is_anyones() -> None:
    owners = UidOwners()
    for speaker in (ALICE, BOB, ANON_A, MESH):
        assert owners.check("U", speaker) is None


def test_a_users_uid_is_refused_to_everyone_else_while_live_and_after() -> None:
    owners = UidOwners()
    owners.claim("U", 1, ALICE)
    for who in (BOB, ANON_A, MESH):
        conflict = owners.check("U", who)
        assert conflict is not None
        assert (conflict.holder, conflict.speaker) == (ALICE, who)
    assert owners.check("U", ALICE_PHONE) is None  # the same user, another address
    owners.release("U", 1)
    assert owners.check("U", BOB) is not None  # kept for alice after her session left
    assert owners.check("U", MESH) is not None
    assert owners.check("U", ALICE) is None  # and she takes it back at once


def test_an_anonymous_sessions_uid_is_its_own_while_it_lives_then_free() -> None:
    owners = UidOwners()
    owners.claim("U", 1, ANON_A)
    assert owners.check("U", ANON_B) is not None
    assert owners.check("U", BOB) is not None
    assert owners.check("U", ANON_A_AGAIN) is None  # a reconnect from the same address
    assert owners.check("U", MESH) is None  # the same device on mesh is not refused
    owners.release("U", 1)
    assert owners.check("U", ANON_B) is None
    assert len(owners) == 0


def test_a_release_by_a_superseded_session_keeps_the_newer_claim() -> None:
    owners = UidOwners()
    owners.claim("U", 1, ANON_A)
    owners.claim("U", 2, ANON_A_AGAIN)  # reconnected before the old socket died
    owners.release("U", 1)  # the old one goes
    assert owners.check("U", ANON_B) is not None  # still held by session 2


def test_gone_users_uids_are_bounded_oldest_first() -> None:
    owners = UidOwners(limit=3)
    for n in range(5):
        owners.claim(f"U{n}", n + 1, ALICE)
        owners.release(f"U{n}", n + 1)
    assert len(owners) == 3
    assert owners.holder("U0") is None
    assert owners.holder("U4") == ALICE


# -- the hub -----------------------------------------------------------------------------------
def make_hub(clock: Clock) -> tuple[Hub, Counters]:
    uids = (f"uid-{n}" for n in itertools.count())
    counters = Counters()
    return Hub(counters, wall_ms=clock, new_uid=lambda: next(uids)), counters


def session(hub: Hub, label: str, user: str = "") -> tuple[Party, RecordingSink]:
    party = hub.new_party(ANONYMOUS, label)
    party.principal = user
    sink = RecordingSink()
    hub.attach(party, sink)
    return party, sink


def callsigns(sink: RecordingSink) -> list[str]:
    out = []
    for item in sink.flushed:
        contact = item.event.detail.contact
        out.append(contact.callsign if contact is not None else item.event.type)
    return out


def at(event: CotEvent, lat: float) -> CotEvent:
    return sa(event.uid, "X", lat=lat)


@pytest.mark.parametrize(("victim_user", "thief_user"), [("", ""), ("alice", "bob"), ("", "bob")])
async def test_an_sa_under_anothers_own_uid_is_dropped_counted_and_never_latest(
    victim_user: str, thief_user: str, caplog: pytest.LogCaptureFixture
) -> None:
    victim_sa = sa("ANDROID-V", "VICTIM")
    hub, counters = make_hub(Clock(victim_sa.time))
    victim, victim_sink = session(hub, "10.0.0.1:4000", victim_user)
    thief, _ = session(hub, "10.0.0.2:4000", thief_user)
    _, watcher = session(hub, "10.0.0.3:4000")
    hub.submit(victim, victim_sa)
    for lat in (10.0, 11.0):
        hub.submit(thief, sa("ANDROID-V", "THIEF", lat=lat))
    await asyncio.sleep(0)
    assert callsigns(watcher) == ["VICTIM"]
    assert victim_sink.flushed == []  # nothing echoed either
    assert counters.uid_conflict == 2
    assert hub.latest("ANDROID-V") is victim_sa
    assert hub.roster.by_uid("ANDROID-V") is victim
    assert thief.uid == ""  # the thief's first contact did not bind it to the victim's uid
    _, late = session(hub, "10.0.0.4:4000")
    await asyncio.sleep(0)
    assert callsigns(late) == ["VICTIM"]
    logged = [r.getMessage() for r in caplog.records if "uid conflict" in r.getMessage()]
    assert len(logged) == 1  # once, with both identities
    assert "ANDROID-V" in logged[0]
    assert "10.0.0.2" in logged[0]
    assert (victim_user or "10.0.0.1") in logged[0]


async def test_markers_and_a_gateways_tracks_are_not_checked() -> None:
    now = sa("GW-1", "GATEWAY")
    hub, counters = make_hub(Clock(now.time))
    gateway, _ = session(hub, "10.0.0.1:1", "gateway")
    other, _ = session(hub, "10.0.0.2:1", "other")
    _, watcher = session(hub, "10.0.0.3:1")
    hub.submit(gateway, now)  # its own uid
    hub.submit(gateway, sa("ICAO-abc123", "AIRCRAFT"))  # a track of something else
    hub.submit(other, marker("shared-marker"))
    hub.submit(gateway, marker("shared-marker"))  # anyone may move a marker
    hub.submit(other, sa("ICAO-abc123", "AIRCRAFT"))  # nobody's own uid
    await asyncio.sleep(0)
    assert len(watcher.flushed) == 5
    assert counters.uid_conflict == 0


async def test_the_same_user_takes_the_uid_back_at_once_and_others_stay_out() -> None:
    first = sa("ANDROID-A", "ALICE")
    hub, counters = make_hub(Clock(first.time))
    old, _ = session(hub, "10.0.0.1:1", "alice")
    hub.submit(old, first)
    hub.detach(old)
    bob, _ = session(hub, "10.0.0.2:1", "bob")
    hub.submit(bob, sa("ANDROID-A", "BOB-AS-ALICE"))  # she is gone: still hers
    mesh = hub.new_party(ANONYMOUS, "udp", receives=False)
    hub.submit(mesh, sa("ANDROID-A", "MESH-AS-ALICE"))
    assert counters.uid_conflict == 2
    again, _ = session(hub, "10.0.0.9:1", "alice")  # back, from another address
    back = sa("ANDROID-A", "ALICE")
    hub.submit(again, back)
    assert counters.uid_conflict == 2
    assert hub.roster.by_uid("ANDROID-A") is again
    assert hub.latest("ANDROID-A") is back


async def test_mesh_may_repeat_an_anonymous_sessions_sa() -> None:
    own = sa("ANDROID-M", "MESHY")
    hub, counters = make_hub(Clock(own.time))
    phone, _ = session(hub, "10.0.0.1:1")
    hub.submit(phone, own)
    mesh = hub.new_party(ANONYMOUS, "udp", receives=False)
    hub.submit(mesh, sa("ANDROID-M", "MESHY"))
    assert counters.uid_conflict == 0
