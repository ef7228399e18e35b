"""Fixtures for the web app's tests: a real Accord, a user, and Debian's headless Chromium.

``web``: an Accord with the users alice (Blue) and rita (Red), plain TCP clients in Blue;
``signed_in(user)``: a page signed in with that user's password on 8446, the map ready;
:func:`cert_page`: a page holding a client certificate on 8443. Pages record their script
errors in ``page.errors`` and accept every dialog (confirm, prompt).

The browser is ``/usr/bin/chromium`` (``apt-get install chromium``; `.ci/run` installs it)
driven by Playwright, with software WebGL (SwiftShader). Without it these tests skip and say
so. Screenshots go to ``test-artifacts/web/`` (printed in the log).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher

from accord.domain.groups import Membership
from accord.identity.users import UserStore
from tests.conftest import Server, ServerFactory

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
WAIT_MS = 20_000  # what a page is given for anything it should show
HOSTILE = '<img src=x onerror="window.__xss=1">'


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


def esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;")


def raw_event(uid: str, type_: str, lat: float, lon: float, detail: str, *, ce: float = 5) -> bytes:
    """An event that never goes stale (2099), as a CoT client sends it."""
    return (
        f'<event version="2.0" uid="{uid}" type="{type_}" how="m-g" time="2026-01-01T00:00:00Z"'
        ' start="2026-01-01T00:00:00Z" stale="2099-01-01T00:00:00Z">'
        f'<point lat="{lat}" lon="{lon}" hae="100" ce="{ce}" le="9999999"/>'
        f"<detail>{detail}</detail></event>"
    ).encode()


async def web_server(make_server: ServerFactory, tmp_path: Path, **overrides: Any) -> Server:
    """An Accord with alice and rita; plain-TCP test clients are in Blue, alice's group."""
    add_users(tmp_path / "server0")  # make_server's first data dir
    overrides.setdefault("tcp_groups", ("Blue",))
    overrides.setdefault("revocation_check_s", 0.2)
    return await make_server(**overrides)


async def new_page(browser: Any, **context: Any) -> Any:
    """A page in a fresh context (its own cookies) that records script errors."""
    context.setdefault("viewport", {"width": 1280, "height": 800})
    ctx = await browser.new_context(
        ignore_https_errors=True,
        bypass_csp=True,  # wait_for_function evaluates strings; the page's own CSP forbids it
        **context,
    )
    page = await ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    page.errors = errors
    return page


async def signed_in_page(browser: Any, server: Server, user: str = "alice", **context: Any) -> Any:
    page = await new_page(browser, **context)
    await page.goto(f"https://127.0.0.1:{server.port('enroll')}/web/")
    await page.fill("input[name=username]", user)
    await page.fill("input[name=password]", PASSWORDS[user])
    await page.click("#signin-button")
    await page.wait_for_function(
        "window.accord && window.accord.ready && window.accord.stats.connected", timeout=WAIT_MS
    )
    return page


async def cert_page(browser: Any, server: Server, cert: Path, key: Path, **context: Any) -> Any:
    """The web app on 8443 in a browser holding that client certificate."""
    origin = f"https://127.0.0.1:{server.port('https')}"
    page = await new_page(
        browser,
        client_certificates=[{"origin": origin, "certPath": str(cert), "keyPath": str(key)}],
        **context,
    )
    await page.goto(f"{origin}/web/")
    await page.wait_for_function("window.accord && window.accord.ready", timeout=WAIT_MS)
    return page


async def item(page: Any, uid: str) -> Any:
    return await page.evaluate("(uid) => window.accord.items.get(uid) || null", uid)


async def rendered(page: Any, source: str) -> list[Any]:
    """The features the map has drawn from one of the app's sources."""
    return list(
        await page.evaluate(
            "(s) => window.accord.map.querySourceFeatures(s).map(f => f.properties)", source
        )
    )


@pytest.fixture
async def web(make_server: ServerFactory, tmp_path: Path) -> Server:
    return await web_server(make_server, tmp_path)


@pytest.fixture
def signed_in(browser: Any, web: Server) -> Callable[..., Awaitable[Any]]:
    """``await signed_in("alice")``: a page of that user on ``web``, signed in on 8446."""

    async def sign_in(user: str = "alice", **context: Any) -> Any:
        return await signed_in_page(browser, web, user, **context)

    return sign_in
