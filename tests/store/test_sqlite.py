"""What only the SQLite backend has: a file that must reopen intact."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from accord.store.contract import StoreError
from accord.store.opening import open_store
from accord.store.records import HistoryQuery
from accord.store.sqlite import SqliteStore
from tests.store.test_contract import ev


async def test_reopening_keeps_everything_and_continues_ids(tmp_path: Path) -> None:
    store = await open_store("", tmp_path)
    await store.write_events([ev("a", t=0), ev("b", t=1)], [ev("b", t=1)])
    await store.close()
    store = await open_store("", tmp_path)
    try:
        await store.write_events([ev("c", t=2)], [])
        events = (await store.history(HistoryQuery())).events
        assert [(e.uid, e.id) for e in events] == [("a", 1), ("b", 2), ("c", 3)]
        assert (await store.latest("b")) is not None
    finally:
        await store.close()


async def test_a_database_from_a_newer_accord_is_refused(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "x.db")
    await store.close()
    with sqlite3.connect(tmp_path / "x.db") as conn:
        conn.execute("INSERT INTO schema_migrations VALUES (999, '0999_future.sql')")
    with pytest.raises(StoreError, match="newer version"):
        await SqliteStore.open(tmp_path / "x.db")


async def test_an_unknown_database_url_says_what_is_accepted(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="sqlite:///FILE nor postgresql"):
        await open_store("mysql://x", tmp_path)
