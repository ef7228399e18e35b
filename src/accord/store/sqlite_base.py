"""The SQLite store's plumbing: its two connections, each used from a thread of its own (see
:mod:`accord.store.sqlite` for why), transactions, and the batched insert every table uses."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from accord.store.contract import StoreError

T = TypeVar("T")

_PARAMS_PER_INSERT = 7_000  # well under SQLite's 32,766 bound parameters per statement


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


class SqliteConnections:
    """A writer connection and a reader connection, each in its own thread."""

    name = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer_pool = ThreadPoolExecutor(1, thread_name_prefix="accord-sqlite-w")
        self._reader_pool = ThreadPoolExecutor(1, thread_name_prefix="accord-sqlite-r")
        self._writer: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._next_id = 1  # the next history id (see write_events)

    async def close(self) -> None:
        for pool, conn in ((self._writer_pool, self._writer), (self._reader_pool, self._reader)):
            if conn is not None:
                await self._in(pool, conn.close)
            pool.shutdown(wait=True)
        self._writer = self._reader = None

    async def _in(self, pool: ThreadPoolExecutor, work: Callable[[], T]) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, work)
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite database {self.path}: {exc}") from exc

    def _write(self, work: Callable[[sqlite3.Connection], T]) -> Awaitable[T]:
        conn = self._writer
        if conn is None:
            raise StoreError("the store is closed")

        def transaction() -> T:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = work(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result

        return self._in(self._writer_pool, transaction)

    def _read(self, work: Callable[[sqlite3.Connection], T]) -> Awaitable[T]:
        conn = self._reader
        if conn is None:
            raise StoreError("the store is closed")
        return self._in(self._reader_pool, lambda: work(conn))


def _insert_many(
    conn: sqlite3.Connection, head: str, rows: Sequence[tuple[Any, ...]], tail: str = ""
) -> None:
    """Insert ``rows`` with as few statements as the parameter limit allows.

    One multi-row INSERT is one statement step: the thread releases the GIL for the whole
    of SQLite's work on it, where ``executemany`` would hand it back and forth per row
    (and wait for it each time the event loop is busy). The R*Tree follows by trigger."""
    if not rows:
        return
    width = len(rows[0])
    per = max(1, _PARAMS_PER_INSERT // width)
    one = "(" + ",".join("?" * width) + ")"
    for start in range(0, len(rows), per):
        chunk = rows[start : start + per]
        params = [value for row in chunk for value in row]
        conn.execute(head + ",".join([one] * len(chunk)) + tail, params)
