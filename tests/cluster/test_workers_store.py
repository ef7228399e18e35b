"""Two writers on one SQLite file (the workers of ``serve --workers N``): history ids are taken
under the write lock, so neither writer reuses an id the other has written."""

from __future__ import annotations

import asyncio
from pathlib import Path

from accord.store.records import HistoryQuery
from accord.store.sqlite import SqliteStore
from tests.store.test_contract import ev


async def test_two_stores_on_one_file_write_history_without_id_clashes(tmp_path: Path) -> None:
    path = tmp_path / "accord.db"
    a = await SqliteStore.open(path)
    b = await SqliteStore.open(path)  # opened together: both start from the same next id
    try:

        async def write(store: SqliteStore, uid: str) -> None:
            for t in range(20):
                await store.write_events([ev(uid, t=t * 10), ev(uid, t=t * 10 + 1)], [])

        await asyncio.gather(write(a, "from-a"), write(b, "from-b"))
        page = await a.history(HistoryQuery(limit=1000))
    finally:
        await a.close()
        await b.close()
    ids = [e.id for e in page.events]
    assert len(ids) == 80
    assert len(set(ids)) == 80
    assert sorted(e.uid for e in page.events).count("from-a") == 40
