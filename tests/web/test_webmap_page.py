"""The map page updates by what changed (issue 15, the 2,000-track benchmark): a moved track
sends MapLibre its own features only, a symbol is drawn once per SIDC whatever the number of
tracks wearing it, and a track goes stale (faded, its leader gone) without a new message."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.conftest import ServerFactory
from tests.e2e.clients import CotClient
from tests.web.conftest import needs_chromium, shot_path
from tests.web.test_webapp import WAIT_MS, raw_event, rendered, signed_in_page, web_server

pytestmark = [needs_chromium, pytest.mark.timeout(120)]
STALE_AFTER_MS = 8000  # long enough to see it fresh first on a busy machine
MOVING = '<contact callsign="{}"/><track course="90" speed="5"/>'


def iso(ms: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + "Z"


async def stats(page: Any) -> dict[str, Any]:
    return dict(await page.evaluate("({...window.accord.stats})"))


async def test_a_moved_track_sends_only_its_own_features_and_symbols_are_drawn_once(
    browser: Any, make_server: ServerFactory, tmp_path: Any
) -> None:
    server = await web_server(make_server, tmp_path)
    page = await signed_in_page(browser, server)
    atak = await CotClient.connect(server.port("tcp"))
    for i in range(5):  # five of the same symbol, each with a course leader
        await atak.send(
            raw_event(f"SAME-{i}", "a-f-G-U-C", 48.0 + i / 100, 11.0, MOVING.format(f"S{i}"))
        )
    await page.evaluate("window.accord.map.jumpTo({center: [11.0, 48.02], zoom: 11})")
    await page.wait_for_function("window.accord.stats.shown >= 5", timeout=WAIT_MS)
    images = await page.evaluate("window.accord.map.listImages()")
    assert len([i for i in images if i.startswith("sym|")]) == 1  # milsymbol drew it once
    assert len([i for i in images if i.startswith("label|")]) == 5  # a label each
    before = await stats(page)
    await atak.send(raw_event("SAME-2", "a-f-G-U-C", 48.5, 11.0, MOVING.format("S2")))
    await page.wait_for_function(
        "(r) => window.accord.stats.renders > r && window.accord.items.get('SAME-2').lat > 48.4",
        arg=before["renders"],
        timeout=WAIT_MS,
    )
    await page.wait_for_function(
        "(r) => window.accord.stats.renders > r + 1", arg=before["renders"], timeout=WAIT_MS
    )
    after = await stats(page)
    assert after["changed"] - before["changed"] == 2  # its symbol and its leader, nothing else
    assert after["images"] == before["images"]  # nothing drawn again
    await page.evaluate("window.accord.map.jumpTo({center: [11.0, 48.5], zoom: 11})")
    await page.wait_for_function(
        "window.accord.map.querySourceFeatures('tracks').some(f => f.properties.uid === 'SAME-2')",
        timeout=WAIT_MS,
    )
    await page.screenshot(path=shot_path("moved-one"))


async def test_a_track_fades_when_stale_without_a_new_message(
    browser: Any, make_server: ServerFactory, tmp_path: Any
) -> None:
    server = await web_server(make_server, tmp_path)
    page = await signed_in_page(browser, server)
    atak = await CotClient.connect(server.port("tcp"))
    now = time.time() * 1000
    event = raw_event("FADING-1", "a-f-G-U-C", 48.3, 11.3, MOVING.format("FADE"))
    event = event.replace(b"2026-01-01T00:00:00Z", iso(now).encode())
    event = event.replace(b"2099-01-01T00:00:00Z", iso(now + STALE_AFTER_MS).encode())
    await atak.send(event)
    await page.evaluate("window.accord.map.jumpTo({center: [11.3, 48.3], zoom: 11})")
    await page.wait_for_function("window.accord.stats.shown >= 1", timeout=WAIT_MS)
    # drawn (the source's tiles are made asynchronously after the update), not yet stale
    await page.wait_for_function(
        "window.accord.map.querySourceFeatures('tracks')"
        ".some(f => f.properties.uid === 'FADING-1')",
        timeout=WAIT_MS,
    )
    tracks = await rendered(page, "tracks")
    assert [t["stale"] for t in tracks if t["uid"] == "FADING-1"] == [False]
    assert any(line["kind"] == "leader" for line in await rendered(page, "lines"))
    sent = await page.evaluate("window.accord.items.get('FADING-1').time")
    await page.wait_for_function(
        "window.accord.map.querySourceFeatures('tracks')"
        ".some(f => f.properties.uid === 'FADING-1' && f.properties.stale)",
        timeout=WAIT_MS,
    )
    # drawn faded, its leader gone, from the clock alone (no later report of it)
    assert not any(line["kind"] == "leader" for line in await rendered(page, "lines"))
    assert await page.evaluate("window.accord.items.get('FADING-1').time") == sent
    await page.screenshot(path=shot_path("stale-faded"))
