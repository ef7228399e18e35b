"""Choose and open the backend named by ``database_url``."""

from __future__ import annotations

from pathlib import Path

from accord.store.contract import Store, StoreError

SQLITE_FILE = "accord.db"


async def open_store(database_url: str, data_dir: Path) -> Store:
    """``""`` or ``sqlite:`` → ``<data_dir>/accord.db``; ``sqlite:///path`` → that file;
    ``postgresql://…`` → PostgreSQL (needs the ``[postgres]`` extra)."""
    url = database_url.strip()
    if url in ("", "sqlite:", "sqlite://"):
        from accord.store.sqlite import SqliteStore

        return await SqliteStore.open(data_dir / SQLITE_FILE)
    if url.startswith("sqlite:///"):
        from accord.store.sqlite import SqliteStore

        return await SqliteStore.open(Path(url[len("sqlite:///") - 1 :]))
    if url.startswith(("postgresql://", "postgres://")):
        try:
            from accord.store.postgres import PostgresStore
        except ModuleNotFoundError as exc:
            if exc.name != "asyncpg":
                raise
            raise StoreError(
                "database_url names PostgreSQL but its driver, asyncpg, is not installed: "
                "pip install 'accord[postgres]'"
            ) from exc
        return await PostgresStore.open(url)
    raise StoreError(
        f"database_url {database_url!r} is neither sqlite:///FILE nor postgresql://…; "
        "leave it empty for the SQLite file in the data directory"
    )
