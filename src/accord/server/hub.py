"""The hub: routes each event once and hands it to its recipients' sessions.

Deliveries made while handling input are batched per session and written once per event-loop
turn, so a session that receives fifty events in one turn costs one write, not fifty.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from typing import Protocol

from accord.cot.model import CotEvent
from accord.cot.outgoing import Outgoing
from accord.domain.contacts import Party, Roster
from accord.domain.flow import Push
from accord.domain.groups import Membership
from accord.domain.metrics import Counters
from accord.domain.routing import Kind, departure, route

log = logging.getLogger("accord.hub")


class Sink(Protocol):
    """What the hub needs of a session: take an event now or queue it, and flush."""

    def deliver(self, item: Outgoing) -> Push: ...

    def flush(self) -> None: ...

    def close(self, reason: str, *, abort: bool = False) -> None: ...


class Hub:
    """Routes events between parties; owns the roster and the per-turn write batching."""

    def __init__(
        self,
        counters: Counters,
        *,
        wall_ms: Callable[[], int],
        new_uid: Callable[[], str],
    ) -> None:
        self.counters = counters
        self.roster = Roster()
        self._wall_ms = wall_ms
        self._new_uid = new_uid
        self._sinks: dict[int, Sink] = {}
        self._dirty: dict[int, Sink] = {}
        self._flush_armed = False
        self._keys = itertools.count(1)
        self._empty = asyncio.Event()
        self._empty.set()

    @property
    def session_count(self) -> int:
        return len(self._sinks)

    def new_party(self, membership: Membership, label: str, *, receives: bool = True) -> Party:
        return Party(next(self._keys), membership, label, receives=receives)

    # -- membership ----------------------------------------------------------------------------
    def attach(self, party: Party, sink: Sink) -> None:
        """A session joined: register it and send it the latest SA of everyone it may hear."""
        self.roster.join(party)
        self._sinks[party.key] = sink
        self._empty.clear()
        for event in self.roster.latest_sa(party, self._wall_ms()):
            self._deliver(party, Outgoing(event))

    def detach(self, party: Party) -> None:
        """A session left: forget it and tell the others with a ``t-x-d-d``."""
        self.roster.leave(party)
        self._sinks.pop(party.key, None)
        self._dirty.pop(party.key, None)
        if not self._sinks:
            self._empty.set()
        if not party.uid or self.roster.by_uid(party.uid) is not None:
            return  # never identified, or the same uid is connected again elsewhere
        notice = departure(party, self._new_uid(), self._wall_ms())
        if notice is not None:
            self._fan_out(route(notice, party, self.roster, self._wall_ms()).recipients, notice)

    async def wait_empty(self) -> None:
        """Return once no session is attached."""
        await self._empty.wait()

    def close_all(self, reason: str, *, abort: bool) -> None:
        """Close every session: flush what is batched first, unless aborting."""
        for sink in list(self._sinks.values()):
            if not abort:
                sink.flush()
            sink.close(reason, abort=abort)

    # -- traffic -------------------------------------------------------------------------------
    def submit(self, sender: Party, event: CotEvent) -> bool:
        """Route one event from ``sender``; True when the sender's uid or callsign changed."""
        self.counters.events_in += 1
        changed = self.roster.observe(sender, event)
        decision = route(event, sender, self.roster, self._wall_ms())
        if decision.kind is Kind.PING:
            self.counters.pings += 1
            if decision.reply is not None and sender.receives:
                self._deliver(sender, Outgoing(decision.reply))
        elif decision.kind is Kind.CONTROL:
            self.counters.control_consumed += 1
        else:
            self._fan_out(decision.recipients, decision.event)
        return changed

    def _fan_out(self, recipients: tuple[Party, ...], event: CotEvent) -> None:
        if not recipients:
            return
        item = Outgoing(event)  # shared: encoded at most once per wire format
        for party in recipients:
            self._deliver(party, item)

    def _deliver(self, party: Party, item: Outgoing) -> None:
        sink = self._sinks.get(party.key)
        if sink is None:
            return
        result = sink.deliver(item)
        if result is Push.DROPPED:
            self.counters.queue_dropped += 1
            return
        if result is Push.COALESCED:
            self.counters.queue_coalesced += 1
        self.counters.events_delivered += 1
        self._dirty[party.key] = sink
        if not self._flush_armed:
            self._flush_armed = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_armed = False
        dirty, self._dirty = self._dirty, {}
        for sink in dirty.values():
            sink.flush()
