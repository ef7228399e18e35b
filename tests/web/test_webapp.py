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
from typing import Any

import pytest

from accord.cot.xml import decode_xml, encode_xml
from tests.conftest import Server, ServerFactory
from tests.e2e.clients import CotClient, sa
from tests.web.conftest import PASSWORDS, add_users, needs_chromium, shot_path

pytak = pytest.importorskip("pytak")
pytestmark = [needs_chromium, pytest.mark.timeout(120)]
WAIT_MS = 20_000
HOSTILE = '<img src=x onerror="window.__xss=1">'


def esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;")


def raw_event(uid: str, type_: str, lat: float, lon: float, detail: str, *, ce: float = 5) -> bytes:
    return (
        f'<event version="2.0" uid="{uid}" type="{type_}" how="m-g" time="2026-01-01T00:00:00Z"'
        ' start="2026-01-01T00:00:00Z" stale="2099-01-01T00:00:00Z">'
        f'<point lat="{lat}" lon="{lon}" hae="100" ce="{ce}" le="9999999"/>'
        f"<detail>{detail}</detail></event>"
    ).encode()


async def web_server(make_server: ServerFactory, tmp_path: Any) -> Server:
    add_users(tmp_path / "server0")  # make_server's first data dir
    # Plain-TCP test clients are in Blue, alice's group.
    return await make_server(tcp_groups=("Blue",), revocation_check_s=0.2)


async def signed_in_page(browser: Any, server: Server, user: str = "alice") -> Any:
    context = await browser.new_context(
        ignore_https_errors=True, bypass_csp=True, viewport={"width": 1280, "height": 800}
    )
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.errors = errors
    await page.goto(f"https://127.0.0.1:{server.port('enroll')}/web/")
    await page.fill("input[name=username]", user)
    await page.fill("input[name=password]", PASSWORDS[user])
    await page.click("#signin-button")
    await page.wait_for_function(
        "window.accord && window.accord.ready && window.accord.stats.connected", timeout=WAIT_MS
    )
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


async def test_sign_in_and_tracks_appear_and_move(
    browser: Any, make_server: ServerFactory, tmp_path: Any
) -> None:
    server = await web_server(make_server, tmp_path)
    page = await signed_in_page(browser, server)
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
    browser: Any, make_server: ServerFactory, tmp_path: Any
) -> None:
    server = await web_server(make_server, tmp_path)
    page = await signed_in_page(browser, server)
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
    browser: Any, make_server: ServerFactory, tmp_path: Any
) -> None:
    server = await web_server(make_server, tmp_path)
    page = await signed_in_page(browser, server)
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
    await page.mouse.move(box[0] + 4, box[1] + 41 + 4)  # the map starts below the 41 px header
    await page.wait_for_function("!document.getElementById('tooltip').hidden", timeout=WAIT_MS)
    tip = await page.text_content("#tooltip")
    assert "north" in tip
    assert "blur-2km" in tip
    assert "2000 m" in tip
    await page.screenshot(path=shot_path("partner-precision"))


async def test_chat_goes_both_ways_with_an_atak_client(
    browser: Any, make_server: ServerFactory, tmp_path: Any
) -> None:
    server = await web_server(make_server, tmp_path)
    page = await signed_in_page(browser, server)
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
    browser: Any, make_server: ServerFactory, tmp_path: Any
) -> None:
    server = await web_server(make_server, tmp_path)
    page = await signed_in_page(browser, server)
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
    browser: Any, make_server: ServerFactory, tmp_path: Any
) -> None:
    server = await web_server(make_server, tmp_path)
    cert, key = server.client_cert("carol", group="Blue")
    origin = f"https://127.0.0.1:{server.port('https')}"
    context = await browser.new_context(
        ignore_https_errors=True,
        bypass_csp=True,
        client_certificates=[{"origin": origin, "certPath": str(cert), "keyPath": str(key)}],
    )
    page = await context.new_page()
    await page.goto(f"{origin}/web/")
    await page.wait_for_function(
        "window.accord && window.accord.ready && window.accord.stats.connected", timeout=WAIT_MS
    )
    atak = await CotClient.connect(server.port("tcp"))
    await atak.send(sa("ANDROID-C1", "CHARLIE", lat=48.2, lon=11.2))
    await page.wait_for_function("window.accord.items.has('ANDROID-C1')", timeout=WAIT_MS)
    assert (await page.text_content("#who") or "").startswith("carol")
