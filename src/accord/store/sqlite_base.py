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
    (and wait for it each time the event loop is busy). The R*Tree follows by trigger.

    Statements come in a few sizes only (:func:`_chunk_sizes`): Python's sqlite3 keeps the
    last 128 prepared statements of a connection, and a statement of hundreds of rows holds
    about a megabyte of SQLite's memory. With one statement text per batch size, an
    overload's batches of every size up to ~1,000 rows kept ~60 MiB in the writer thread
    after the load had gone (issue 13 §2); with powers of two it is a few statements per
    table, reused instead of prepared again."""
    if not rows:
        return
    width = len(rows[0])
    one = "(" + ",".join("?" * width) + ")"
    start = 0
    for size in _chunk_sizes(len(rows), max(1, _PARAMS_PER_INSERT // width)):
        chunk = rows[start : start + size]
        start += size
        params = [value for row in chunk for value in row]
        conn.execute(head + ",".join([one] * size) + tail, params)


def _chunk_sizes(count: int, per: int) -> list[int]:
    """Statement sizes for ``count`` rows, at most ``per`` each: as many full statements as
    fit, then the rest as powers of two, largest first (300 -> 256, 32, 8, 4). A table's
    statements are then at most ``per`` and the powers of two below it, whatever the
    batch sizes, at the cost of a handful of statements per batch instead of one."""
    sizes = [per] * (count // per)
    rest = count % per
    while rest:
        size = 1 << (rest.bit_length() - 1)
        sizes.append(size)
        rest -= size
    return sizes
