"""The sharing ledger's writer against a real store: a flush while the writer task is storing
the same entries stores each once, checkpoints them, and fails nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from accord.federation.journal import LedgerJournal
from accord.ledger.note import Signer
from accord.store.contract import Store
from accord.store.opening import open_store
from accord.store.records import LedgerEntry
from tests.waiting import next_turn, wait_until


class HeldAppends:
    """The real store, whose ledger appends wait for ``go`` once ``held`` is set: the test
    calls flush while the writer task's own append is under way."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.held = False
        self.waiting = 0
        self.go = asyncio.Event()

    def __getattr__(self, name: str) -> object:
        return getattr(self.store, name)

    async def ledger_append(self, entries: Sequence[LedgerEntry]) -> None:
        if self.held:
            self.waiting += 1
            await self.go.wait()
        await self.store.ledger_append(entries)


async def test_a_flush_while_the_writer_stores_writes_each_entry_once(tmp_path: Path) -> None:
    store = await open_store("", tmp_path / "a")
    held = HeldAppends(store)
    journal = LedgerJournal(held, Signer.generate("org-a.example"), b"s" * 32, wall_ms=lambda: 1)  # type: ignore[arg-type]
    await journal.restore(["org-b"])
    try:
        async with asyncio.TaskGroup() as group:
            writer = group.create_task(journal.run())
            held.held = True
            for n in range(50):
                journal.released("org-b", n + 1, f"<frame n='{n}'/>".encode(), "sa", "v1")
            await wait_until(lambda: held.waiting == 1, what="the writer's append is under way")
            flushing = group.create_task(journal.flush())
            await next_turn()  # the flush runs until it waits (for the writer, or the store)
            held.go.set()
            await flushing
            assert journal.queued == 0
            assert journal.write_failures == 0
            journal.stop()
            await writer
        rows = await store.ledger_entries("org-b", "out", 0, 1000)
        assert [row.seq for row in rows] == list(range(50))
        (checkpoint,) = await store.ledger_checkpoints("org-b", "out")
        assert checkpoint.size == 50
    finally:
        await store.close()
