"""Package bytes through the shared PostgreSQL copy (two blob directories, one database)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import asyncpg
import pytest

from accord.store.blobs import FLUSH_BYTES, Blobs
from accord.store.contract import StoreError
from accord.store.opening import open_store
from accord.store.postgres import PostgresStore
from tests.store.conftest import postgres_url

__all__ = ["postgres_url"]  # the fixture


async def _put(blobs: Blobs, data: bytes) -> str:
    async with await blobs.writer(len(data)) as writer:
        await writer.write(data)
        return await writer.finish()


async def test_a_blob_written_on_one_node_is_read_on_another_once(
    postgres_url: str, tmp_path: Path
) -> None:
    store = await open_store(postgres_url, tmp_path)
    try:
        assert isinstance(store, PostgresStore)
        a = await Blobs.open(tmp_path / "a", store)
        b = await Blobs.open(tmp_path / "b", store)
        data = bytes(range(256)) * (FLUSH_BYTES // 256 * 2 + 3)  # three chunks
        digest = await _put(a, data)
        assert digest == hashlib.sha256(data).hexdigest()
        assert await b.size(digest) == len(data)  # from the database: no file on b yet
        assert not b.path(digest).exists()
        reader = await b.reader(digest)
        assert reader is not None
        try:
            got = b"".join([c async for c in reader.chunks()])
        finally:
            await reader.close()
        assert got == data
        assert b.path(digest).exists()  # kept as b's own file
        again = await b.reader(digest)
        assert again is not None
        await again.close()
        assert b.fetched == 1  # the second read was local
        # The same bytes uploaded again on b: stored once in the database.
        assert await _put(b, data) == digest
        assert await store.blob_size(digest) == len(data)
        # Deleted on b: gone from the database, so a third node has nothing to read.
        assert await b.delete(digest)
        c = await Blobs.open(tmp_path / "c", store)
        assert await c.reader(digest) is None
        assert await c.size(digest) is None
        own = await a.reader(digest)  # a's own file is a's (its metadata decides)
        assert own is not None
        await own.close()
    finally:
        await store.close()


async def test_a_damaged_shared_copy_is_a_store_error_not_bytes(
    postgres_url: str, tmp_path: Path
) -> None:
    store = await open_store(postgres_url, tmp_path)
    try:
        assert isinstance(store, PostgresStore)
        a = await Blobs.open(tmp_path / "a", store)
        digest = await _put(a, b"the real bytes" * 1000)
        conn = await asyncpg.connect(postgres_url)
        try:
            await conn.execute("UPDATE shared_blob_chunks SET data = $1", b"x" * 14_000)
        finally:
            await conn.close()
        b = await Blobs.open(tmp_path / "b", store)
        with pytest.raises(StoreError, match="damaged"):
            await b.reader(digest)
        assert not b.path(digest).exists()
        assert list((tmp_path / "b").rglob("*.part")) == []  # nothing half-written left
    finally:
        await store.close()
