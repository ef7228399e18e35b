"""The coordination adapter's cluster hooks: a standby node computes nothing, the sender's
source crosses the bus as a label, and every cancel routed takes its acknowledgement away."""

from __future__ import annotations

import time

from accord.cot.model import CotEvent, Point
from accord.cot.xml import detail_from_xml
from accord.domain.contacts import Party
from accord.domain.groups import Membership
from accord.geo.monitor import SeparationMonitor
from accord.server.coordination import Coordination, Source


class Exchange:
    def __init__(self) -> None:
        self.keys = 0
        self.submitted: list[CotEvent] = []

    def new_party(
        self, membership: Membership, label: str, *, receives: bool = True, relays: bool = False
    ) -> Party:
        self.keys += 1
        return Party(self.keys, membership, label, receives=receives, relays=relays)

    def submit(self, sender: Party, event: CotEvent) -> bool:
        self.submitted.append(event)
        return False


def drone(uid: str, lat: float, now_ms: int, type_: str = "a-f-A-M-H-Q") -> CotEvent:
    return CotEvent(
        uid=uid, type=type_, how="m-g", time=now_ms, start=now_ms, stale=now_ms + 10_000,
        point=Point(lat, 7.45, 600.0, 5.0, 5.0),
        detail=detail_from_xml('<track course="0" speed="0"/>'),
    )  # fmt: skip


def test_sources_cross_as_labels() -> None:
    hub = Exchange()
    coordination = Coordination(hub, SeparationMonitor(), origin="org", wall_ms=lambda: 0)
    feed = hub.new_party(Membership.both(("Blue",)), "drone:sim", receives=False)
    link = hub.new_party(Membership.both(("Blue",)), "partner ORG-B (in)", relays=True)
    client = hub.new_party(Membership.both(("Blue",)), "tcp")
    coordination.own_party(feed)
    blue = frozenset({"Blue"})
    assert [coordination.label(p) for p in (feed, link, client)] == ["own", "partner ORG-B", ""]
    for party in (feed, link, client):
        label = coordination.label(party)
        assert Source.of_label(blue, label) == coordination.source(party)


async def test_a_standby_computes_nothing_and_forgets_its_tracks() -> None:
    hub = Exchange()
    now = int(time.time() * 1000)
    coordination = Coordination(hub, SeparationMonitor(), origin="org", wall_ms=lambda: now)
    cleared: list[str] = []
    coordination.cancelled = cleared.append
    feed = hub.new_party(Membership.both(("Blue",)), "drone:sim", receives=False)
    coordination.own_party(feed)
    relay = hub.new_party(Membership.both(("Blue",)), "cluster (Blue)", relays=True)
    coordination.skip = lambda party: party is relay
    # Two own drones hovering 20 m apart: a loss of separation at once.
    coordination.tap(feed, drone("d1", 46.95, now))
    coordination.tap(relay, drone("d9", 46.95, now))  # the feed brings those: skipped
    coordination.take(Source(frozenset({"Blue"}), own=True), drone("d2", 46.95018, now))
    coordination.process()
    assert set(coordination.monitor.tracks) == {"d1", "d2"}
    assert coordination.active
    raised = len(hub.submitted)
    assert raised
    coordination.standby()
    assert not coordination.active
    assert coordination.monitor.tracks == {}
    coordination.tap(feed, drone("d1", 46.95, now))
    coordination.tick()
    assert coordination._pending == []
    assert len(hub.submitted) == raised  # nothing computed, nothing re-sent
    coordination.resume()
    cancel = drone("sep.org.k", 46.95, now, "b-a-o-can")
    coordination.tap(feed, cancel)
    assert cleared == ["sep.org.k"]


def test_what_the_coordination_wants_decoded() -> None:
    coordination = Coordination(Exchange(), SeparationMonitor(), origin="o", wall_ms=lambda: 0)
    wanted = ["a-f-A-M-H-Q", "u-d-f", "b-m-r", "t-x-d-d", "b-a-o-can"]
    assert all(coordination.wants(k) for k in wanted)
    assert not any(coordination.wants(k) for k in ("a-f-G-U-C", "b-t-f", "b-a-o-c"))
    coordination.load_fence_files(())  # (no files: still no fences)
    assert not coordination.wants("a-f-G-U-C")
