"""Every store test runs against every backend (DESIGN: one contract, trio's _check_streams)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from accord.store.contract import Store
from accord.store.opening import open_store

BACKENDS = ["sqlite"]


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    opened = await open_store("", tmp_path)
    try:
        yield opened
    finally:
        await opened.close()
