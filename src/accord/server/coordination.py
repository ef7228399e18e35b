"""Separation alerts in the running server: a hub tap around the pure :mod:`accord.geo` core.

Every event the hub routes passes :meth:`Coordination.tap` (``Hub.taps``). Airborne ones
(``a-*-A-*``: our MAVLink drones, partners' released drones, any client's aircraft) are queued
and fed to the :class:`~accord.geo.monitor.SeparationMonitor` at the end of the loop turn, as
tracks (:func:`accord.geo.cot.to_track`); a ``t-x-d-d`` of a track forgets it. Own drones are
those a party registered with :meth:`own_party` sent (the drone feeds). The alert changes the
monitor returns become events (:func:`accord.geo.cot.alert_events`) submitted into the hub by
a party whose IN groups are the own drone's: they reach whoever can see that drone, and, like
any event, partners whose policy releases ``b-a-*`` (then they are ledger entries) and the
history. A ticker (:meth:`tick`, about once a second) lets alerts of silent tracks clear and
re-sends active alerts before their stale time.

In a cluster (issue 17) one node computes the organisation's alerts: the holder of the
``alerts`` lease (``accord.app.coordination``). It is fed every event of every group by the
cluster's alerts feed (:meth:`Coordination.take`, with the sender's :class:`Source` from the bus
headers) and its own sessions' events by the tap; the others stand by (:meth:`standby`: the tap
ignores everything) and deliver the holder's alerts like any event from the bus. Alert uids
depend only on the organisation's name and the pair, so a node that takes over raises an
ongoing conflict under the uid clients already show.

Bad tracks (NaN, out of range, absurd speeds, no altitude) are dropped and counted by reason;
nothing here raises into the hub.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from accord.cot.made import DELETE_TYPE
from accord.cot.model import CotEvent
from accord.domain.contacts import Party
from accord.domain.groups import Membership
from accord.domain.routing import deleted
from accord.domain.views import Sample
from accord.geo.config import LEVEL_NAMES
from accord.geo.cot import (
    CANCEL_TYPE,
    Pair,
    alert_events,
    breach_event,
    callsign_of,
    conflict_key,
    conformance_event,
    intent_conflict_event,
    is_airborne,
    raised_events,
    to_track,
)
from accord.geo.encounter import Encounter
from accord.geo.fence import FENCE_TYPES, FenceError, FenceMonitor, from_event, from_geojson
from accord.geo.intent import ROUTE_TYPE, Intent, intersect, off_corridor_m, waypoints_of
from accord.geo.monitor import AlertChange, SeparationMonitor

log = logging.getLogger("accord.coordination")

REFRESH_S = 10.0  # active alerts are re-sent this often (ATAK re-sends its own; stale is 30 s)
MAX_PENDING = 100_000  # tracks queued within one loop turn; beyond, dropped and counted
MAX_FENCES = 10_000  # drawn and released fences held; beyond, new ones dropped and counted
MAX_INTENTS = 10_000  # missions held; beyond, new ones dropped and counted


class Exchange(Protocol):
    """What the tap needs of the hub."""

    def new_party(
        self, membership: Membership, label: str, *, receives: bool = True, relays: bool = False
    ) -> Party: ...

    def submit(self, sender: Party, event: CotEvent) -> bool: ...


def partner_name(party: Party) -> str:
    """The partner a federation link party relays for (its label: ``partner NAME (dir)``)."""
    if not party.relays:
        return ""
    return party.label.removeprefix("partner ").rsplit(" (", 1)[0]


OWN = "own"  # a Source label: the sender is one of our drone feeds
PARTNER = "partner "  # a Source label's prefix: the sender relays a partner's events


@dataclass(frozen=True, slots=True)
class Source:
    """What the monitor must know of who sent an event: the groups it sends into, whether its
    aircraft are our own drones, the partner it relays for ("" for none)."""

    groups: frozenset[str]
    own: bool = False
    partner: str = ""

    @property
    def label(self) -> str:
        """How the cluster bus carries it (``Route.source``)."""
        if self.own:
            return OWN
        return f"{PARTNER}{self.partner}" if self.partner else ""

    @classmethod
    def of_label(cls, groups: frozenset[str], label: str) -> Source:
        if label == OWN:
            return cls(groups, own=True)
        partner = label.removeprefix(PARTNER) if label.startswith(PARTNER) else ""
        return cls(groups, partner=partner)


@dataclass(slots=True)
class _Seen:
    """What an alert says of a track beyond its position."""

    callsign: str
    kind: str
    groups: frozenset[str]  # IN groups of the party that sent it
    partner: str


@dataclass(slots=True)
class _Active:
    level: int
    pair: Pair
    encounter: Encounter
    groups: frozenset[str]
    sent_s: float


class Coordination:
    """The monitor's adapter; see the module docstring."""

    def __init__(
        self,
        hub: Exchange,
        monitor: SeparationMonitor,
        *,
        origin: str,
        wall_ms: Callable[[], int],
        released_as: Callable[[str, str], str | None] | None = None,
    ) -> None:
        """``origin``: this server's name (in alert uids); ``released_as(partner, uid)``: the
        uid an own track was released to ``partner`` as (its pseudonym), for the pair key."""
        self.hub = hub
        self.monitor = monitor
        self.origin = origin
        self._wall_ms = wall_ms
        self._released_as = released_as
        self._own_parties: set[int] = set()
        self._pending: list[tuple[Source, CotEvent]] = []
        self._armed = False
        self._seen: dict[str, _Seen] = {}
        self._parties: dict[frozenset[str], Party] = {}
        self.active: dict[tuple[str, str], _Active] = {}
        self.raised: Counter[str] = Counter()  # level name -> alerts raised (or raised to)
        self.cleared = 0
        self.dropped: Counter[str] = Counter()  # events that made no track, by reason
        self.latency_s: list[float] = []  # routed position -> alert submitted (last 1000)
        self.fences = FenceMonitor()
        self._fence_by: dict[str, tuple[frozenset[str], str]] = {}  # uid -> (groups, partner)
        self.breaches = 0
        self.fence_files: tuple[str, ...] = ()
        # Flight intents by route uid: the intent, (groups, partner, own) of who sent it.
        self.intents: dict[str, tuple[Intent, frozenset[str], str, bool]] = {}
        self.intent_alerts: set[tuple[str, str]] = set()  # pairs of route uids alerted
        self.intent_conflicts = 0
        self.nonconforming: set[str] = set()  # own tracks outside their intent's corridor
        # In a cluster: whether this node computes the alerts (the lease holder), which
        # senders' events the tap leaves to the alerts feed (the bus's relay parties), and
        # who is told of each alert cancelled (its acknowledgement goes with it).
        self.computing = True
        self.skip: Callable[[Party], bool] | None = None
        self.cancelled: Callable[[str], None] | None = None

    def own_party(self, party: Party) -> None:
        """Tracks ``party`` sends are our own (a drone feed)."""
        self._own_parties.add(party.key)

    def source(self, sender: Party) -> Source:
        return Source(
            sender.membership.inbound, sender.key in self._own_parties, partner_name(sender)
        )

    def label(self, sender: Party) -> str:
        """``Source.label`` of a local sender, for the cluster bus's headers."""
        return self.source(sender).label

    # -- standing by (a cluster node without the alerts lease) ---------------------------------
    def standby(self) -> None:
        """Stop computing: forget the tracks and the alerts shown (the node that takes over
        raises them again under the same uids); fences and intents stay."""
        self.computing = False
        self.monitor = SeparationMonitor(self.monitor.config, self.monitor.partner_configs)
        self._pending.clear()
        self._seen.clear()
        self.active.clear()
        self.nonconforming.clear()
        for fence in list(self.fences.fences.values()):
            self.fences.put(fence)  # who is inside is judged again

    def resume(self) -> None:
        """Compute again (this node took the alerts lease)."""
        self.computing = True

    # -- the hub tap ---------------------------------------------------------------------------
    def tap(self, sender: Party, event: CotEvent) -> None:
        if not self.computing or (self.skip is not None and self.skip(sender)):
            return
        self.take(self.source(sender), event)

    def wants(self, kind: str) -> bool:
        """Whether :meth:`take` does anything with an event of CoT type ``kind``."""
        if kind.startswith("a-"):
            return bool(self.fences.fences) or is_airborne(kind)
        return kind in FENCE_TYPES or kind in (ROUTE_TYPE, DELETE_TYPE, CANCEL_TYPE)

    def take(self, source: Source, event: CotEvent) -> None:
        """One routed event and who sent it (the tap's, or the cluster's alerts feed's)."""
        if event.type.startswith("a-") and (self.fences.fences or is_airborne(event.type)):
            if len(self._pending) >= MAX_PENDING:
                self.dropped["queue full"] += 1
                return
            self._pending.append((source, event))
            if not self._armed:
                self._armed = True
                asyncio.get_running_loop().call_soon(self.process)
        elif event.type in FENCE_TYPES:
            self._fence(source, event)
        elif event.type == ROUTE_TYPE:
            self._intent(source, event)
        elif event.type == CANCEL_TYPE and self.cancelled is not None:
            self.cancelled(event.uid)  # ours, or a partner's released one
        elif event.type == DELETE_TYPE:
            target = deleted(event)
            if target is not None and target[0] in self.monitor.tracks:
                self._emit(self.monitor.forget(target[0], self._wall_ms() / 1000))
            if target is not None:
                if self.intents.pop(target[0], None) is not None:
                    self.intent_alerts = {p for p in self.intent_alerts if target[0] not in p}
                self.fences.forget(target[0])
                if self.fences.remove(target[0]):
                    self._fence_by.pop(target[0], None)

    def _fence(self, source: Source, event: CotEvent) -> None:
        try:
            fence = from_event(event)
        except FenceError as exc:
            self.dropped[f"fence: {exc}"] += 1
            return
        if fence is None:
            return
        if fence.uid not in self.fences.fences and len(self.fences.fences) >= MAX_FENCES:
            self.dropped["fence: too many fences"] += 1
            return
        self.fences.put(fence)
        self._fence_by[fence.uid] = (source.groups, source.partner)
        log.info("geofence %s (%s, %s)", fence.name, fence.uid, fence.trigger)

    def _intent(self, source: Source, event: CotEvent) -> None:
        """A mission (route): its intent, compared with every other party's."""
        try:
            waypoints = waypoints_of(event)
        except FenceError as exc:
            self.dropped[f"intent: {exc}"] += 1
            return
        known = self.intents.get(event.uid)
        if known is not None and known[0].waypoints == waypoints:
            return  # re-sent unchanged: it keeps its start
        if known is None and len(self.intents) >= MAX_INTENTS:
            self.dropped["intent: too many intents"] += 1
            return
        start = event.time / 1000
        intent = Intent(event.uid, callsign_of(event), waypoints, start)
        own, partner = source.own, source.partner
        self.intents[event.uid] = (intent, source.groups, partner, own)
        self.intent_alerts = {p for p in self.intent_alerts if event.uid not in p}
        for uid, (_, _, other_partner, other_own) in list(self.intents.items()):
            if uid == event.uid or not (own or other_own):
                continue
            if partner == other_partner and own == other_own:
                continue  # one party's own missions: its planners' business
            self._compare(event.uid, uid)

    def _compare(self, first: str, second: str) -> None:
        (a, a_groups, a_partner, a_own) = self.intents[first]
        (b, b_groups, b_partner, _) = self.intents[second]
        if not a_own:
            (a, a_groups, a_partner), (b, b_groups, b_partner) = (
                (b, b_groups, b_partner), (a, a_groups, a_partner),
            )  # fmt: skip
        meeting = intersect(a, b)
        key = (a.uid, b.uid)
        if meeting is None or key in self.intent_alerts:
            return
        self.intent_alerts.add(key)
        self.intent_conflicts += 1
        public = a.uid
        if b_partner and self._released_as is not None:
            public = self._released_as(b_partner, a.uid) or a.uid
        pair = Pair(conflict_key(public, b.uid), self.origin, ROUTE_TYPE, a.name, b.name, b_partner)
        alert = intent_conflict_event(a, b, meeting, pair, self._wall_ms())
        self.hub.submit(self._party(a_groups), alert)
        log.info("intents %s and %s meet at %.5f,%.5f", a.uid, b.uid, meeting.lat, meeting.lon)

    def _conformance(self, source: Source, event: CotEvent) -> None:
        entry = self.intents.get(f"{event.uid}.mission")
        if entry is None:
            return
        intent = entry[0]
        off = off_corridor_m(intent, event.point.lat, event.point.lon)
        flagged = event.uid in self.nonconforming
        if (off > 0) == flagged:
            return
        if off > 0:
            self.nonconforming.add(event.uid)
        else:
            self.nonconforming.discard(event.uid)
        alert = conformance_event(
            event.uid, event.type, callsign_of(event), intent, off if off > 0 else None,
            event.point.lat, event.point.lon, self._wall_ms(),
        )  # fmt: skip
        self.hub.submit(self._party(source.groups), alert)

    def load_fence_files(self, paths: Iterable[str]) -> tuple[bool, str]:
        """Read the GeoJSON zone files (at start and on SIGHUP); on any error the zones in
        force stay and the message says what to fix."""
        paths = tuple(paths)
        fences = []
        for path in paths:
            try:
                with open(path, "rb") as fh:
                    data = json.load(fh)
                fences.extend(from_geojson(data, path))
            except OSError as exc:
                return False, f"geofence file {path}: {exc.strerror}"
            except (ValueError, FenceError) as exc:
                return False, f"geofence file {path}: {exc}"
        for old in self.fence_files:
            self.fences.replace_file_fences((), f"{old}#")
        self.fence_files = paths
        for fence in fences:
            self.fences.put(fence)
        return True, f"geofence files: {len(fences)} zones from {len(paths)} files"

    def process(self) -> None:
        """Feed the queued tracks to the monitor and submit the alert changes they cause."""
        self._armed = False
        pending, self._pending = self._pending, []
        for source, event in pending:
            started = self._wall_ms() / 1000
            own, partner = source.own, source.partner
            if self.fences.fences:
                self._check_fences(source, event, started)
            if not is_airborne(event.type):
                continue
            if own and self.intents:
                self._conformance(source, event)
            track = to_track(event, own=own)
            if isinstance(track, str):
                self.dropped[track] += 1
                continue
            self._seen[event.uid] = _Seen(callsign_of(event), event.type, source.groups, partner)
            if partner:
                self.monitor.set_partner(event.uid, partner)
            changes = self.monitor.update(track, started)  # bad tracks: counted by the monitor
            if changes:
                self._emit(changes)
                self._latency(self._wall_ms() / 1000 - started)

    def _check_fences(self, source: Source, event: CotEvent, now_s: float) -> None:
        point = event.point
        for breach in self.fences.check(event.uid, point.lat, point.lon, point.hae, now_s):
            groups, fence_partner = self._fence_by.get(breach.fence.uid, (frozenset(), ""))
            alert = breach_event(
                breach, origin=self.origin, track_type=event.type,
                track_callsign=callsign_of(event), track_partner=source.partner,
                fence_partner=fence_partner, now_ms=self._wall_ms(),
            )  # fmt: skip
            self.breaches += 1
            # To whoever can see the track, and the fence's author.
            self.hub.submit(self._party(source.groups | groups), alert)
            log.info("geofence %s: %s %s", breach.fence.name, event.uid, breach.kind)

    def tick(self) -> None:
        """Once a second: the monitor's tick, and active alerts re-sent before they go stale."""
        if not self.computing:
            return
        now_ms = self._wall_ms()
        now_s = now_ms / 1000
        self._emit(self.monitor.tick(now_s))
        for active in self.active.values():
            if now_s - active.sent_s >= REFRESH_S:
                active.sent_s = now_s
                for event in raised_events(active.level, active.encounter, active.pair, now_ms):
                    self.hub.submit(self._party(active.groups), event)
        for uid in [u for u in self._seen if u not in self.monitor.tracks]:
            del self._seen[uid]

    async def run(self, interval_s: float = 1.0) -> None:
        while True:
            await asyncio.sleep(interval_s)
            self.tick()

    # -- alerts --------------------------------------------------------------------------------
    def _pair(self, encounter: Encounter) -> tuple[Pair, frozenset[str]]:
        own, other = encounter.ownship, encounter.intruder
        seen_own = self._seen.get(own) or _Seen(own, "a-f-A", frozenset(), "")
        seen_other = self._seen.get(other) or _Seen(other, "a-u-A", frozenset(), "")
        partner = seen_other.partner or seen_own.partner
        public_own = own
        if partner and self._released_as is not None and not seen_own.partner:
            public_own = self._released_as(partner, own) or own
        pair = Pair(
            key=conflict_key(public_own, other),
            origin=self.origin,
            own_type=seen_own.kind,
            own_callsign=seen_own.callsign,
            intruder_callsign=seen_other.callsign,
            partner=partner,
        )
        return pair, seen_own.groups

    def _party(self, groups: frozenset[str]) -> Party:
        party = self._parties.get(groups)
        if party is None:
            party = self._parties[groups] = self.hub.new_party(
                Membership(groups, frozenset()), "separation alerts", receives=False
            )
        return party

    def _emit(self, changes: Iterable[AlertChange]) -> None:
        now_ms = self._wall_ms()
        for change in changes:
            pair, groups = self._pair(change.encounter)
            key = change.pair
            if change.level == 0:
                active = self.active.pop(key, None)
                if active is not None:
                    pair, groups = active.pair, active.groups  # cancel what was shown
                self.cleared += 1
            else:
                self.active[key] = _Active(
                    change.level, pair, change.encounter, groups, now_ms / 1000
                )
                if change.level > change.previous:
                    self.raised[LEVEL_NAMES[change.level - 1]] += 1
            party = self._party(groups)
            for event in alert_events(change, pair, now_ms):
                self.hub.submit(party, event)
            log.info(
                "separation %s: %s / %s (%s)",
                LEVEL_NAMES[change.level - 1] if change.level else "clear",
                change.encounter.ownship,
                change.encounter.intruder,
                pair.key,
            )

    def _latency(self, seconds: float) -> None:
        self.latency_s.append(seconds)
        if len(self.latency_s) > 1000:
            del self.latency_s[:500]

    # -- /metrics and status -------------------------------------------------------------------
    def samples(self) -> list[Sample]:
        out = [
            Sample("separation_tracks", "gauge", "Airborne tracks watched for separation",
                   float(len(self.monitor.tracks))),
            Sample("separation_alerts_active", "gauge", "Pairs with a separation alert shown",
                   float(len(self.active))),
            Sample("separation_alerts_cleared_total", "counter",
                   "Separation alerts cleared", float(self.cleared)),
            Sample("flight_intents", "gauge", "Flight intents known (missions)",
                   float(len(self.intents))),
            Sample("flight_intent_conflicts_total", "counter",
                   "Pairs of intents found to meet (alerted)", float(self.intent_conflicts)),
            Sample("tracks_nonconforming", "gauge", "Own drones outside their mission corridor",
                   float(len(self.nonconforming))),
            Sample("geofences", "gauge", "Geofences in force", float(len(self.fences.fences))),
            Sample("geofence_breaches_total", "counter", "Geofence breach alerts raised",
                   float(self.breaches)),
        ]  # fmt: skip
        raised = "Separation alerts raised to a level"
        for level in LEVEL_NAMES:
            value = float(self.raised[level])
            labels = (("level", level),)
            out.append(Sample("separation_alerts_raised_total", "counter", raised, value, labels))
        dropped = self.dropped + self.monitor.counters.dropped + self.fences.dropped
        why = "Tracks not compared (bad input), by reason"
        for reason, count in sorted(dropped.items()):
            labels = (("reason", reason),)
            out.append(Sample("separation_tracks_dropped_total", "counter", why, count, labels))
        return out
