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

Bad tracks (NaN, out of range, absurd speeds, no altitude) are dropped and counted by reason;
nothing here raises into the hub.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from accord.cot.model import CotEvent
from accord.domain.contacts import Party
from accord.domain.groups import Membership
from accord.domain.routing import deleted
from accord.domain.views import Sample
from accord.geo.config import LEVEL_NAMES
from accord.geo.cot import (
    DELETE_TYPE,
    Pair,
    alert_events,
    callsign_of,
    conflict_key,
    is_airborne,
    raised_events,
    to_track,
)
from accord.geo.encounter import Encounter
from accord.geo.monitor import AlertChange, SeparationMonitor

log = logging.getLogger("accord.coordination")

REFRESH_S = 10.0  # active alerts are re-sent this often (ATAK re-sends its own; stale is 30 s)
MAX_PENDING = 100_000  # tracks queued within one loop turn; beyond, dropped and counted


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
        self._pending: list[tuple[Party, CotEvent]] = []
        self._armed = False
        self._seen: dict[str, _Seen] = {}
        self._parties: dict[frozenset[str], Party] = {}
        self.active: dict[tuple[str, str], _Active] = {}
        self.raised: Counter[str] = Counter()  # level name -> alerts raised (or raised to)
        self.cleared = 0
        self.dropped: Counter[str] = Counter()  # events that made no track, by reason
        self.latency_s: list[float] = []  # routed position -> alert submitted (last 1000)

    def own_party(self, party: Party) -> None:
        """Tracks ``party`` sends are our own (a drone feed)."""
        self._own_parties.add(party.key)

    # -- the hub tap ---------------------------------------------------------------------------
    def tap(self, sender: Party, event: CotEvent) -> None:
        if is_airborne(event.type):
            if len(self._pending) >= MAX_PENDING:
                self.dropped["queue full"] += 1
                return
            self._pending.append((sender, event))
            if not self._armed:
                self._armed = True
                asyncio.get_running_loop().call_soon(self.process)
        elif event.type == DELETE_TYPE:
            target = deleted(event)
            if target is not None and target[0] in self.monitor.tracks:
                self._emit(self.monitor.forget(target[0], self._wall_ms() / 1000))

    def process(self) -> None:
        """Feed the queued tracks to the monitor and submit the alert changes they cause."""
        self._armed = False
        pending, self._pending = self._pending, []
        for sender, event in pending:
            started = self._wall_ms() / 1000
            own = sender.key in self._own_parties
            track = to_track(event, own=own)
            if isinstance(track, str):
                self.dropped[track] += 1
                continue
            partner = partner_name(sender)
            self._seen[event.uid] = _Seen(
                callsign_of(event), event.type, sender.membership.inbound, partner
            )
            if partner:
                self.monitor.set_partner(event.uid, partner)
            changes = self.monitor.update(track, started)  # bad tracks: counted by the monitor
            if changes:
                self._emit(changes)
                self._latency(self._wall_ms() / 1000 - started)

    def tick(self) -> None:
        """Once a second: the monitor's tick, and active alerts re-sent before they go stale."""
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
        ]  # fmt: skip
        raised = "Separation alerts raised to a level"
        for level in LEVEL_NAMES:
            value = float(self.raised[level])
            labels = (("level", level),)
            out.append(Sample("separation_alerts_raised_total", "counter", raised, value, labels))
        dropped = self.dropped + self.monitor.counters.dropped
        why = "Tracks not compared (bad input), by reason"
        for reason, count in sorted(dropped.items()):
            labels = (("reason", reason),)
            out.append(Sample("separation_tracks_dropped_total", "counter", why, count, labels))
        return out
