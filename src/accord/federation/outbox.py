"""Store and forward for partner links: what a link released, kept until the partner acks it.

Every frame a link releases gets the link's next sequence number (``accordSeq``, an Accord-only
protobuf field a TAK Server skips) and is appended here. Like the history archiver, the hot
path only queues: one task writes batches to the store (one transaction per kind of write),
raises the link's durable "sent" and "received" marks, deletes what the partner acknowledged
and trims each link's outbox to ``limit`` rows, the oldest first, recording every trimmed
frame in the ledger as dropped (:meth:`Journal.dropped`) and in
``federation_outbox_dropped_total``. A frame that finds the in-memory queue full is dropped
and recorded the same way by the link. After a reconnect the link resends, in order, every
stored row after the partner's last acknowledgement; the receiver drops sequence numbers it
has already seen (its "received" mark is stored before it is acknowledged).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from accord.domain.views import Sample
from accord.federation.contract import Journal
from accord.store.contract import Store, StoreError
from accord.store.records import OutboxRow

log = logging.getLogger("accord.federation")

OUTBOX_EVENTS = 100_000  # stored per link, at most (federation_outbox_events)
QUEUE_ROWS = 50_000  # released but not yet stored, at most
BATCH_ROWS = 2000
RETRY_S = 1.0
LINGER_S = 0.02  # after a wake-up, for more rows: one transaction per burst, not per turn


class Outbox:
    def __init__(
        self,
        store: Store,
        journal: Journal,
        *,
        limit: int = OUTBOX_EVENTS,
        wall_ms: Callable[[], int],
        queue_rows: int = QUEUE_ROWS,
    ) -> None:
        self._store = store
        self._journal = journal
        self.limit = limit
        self._wall_ms = wall_ms
        self._queue_rows = queue_rows
        self._rows: list[tuple[str, OutboxRow]] = []  # (partner name, row)
        self._received: dict[str, int] = {}  # marks to store, by link key
        self._acked: dict[str, int] = {}  # acknowledgements to apply, by link key
        self.stored_received: dict[str, int] = {}  # durable receive marks (safe to ack)
        self.dropped: dict[str, int] = {}  # by partner
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._stopping = False

    async def restore(self, key: str) -> tuple[int, int]:
        """The stored (sent, received) marks of link ``key``."""
        sent = await self._store.link_mark(key, "sent")
        received = await self._store.link_mark(key, "received")
        self.stored_received[key] = received
        return sent, received

    # -- the hot path --------------------------------------------------------------------------
    def append(self, partner: str, key: str, seq: int, frame: bytes) -> bool:
        """Queue one released frame; False (not queued) when the queue is full."""
        if len(self._rows) >= self._queue_rows:
            return False
        self._rows.append((partner, OutboxRow(key, seq, frame, self._wall_ms())))
        self._poke()
        return True

    def received(self, key: str, seq: int) -> None:
        self._received[key] = max(seq, self._received.get(key, 0))
        self._poke()

    def acknowledged(self, key: str, seq: int) -> None:
        if seq > 0:
            self._acked[key] = max(seq, self._acked.get(key, 0))
            self._poke()

    def _poke(self) -> None:
        self._idle.clear()
        self._wake.set()

    # -- the writer ----------------------------------------------------------------------------
    async def read(self, key: str, after: int) -> list[OutboxRow]:
        return await self._store.outbox_read(key, after)

    async def flush(self) -> None:
        """Return once everything queued so far is stored."""
        await self._idle.wait()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        while True:
            if not (self._rows or self._received or self._acked):
                self._idle.set()
                if self._stopping:
                    return
                self._wake.clear()
                await self._wake.wait()
                if len(self._rows) < BATCH_ROWS and not self._stopping:
                    await asyncio.sleep(LINGER_S)  # gather a burst into fewer transactions
                continue
            try:
                await self._write()
            except StoreError as exc:
                log.error("federation outbox: %s (retrying)", exc)
                await asyncio.sleep(RETRY_S)

    async def _write(self) -> None:
        batch = self._rows[:BATCH_ROWS]
        if batch:
            await self._store.outbox_append([row for _, row in batch])
            del self._rows[: len(batch)]
            sent: dict[str, tuple[str, int]] = {}
            for partner, row in batch:
                sent[row.partner] = (partner, row.seq)
            for key, (partner, seq) in sent.items():
                await self._store.set_link_mark(key, "sent", seq)
                await self._trim(partner, key)
        received, self._received = self._received, {}
        for key, seq in received.items():
            await self._store.set_link_mark(key, "received", seq)
            self.stored_received[key] = max(seq, self.stored_received.get(key, 0))
        acked, self._acked = self._acked, {}
        for key, seq in acked.items():
            await self._store.outbox_delete(key, seq)

    async def _trim(self, partner: str, key: str) -> None:
        over = await self._store.outbox_count(key) - self.limit
        if over <= 0:
            return
        oldest = await self._store.outbox_read(key, 0, limit=over)
        for row in oldest:
            self._journal.dropped(partner, row.frame, "", "")  # its release is journalled
        await self._store.outbox_delete(key, oldest[-1].seq)
        self.dropped[partner] = self.dropped.get(partner, 0) + len(oldest)
        log.warning("partner %s: outbox full, dropped the oldest %d", partner, len(oldest))

    def samples(self) -> Iterable[Sample]:
        yield Sample(
            "federation_outbox_queued",
            "gauge",
            "released frames waiting for the store",
            float(len(self._rows)),
        )
        for partner, n in sorted(self.dropped.items()):
            yield Sample(
                "federation_outbox_dropped_total",
                "counter",
                "oldest frames dropped from a full outbox (in the ledger as dropped)",
                float(n),
                (("partner", partner),),
            )
