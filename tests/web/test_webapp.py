"""The web app in a real headless Chromium against a real Accord (issue 15).

Sign in with a password on the enrollment port (8446), tracks appear and move, a drone's
sensor footprint is drawn at its range, a partner item shows its precision circle and the
policy rule on hover, chat goes both ways with an ATAK client (pytak), hostile strings never
become markup, and a browser with a client certificate gets the map on the HTTPS port.
Screenshots: ``test-artifacts/web/`` (each path is printed).
"""

from __future__ import annotations

import asyncio
import configparser
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from accord.cot.xml import decode_xml, encode_xml
from tests.conftest import Server
from tests.e2e.clients import CotClient, sa
from tests.web.conftest import (  # noqa: F401 (esc, web_server, signed_in_page: imported from here)
    HOSTILE,
    WAIT_MS,
    cert_page,
    esc,
    item,
    needs_chromium,
    raw_event,
    rendered,
    shot_path,
    signed_in_page,
    web_server,
)

pytak = pytest.importorskip("pytak")
pytestmark = [needs_chromium, pytest.mark.timeout(120)]
SignedIn = Callable[..., Awaitable[Any]]


async def test_sign_in_and_tracks_appear_and_move(web: Server, signed_in: SignedIn) -> None:
    server, page = web, await signed_in()
    atak = await CotClient.connect(server.port("tcp"))
    await atak.send(sa("ANDROID-T1", "ALPHA", lat=48.10, lon=11.50))
    await page.wait_for_function("window.accord.items.has('ANDROID-T1')", timeout=WAIT_MS)
    await page.evaluate("window.accord.map.jumpTo({center: [11.5, 48.1], zoom: 9})")
    await page.wait_for_function("window.accord.stats.shown >= 1", timeout=WAIT_MS)
    await page.screenshot(path=shot_path("track-before"))
    await atak.send(sa("ANDROID-T1", "ALPHA", lat=48.12, lon=11.55))
    await page.wait_for_function(
        "window.accord.items.get('ANDROID-T1').lat > 48.11", timeout=WAIT_MS
    )
    await page.wait_for_timeout(600)  # one render interval
    tracks = await rendered(page, "tracks")
    assert any(t["uid"] == "ANDROID-T1" for t in tracks)
    await page.screenshot(path=shot_path("track-moved"))
    assert page.errors == []


async def test_a_drone_footprint_aim_line_and_telemetry_are_drawn(
    web: Server, signed_in: SignedIn
) -> None:
    server, page = web, await signed_in()
    feed = await CotClient.connect(server.port("tcp"))
    drone = (
        '<contact callsign="HAWK-1"/><track course="90" speed="15"/>'
        '<sensor elevation="-30" range="3000" azimuth="60" fov="40" model="EO"/>'
        '<__video url="rtsp://10.1.1.1:8554/hawk"/><status battery="64"/>'
        '<_radio rssi="100" gps="true"/><remarks>armed; battery 64 %</remarks>'
    )
    await feed.send(raw_event("DRONE-1", "a-f-A-M-H-Q", 48.0, 11.0, drone))
    spi = '<contact callsign="HAWK-1.SPI1"/><link uid="DRONE-1" type="a-f-A" relation="p-p"/>'
    await feed.send(raw_event("DRONE-1.SPI1", "b-m-p-s-p-i", 48.012, 11.02, spi, ce=9999999))
    await page.wait_for_function("window.accord.items.has('DRONE-1.SPI1')", timeout=WAIT_MS)
    await page.evaluate("window.accord.map.jumpTo({center: [11.02, 48.01], zoom: 12.5})")
    await page.wait_for_function(
        "window.accord.map.querySourceFeatures('footprints').length > 0", timeout=WAIT_MS
    )
    drone_item = await item(page, "DRONE-1")
    assert drone_item["sensor"]["range"] == 3000
    assert drone_item["sensor"]["azimuth"] == 60
    lines = await rendered(page, "lines")
    assert {"aim", "leader"} <= {line["kind"] for line in lines}
    await page.evaluate("window.accord.selected = 'DRONE-1'")
    await page.wait_for_function(
        "document.getElementById('panel-fields').textContent.includes('64 %')", timeout=WAIT_MS
    )
    panel = await page.text_content("#panel-fields")
    assert "rtsp://10.1.1.1:8554/hawk" in panel
    assert "3000 m" in panel
    await page.screenshot(path=shot_path("drone-footprint"))


