"""The PostgreSQL store's plumbing: its pool, connections and transactions, with asyncpg's
errors turned into :class:`~accord.store.contract.StoreError`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypeAlias

import asyncpg

from accord.store.contract import StoreError

# The server went away (or is going): worth saying so, rather than only what the driver says.
_CONNECTION_LOST = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.CannotConnectNowError,
)

Connection: TypeAlias = "asyncpg.pool.PoolConnectionProxy[asyncpg.Record]"


class PostgresConnections:
    """A pool of connections to one database."""

    def __init__(self, pool: asyncpg.Pool[asyncpg.Record], where: str) -> None:
        self._pool: asyncpg.Pool[asyncpg.Record] | None = pool
        self.where = where  # the URL without its password, for messages

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[Connection]:
        pool = self._pool
        if pool is None:
            raise StoreError("the store is closed")
        try:
            async with pool.acquire() as conn:
                yield conn
        except _CONNECTION_LOST as exc:
            raise StoreError(
                f"lost the connection to PostgreSQL at {self.where} ({exc}); check that the "
                "server is running"
            ) from exc
        except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise StoreError(f"PostgreSQL at {self.where}: {exc}") from exc

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Connection]:
        async with self._connection() as conn, conn.transaction():
            yield conn


def _count(status: str) -> int:
    """Rows affected, from a command tag such as ``DELETE 3``."""
    return int(status.rsplit(" ", 1)[-1])
