"""What only the PostgreSQL backend has: a server to reach, a schema shared by several servers."""

from __future__ import annotations

import asyncio
import socket
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from accord.store.contract import StoreError
from accord.store.migrate import migrations
from accord.store.opening import open_store
from accord.store.postgres import PostgresStore, redact
from accord.store.records import HistoryQuery
from tests.store.test_contract import ev
from tests.waiting import wait_until


async def test_reopening_keeps_everything_and_continues_ids(
    postgres_url: str, tmp_path: Path
) -> None:
    store = await open_store(postgres_url, tmp_path)
    await store.write_events([ev("a", t=0), ev("b", t=1)], [ev("b", t=1)])
    await store.close()
    store = await open_store(postgres_url, tmp_path)
    try:
        await store.write_events([ev("c", t=2)], [])
        events = (await store.history(HistoryQuery())).events
        assert [e.uid for e in events] == ["a", "b", "c"]
        assert events[0].id < events[1].id < events[2].id
        assert (await store.latest("b")) is not None
    finally:
        await store.close()


async def test_postgres_scheme_alias_opens_the_same_backend(
    postgres_url: str, tmp_path: Path
) -> None:
    store = await open_store(postgres_url.replace("postgresql://", "postgres://", 1), tmp_path)
    try:
        assert store.name == "postgresql"
    finally:
        await store.close()


async def applied_migrations(url: str) -> list[int]:
    conn = await asyncpg.connect(url)
    try:
        return [r[0] for r in await conn.fetch("SELECT number FROM schema_migrations ORDER BY 1")]
    finally:
        await conn.close()


async def test_migrations_run_once_even_when_two_servers_start_together(
    postgres_url: str,
) -> None:
    # Without the advisory lock both would create the tables and one would fail.
    first, second = await asyncio.gather(
        PostgresStore.open(postgres_url), PostgresStore.open(postgres_url)
    )
    await first.close()
    await second.close()
    third = await PostgresStore.open(postgres_url)  # nothing left to apply: no error
    await third.close()
    assert await applied_migrations(postgres_url) == [m.number for m in migrations("postgres")]


async def test_a_database_from_a_newer_accord_is_refused(postgres_url: str) -> None:
    store = await PostgresStore.open(postgres_url)
    await store.close()
    conn = await asyncpg.connect(postgres_url)
    try:
        await conn.execute("INSERT INTO schema_migrations VALUES (999, '0999_future.sql')")
    finally:
        await conn.close()
    with pytest.raises(StoreError, match="newer version"):
        await PostgresStore.open(postgres_url)


async def test_a_user_who_may_not_create_tables_is_told_what_to_grant(postgres_url: str) -> None:
    role = f"accord_limited_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(postgres_url)
    try:
        await admin.execute(f"CREATE ROLE {role} LOGIN")
        await admin.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        parts = urlsplit(postgres_url)
        as_role = parts._replace(netloc=f"{role}@{parts.netloc.rpartition('@')[2]}")
        with pytest.raises(StoreError, match=r"may not create Accord's tables.*grant this user"):
            await PostgresStore.open(urlunsplit(as_role))
    finally:
        await admin.execute(f"DROP OWNED BY {role}")
        await admin.execute(f"DROP ROLE {role}")
        await admin.close()


async def test_a_connection_the_server_dropped_is_replaced(postgres_url: str) -> None:
    store = await PostgresStore.open(postgres_url)
    try:
        await store.write_events([ev("a")], [])
        pool = store._pool
        assert pool is not None
        admin = await asyncpg.connect(postgres_url)
        try:
            dropped = {
                row["pid"]
                for row in await admin.fetch(
                    "SELECT pg_terminate_backend(pid), pid FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            }
            assert dropped

            def held() -> set[int]:  # the server pids of the pool's open connections
                return {
                    h._con.get_server_pid()
                    for h in pool._holders
                    if h._con is not None and not h._con.is_closed()
                }

            # The pool may open a fresh connection meanwhile; what matters is that it holds
            # none of those the server dropped.
            await wait_until(
                lambda: not (held() & dropped), what="the client saw its connections close"
            )
        finally:
            await admin.close()
        assert [e.uid for e in (await store.history(HistoryQuery())).events] == ["a"]
    finally:
        await store.close()


def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def test_an_unreachable_server_says_where_and_what_to_check() -> None:
    url = f"postgresql://accord:s3cret@127.0.0.1:{unused_port()}/accord"
    with pytest.raises(StoreError) as caught:
        await PostgresStore.open(url)
    message = str(caught.value)
    assert "cannot connect to PostgreSQL at postgresql://accord:***@127.0.0.1:" in message
    assert "server is running" in message
    assert "--database-url" in message
    assert "s3cret" not in message


async def test_a_missing_database_says_to_create_it(postgres_url: str) -> None:
    missing = postgres_url.rsplit("/", 1)[0] + "/accord_no_such_database"
    with pytest.raises(StoreError, match='"accord_no_such_database" does not exist; create it'):
        await PostgresStore.open(missing)


async def test_a_malformed_url_says_how_to_write_one() -> None:
    with pytest.raises(StoreError, match="postgresql://USER:PASSWORD@HOST:PORT/DATABASE"):
        await PostgresStore.open("postgresql://accord:pw@127.0.0.1:notaport/accord")


async def test_a_closed_store_refuses_work(postgres_url: str) -> None:
    store = await PostgresStore.open(postgres_url)
    await store.close()
    with pytest.raises(StoreError, match="closed"):
        await store.history(HistoryQuery())


async def test_without_asyncpg_the_error_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delitem(sys.modules, "accord.store.postgres")
    monkeypatch.setitem(sys.modules, "asyncpg", None)
    with pytest.raises(StoreError, match=r"pip install 'accord\[postgres\]'"):
        await open_store("postgresql://accord@127.0.0.1/accord", tmp_path)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:pw@h:5432/db", "postgresql://u:***@h:5432/db"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        (
            "postgresql://h/db?password=pw&sslmode=require",
            "postgresql://h/db?password=***&sslmode=require",
        ),
        ("postgresql://[::1/db", "(a postgresql:// URL that does not parse)"),
    ],
)
def test_messages_never_show_the_password(url: str, shown: str) -> None:
    assert redact(url) == shown
