"""Mass joins and full sockets (issue 13 §1), at unit speed: the real hub, sinks that block.

A session behind on SAs (a newcomer of a mass join, or one whose socket is full) gets the latest
SA of each uid it may hear from the SA log, a slice per loop turn: pending work is bounded by the
number of uids, not events, and the loop keeps serving other callbacks meanwhile.
"""

from __future__ import annotations

import asyncio
import itertools

from accord.cot.outgoing import Outgoing
from accord.domain.catchup import SaLog
from accord.domain.contacts import Party
from accord.domain.groups import ANONYMOUS, Membership
from accord.domain.metrics import Counters
from accord.server.hub import CATCHUP_INLINE, Hub
from tests.e2e.clients import marker, sa
from tests.server.fakes import Clock, RecordingSink

DEADLINE_TURNS = 10_000


class BlockingSink(RecordingSink):
    """A socket that can fill up: while ``blocked`` the hub must not hand it SAs."""

    def __init__(self) -> None:
        super().__init__()
        self.blocked = False
        self.sas_while_blocked = 0

    def send(self, items: list[Outgoing], data: bytes | None = None) -> int:
        if self.blocked:
            self.sas_while_blocked += sum(1 for i in items if i.event.type == "a-f-G-U-C")
        return super().send(items, data)


def make_hub(clock: Clock) -> tuple[Hub, Counters]:
    uids = (f"uid-{n}" for n in itertools.count())
    counters = Counters()
    return Hub(counters, wall_ms=clock, new_uid=lambda: next(uids)), counters


def heard(sink: RecordingSink) -> list[str]:
    return [i.event.uid for i in sink.flushed if i.event.type == "a-f-G-U-C"]


async def turns_until(condition: object, ticks: list[int]) -> int:
    """Loop turns until ``condition()``; ``ticks`` counts another callback's turns meanwhile."""
    assert callable(condition)
    loop = asyncio.get_running_loop()

    def tick() -> None:
        ticks.append(1)
        if not condition():
            loop.call_soon(tick)

    loop.call_soon(tick)
    for n in range(DEADLINE_TURNS):
        if condition():
            return n
        await asyncio.sleep(0)
    raise AssertionError("not done within the deadline")


def test_sa_log_reads_only_the_latest_of_each_uid_from_a_cursor() -> None:
    log, everyone = SaLog(), Membership.both(["A"])
    items = {}
    for n in range(5):
        for uid in ("a", "b", "c"):
            items[uid] = Outgoing(sa(uid, f"{uid}{n}"))
            log.put(uid, items[uid], everyone)
    out, cursor, _ = log.since(0, lambda e: True, items=100, scan=100)
    assert out == [items["a"], items["b"], items["c"]]
    assert cursor == log.head
    middle = log.get("b")
    assert middle is not None
    later, _, _ = log.since(middle.seq - 1, lambda e: True, items=100, scan=100)
    assert later == [items["b"], items["c"]]
    first, cursor, _read = log.since(0, lambda e: True, items=1, scan=100)
    assert first == [items["a"]]
    assert cursor < log.head  # not caught up: go on from there
    assert len(log._order) <= 2 * len(log) + 1024  # superseded updates are compacted away


async def test_a_mass_join_delivers_every_sa_once_in_slices_and_keeps_the_loop_turning() -> None:
    n = 2 * CATCHUP_INLINE + 100
    clock = Clock(sa("x", "x").time)
    hub, counters = make_hub(clock)
    parties: list[tuple[Party, RecordingSink]] = []
    for i in range(n):  # all in one loop turn, each announcing itself
        party = hub.new_party(ANONYMOUS, f"10.0.{i // 250}.{i % 250}:1")
        sink = RecordingSink()
        hub.attach(party, sink)
        hub.submit(party, sa(f"ANDROID-{i}", f"C{i}"))
        parties.append((party, sink))
    assert hub.behind > 0  # the later joiners catch up from the log, not from queued frames
    ticks: list[int] = []

    def everyone_has_everyone() -> bool:
        return hub.behind == 0 and all(len(set(heard(s))) == n - 1 for _, s in parties)

    turns = await turns_until(everyone_has_everyone, ticks)
    assert turns > 1  # time-sliced: not one long turn
    assert len(ticks) >= turns  # and other callbacks ran between the slices
    for i, (_, sink) in enumerate(parties):
        uids = heard(sink)
        assert f"ANDROID-{i}" not in uids  # no echo
        assert len(uids) == len(set(uids))  # each SA once
    assert counters.queue_dropped == 0


async def test_a_blocked_session_gets_only_the_latest_sa_of_each_uid_when_it_drains() -> None:
    clock = Clock(sa("x", "x").time)
    hub, counters = make_hub(clock)
    senders = [hub.new_party(ANONYMOUS, f"10.0.0.{i}:1") for i in range(20)]
    for party in senders:
        hub.attach(party, RecordingSink())
    slow_party = hub.new_party(ANONYMOUS, "10.0.1.1:1")
    slow = BlockingSink()
    hub.attach(slow_party, slow)
    await asyncio.sleep(0)
    slow.blocked = True
    for rnd in range(50):  # 1,000 SAs while its socket is full, and some markers
        for i, party in enumerate(senders):
            hub.submit(party, sa(f"ANDROID-{i}", f"C{i}", lat=rnd / 100))
        hub.submit(senders[0], marker(f"m-{rnd}"))
        await asyncio.sleep(0)
    assert slow.sas_while_blocked == 0  # none queued: pending work is one cursor
    assert [i.event.uid for i in slow.flushed] == [f"m-{r}" for r in range(50)]
    slow.blocked = False
    hub.writable(slow_party)
    await turns_until(lambda: hub.behind == 0, [])
    latest = [i.event for i in slow.flushed if i.event.type == "a-f-G-U-C"]
    assert sorted(e.uid for e in latest) == sorted(f"ANDROID-{i}" for i in range(20))
    assert {e.point.lat for e in latest} == {0.49}  # the latest of each, nothing older
    assert counters.queue_coalesced == 20 * 50
    # Live again: the next SA is written at once.
    hub.submit(senders[3], sa("ANDROID-3", "C3", lat=9.0))
    await asyncio.sleep(0)
    assert slow.flushed[-1].event.point.lat == 9.0


class CountingLog(SaLog):
    """The hub's real SA log, counting its prunes."""

    def __init__(self) -> None:
        super().__init__()
        self.prunes = 0

    def prune(self, keep: object) -> None:
        self.prunes += 1
        super().prune(keep)  # type: ignore[arg-type]


async def test_joins_do_not_rescan_sas_the_roster_still_holds() -> None:
    # A partner link (or UDP senders) brings many contacts' SAs the roster keeps: a prune
    # frees none of them, so pruning on every join would rescan thousands per join.
    clock = Clock(sa("x", "x").time)
    hub, _ = make_hub(clock)
    log = hub._log = CountingLog()
    link = hub.new_party(ANONYMOUS, "partner", receives=False, relays=True)
    hub.attach(link, RecordingSink())
    for i in range(3000):
        hub.submit(link, sa(f"PARTNER-{i}", f"P{i}"))
    for i in range(200):
        hub.attach(hub.new_party(ANONYMOUS, f"10.1.0.{i}:1"), RecordingSink())
    assert len(log) == 3000  # all still held
    assert log.prunes <= 2
