"""The history writer: every routed event reaches the store, off the hot path.

The hub calls :meth:`HistoryWriter.record` for each routed event; that only appends to a bounded
queue. One task drains the queue in batches, each batch one store transaction (history rows
plus the newest event per uid). If the store falls behind and the queue is full, new events
are dropped from the history and counted: routing never waits for the database.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from accord.cot.model import CotEvent, WireFormat
from accord.cot.outgoing import Outgoing
from accord.domain.metrics import Counters
from accord.domain.views import Backlog
from accord.store.contract import HistoryStore, StoreError
from accord.store.records import StoredEvent

log = logging.getLogger("accord.history")

BATCH_EVENTS = 2000  # events per transaction, at most: one commit amortised over many rows
PRUNE_INTERVAL_S = 60.0
# After a wake-up, wait this long for more events unless a batch is full: under a burst the
# writer would otherwise commit (and take the GIL in its thread) once per event-loop turn.
LINGER_S = 0.02
_DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class HistoryRules:
    """What goes into the history and for how long (TAK Server's per-input archive flag)."""

    enabled: bool = True
    skip_types: tuple[str, ...] = ()  # type prefixes kept out of the history
    max_age_days: float = 30.0  # 0 = keep forever
    max_events: int = 10_000_000

    def keeps(self, event_type: str) -> bool:
        return self.enabled and not event_type.startswith(self.skip_types)


class HistoryWriter:
    """Queue + writer task. ``wall_ms`` is the clock retention is judged by."""

    def __init__(
        self,
        store: HistoryStore,
        rules: HistoryRules,
        counters: Counters,
        *,
        wall_ms: Callable[[], int],
        queue_events: int = 100_000,
    ) -> None:
        self.store = store
        self.rules = rules
        self.counters = counters
        self._wall_ms = wall_ms
        # (event, its sender's IN groups, monotonic time it was queued, its outgoing frames)
        self._queue: deque[tuple[CotEvent, frozenset[str], float, Outgoing | None]] = deque()
        self._queue_events = queue_events
        self._wake = asyncio.Event()
        self._writing = asyncio.Lock()  # one batch at a time: flush() waits for one in flight

    @property
    def queued(self) -> int:
        return len(self._queue)

    def backlog(self) -> Backlog:
        """For /metrics and the admin status (``domain.views.HistoryBacklog``)."""
        if not self._queue:
            return Backlog(0, 0.0)
        return Backlog(len(self._queue), time.monotonic() - self._queue[0][2])

    def record(self, event: CotEvent, groups: frozenset[str], item: Outgoing | None = None) -> None:
        if len(self._queue) >= self._queue_events:
            self.counters.archive_dropped += 1
            return
        self._queue.append((event, groups, time.monotonic(), item))
        self._wake.set()

    async def run(self) -> None:
        """Write batches until cancelled; prune by age and size every minute."""
        loop = asyncio.get_running_loop()
        next_prune = loop.time()
        while True:
            if loop.time() >= next_prune:
                await self.prune()
                next_prune = loop.time() + PRUNE_INTERVAL_S
            if not self._queue:
                self._wake.clear()
                try:
                    async with asyncio.timeout(max(0.0, next_prune - loop.time())):
                        await self._wake.wait()
                except TimeoutError:
                    continue
                if len(self._queue) < BATCH_EVENTS:
                    await asyncio.sleep(LINGER_S)
            await self.write_batch()

    async def write_batch(self) -> int:
        """Write up to one batch from the queue; return how many events it held."""
        async with self._writing:
            return await self._write_batch()

    async def _write_batch(self) -> int:
        batch = [self._queue.popleft() for _ in range(min(BATCH_EVENTS, len(self._queue)))]
        if not batch:
            return 0
        history: list[StoredEvent] = []
        newest: dict[str, StoredEvent] = {}
        sorted_groups: dict[frozenset[str], tuple[str, ...]] = {}  # few distinct sets per batch
        for event, groups, _, item in batch:
            names = sorted_groups.get(groups)
            if names is None:
                names = sorted_groups[groups] = tuple(sorted(groups))
            # An event made here (a partner's, a drone's) has no received bytes: the XML an
            # XML client was sent is the same encoding, made once.
            xml = item.frame(WireFormat.XML) if item is not None and not event.raw else None
            stored = StoredEvent.of(event, names, xml)
            if self.rules.keeps(event.type):
                history.append(stored)
            known = newest.get(event.uid)
            if known is None or stored.time_ms >= known.time_ms:
                newest[event.uid] = stored
        try:
            await self.store.write_events(history, list(newest.values()))
        except StoreError as exc:
            # The batch is lost, not the server: count it and keep going (the store may
            # come back; the log says why it failed).
            self.counters.archive_failed += len(batch)
            log.error("history write of %d events failed: %s", len(batch), exc)
        else:
            self.counters.archived += len(history)
        return len(batch)

    async def prune(self) -> int:
        """Apply the retention rules now; return how many events went."""
        rules = self.rules
        older_than = (
            self._wall_ms() - int(rules.max_age_days * _DAY_MS) if rules.max_age_days else 0
        )
        try:
            removed = await self.store.prune_history(older_than, rules.max_events)
        except StoreError as exc:
            log.error("history retention failed: %s", exc)
            return 0
        if removed:
            log.info("history retention removed %d events", removed)
        return removed

    async def flush(self) -> None:
        """Write everything queued so far, and the batch in flight (shutdown, tests)."""
        while self._queue:
            await self.write_batch()
        async with self._writing:
            pass
