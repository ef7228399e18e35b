"""Every store test runs against every backend (DESIGN: one contract, trio's _check_streams).

PostgreSQL runs when ``TEST_POSTGRES_URL`` names a server where its user may create databases
(``scripts/test`` starts a throwaway one); each test gets a new, empty database there. Without
it the postgres tests are skipped locally, and fail under CI (``CI=true``): CI must never pass
by skipping them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from accord.store.contract import Store
from accord.store.opening import open_store

BACKENDS = ["sqlite", "postgres"]
POSTGRES_URL_VARIABLE = "TEST_POSTGRES_URL"  # not ACCORD_*: the config refuses unknown ones


def postgres_server_url() -> str:
    """The test server's URL, or skip (fail under CI) when there is none."""
    url = os.environ.get(POSTGRES_URL_VARIABLE, "")
    if not url:
        reason = (
            f"{POSTGRES_URL_VARIABLE} is unset, so the PostgreSQL backend is not tested: run "
            "scripts/test (it starts a throwaway server when PostgreSQL is installed) or "
            f"export {POSTGRES_URL_VARIABLE}=$(scripts/postgres start)"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}. CI must run these tests, not skip them", pytrace=False)
        pytest.skip(reason)
    return url


@asynccontextmanager
async def new_postgres_database() -> AsyncIterator[str]:
    """The URL of a new, empty database on the test server, dropped afterwards."""
    server = postgres_server_url()
    name = f"accord_test_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(server)
    try:
        # FILE_COPY (PostgreSQL 15+) copies the tiny template faster than WAL-logging it.
        strategy = " STRATEGY FILE_COPY" if admin.get_server_version().major >= 15 else ""
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE template0{strategy}')
    finally:
        await admin.close()
    try:
        yield urlunsplit(urlsplit(server)._replace(path=f"/{name}"))
    finally:
        admin = await asyncpg.connect(server)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "postgres":
        async with new_postgres_database() as url:
            opened = await open_store(url, tmp_path)
            try:
                yield opened
            finally:
                await opened.close()
    else:
        opened = await open_store("", tmp_path)
        try:
            yield opened
        finally:
            await opened.close()


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A new, empty database on the test server (for the postgres-only tests)."""
    async with new_postgres_database() as url:
        yield url
