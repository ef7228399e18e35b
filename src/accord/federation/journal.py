"""The sharing ledger, fed by the partner links: every release decision and every received frame.

:class:`LedgerJournal` implements the link's :class:`~accord.federation.contract.Journal`
(frames released, with the rule that released each, received, dropped) and
:class:`~accord.federation.gate.DecisionLog` (what was withheld). Per partner and direction it
keeps an :class:`accord.ledger.log.Log`, restored from the store's leaf hashes at start.
Appending is on the hot path (one JSON encoding and two SHA-256 per item); writing is not:
entries go to a bounded queue that one task drains in batches (one store transaction each),
signing a checkpoint at the stored size every ``checkpoint_entries`` entries or
``checkpoint_s`` seconds.

Backpressure, written once: when the queue is full the item is not appended at all (the log
stays exactly what the store will hold, so it still verifies), counted in
``ledger_unrecorded_total`` and logged as an error. A failed store write is retried (the batch
stays at the head of the queue) so that the stored log never has a gap.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from accord.domain.views import Sample
from accord.ledger.entry import Decision, Direction
from accord.ledger.log import Appended, Log
from accord.ledger.note import Signer
from accord.store.contract import Store, StoreError
from accord.store.records import LEDGER_PAGE, LedgerCheckpoint, LedgerEntry

log = logging.getLogger("accord.ledger")

QUEUE_ENTRIES = 100_000  # appended but not yet stored, at most
BATCH_ENTRIES = 2000  # entries per store transaction, at most
CHECKPOINT_ENTRIES = 1000  # a checkpoint at least every this many stored entries...
CHECKPOINT_S = 10.0  # ...or this often while entries arrive (C5: "every few seconds")
RETRY_S = 1.0  # wait before retrying a failed store write
LINGER_S = 0.02  # after a wake-up, for more entries: one transaction per burst, not per turn
_OUT, _IN = Direction.OUT.value, Direction.IN.value


@dataclass(slots=True)
class _Tracked:
    log: Log
    stored: int  # entries written to the store
    checkpointed: int  # size of the newest stored checkpoint
    note: bytes = b""  # that checkpoint (b"" when none)


class LedgerJournal:
    """Per-partner out/in logs, appended on the loop and written by :meth:`run`."""

    def __init__(
        self,
        store: Store,
        signer: Signer,
        secret: bytes,
        *,
        wall_ms: Callable[[], int],
        queue_entries: int = QUEUE_ENTRIES,
        checkpoint_entries: int = CHECKPOINT_ENTRIES,
        checkpoint_s: float = CHECKPOINT_S,
    ) -> None:
        self._store = store
        self._signer = self.signer = signer
        self._secret = secret
        self._wall_ms = wall_ms
        self._queue: deque[LedgerEntry] = deque()
        self._queue_entries = queue_entries
        self._checkpoint_entries = checkpoint_entries
        self._checkpoint_s = checkpoint_s
        self._logs: dict[tuple[str, Direction], _Tracked] = {}
        self._wake = asyncio.Event()
        # One writer at a time: :meth:`flush` may run while :meth:`run` is storing the same
        # head of the queue (both would write it, and the second fail on its indices).
        self._writing = asyncio.Lock()
        self._stopping = False
        self.unrecorded = 0  # items not appended: the queue was full
        self.write_failures = 0
        # The ledger exchange listens here (ledger_exchange.LedgerExchange): a checkpoint
        # stored, and an item received (its content hash and mirror index), to receipt it.
        self.on_checkpoint: Callable[[str, Direction], None] | None = None
        self.on_received: Callable[[str, str, int], None] | None = None

    async def restore(self, partners: Iterable[str]) -> None:
        """Continue each partner's stored logs (StoreError when the store cannot be read)."""
        for partner in partners:
            for direction in Direction:
                leaves: list[bytes] = []
                while True:
                    page = await self._store.ledger_entries(
                        partner, direction.value, len(leaves), LEDGER_PAGE
                    )
                    leaves += [row.leaf for row in page]
                    if len(page) < LEDGER_PAGE:
                        break
                checkpoints = await self._store.ledger_checkpoints(partner, direction.value)
                self._logs[(partner, direction)] = _Tracked(
                    Log(self._signer, self._signer.name, partner, direction, leaves),
                    len(leaves),
                    checkpoints[-1].size if checkpoints else 0,
                    checkpoints[-1].note if checkpoints else b"",
                )

    def size(self, partner: str, direction: str) -> int:
        tracked = self._logs.get((partner, Direction(direction)))
        return tracked.log.size if tracked else 0

    def latest_checkpoint(self, partner: str, direction: Direction) -> tuple[int, bytes]:
        """(size, note) of the newest stored checkpoint of a log; (0, b"") when none."""
        tracked = self._logs.get((partner, direction))
        return (0, b"") if tracked is None else (tracked.checkpointed, tracked.note)

    def log_of(self, partner: str, direction: Direction) -> Log:
        """The partner's log in ``direction`` (an empty one for a partner not seen yet)."""
        tracked = self._logs.get((partner, direction))
        if tracked is None:
            tracked = self._logs[(partner, direction)] = _Tracked(
                Log(self._signer, self._signer.name, partner, direction), 0, 0
            )
        return tracked.log

    # -- appending (hot path) ----------------------------------------------------------------
    def _log(self, partner: str, direction: Direction) -> Log | None:
        if len(self._queue) >= self._queue_entries:
            self.unrecorded += 1
            if self.unrecorded == 1 or self.unrecorded % 10_000 == 0:
                log.error(
                    "ledger: %d item(s) for %s not recorded: the store is %d entries behind",
                    self.unrecorded,
                    partner,
                    len(self._queue),
                )
            return None
        return self.log_of(partner, direction)

    def _queue_entry(self, partner: str, direction: Direction, appended: Appended) -> None:
        self._queue.append(
            LedgerEntry(partner, direction.value, appended.index, appended.data, appended.leaf)
        )
        self._wake.set()

    def withheld(self, partner: str, rule: str, policy: str, item: bytes, now_ms: int) -> None:
        out = self._log(partner, Direction.OUT)
        if out is not None:
            appended = out.withhold(now_ms, rule, item, self._secret, policy)
            self._queue_entry(partner, Direction.OUT, appended)

    def released(self, partner: str, seq: int, frame: bytes, rule: str, policy: str) -> None:
        out = self._log(partner, Direction.OUT)
        if out is not None:
            index, leaf, data, _ = out.append_plain(
                self._wall_ms(), Decision.RELEASED, rule, frame, policy
            )
            self._queue.append(LedgerEntry(partner, _OUT, index, data, leaf))
            self._wake.set()

    def dropped(self, partner: str, frame: bytes, rule: str, policy: str) -> None:
        out = self._log(partner, Direction.OUT)
        if out is not None:
            appended = out.drop(self._wall_ms(), rule, frame, self._secret, policy)
            self._queue_entry(partner, Direction.OUT, appended)

    def received(self, partner: str, seq: int, frame: bytes) -> None:
        mirror = self._log(partner, Direction.IN)
        if mirror is not None:
            # The mirror names what arrived by the hash of its exact bytes; the partner's
            # entry index and leaf are bound to it by our receipt (ledger_exchange.LedgerExchange).
            index, leaf, data, item = mirror.append_plain(
                self._wall_ms(), Decision.RECEIVED, "", frame
            )
            self._queue.append(LedgerEntry(partner, _IN, index, data, leaf))
            self._wake.set()
            if self.on_received is not None:
                self.on_received(partner, item, index)

    # -- writing (off the hot path) ----------------------------------------------------------
    @property
    def queued(self) -> int:
        return len(self._queue)

    def stop(self) -> None:
        """Let :meth:`run` store what is queued, checkpoint every log and return."""
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        """Write batches and checkpoints until :meth:`stop` (then flush) or cancelled."""
        loop = asyncio.get_running_loop()
        next_checkpoint = loop.time() + self._checkpoint_s
        while True:
            if self._stopping and not self._queue:
                await self.checkpoint()
                return
            if not self._queue:
                self._wake.clear()
                try:
                    async with asyncio.timeout(max(0.0, next_checkpoint - loop.time())):
                        await self._wake.wait()
                    if len(self._queue) < BATCH_ENTRIES and not self._stopping:
                        await asyncio.sleep(LINGER_S)  # gather a burst into fewer transactions
                except TimeoutError:
                    pass
            if not await self.write_batch():
                await asyncio.sleep(RETRY_S)
                continue
            due = loop.time() >= next_checkpoint
            await self.checkpoint(every=0 if due else self._checkpoint_entries)
            if due:
                next_checkpoint = loop.time() + self._checkpoint_s

    async def write_batch(self) -> bool:
        """Store up to one batch from the queue; False when the store refused it (kept)."""
        async with self._writing:
            return await self._write_batch()

    async def _write_batch(self) -> bool:
        batch = [self._queue[i] for i in range(min(BATCH_ENTRIES, len(self._queue)))]
        if not batch:
            return True
        try:
            await self._store.ledger_append(batch)
        except StoreError as exc:
            self.write_failures += 1
            log.error("ledger: writing %d entries failed (will retry): %s", len(batch), exc)
            return False
        for _ in batch:
            self._queue.popleft()
        for row in batch:
            tracked = self._logs[(row.partner, Direction(row.direction))]
            tracked.stored = max(tracked.stored, row.seq + 1)
        return True

    async def checkpoint(self, every: int = 0) -> int:
        """Sign and store a checkpoint of each log grown by more than ``every`` stored entries
        since its last one; return how many were made."""
        async with self._writing:
            return await self._checkpoint(every)

    async def _checkpoint(self, every: int) -> int:
        made = 0
        for (partner, direction), tracked in self._logs.items():
            if (
                tracked.stored <= tracked.checkpointed
                or tracked.stored - tracked.checkpointed < every
            ):
                continue
            note = tracked.log.checkpoint(tracked.stored)
            try:
                await self._store.add_ledger_checkpoint(
                    LedgerCheckpoint(partner, direction.value, tracked.stored, note)
                )
            except StoreError as exc:
                log.error(
                    "ledger: storing a checkpoint of %s %s failed: %s", partner, direction, exc
                )
                continue
            tracked.checkpointed, tracked.note = tracked.stored, note
            made += 1
            if self.on_checkpoint is not None:
                self.on_checkpoint(partner, direction)
        return made

    async def flush(self) -> None:
        """Write everything queued and checkpoint every log (also while :meth:`run` runs)."""
        while self._queue:
            if not await self.write_batch():
                return
        await self.checkpoint()

    # -- reporting ---------------------------------------------------------------------------
    def samples(self) -> Iterable[Sample]:
        yield Sample(
            "ledger_queued_entries",
            "gauge",
            "ledger entries not yet stored",
            float(len(self._queue)),
        )
        yield Sample(
            "ledger_unrecorded_total",
            "counter",
            "items not recorded in the ledger: its write queue was full",
            float(self.unrecorded),
        )
        yield Sample(
            "ledger_write_failures_total",
            "counter",
            "failed ledger writes (retried)",
            float(self.write_failures),
        )
        for (partner, direction), tracked in self._logs.items():
            yield Sample(
                "ledger_entries",
                "gauge",
                "entries in a partner's log",
                float(tracked.log.size),
                (("partner", partner), ("direction", direction.value)),
            )