async def test_a_partner_item_shows_its_precision_circle_and_rule(
    web: Server, signed_in: SignedIn
) -> None:
    server, page = web, await signed_in()
    partner = await CotClient.connect(server.port("tcp"))
    detail = (
        '<contact callsign="NORTH-7"/>'
        '<__release policy="coarse" rule="blur-2km" partner="north" version="3"'
        ' precision_m="2000"/>'
    )
    await partner.send(raw_event("NORTH-7", "a-f-G-U-C", 48.3, 11.3, detail, ce=2000))
    await page.wait_for_function("window.accord.items.has('NORTH-7')", timeout=WAIT_MS)
    await page.evaluate("window.accord.map.jumpTo({center: [11.3, 48.3], zoom: 11})")
    await page.wait_for_function(
        "window.accord.map.querySourceFeatures('precision').length > 0", timeout=WAIT_MS
    )
    box = await page.evaluate(
        "() => { const p = window.accord.map.project([11.3, 48.3]); return [p.x, p.y]; }"
    )
    # the symbol must be drawn at that point before a hover can find it (its image loads
    # asynchronously), then the pointer moves onto it (the map starts below the 41 px header)
    await page.wait_for_function(
        "([x, y]) => window.accord.map.queryRenderedFeatures([x, y], {layers: ['tracks']})"
        ".length > 0",
        arg=[box[0] + 4, box[1] + 4],
        timeout=WAIT_MS,
    )
    await page.mouse.move(box[0] - 20, box[1] + 41 - 20)
    await page.mouse.move(box[0] + 4, box[1] + 41 + 4, steps=4)
    await page.wait_for_function("!document.getElementById('tooltip').hidden", timeout=WAIT_MS)
    tip = await page.text_content("#tooltip")
    assert "north" in tip
    assert "blur-2km" in tip
    assert "2000 m" in tip
    await page.screenshot(path=shot_path("partner-precision"))


async def test_chat_goes_both_ways_with_an_atak_client(web: Server, signed_in: SignedIn) -> None:
    server, page = web, await signed_in()
    parser = configparser.ConfigParser()
    parser["pytak"] = {"COT_URL": f"tcp://127.0.0.1:{server.port('tcp')}"}
    reader, writer = await pytak.protocol_factory(parser["pytak"])
    try:
        uid = "ANDROID-CHAT"
        writer.write(encode_xml(sa(uid, "BRAVO", lat=48.0, lon=11.0)))
        chat = (
            '<__chat id="All Chat Rooms" chatroom="All Chat Rooms" senderCallsign="BRAVO">'
            f'<chatgrp id="All Chat Rooms" uid0="{uid}" uid1="All Chat Rooms"/></__chat>'
            f'<link relation="p-p" type="a-f-G-U-C" uid="{uid}"/>'
            f'<remarks source="BAO.F.ATAK.{uid}" time="2026-01-01T00:00:00Z">'
            "Roger from ATAK</remarks>"
        )
        writer.write(raw_event(f"GeoChat.{uid}.All Chat Rooms.1", "b-t-f", 0, 0, chat))
        await writer.drain()
        await page.wait_for_function(
            "document.getElementById('chat-log').textContent.includes('Roger from ATAK')",
            timeout=WAIT_MS,
        )
        await page.fill("#chat-text", "Copy from the web")
        await page.click("#chat-form button")
        async with asyncio.timeout(10):
            while True:
                data = await reader.readuntil(b"</event>")
                if b"b-t-f" in data:
                    break
        event = decode_xml(data[data.index(b"<event") :])
        assert "Copy from the web" in event.detail.xml
        assert event.detail.chat is not None
        assert event.detail.chat.chatroom == "All Chat Rooms"
        # and a direct message to the ATAK user names it
        await page.wait_for_function(
            f"[...document.getElementById('chat-to').options].some(o => o.value === '{uid}')",
            timeout=WAIT_MS,
        )
        await page.select_option("#chat-to", uid)
        await page.fill("#chat-text", "Just you")
        await page.click("#chat-form button")
        async with asyncio.timeout(10):
            while True:
                data = await reader.readuntil(b"</event>")
                if b"Just you" in data:
                    break
        direct = decode_xml(data[data.index(b"<event") :])
        assert direct.detail.chat is not None
        assert direct.detail.chat.members == (uid,)
        await page.screenshot(path=shot_path("chat"))
    finally:
        writer.close()


