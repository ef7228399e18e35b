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
import bisect
import itertools
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from accord.cot.model import CotEvent, WireFormat
from accord.cot.outgoing import Outgoing
from accord.domain import routing
from accord.domain.catchup import LogEntry, SaLog
from accord.domain.contacts import Party, Roster
from accord.domain.groups import Membership
from accord.domain.metrics import Counters
from accord.domain.ownership import Conflict
from accord.domain.ports import ContactView, MissionDests, Recorder, Sink
from accord.domain.routing import DELETE_TYPE, Kind, deleted, departure, groups_changed, route
from accord.server.memory import Reclaim, release_memory

log = logging.getLogger("accord.hub")
# A newcomer that may hear at most this many SAs gets them at once, before anything else; with
# more (a mass join), it catches up from the SA log a slice per loop turn, like a session whose
# socket was full (issue 13 §1).
CATCHUP_INLINE = 256
# Per loop turn, all behind sessions together: SA log entries looked at, and written to one
# session at a time (well under the socket's high-water mark). Pings, the admin API and fresh
# events are served between slices.
CATCHUP_SCAN_PER_TURN = 60_000
CATCHUP_ITEMS_PER_SESSION = 512
# Uid conflicts are logged once per sender and uid; past this many pairs the memory is reset.
MAX_CONFLICTS_LOGGED = 10_000


