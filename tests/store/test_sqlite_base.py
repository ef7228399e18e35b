"""The SQLite plumbing: multi-row inserts come in a bounded set of statement sizes."""

from __future__ import annotations

import sqlite3

from accord.store.sqlite_base import _PARAMS_PER_INSERT, _chunk_sizes, _insert_many

WIDTH = 14  # as wide as a history row: 500 rows per statement at most
PER = _PARAMS_PER_INSERT // WIDTH


def test_chunk_sizes_cover_the_rows_in_full_statements_then_powers_of_two() -> None:
    assert _chunk_sizes(0, 500) == []
    assert _chunk_sizes(300, 500) == [256, 32, 8, 4]
    assert _chunk_sizes(1234, 500) == [500, 500, 128, 64, 32, 8, 2]
    seen: set[int] = set()
    for count in range(2001):
        sizes = _chunk_sizes(count, 500)
        assert sum(sizes) == count
        assert sizes == sorted(sizes, reverse=True)
        seen.update(sizes)
    assert seen == {500} | {1 << k for k in range(9)}  # 256 ... 1


def test_batches_of_every_size_reuse_a_few_statements_and_keep_every_row_in_order() -> None:
    # Python's sqlite3 caches the last 128 statement texts per connection, and a statement of
    # hundreds of rows holds about a megabyte of SQLite's memory: one text per batch size kept
    # tens of MiB after an overload (issue 13 §2). Batches of every size from 1 to 1,100 rows
    # must reuse a few statement sizes.
    conn = sqlite3.connect(":memory:", isolation_level=None)
    columns = ", ".join(f"c{i}" for i in range(WIDTH))
    conn.execute(f"CREATE TABLE t ({columns})")
    rows_per_statement: list[int] = []

    def traced(sql: str) -> None:
        if sql.startswith("INSERT"):
            rows_per_statement.append(sql.count("),(") + 1)

    conn.set_trace_callback(traced)
    expected = 0
    for batch in range(1, 1101):
        rows = [(expected + i, batch, *range(WIDTH - 2)) for i in range(batch)]
        _insert_many(conn, f"INSERT INTO t ({columns}) VALUES ", rows)
        expected += batch
    conn.set_trace_callback(None)
    assert set(rows_per_statement) <= {PER} | {1 << k for k in range(PER.bit_length())}
    assert len(set(rows_per_statement)) <= PER.bit_length() + 1
    assert sum(rows_per_statement) == expected
    ids = [row[0] for row in conn.execute("SELECT c0 FROM t ORDER BY rowid")]
    assert ids == list(range(expected))
