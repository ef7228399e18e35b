"""The SQLite store's federation tables: the sharing ledger and the store-and-forward outbox."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import TypeVar

from accord.store.records import (
    LEDGER_PAGE,
    OUTBOX_PAGE,
    LedgerCheckpoint,
    LedgerCosignature,
    LedgerEntry,
    LedgerReceipt,
    OutboxRow,
)
from accord.store.sqlite_base import SqliteConnections, _insert_many

T = TypeVar("T")


class SqliteFederation(SqliteConnections):
    # -- sharing ledger --------------------------------------------------------------------------
    async def ledger_append(self, entries: Sequence[LedgerEntry]) -> None:
        rows = [(e.partner, e.direction, e.seq, e.data, e.leaf) for e in entries]

        def work(conn: sqlite3.Connection) -> None:
            _insert_many(
                conn,
                "INSERT INTO ledger_entries (partner, direction, idx, data, leaf) VALUES ",
                rows,
            )

        await self._write(work)

    async def ledger_entries(
        self, partner: str, direction: str, start: int = 0, limit: int = LEDGER_PAGE
    ) -> list[LedgerEntry]:
        def work(conn: sqlite3.Connection) -> list[LedgerEntry]:
            rows = conn.execute(
                # CAST: a value edited by hand into TEXT still comes back as the bytes it is
                "SELECT idx, CAST(data AS BLOB), CAST(leaf AS BLOB) FROM ledger_entries "
                "WHERE partner = ? AND direction = ? "
                "AND idx >= ? ORDER BY idx LIMIT ?",
                (partner, direction, start, limit),
            )
            return [LedgerEntry(partner, direction, i, bytes(d), bytes(h)) for i, d, h in rows]

        return await self._read(work)

    async def ledger_size(self, partner: str, direction: str) -> int:
        def work(conn: sqlite3.Connection) -> int:
            row = conn.execute(
                "SELECT max(idx) FROM ledger_entries WHERE partner = ? AND direction = ?",
                (partner, direction),
            ).fetchone()
            return 0 if row[0] is None else int(row[0]) + 1

        return await self._read(work)

    async def ledger_logs(self) -> list[tuple[str, str]]:
        def work(conn: sqlite3.Connection) -> list[tuple[str, str]]:
            rows = conn.execute(
                "SELECT DISTINCT partner, direction FROM ledger_entries UNION "
                "SELECT DISTINCT partner, direction FROM ledger_checkpoints ORDER BY 1, 2"
            )
            return [(p, d) for p, d in rows]

        return await self._read(work)

    async def add_ledger_checkpoint(self, checkpoint: LedgerCheckpoint) -> bool:
        def work(conn: sqlite3.Connection) -> bool:
            return (
                conn.execute(
                    "INSERT INTO ledger_checkpoints VALUES (?,?,?,?) ON CONFLICT DO NOTHING",
                    tuple(checkpoint),
                ).rowcount
                > 0
            )

        return await self._write(work)

    async def ledger_checkpoints(self, partner: str, direction: str) -> list[LedgerCheckpoint]:
        def work(conn: sqlite3.Connection) -> list[LedgerCheckpoint]:
            rows = conn.execute(
                "SELECT size, note FROM ledger_checkpoints WHERE partner = ? AND direction = ? "
                "ORDER BY size",
                (partner, direction),
            )
            return [LedgerCheckpoint(partner, direction, n, bytes(note)) for n, note in rows]

        return await self._read(work)

    async def add_ledger_cosignature(self, cosignature: LedgerCosignature) -> None:
        def work(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO ledger_cosignatures VALUES (?,?,?,?) ON CONFLICT DO NOTHING",
                tuple(cosignature),
            )

        await self._write(work)

    async def ledger_cosignatures(self, partner: str, direction: str) -> list[LedgerCosignature]:
        def work(conn: sqlite3.Connection) -> list[LedgerCosignature]:
            rows = conn.execute(
                "SELECT size, line FROM ledger_cosignatures WHERE partner = ? AND direction = ? "
                "ORDER BY size, line",
                (partner, direction),
            )
            return [LedgerCosignature(partner, direction, n, line) for n, line in rows]

        return await self._read(work)

    async def add_ledger_receipt(self, receipt: LedgerReceipt) -> bool:
        def work(conn: sqlite3.Connection) -> bool:
            return (
                conn.execute(
                    "INSERT INTO ledger_receipts VALUES (?,?,?,?) ON CONFLICT DO NOTHING",
                    tuple(receipt),
                ).rowcount
                > 0
            )

        return await self._write(work)

    async def ledger_receipts(self, partner: str, direction: str) -> list[LedgerReceipt]:
        def work(conn: sqlite3.Connection) -> list[LedgerReceipt]:
            rows = conn.execute(
                "SELECT idx, note FROM ledger_receipts WHERE partner = ? AND direction = ? "
                "ORDER BY idx",
                (partner, direction),
            )
            return [LedgerReceipt(partner, direction, i, bytes(note)) for i, note in rows]

        return await self._read(work)

    async def ledger_receipted(self, partner: str, direction: str) -> int:
        def work(conn: sqlite3.Connection) -> int:
            row = conn.execute(
                "SELECT MAX(idx) FROM ledger_receipts WHERE partner = ? AND direction = ?",
                (partner, direction),
            ).fetchone()
            return 0 if row is None or row[0] is None else int(row[0]) + 1

        return await self._read(work)

    # -- federation store and forward ------------------------------------------------------------
    async def outbox_append(self, rows: Sequence[OutboxRow]) -> None:
        values = [tuple(r) for r in rows]

        def work(conn: sqlite3.Connection) -> None:
            _insert_many(
                conn, "INSERT INTO outbox (partner, seq, frame, created_ms) VALUES ", values
            )

        await self._write(work)

    async def outbox_read(
        self, partner: str, after: int = 0, limit: int = OUTBOX_PAGE
    ) -> list[OutboxRow]:
        def work(conn: sqlite3.Connection) -> list[OutboxRow]:
            rows = conn.execute(
                "SELECT seq, CAST(frame AS BLOB), created_ms FROM outbox "
                "WHERE partner = ? AND seq > ? ORDER BY seq LIMIT ?",
                (partner, after, limit),
            )
            return [OutboxRow(partner, n, bytes(f), c) for n, f, c in rows]

        return await self._read(work)

    async def outbox_delete(self, partner: str, through: int) -> int:
        def work(conn: sqlite3.Connection) -> int:
            return conn.execute(
                "DELETE FROM outbox WHERE partner = ? AND seq <= ?", (partner, through)
            ).rowcount

        return await self._write(work)

    async def outbox_count(self, partner: str) -> int:
        def work(conn: sqlite3.Connection) -> int:
            row = conn.execute("SELECT count(*) FROM outbox WHERE partner = ?", (partner,))
            return int(row.fetchone()[0])

        return await self._read(work)

    async def link_mark(self, partner: str, kind: str) -> int:
        def work(conn: sqlite3.Connection) -> int:
            row = conn.execute(
                "SELECT seq FROM link_marks WHERE partner = ? AND kind = ?", (partner, kind)
            ).fetchone()
            return 0 if row is None else int(row[0])

        return await self._read(work)

    async def set_link_mark(self, partner: str, kind: str, seq: int) -> None:
        def work(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO link_marks VALUES (?, ?, ?) ON CONFLICT (partner, kind) "
                "DO UPDATE SET seq = max(seq, excluded.seq)",
                (partner, kind, seq),
            )

        await self._write(work)
