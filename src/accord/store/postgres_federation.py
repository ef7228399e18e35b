"""The PostgreSQL store's federation tables: the sharing ledger and the store-and-forward
outbox."""

from __future__ import annotations

from collections.abc import Sequence

from accord.store.postgres_base import PostgresConnections, _count
from accord.store.records import (
    LEDGER_PAGE,
    OUTBOX_PAGE,
    LedgerCheckpoint,
    LedgerCosignature,
    LedgerEntry,
    LedgerReceipt,
    OutboxRow,
)


class PostgresFederation(PostgresConnections):
    # -- sharing ledger --------------------------------------------------------------------------
    async def ledger_append(self, entries: Sequence[LedgerEntry]) -> None:
        if not entries:
            return
        async with self._transaction() as conn:
            await conn.copy_records_to_table(
                "ledger_entries",
                records=[(e.partner, e.direction, e.seq, e.data, e.leaf) for e in entries],
                columns=("partner", "direction", "idx", "data", "leaf"),
            )

    async def ledger_entries(
        self, partner: str, direction: str, start: int = 0, limit: int = LEDGER_PAGE
    ) -> list[LedgerEntry]:
        async with self._connection() as conn:
            rows = await conn.fetch(
                "SELECT idx, data, leaf FROM ledger_entries WHERE partner = $1 AND "
                "direction = $2 AND idx >= $3 ORDER BY idx LIMIT $4",
                partner,
                direction,
                start,
                limit,
            )
        return [LedgerEntry(partner, direction, i, d, h) for i, d, h in rows]

    async def ledger_size(self, partner: str, direction: str) -> int:
        async with self._connection() as conn:
            top = await conn.fetchval(
                "SELECT max(idx) FROM ledger_entries WHERE partner = $1 AND direction = $2",
                partner,
                direction,
            )
        return 0 if top is None else int(top) + 1

    async def ledger_logs(self) -> list[tuple[str, str]]:
        async with self._connection() as conn:
            rows = await conn.fetch(
                "SELECT DISTINCT partner, direction FROM ledger_entries UNION "
                "SELECT DISTINCT partner, direction FROM ledger_checkpoints ORDER BY 1, 2"
            )
        return [(p, d) for p, d in rows]

    async def add_ledger_checkpoint(self, checkpoint: LedgerCheckpoint) -> bool:
        async with self._transaction() as conn:
            status = await conn.execute(
                "INSERT INTO ledger_checkpoints VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                *checkpoint,
            )
        return _count(status) > 0

    async def ledger_checkpoints(self, partner: str, direction: str) -> list[LedgerCheckpoint]:
        async with self._connection() as conn:
            rows = await conn.fetch(
                "SELECT size, note FROM ledger_checkpoints WHERE partner = $1 AND "
                "direction = $2 ORDER BY size",
                partner,
                direction,
            )
        return [LedgerCheckpoint(partner, direction, n, note) for n, note in rows]

    async def add_ledger_cosignature(self, cosignature: LedgerCosignature) -> None:
        async with self._transaction() as conn:
            await conn.execute(
                "INSERT INTO ledger_cosignatures VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                *cosignature,
            )

    async def ledger_cosignatures(self, partner: str, direction: str) -> list[LedgerCosignature]:
        async with self._connection() as conn:
            rows = await conn.fetch(
                "SELECT size, line FROM ledger_cosignatures WHERE partner = $1 AND "
                "direction = $2 ORDER BY size, line",
                partner,
                direction,
            )
        return [LedgerCosignature(partner, direction, n, line) for n, line in rows]

    async def add_ledger_receipt(self, receipt: LedgerReceipt) -> bool:
        async with self._transaction() as conn:
            status = await conn.execute(
                "INSERT INTO ledger_receipts VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                *receipt,
            )
        return _count(status) > 0

    async def ledger_receipts(self, partner: str, direction: str) -> list[LedgerReceipt]:
        async with self._connection() as conn:
            rows = await conn.fetch(
                "SELECT idx, note FROM ledger_receipts WHERE partner = $1 AND direction = $2 "
                "ORDER BY idx",
                partner,
                direction,
            )
        return [LedgerReceipt(partner, direction, i, note) for i, note in rows]

    async def ledger_receipted(self, partner: str, direction: str) -> int:
        async with self._connection() as conn:
            top = await conn.fetchval(
                "SELECT MAX(idx) FROM ledger_receipts WHERE partner = $1 AND direction = $2",
                partner,
                direction,
            )
        return 0 if top is None else int(top) + 1

    # -- federation store and forward ------------------------------------------------------------
    async def outbox_append(self, rows: Sequence[OutboxRow]) -> None:
        if not rows:
            return
        async with self._transaction() as conn:
            await conn.copy_records_to_table(
                "outbox",
                records=[tuple(r) for r in rows],
                columns=("partner", "seq", "frame", "created_ms"),
            )

    async def outbox_read(
        self, partner: str, after: int = 0, limit: int = OUTBOX_PAGE
    ) -> list[OutboxRow]:
        async with self._connection() as conn:
            rows = await conn.fetch(
                "SELECT seq, frame, created_ms FROM outbox WHERE partner = $1 AND seq > $2 "
                "ORDER BY seq LIMIT $3",
                partner,
                after,
                limit,
            )
        return [OutboxRow(partner, n, f, c) for n, f, c in rows]

    async def outbox_delete(self, partner: str, through: int) -> int:
        async with self._transaction() as conn:
            status = await conn.execute(
                "DELETE FROM outbox WHERE partner = $1 AND seq <= $2", partner, through
            )
        return _count(status)

    async def outbox_count(self, partner: str) -> int:
        async with self._connection() as conn:
            n = await conn.fetchval("SELECT count(*) FROM outbox WHERE partner = $1", partner)
        return int(n)

    async def link_mark(self, partner: str, kind: str) -> int:
        async with self._connection() as conn:
            n = await conn.fetchval(
                "SELECT seq FROM link_marks WHERE partner = $1 AND kind = $2", partner, kind
            )
        return 0 if n is None else int(n)

    async def set_link_mark(self, partner: str, kind: str, seq: int) -> None:
        async with self._transaction() as conn:
            await conn.execute(
                "INSERT INTO link_marks VALUES ($1, $2, $3) ON CONFLICT (partner, kind) "
                "DO UPDATE SET seq = greatest(link_marks.seq, excluded.seq)",
                partner,
                kind,
                seq,
            )