@dataclass(frozen=True, slots=True)
class _Entry:
    """One routed event of this turn. ``targets`` is None for a broadcast; ``seq`` orders it
    against attachments, so a session that joins later in the turn does not get it (it gets
    the latest SA instead, and would otherwise see the same SA twice)."""

    sender: Party
    item: Outgoing
    targets: frozenset[int] | None
    seq: int
    sa_seq: int = 0  # an SA broadcast: its place in the SA log (behind sessions read it there)


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
        self._log = SaLog()  # the same latest SAs in update order, for behind sessions
        # Prune the log again only once it has doubled since the last prune: SAs the roster
        # still holds (mesh, partner, restored: up to 10,000) survive a prune, and pruning at
        # every join would rescan them all each time.
        self._prune_floor = 0
        self._behind: dict[int, int] = {}  # party key -> SA log cursor (see catchup.py)
        self._catch_up_armed = False
        # Behind sessions with room in their sockets at the last slice: what admission waits on
        # (sessions that do not read are not work the server can do).
        self.catching_up = 0
        self._caught_up = asyncio.Event()  # set while catching_up is below the admission limit
        self._caught_up.set()
        self._admit_below = 0
        # Memory back after a storm (issue 13 §2): when the sessions, or the sessions behind
        # on SAs (an overload's backlog), fall well below their peak.
        self._reclaim = Reclaim(self._release)
        self._reclaim_backlog = Reclaim(self._release)
        self._empty = asyncio.Event()
        self._empty.set()
        self._conflicts_logged: set[tuple[int, str]] = set()  # (sender key, uid)
        self.signing_in = 0  # plain-TCP connections waiting for their <auth> (sessions keep it)
        # Observers of every routed event and its sender (the coordination monitor). Like the
        # recorder they must not block or raise; they may submit events of their own.
        self.taps: list[Callable[[Party, CotEvent], None]] = []
        # Senders whose events another node or worker stores (issue 17: events from the
        # cluster bus, when the one that received them from its client wrote them to the store
        # they share): not written to the history here. ``missions_elsewhere``: nor added to
        # a mission (the other node has a mission book of its own on the shared database;
        # a worker other than worker 0 has none, so worker 0 adds what they relay).
        self.stored_elsewhere: Callable[[Party], bool] | None = None
        self.missions_elsewhere = False
        # Scale-out (issue 17): told of each routed event once, with whether it is an SA
        # (the cluster bus publishes it); None without a [cluster].
        self.bus: Callable[[Party, CotEvent, bool], None] | None = None
        # Cluster presence (issue 17): told when an identified session's uid, callsign or
        # groups change (True) and when it leaves (False; it answers whether the uid is
        # connected on another node, where a departure would be wrong); the other nodes'
        # contacts, for the contact lists. Both None without a [cluster].
        self.presence: Callable[[Party, bool], bool] | None = None
        self.remote_contacts: Callable[[], list[ContactView]] | None = None

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
        self._reclaim.count(len(self._sinks))
        if len(self._log) > max(2 * len(self.roster) + 1024, self._prune_floor):
            self._prune_sa_items()
        if not party.receives:
            return
        membership = party.membership

        def hears(sender: Membership) -> bool:
            return sender.reaches(membership)

        if self._log.audible(hears) > CATCHUP_INLINE:
            self._behind[party.key] = 0  # from the start of the log: every latest SA
            self._arm_catch_up()
            return
        want = self._audible(party, self._wall_ms())
        for entry in sorted(self._log.latest_from(hears), key=_by_log_seq):
            if want(entry):
                self._add(party, entry.item, (party,))

    def detach(self, party: Party) -> None:
        """A session left: forget it and tell the others with a ``t-x-d-d``."""
        self.roster.leave(party)
        self._sinks.pop(party.key, None)
        self._attached_at.pop(party.key, None)
        self._behind.pop(party.key, None)
        self._reclaim.count(len(self._sinks))
        if not self._sinks:
            self._empty.set()
        if not party.uid or self.roster.by_uid(party.uid) is not None:
            return  # never identified, or the same uid is connected again elsewhere
        self._sa_items.pop(party.uid, None)
        self._log.remove(party.uid)
        if self.presence is not None and self.presence(party, False):
            return  # connected again on another node of the cluster
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
        if sa is not None and self._log.get(sa.uid) is not None:
            # Sessions behind on SAs judge it by its new groups when they read it.
            self._log.put(sa.uid, self._sa_item(sa), membership)
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
        if self.presence is not None and party.uid:
            self.presence(party, True)

    # -- Directory (domain/ports.py), read by the HTTP API --------------------------------------
    def contacts(self) -> list[ContactView]:
        local = [
            ContactView(p.uid, p.callsign, p.membership, p.last_sa, user=p.principal)
            for p in self.roster.receivers()
            if p.uid
        ]
        if self.remote_contacts is None:
            return local
        uids = {c.uid for c in local}
        return local + [c for c in self.remote_contacts() if c.uid not in uids]

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
        conflict = self.roster.conflict(sender, event)
        if conflict is not None:
            self._refuse(sender, conflict)
            return False
        self.counters.events_in += 1
        changed = self.roster.observe(sender, event)
        if changed and self.presence is not None:
            self.presence(sender, True)
        decision = route(event, sender, self.roster, self._wall_ms())
        stored_elsewhere = self.stored_elsewhere is not None and self.stored_elsewhere(sender)
        if self.missions is not None and decision.kind is Kind.DIRECTED:
            added_here = not (stored_elsewhere and self.missions_elsewhere)
            uids = self.missions.subscribers(event, sender.membership, add=added_here)
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
            sa_seq = 0
            if is_sa:
                sa_seq = self._log.put(event.uid, item, sender.membership)
                sa_seq = sa_seq if decision.recipients is None else 0
            self._add(sender, item, decision.recipients, sa_seq)
            if self.bus is not None:
                self.bus(sender, event, is_sa)
            if self.recorder is not None and not stored_elsewhere:
                shared = item if item.event is event else None
                self.recorder.record(event, sender.membership.inbound, shared)
            if event.type == DELETE_TYPE and sender.relays:
                self._departed(sender, event)
            for tap in self.taps:
                tap(sender, event)
        return changed

    def _refuse(self, sender: Party, conflict: Conflict) -> None:
        """Someone else's own uid: dropped and counted, logged once per sender and uid."""
        self.counters.uid_conflict += 1
        key = (sender.key, conflict.uid)
        if key in self._conflicts_logged:
            return
        if len(self._conflicts_logged) >= MAX_CONFLICTS_LOGGED:
            self._conflicts_logged.clear()
        self._conflicts_logged.add(key)
        log.warning(
            "uid conflict: dropped uid=%s from %s peer=%s: it is the own uid of %s",
            conflict.uid,
            conflict.speaker.describe(),
            sender.label,
            conflict.holder.describe(),
        )

    def forget_relayed(self, sender: Party, uid: str, unless: frozenset[str] = frozenset()) -> bool:
        """Newcomers are not shown the SA of ``uid`` that the relaying ``sender`` brought any
        more (its groups changed elsewhere, so it was kept under groups it no longer has),
        unless it was kept as sent into exactly ``unless`` (its new groups: already moved)."""
        entry = self._log.get(uid)
        if unless and entry is not None and entry.sender.inbound == unless:
            return False
        if not self.roster.forget(sender, uid):
            return False
        self._sa_items.pop(uid, None)
        self._log.remove(uid)
        return True

    def relay_regroup(self, sender: Party, event: CotEvent, was: frozenset[str]) -> None:
        """A contact regrouped on another node; ``event`` is its latest SA, ``sender`` the relay
        party of its new groups, ``was`` the groups it sent into before. As ``regroup`` does
        for a local party: the SA is kept under the new groups (for newcomers) and sent to the
        sessions that hear it now and could not before, not again to those that could."""
        self.roster.observe(sender, event)
        if not self.roster.knows_sa(event):
            return
        item = self._sa_item(event)
        self._log.put(event.uid, item, sender.membership)
        if event.stale <= self._wall_ms():
            return
        old = Membership(was, frozenset())
        newly = tuple(
            p
            for p in self.roster.receivers()
            if sender.membership.reaches(p.membership) and not old.reaches(p.membership)
        )
        if newly:
            self._add(sender, item, newly)

    def _departed(self, sender: Party, event: CotEvent) -> None:
        """A partner's contact left (its server relayed the ``t-x-d-d``): forget its latest SA,
        or newcomers would be shown a contact that is gone until the SA goes stale."""
        target = deleted(event)
        if target is not None and self.roster.forget(sender, target[0]):
            self._sa_items.pop(target[0], None)
            self._log.remove(target[0])

    def restore(self, event: CotEvent, groups: frozenset[str]) -> None:
        """Remember an SA from before a restart for newcomers (see ``Roster.restore``)."""
        membership = Membership(groups, frozenset())
        self.roster.restore(membership, event)
        if self.roster.knows_sa(event):
            self._log.put(event.uid, self._sa_item(event), membership)

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
        self._log.prune(lambda entry: known(entry.item.event))
        self._prune_floor = 2 * len(self._log)

    def _add(
        self,
        sender: Party,
        item: Outgoing,
        recipients: Iterable[Party] | None,
        sa_seq: int = 0,
    ) -> None:
        if recipients is None:
            targets = None
        else:
            targets = frozenset(p.key for p in recipients)
            if not targets:
                return
        self._entries.append(_Entry(sender, item, targets, next(self._seq), sa_seq))
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
        # Each special session looks at the turn's broadcasts and at the entries aimed at it,
        # not at every entry: a mass join's replays are many small directed entries.
        broadcasts: list[_Entry] = []
        directed: dict[int, list[_Entry]] = {}
        for entry in entries:
            special.add(entry.sender.key)
            if entry.targets is None:
                broadcasts.append(entry)
            else:
                for key in entry.targets:
                    directed.setdefault(key, []).append(entry)
        special.update(directed)
        broadcast = bool(broadcasts)
        # A turn of pongs, replays or directed events concerns only its own parties: with ten
        # thousand idle ATAK clients pinging, visiting every session per turn would dominate.
        if broadcast:
            visit = list(self._sinks.items())
        else:
            visit = [(k, self._sinks[k]) for k in special if k in self._sinks]
        shared: dict[tuple[Membership, WireFormat | None], tuple[list[Outgoing], bytes | None]] = {}
        delivered = 0
        behind = self._behind
        first_sa = next((e.sa_seq for e in broadcasts if e.sa_seq), 0)
        # What sessions behind on SAs get now (the rest they read from the SA log), and how
        # many SAs of this turn each group class leaves to the log (counted as coalesced).
        plain = [e for e in broadcasts if not e.sa_seq] if first_sa else broadcasts
        deferred: dict[Membership, int] = {}
        # A turn with SAs from more senders than a newcomer is replayed inline (a mass join's
        # reports arriving together; one client's own track is always written in full) is
        # written to nobody at once: thousands of sessions each handed
        # the whole burst in one turn would stall the loop for seconds. Everyone reads it from
        # the SA log instead, a slice per turn.
        storm = (
            len(broadcasts) - len(plain) > CATCHUP_INLINE
            and len({e.sender.key for e in broadcasts if e.sa_seq}) > CATCHUP_INLINE
        )
        sa_marks = [(e.seq, e.sa_seq) for e in broadcasts if e.sa_seq]
        head = self._log.head
        for key, (party, sink) in visit:
            late = key in behind
            if late or storm or _blocked(sink):
                # Behind on SAs: it reads them from the SA log later, only the latest of each
                # uid; everything else is written (or queued) now, in order.
                if not late:
                    # From the first SA of this turn it is due (none from before it joined:
                    # it was replayed those).
                    at = bisect.bisect_right(sa_marks, (self._attached_at[key], head + 1))
                    behind[key] = sa_marks[at][1] - 1 if at < len(sa_marks) else head
                    self._arm_catch_up()
                chosen = _selection(plain, directed.get(key), party, self._attached_at[key])
                items = [e.item for e in chosen if not e.sa_seq]
                if first_sa:
                    later = deferred.get(party.membership)
                    if later is None:
                        later = deferred[party.membership] = sum(
                            1
                            for e in broadcasts
                            if e.sa_seq and e.sender.membership.reaches(party.membership)
                        )
                    self.counters.queue_coalesced += later
                if items:
                    delivered += sink.send(items)
                continue
            if key in special:
                chosen = _selection(broadcasts, directed.get(key), party, self._attached_at[key])
                items = [e.item for e in chosen]
                if items:
                    delivered += sink.send(items)
                continue
            fmt = sink.wire_format
            cached = shared.get((party.membership, fmt))
            if cached is None:
                items = [
                    e.item for e in broadcasts if e.sender.membership.reaches(party.membership)
                ]
                data = None if fmt is None else b"".join([item.frame(fmt) for item in items])
                cached = (items, data)
                shared[(party.membership, fmt)] = cached
            if cached[0]:
                delivered += sink.send(*cached)
        self.counters.events_delivered += delivered

    def _release(self) -> None:
        """After a storm: dicts shrink only when rebuilt, and the allocator keeps what was
        freed until asked; both are given back."""
        self._sinks = dict(self._sinks)
        self._attached_at = dict(self._attached_at)
        self._behind = dict(self._behind)
        self._sa_items = dict(self._sa_items)
        self._prune_sa_items()
        self.roster.compact()
        release_memory()

    # -- sessions behind on SAs ----------------------------------------------------------------
    @property
    def behind(self) -> int:
        """Sessions catching up on SAs from the SA log (newcomers of a mass join, full sockets)."""
        return len(self._behind)

    async def admit(self, limit: int) -> None:
        """Return once fewer than ``limit`` sessions are catching up on SAs (admission: a
        listener takes the next connection when the server has got through the last ones)."""
        self._admit_below = limit
        if self.catching_up >= limit:
            self._caught_up.clear()
        await self._caught_up.wait()

    def writable(self, party: Party) -> None:
        """A session's socket drained: if it is behind on SAs, go on catching it up."""
        if party.key in self._behind:
            self._arm_catch_up()

    def _arm_catch_up(self) -> None:
        if not self._catch_up_armed:
            self._catch_up_armed = True
            asyncio.get_running_loop().call_soon(self._catch_up)

    def _audible(self, party: Party, now_ms: int) -> Callable[[LogEntry], bool]:
        membership, known = party.membership, self.roster.knows_sa
        reach: dict[Membership, bool] = {}

        def want(entry: LogEntry) -> bool:
            event = entry.item.event
            heard = reach.get(entry.sender)
            if heard is None:
                heard = reach[entry.sender] = entry.sender.reaches(membership)
            return heard and event.stale > now_ms and event.uid != party.uid and known(event)

        return want

    def _catch_up(self) -> None:
        """One slice of catching up: a share of the SA log for each behind session whose socket
        has room, round robin, within this turn's budget; then yield the loop."""
        self._catch_up_armed = False
        behind, now_ms = self._behind, self._wall_ms()
        budget, delivered, more = CATCHUP_SCAN_PER_TURN, 0, False
        # SAs routed this turn and not flushed yet are the flush's to write to a session that
        # was attached before them: read up to them, so that a session caught up here gets
        # them from the flush, once (and those from before it joined, from the log).
        pending = [(e.seq, e.sa_seq) for e in self._entries if e.sa_seq]
        head = self._log.head
        ready = 0
        queue = list(behind.items())
        for at_key, (key, cursor) in enumerate(queue):
            pair = self._sinks.get(key)
            if pair is None:
                del behind[key]
                continue
            party, sink = pair
            if _blocked(sink):
                continue  # writable() re-arms when its socket drains
            if budget <= 0:
                more = True
                ready += len(queue) - at_key
                break
            ready += 1
            upto = head
            if pending:
                at = bisect.bisect_right(pending, (self._attached_at[key], head + 1))
                if at < len(pending):
                    upto = pending[at][1] - 1
            items, cursor, read = self._log.since(
                cursor,
                self._audible(party, now_ms),
                items=CATCHUP_ITEMS_PER_SESSION,
                scan=min(budget, CATCHUP_SCAN_PER_TURN // 4),
                upto=upto,
            )
            budget -= read + len(items)
            if items:
                delivered += sink.send(items)
            del behind[key]
            if cursor < upto:
                behind[key] = cursor  # to the end of the round
                more = True
        self.counters.events_delivered += delivered
        self.catching_up = ready if more else 0
        self._reclaim_backlog.count(len(behind))
        if self._admit_below and self.catching_up >= self._admit_below:
            self._caught_up.clear()
        else:
            self._caught_up.set()
        if more:
            self._arm_catch_up()


def _blocked(sink: Sink) -> bool:
    """A sink whose socket is full (a session not reading); partner links queue their own."""
    return bool(getattr(sink, "blocked", False))


def _selection(
    broadcasts: list[_Entry], aimed: list[_Entry] | None, party: Party, attached_at: int
) -> list[_Entry]:
    """What one session gets of this turn, in order: the broadcasts it may hear (not its own,
    none from before it joined) and the entries aimed at it."""
    membership = party.membership
    heard = [
        e
        for e in broadcasts
        if e.seq > attached_at and e.sender is not party and e.sender.membership.reaches(membership)
    ]
    if not aimed:
        return heard
    if not heard:
        return aimed
    return sorted(heard + aimed, key=_by_seq)


def _by_seq(entry: _Entry) -> int:
    return entry.seq


def _by_log_seq(entry: LogEntry) -> int:
    return entry.seq
