"""The PostgreSQL store's copy of data package bytes (``migrations/postgres/0005``), for
nodes of one organisation sharing the database (see ``accord.store.blobs.SharedBlobs``).

A blob is written in one transaction (its row and every chunk), so a reader never sees part
of one; chunks are read one query at a time, so a large blob is never held in memory whole.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from accord.store.postgres_base import PostgresConnections, _count


class PostgresBlobs(PostgresConnections):
    async def put_blob(self, hash: str, size: int, chunks: AsyncIterator[bytes]) -> bool:
        """Store the bytes of ``hash`` (``size`` of them); False when already stored."""
        async with self._transaction() as conn:
            status = await conn.execute(
                "INSERT INTO shared_blobs (hash, size) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                hash,
                size,
            )
            if not _count(status):
                return False
            seq = 0
            async for data in chunks:
                await conn.execute(
                    "INSERT INTO shared_blob_chunks (hash, seq, data) VALUES ($1, $2, $3)",
                    hash,
                    seq,
                    data,
                )
                seq += 1
            return True

    async def blob_size(self, hash: str) -> int | None:
        async with self._connection() as conn:
            size = await conn.fetchval("SELECT size FROM shared_blobs WHERE hash = $1", hash)
        return None if size is None else int(size)

    async def blob_chunks(self, hash: str) -> AsyncIterator[bytes]:
        """The stored bytes of ``hash`` in order (nothing when there is no such blob)."""
        seq = 0
        while True:
            async with self._connection() as conn:
                data = await conn.fetchval(
                    "SELECT data FROM shared_blob_chunks WHERE hash = $1 AND seq = $2", hash, seq
                )
            if data is None:
                return
            yield bytes(data)
            seq += 1

    async def delete_blob(self, hash: str) -> bool:
        async with self._transaction() as conn:
            status = await conn.execute("DELETE FROM shared_blobs WHERE hash = $1", hash)
        return _count(status) > 0
