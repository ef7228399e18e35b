"""Alerts and geofences in a real headless Chromium: a separation alert reaches the alert list
with its conflict zone drawn and its pair ringed, Acknowledge greys it, the cancel clears it;
a TCP client's geofence is drawn; a geofence drawn in the page reaches an ATAK-like client of
the user's group as a ``u-d-f`` with ``__geofence`` and never a Red one. Screenshots in
``test-artifacts/web/``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from accord.cot.model import CotEvent
from accord.geo.fence import from_event
from tests.conftest import Server
from tests.e2e.clients import CotClient, client_tls_context
from tests.waiting import wait_until
from tests.web.conftest import HOSTILE, WAIT_MS, esc, needs_chromium, raw_event, rendered, shot_path

pytestmark = [needs_chromium, pytest.mark.timeout(120)]
SignedIn = Callable[..., Awaitable[Any]]
ALERT_UID = "sep.org-a.0123456789abcdef"
# Two drones 40 km apart (no real conflict for the coordination monitor to raise), and the
# alert, zone and cancel the monitor would send for them.
DRONES = [("DRONE-A", "HAWK 1", 48.10, 11.30), ("ORGB-7", "HAWK 2", 48.10, 11.84)]


def alert(text: str) -> bytes:
    return raw_event(
        ALERT_UID,
        "b-a-o-c",
        48.10,
        11.57,
        '<contact callsign="HAWK 1 conflict"/>'
        '<link uid="DRONE-A" type="a-f-A-M-H-Q" relation="p-p"/>'
        f'<emergency type="Custom">{esc(text)}</emergency>'
        '<__separation level="warning" a="DRONE-A" b="ORGB-7" t_loss_s="17.0" cpa_s="20.0"'
        ' cpa_m="12"/><__conflict key="0123456789abcdef" origin="org-a" partner="org-b"/>',
    )


ZONE = raw_event(
    f"{ALERT_UID}.zone",
    "u-d-c-c",
    48.10,
    11.57,
    '<shape><ellipse major="3000" minor="3000" angle="360"/></shape>'
    '<contact callsign="conflict HAWK 1"/><link uid="DRONE-A" type="a-f-A-M-H-Q" relation="p-p"/>'
    '<__conflict key="0123456789abcdef" origin="org-a" partner="org-b"/>',
)
CANCEL = raw_event(
    ALERT_UID,
    "b-a-o-can",
    48.10,
    11.57,
    '<link uid="DRONE-A" type="a-f-A-M-H-Q" relation="p-p"/>'
    '<emergency cancel="true">HAWK 1</emergency>'
    '<__conflict key="0123456789abcdef" origin="org-a" partner="org-b"/>',
)
ZONE_DELETE = raw_event(
    "del-zone", "t-x-d-d", 0.0, 0.0, f'<link uid="{ALERT_UID}.zone" relation="none"/>'
)


async def test_a_separation_alert_is_listed_drawn_acknowledged_and_cleared(
    web: Server, signed_in: SignedIn
) -> None:
    feed = await CotClient.connect(web.port("tcp"))
    page = await signed_in("alice")
    await page.evaluate("window.accord.map.jumpTo({center: [11.57, 48.10], zoom: 9})")
    for uid, callsign, lat, lon in DRONES:
        detail = f'<contact callsign="{callsign}"/><track course="90" speed="20"/>'
        await feed.send(raw_event(uid, "a-f-A-M-H-Q", lat, lon, detail))
    text = f"Conflict with [ORG-B] {HOSTILE} in 17 s, CPA 12 m (warning)"
    await feed.send(alert(text))
    await feed.send(ZONE)

    await page.wait_for_selector(f'#alert-list li[data-uid="{ALERT_UID}"]', timeout=WAIT_MS)
    row = page.locator(f'#alert-list li[data-uid="{ALERT_UID}"]')
    assert await row.locator(".alert-text").text_content() == text  # text, never markup
    assert await page.locator("#alert-list img").count() == 0
    meta = await row.locator(".alert-meta").text_content() or ""
    assert "warning" in meta
    assert "partner org-b" in meta
    assert await page.text_content("#alerts-count") == "1"
    await page.wait_for_function(
        "window.accord.map.querySourceFeatures('alert-zones').length > 0"
        " && window.accord.map.querySourceFeatures('alert-rings').length >= 2",
        timeout=WAIT_MS,
    )
    assert {f["uid"] for f in await rendered(page, "alert-zones")} == {f"{ALERT_UID}.zone"}
    assert {f["uid"] for f in await rendered(page, "alert-rings")} == {"DRONE-A", "ORGB-7"}
    # the zone is an area: its point carries no label to overlap the alert's at the same place
    icons = {f["uid"]: f["icon"] for f in await rendered(page, "tracks")}
    assert "HAWK 1" not in icons[f"{ALERT_UID}.zone"]
    assert "HAWK 1 conflict" in icons[ALERT_UID]
    await page.screenshot(path=shot_path("alert-active"))

    await row.locator("button.ack").click()
    await page.wait_for_function(
        f"document.querySelector('#alert-list li[data-uid=\"{ALERT_UID}\"]')"
        ".classList.contains('acked')"
        " && window.accord.map.querySourceFeatures('alert-rings').length === 0",
        timeout=WAIT_MS,
    )
    assert await row.locator("button.ack").count() == 0
    assert await page.text_content("#alerts-count") == ""
    # The server keeps it: another browser (its own cookies, its own storage) shows it
    # acknowledged too.
    acks = web.running.alert_acks
    await wait_until(lambda: ALERT_UID in acks.acks, what="the server kept the acknowledgement")
    assert acks.acks[ALERT_UID].by == "alice"
    other = await signed_in("alice")
    await feed.send(alert(text))  # a refresh of an acknowledged alert stays acknowledged
    await other.wait_for_selector(f'#alert-list li[data-uid="{ALERT_UID}"].acked', timeout=WAIT_MS)
    await page.wait_for_timeout(600)
    assert await page.locator(f'#alert-list li[data-uid="{ALERT_UID}"].acked').count() == 1
    assert await rendered(page, "alert-rings") == []
    await page.screenshot(path=shot_path("alert-acknowledged"))

    await feed.send(CANCEL)
    await feed.send(ZONE_DELETE)
    await page.wait_for_function(
        f"!document.querySelector('#alert-list li[data-uid=\"{ALERT_UID}\"]')"
        " && window.accord.map.querySourceFeatures('alert-zones').length === 0",
        timeout=WAIT_MS,
    )
    assert await page.evaluate("window.__xss") is None
    assert page.errors == []


def is_drawn_fence(event: CotEvent) -> bool:
    return event.type == "u-d-f" and event.uid.startswith("fence.WEB-alice")


async def test_geofences_are_drawn_and_one_drawn_in_the_page_reaches_its_group_only(
    web: Server, signed_in: SignedIn
) -> None:
    blue = await CotClient.connect(web.port("tcp"))  # plain TCP is Blue, alice's group
    cert, key = web.client_cert("red-device", group="Red")
    red = await CotClient.connect(
        web.port("tls"), tls=client_tls_context(cert, key, web.pki.ca_cert)
    )
    page = await signed_in("alice")
    await page.evaluate("window.accord.map.jumpTo({center: [11.55, 48.15], zoom: 10})")
    name = f"Airfield {HOSTILE}"
    await blue.send(
        raw_event(
            "FENCE-TCP",
            "u-d-f",
            48.2,
            11.5,
            f'<contact callsign="{esc(name)}"/><link point="48.20,11.45"/>'
            '<link point="48.20,11.52"/><link point="48.24,11.52"/><link point="48.24,11.45"/>'
            '<__geofence trigger="Entry" elevationMonitored="false"/>',
        )
    )
    await page.wait_for_function(
        "window.accord.map.querySourceFeatures('fences')"
        ".some(f => f.properties.uid === 'FENCE-TCP')",
        timeout=WAIT_MS,
    )
    drawn = [f for f in await rendered(page, "fences") if f["uid"] == "FENCE-TCP"]
    assert drawn[0]["name"] == name
    assert drawn[0]["trigger"] == "Entry"
    assert name in await page.locator(".fence-label").all_text_contents()

    await page.click("#fence-draw")
    box = await page.locator("#map").bounding_box()
    assert box is not None
    corners = [(0.55, 0.35), (0.70, 0.35), (0.70, 0.55), (0.55, 0.55)]
    for fx, fy in corners:
        await page.mouse.click(box["x"] + box["width"] * fx, box["y"] + box["height"] * fy)
    await page.wait_for_function(
        "window.accord.alerts.draft && window.accord.alerts.draft.length === 4", timeout=WAIT_MS
    )
    expected = await page.evaluate("window.accord.alerts.draft.map(([lon, lat]) => [lat, lon])")
    await page.fill("#fence-name", "Drawn <b>zone</b>")
    await page.select_option("#fence-trigger", "Exit")
    await page.screenshot(path=shot_path("fence-drawing"))
    await page.click("#fence-finish")

    made = await blue.recv_until(is_drawn_fence)
    assert "__geofence" in made.detail.xml
    assert 'trigger="Exit"' in made.detail.xml
    fence = from_event(made)  # what the coordination monitor makes of it
    assert fence is not None
    assert fence.name == "Drawn <b>zone</b>"
    assert fence.trigger == "exit"
    for (lat, lon), (want_lat, want_lon) in zip(fence.vertices, expected, strict=True):
        assert lat == pytest.approx(want_lat, abs=1e-6)
        assert lon == pytest.approx(want_lon, abs=1e-6)
    assert [e for e in await red.expect_silence(1.0) if e.type == "u-d-f"] == []
    assert await page.evaluate("window.accord.alerts.draft") is None
    await page.wait_for_function(
        "window.accord.map.querySourceFeatures('fences')"
        ".some(f => f.properties.name === 'Drawn <b>zone</b>')",
        timeout=WAIT_MS,
    )  # the page draws the fence it made
    assert "Drawn <b>zone</b>" in await page.locator(".fence-label").all_text_contents()
    await page.screenshot(path=shot_path("fence-drawn"))
    assert await page.evaluate("window.__xss") is None
    assert page.errors == []