async def test_hostile_callsigns_remarks_and_chat_stay_text(
    web: Server, signed_in: SignedIn
) -> None:
    server, page = web, await signed_in()
    atak = await CotClient.connect(server.port("tcp"))
    detail = f'<contact callsign="{esc(HOSTILE)}"/><remarks>{esc(HOSTILE)}</remarks>'
    await atak.send(raw_event("EVIL-1", "a-f-G-U-C", 48.5, 11.5, detail))
    video = '<contact callsign="EVIL-2"/><__video url="javascript:window.__xss=2"/>'
    await atak.send(raw_event("EVIL-2", "a-u-G", 48.51, 11.52, video))
    chat = (
        f'<__chat id="All Chat Rooms" chatroom="All Chat Rooms" senderCallsign="{esc(HOSTILE)}">'
        '<chatgrp id="All Chat Rooms" uid0="EVIL-1" uid1="All Chat Rooms"/></__chat>'
        f"<remarks>{esc(HOSTILE)}</remarks>"
    )
    await atak.send(raw_event("GeoChat.EVIL-1.x.1", "b-t-f", 0, 0, chat))
    await page.wait_for_function(
        "window.accord.items.has('EVIL-2') && window.accord.stats.chats > 0", timeout=WAIT_MS
    )
    await page.evaluate("window.accord.map.jumpTo({center: [11.5, 48.5], zoom: 12})")
    shown = "(s) => (document.getElementById('panel-title').textContent || '').includes(s)"
    for uid, title in (("EVIL-1", "onerror"), ("EVIL-2", "EVIL-2"), ("EVIL-1", "onerror")):
        await page.evaluate(f"window.accord.selected = '{uid}'")
        await page.wait_for_function(shown, arg=title, timeout=WAIT_MS)  # its panel is drawn
        assert await page.evaluate("document.querySelector('#panel a[href^=javascript]')") is None
    await page.screenshot(path=shot_path("hostile-text"))
    assert await page.evaluate("window.__xss") is None  # nothing ran
    assert await page.evaluate("document.querySelectorAll('img[src=x]').length") == 0
    assert HOSTILE in (await page.text_content("#chat-log") or "")
    assert HOSTILE in (await page.text_content("#panel-title") or "")


async def test_a_browser_with_a_client_certificate_gets_the_map_on_the_https_port(
    browser: Any, web: Server
) -> None:
    server = web
    cert, key = server.client_cert("carol", group="Blue")
    page = await cert_page(browser, server, cert, key)
    await page.wait_for_function("window.accord.stats.connected", timeout=WAIT_MS)
    atak = await CotClient.connect(server.port("tcp"))
    await atak.send(sa("ANDROID-C1", "CHARLIE", lat=48.2, lon=11.2))
    await page.wait_for_function("window.accord.items.has('ANDROID-C1')", timeout=WAIT_MS)
    assert (await page.text_content("#who") or "").startswith("carol")
