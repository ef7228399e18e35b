"""The history slider in a real headless Chromium: moving it draws what the signed-in user could
have seen at that moment (a track where it was then, nothing that came later, never another
group's item), and the end of the slider is the live picture again. Screenshots in
``test-artifacts/web/``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.conftest import Server
from tests.e2e.clients import CotClient, client_tls_context, sa
from tests.web.conftest import WAIT_MS, needs_chromium, shot_path

pytestmark = [needs_chromium, pytest.mark.timeout(120)]
SignedIn = Callable[..., Awaitable[Any]]

# Where each uid is drawn on the map now: [uid, lon, lat] of the tracks source's points.
DRAWN = """() => window.accord.map.querySourceFeatures('tracks')
  .filter(f => f.geometry.type === 'Point' && f.properties.uid)
  .map(f => [f.properties.uid, f.geometry.coordinates[0], f.geometry.coordinates[1]])"""


async def in_history(page: Any, uid: str, count: int) -> None:
    """Wait until the user's history (what the page's slider loads) holds ``count`` reports of
    ``uid``."""
    async with asyncio.timeout(WAIT_MS / 1000):
        while True:
            uids = await page.evaluate(
                """() => fetch('/web/history?since=15m', {credentials: 'same-origin'})
                  .then(r => r.ok ? r.json() : {items: []}).then(b => b.items.map(i => i.uid))"""
            )
            if uids.count(uid) >= count:
                return
            await asyncio.sleep(0.1)


async def slide_to(page: Any, value: int) -> None:
    await page.evaluate(
        """(v) => { const s = document.getElementById('history-slider');
                   s.value = String(v); s.dispatchEvent(new Event('input')); }""",
        value,
    )


async def drawn(page: Any) -> dict[str, tuple[float, float]]:
    await page.wait_for_timeout(300)  # MapLibre applies setData on its next frame
    return {uid: (lat, lon) for uid, lon, lat in await page.evaluate(DRAWN)}


async def test_the_history_slider_plays_back_what_the_user_could_have_seen(
    web: Server, signed_in: SignedIn
) -> None:
    server = web
    blue = await CotClient.connect(server.port("tcp"))  # plain TCP is Blue, alice's group
    cert, key = server.client_cert("red-device", group="Red")
    red = await CotClient.connect(
        server.port("tls"), tls=client_tls_context(cert, key, server.pki.ca_cert)
    )
    page = await signed_in("alice")
    await page.evaluate("window.accord.map.jumpTo({center: [11.6, 48.2], zoom: 8})")
    await blue.send(sa("BLUE-H", "HOTEL", lat=48.10, lon=11.50))
    await red.send(sa("RED-H", "ROMEO", lat=48.15, lon=11.55))
    await in_history(page, "BLUE-H", 1)
    first = await page.evaluate("Date.now()")
    await page.wait_for_function(f"Date.now() > {first} + 300", timeout=WAIT_MS)
    await blue.send(sa("BLUE-H", "HOTEL", lat=48.30, lon=11.70))  # it moved
    late = await CotClient.connect(server.port("tcp"))
    await late.send(sa("BLUE-LATE", "LIMA", lat=48.20, lon=11.60))  # and someone came later
    await in_history(page, "BLUE-LATE", 1)
    await in_history(page, "BLUE-H", 2)

    await page.click("#history-toggle")
    await page.select_option("#history-span", "15m")
    await slide_to(page, 0)  # off the live end: the span's history is loaded
    await page.wait_for_function("window.accord.replay !== null", timeout=WAIT_MS)
    replay = await page.evaluate(
        """() => { const r = window.accord.replay;
                   const hotel = r.events.filter(e => e.uid === 'BLUE-H').map(e => e.time);
                   return {start: r.start, end: r.end, hotel,
                           uids: [...new Set(r.events.map(e => e.uid))]}; }"""
    )
    assert "RED-H" not in replay["uids"]  # the server never handed Red's history to alice
    t1, t2 = replay["hotel"][0], replay["hotel"][-1]
    assert t2 > t1
    between = int(1000 * ((t1 + t2) / 2 - replay["start"]) / (replay["end"] - replay["start"]))
    await slide_to(page, between)
    await page.wait_for_function(
        "document.getElementById('history').classList.contains('replaying')", timeout=WAIT_MS
    )
    then = await drawn(page)
    assert "BLUE-H" in then
    assert then["BLUE-H"][0] == pytest.approx(48.10, abs=1e-3)  # where it was at that time
    assert "BLUE-LATE" not in then  # not yet there
    assert "RED-H" not in then
    assert (await page.text_content("#history-time") or "").startswith("20")  # a UTC time
    await page.screenshot(path=shot_path("history-between"))

    await slide_to(page, 999)
    later = await drawn(page)
    assert later["BLUE-H"][0] == pytest.approx(48.30, abs=1e-3)
    assert "BLUE-LATE" in later
    assert "RED-H" not in later

    await slide_to(page, 1000)  # the end of the slider is live again
    await page.wait_for_function(
        "!document.getElementById('history').classList.contains('replaying')"
        " && window.accord.replay === null",
        timeout=WAIT_MS,
    )
    assert await page.text_content("#history-time") == "live"
    live = await drawn(page)
    assert {"BLUE-H", "BLUE-LATE"} <= set(live)
    assert "RED-H" not in live
    await page.screenshot(path=shot_path("history-live"))
    assert page.errors == []
