"""The hub: routes each event once and hands it to its recipients' sessions.

Nothing is written while input is being handled. Each routed event becomes an *entry* of the
current loop turn; at the end of the turn every session gets one write with all its entries,
in order. Most traffic is broadcast (SA to everyone who shares a group), so for a session that
neither sent anything this turn nor was named by a directed event, its write is the same bytes
as every other session of its group class and wire format: that buffer is joined once per
turn and shared. A thousand clients each reporting once a second cost a thousand writes per
turn, not a million per-event appends.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from accord.cot.model import CotEvent, WireFormat
from accord.cot.outgoing import Outgoing
from accord.domain import routing
from accord.domain.contacts import Party, Roster
from accord.domain.groups import Membership
from accord.domain.metrics import Counters
from accord.domain.ports import ContactView, MissionDests, Recorder, Sink
from accord.domain.routing import DELETE_TYPE, Kind, deleted, departure, groups_changed, route

log = logging.getLogger("accord.hub")


@dataclass(frozen=True, slots=True)
class _Entry:
    """One routed event of this turn. ``targets`` is None for a broadcast; ``seq`` orders it
    against attachments, so a session that joins later in the turn does not get it (it gets
    the latest SA instead, and would otherwise see the same SA twice)."""

    sender: Party
    item: Outgoing
    targets: frozenset[int] | None
    seq: int


class Hub:
    """Routes events between parties; owns the roster and the per-turn writes."""

    def __init__(
        self,
        counters: Counters,
        *,
        wall_ms: Callable[[], int],
        new_uid: Callable[[], str],
        recorder: Recorder | None = None,
    ) -> None:
        self.counters = counters
        self.recorder = recorder
        self.missions: MissionDests | None = None  # the Mission API, for <dest mission>
        self.roster = Roster()
        self._wall_ms = wall_ms
        self._new_uid = new_uid
        self._sinks: dict[int, tuple[Party, Sink]] = {}
        self._entries: list[_Entry] = []
        self._seq = itertools.count()
        self._attached_at: dict[int, int] = {}  # party key -> seq of its attachment
        self._joined: set[int] = set()  # parties attached during this turn
        self._flush_armed = False
        self._keys = itertools.count(1)
        # The latest SA of each uid as an Outgoing, shared by its broadcast and every replay
        # to a newcomer: a thousand protobuf newcomers encode it once, not a thousand times.
        self._sa_items: dict[str, Outgoing] = {}
        self._empty = asyncio.Event()
        self._empty.set()
        self.signing_in = 0  # plain-TCP connections waiting for their <auth> (sessions keep it)

    @property
    def session_count(self) -> int:
        return len(self._sinks)

    @property
    def connections(self) -> int:
        """Sessions, and connections still signing in: what max_connections bounds."""
        return len(self._sinks) + self.signing_in

    def new_party(
        self, membership: Membership, label: str, *, receives: bool = True, relays: bool = False
    ) -> Party:
        """``relays``: the party forwards many contacts' events (a federation link), so it
        is never bound to one uid and the SAs it brings are kept like UDP senders' are."""
        return Party(next(self._keys), membership, label, receives=receives, relays=relays)

    # -- membership ----------------------------------------------------------------------------
    def attach(self, party: Party, sink: Sink) -> None:
        """A session joined: register it and send it the latest SA of everyone it may hear."""
        self.roster.join(party)
        self._sinks[party.key] = (party, sink)
        self._attached_at[party.key] = next(self._seq)
        self._joined.add(party.key)
        self._empty.clear()
        now_ms = self._wall_ms()
        for event in self.roster.latest_sa(party, now_ms):
            self._add(party, self._sa_item(event), (party,))
        if len(self._sa_items) > 2 * len(self.roster) + 1024:
            self._prune_sa_items()

    def detach(self, party: Party) -> None:
        """A session left: forget it and tell the others with a ``t-x-d-d``."""
        self.roster.leave(party)
        self._sinks.pop(party.key, None)
        self._attached_at.pop(party.key, None)
        if not self._sinks:
            self._empty.set()
        if not party.uid or self.roster.by_uid(party.uid) is not None:
            return  # never identified, or the same uid is connected again elsewhere
        self._sa_items.pop(party.uid, None)
        notice = departure(party, self._new_uid(), self._wall_ms())
        if notice is not None:
            self._add(
                party,
                Outgoing(notice),
                route(notice, party, self.roster, self._wall_ms()).recipients,
            )

    def regroup(self, party: Party, membership: Membership) -> None:
        """A party's groups changed (live): route by the new ones, tell its client, and sync
        the SAs the change makes visible either way.

        What was routed earlier in this turn is written first, under the groups it was sent
        with: a broadcast is judged when it is flushed, so a regroup must not overtake it."""
        self._flush()
        old, now_ms = party.membership, self._wall_ms()
        heard = {event.uid for event in self.roster.latest_sa(party, now_ms)}
        party.membership = membership
        self._add(party, Outgoing(groups_changed(self._new_uid(), now_ms)), (party,))
        # As a newcomer would: the latest SAs its new groups let it hear (and the old did not),
        # and its own latest SA to those who can hear it now (and could not).
        if party.receives:
            for event in self.roster.latest_sa(party, now_ms):
                if event.uid not in heard:
                    self._add(party, self._sa_item(event), (party,))
        sa = party.last_sa
        if sa is not None and sa.stale > now_ms:
            newly = tuple(
                p
                for p in self.roster.receivers()
                if p is not party
                and membership.reaches(p.membership)
                and not old.reaches(p.membership)
            )
            if newly:
                self._add(party, self._sa_item(sa), newly)

    # -- Directory (domain/ports.py), read by the HTTP API --------------------------------------
    def contacts(self) -> list[ContactView]:
        return [
            ContactView(p.uid, p.callsign, p.membership, p.last_sa, user=p.principal)
            for p in self.roster.receivers()
            if p.uid
        ]

    def activate(self, uid: str, principal: str, membership: Membership) -> bool:
        party = self.roster.by_uid(uid)
        if party is None or not principal or party.principal != principal:
            return False
        if membership != party.membership:
            self.regroup(party, membership)
        return True

    def latest(self, uid: str) -> CotEvent | None:
        item = self._sa_items.get(uid)
        if item is not None and self.roster.knows_sa(item.event):
            return item.event
        party = self.roster.by_uid(uid)
        return party.last_sa if party is not None else None

    async def wait_empty(self) -> None:
        """Return once no session is attached."""
        await self._empty.wait()

    def close_all(self, reason: str, *, abort: bool) -> None:
        """Close every session: write what this turn holds first, unless aborting."""
        if not abort:
            self._flush()
        for _, sink in list(self._sinks.values()):
            sink.close(reason, abort=abort)

    # -- traffic -------------------------------------------------------------------------------
    def submit(self, sender: Party, event: CotEvent) -> bool:
        """Route one event from ``sender``; True when the sender's uid or callsign changed."""
        self.counters.events_in += 1
        changed = self.roster.observe(sender, event)
        decision = route(event, sender, self.roster, self._wall_ms())
        if self.missions is not None and decision.kind is Kind.DIRECTED:
            uids = self.missions.subscribers(event, sender.membership)
            decision = routing.with_subscribers(decision, sender, self.roster, uids)
        if decision.kind is Kind.PING:
            self.counters.pings += 1
            if decision.reply is not None and sender.receives:
                self._add(sender, Outgoing(decision.reply), (sender,))
        elif decision.kind is Kind.CONTROL:
            self.counters.control_consumed += 1
        else:
            is_sa = decision.event is event and self.roster.knows_sa(event)
            item = self._sa_item(event) if is_sa else Outgoing(decision.event)
            self._add(sender, item, decision.recipients)
            if self.recorder is not None:
                shared = item if item.event is event else None
                self.recorder.record(event, sender.membership.inbound, shared)
            if event.type == DELETE_TYPE and sender.relays:
                self._departed(sender, event)
        return changed

    def _departed(self, sender: Party, event: CotEvent) -> None:
        """A partner's contact left (its server relayed the ``t-x-d-d``): forget its latest SA,
        or newcomers would be shown a contact that is gone until the SA goes stale."""
        target = deleted(event)
        if target is not None and self.roster.forget(sender, target[0]):
            self._sa_items.pop(target[0], None)

    def restore(self, event: CotEvent, groups: frozenset[str]) -> None:
        """Remember an SA from before a restart for newcomers (see ``Roster.restore``)."""
        self.roster.restore(Membership(groups, frozenset()), event)

    def _sa_item(self, event: CotEvent) -> Outgoing:
        item = self._sa_items.get(event.uid)
        if item is None or item.event is not event:
            item = self._sa_items[event.uid] = Outgoing(event)
        return item

    def _prune_sa_items(self) -> None:
        """Forget cached SAs the roster no longer holds (UDP senders leave no departure)."""
        known = self.roster.knows_sa
        for uid in [u for u, item in self._sa_items.items() if not known(item.event)]:
            del self._sa_items[uid]

    def _add(self, sender: Party, item: Outgoing, recipients: Iterable[Party] | None) -> None:
        if recipients is None:
            targets = None
        else:
            targets = frozenset(p.key for p in recipients)
            if not targets:
                return
        self._entries.append(_Entry(sender, item, targets, next(self._seq)))
        if not self._flush_armed:
            # Under load a loop turn handles many reads: they all share this one flush.
            self._flush_armed = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        """End of turn: give every session its entries, in order, in one write."""
        self._flush_armed = False
        entries, self._entries = self._entries, []
        joined, self._joined = self._joined, set()
        if not entries:
            return
        # Sessions that need their own selection: senders of this turn (no echo), targets of
        # directed entries, and sessions that joined after the turn's first entry. Everyone
        # else shares a per-class buffer.
        first = entries[0].seq
        special = {k for k in joined if self._attached_at.get(k, first) > first}
        broadcast = False
        for entry in entries:
            special.add(entry.sender.key)
            if entry.targets is None:
                broadcast = True
            else:
                special |= entry.targets
        # A turn of pongs, replays or directed events concerns only its own parties: with ten
        # thousand idle ATAK clients pinging, visiting every session per turn would dominate.
        if broadcast:
            visit = list(self._sinks.items())
        else:
            visit = [(k, self._sinks[k]) for k in special if k in self._sinks]
        shared: dict[tuple[Membership, WireFormat | None], tuple[list[Outgoing], bytes | None]] = {}
        delivered = 0
        for key, (party, sink) in visit:
            if key in special:
                since = self._attached_at[key]
                items = [e.item for e in entries if _wants(e, party, since)]
                if items:
                    delivered += sink.send(items)
                continue
            fmt = sink.wire_format
            cached = shared.get((party.membership, fmt))
            if cached is None:
                items = [
                    e.item
                    for e in entries
                    if e.targets is None and e.sender.membership.reaches(party.membership)
                ]
                data = None if fmt is None else b"".join([item.frame(fmt) for item in items])
                cached = (items, data)
                shared[(party.membership, fmt)] = cached
            if cached[0]:
                delivered += sink.send(*cached)
        self.counters.events_delivered += delivered


def _wants(entry: _Entry, party: Party, attached_at: int) -> bool:
    if entry.targets is not None:
        return party.key in entry.targets
    return (
        entry.seq > attached_at
        and entry.sender is not party
        and entry.sender.membership.reaches(party.membership)
    )
