"""Fixtures for the web app's tests: a real Accord, a user, and Debian's headless Chromium.

The browser is ``/usr/bin/chromium`` (``apt-get install chromium``; `.ci/run` installs it)
driven by Playwright, with software WebGL (SwiftShader). Without it these tests skip and say
so. Screenshots go to ``test-artifacts/web/`` (printed in the log).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher

from accord.domain.groups import Membership
from accord.identity.users import UserStore

CHROMIUM = os.environ.get("ACCORD_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "web"
CHEAP = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
CHROMIUM_ARGS = [
    "--use-gl=angle",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    "--ignore-gpu-blocklist",
    "--disable-dev-shm-usage",
]
PASSWORDS = {"alice": "correct horse", "rita": "battery staple"}
GROUPS = {"alice": ["Blue"], "rita": ["Red"]}


def have_chromium() -> bool:
    return Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is not None


needs_chromium = pytest.mark.skipif(
    not have_chromium(), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)"
)


def add_users(data_dir: Path) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    store = UserStore(data_dir, hasher=CHEAP)
    now = int(time.time() * 1000)
    for name, password in PASSWORDS.items():
        store.add(name, password, Membership.both(GROUPS[name]), now_ms=now)


def shot_path(name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    print(f"screenshot: {path}")
    return path


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    if not have_chromium():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            await b.close()
