"""Mission visibility as a property, like the hub's isolation oracle (tests/server/
test_isolation.py): random parties in random IN/OUT groups (some in none), random missions in
random groups, random subscriptions and content edits, driven through the real
:class:`MissionBook` and the real :class:`Hub` with recording sinks.

The oracle is written from the rule, not the code: a party may list, read or hear of a mission
iff one of its OUT groups is one of the mission's; a ``t-x-m-n`` reaches exactly those
parties; a ``t-x-m-c`` reaches exactly the live subscribers (who could only subscribe to what
they may see). A party in no group sees nothing (OpenTAKServer shows it every mission)."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass

import pytest
import uvloop
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accord.api.missions_book import MissionBook
from accord.domain.contacts import Party
from accord.domain.groups import Membership
from accord.domain.metrics import Counters
from accord.identity.token import TokenService
from accord.missions import model
from accord.missions.model import Item, MissionError
from accord.server.hub import Hub
from tests.cot.samples import make_event
from tests.missions.fakes import MemoryMissions
from tests.server.fakes import Clock, RecordingSink

BASE_MS = 1_700_000_000_000
GROUPS = ("A", "B", "C", "__ANON__")
KEY = Ed25519PrivateKey.generate()
groups = st.frozensets(st.sampled_from(GROUPS))


@dataclass(frozen=True)
class Scenario:
    parties: list[Membership]
    missions: list[tuple[frozenset[str], int]]  # groups, creator index
    subscribe: list[tuple[int, int]]  # party, mission
    edits: list[tuple[int, int]]  # party, mission


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    n = draw(st.integers(2, 6))
    parties = [Membership(draw(groups), draw(groups)) for _ in range(n)]
    missions = draw(
        st.lists(st.tuples(groups.filter(bool), st.integers(0, n - 1)), min_size=1, max_size=4)
    )
    pairs = st.tuples(st.integers(0, n - 1), st.integers(0, len(missions) - 1))
    return Scenario(
        parties, missions, draw(st.lists(pairs, max_size=8)), draw(st.lists(pairs, max_size=8))
    )


def visible(mission: model.Mission | None, m: Membership) -> bool:
    return mission is not None and not m.outbound.isdisjoint(mission.groups)


async def play(s: Scenario) -> None:
    clock = Clock(BASE_MS)
    uids = (f"notice-{i}" for i in itertools.count())
    hub = Hub(Counters(), wall_ms=clock, new_uid=lambda: next(uids))
    book = MissionBook(MemoryMissions(), TokenService(KEY, "test"), hub, clock)
    parties: list[Party] = []
    sinks: list[RecordingSink] = []
    for i, m in enumerate(s.parties):
        party = hub.new_party(m, f"p{i}")
        sink = RecordingSink()
        hub.attach(party, sink)
        hub.submit(
            party,
            make_event(
                f"ANDROID-{i}",
                detail=f'<contact callsign="P{i}" endpoint="*:-1:stcp"/>',
                now_ms=BASE_MS,
            ),
        )
        parties.append(party)
        sinks.append(sink)
    await asyncio.sleep(0)
    for sink in sinks:
        sink.flushed.clear()

    created: list[model.Mission | None] = []
    subscribed: dict[int, set[int]] = {}
    for index, (mgroups, creator) in enumerate(s.missions):
        if not mgroups <= s.parties[creator].inbound:
            created.append(None)  # the API refuses it (403): not the creator's groups
            continue
        mission, change = model.create(
            f"m{index}", f"guid-{index}", mgroups, f"ANDROID-{creator}", BASE_MS
        )
        assert await book.create(mission, change)
        created.append(mission)
        subscribed.setdefault(index, set()).add(creator)  # the creator is its owner
    for p, mi in s.subscribe:
        target = created[mi]
        if target is None:
            continue
        if not visible(target, s.parties[p]):
            with pytest.raises(MissionError, match="no mission"):
                await book.find(s.parties[p], guid=target.guid)
            continue
        mission = await book.find(s.parties[p], guid=target.guid)
        await book.update(model.subscribe(mission, f"ANDROID-{p}", "", BASE_MS))
        subscribed.setdefault(mi, set()).add(p)
    for p, mi in s.edits:
        target = created[mi]
        if target is None or not visible(target, s.parties[p]):
            continue
        mission = await book.find(s.parties[p], guid=target.guid)
        item = Item(f"item-{p}-{mi}-{len(mission.items)}", f"ANDROID-{p}", BASE_MS)
        edited, changes = model.add_items(mission, [item], BASE_MS)
        await book.update(edited, changes)
    await asyncio.sleep(0)

    for p, m in enumerate(s.parties):
        may_see = {
            f"m{i}" for i, c in enumerate(created) if c and not m.outbound.isdisjoint(c.groups)
        }
        assert {x.name for x in await book.visible(m)} == may_see
        if not (m.inbound | m.outbound):
            assert may_see == set()
        heard = [i.event for i in sinks[p].flushed]
        names = {
            e.detail.xml.split('name="')[1].split('"')[0] for e in heard if e.type == "t-x-m-n"
        }
        assert names == may_see, (p, m)
        told = [e for e in heard if e.type == "t-x-m-c"]
        changed = {e.detail.xml.split('name="')[1].split('"')[0] for e in told}
        edited = {f"m{mi}" for e_p, mi in s.edits if visible(created[mi], s.parties[e_p])}
        mine = {f"m{mi}" for mi, subs in subscribed.items() if p in subs}
        assert changed == mine & may_see & edited, (p, m)


@pytest.mark.timeout(120)
@settings(
    max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(scenarios())
def test_no_one_lists_reads_or_hears_of_a_mission_outside_its_groups(s: Scenario) -> None:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(play(s))


def test_a_party_in_no_group_sees_no_mission() -> None:
    async def run() -> None:
        book = MissionBook(MemoryMissions(), TokenService(KEY, "t"), None, Clock(BASE_MS))
        mission, change = model.create("m", "g", frozenset({"__ANON__"}), "A", BASE_MS)
        await book.create(mission, change)
        nobody = Membership(frozenset(), frozenset())
        assert await book.visible(nobody) == []
        with pytest.raises(MissionError):
            await book.find(nobody, name="m")

    asyncio.run(run())
