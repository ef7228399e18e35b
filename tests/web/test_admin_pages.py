"""The admin pages in a real headless Chromium, against a real Accord: with the admin's client
certificate on 8443, the admin revokes a certificate and that device (a pytak TLS client) is
cut; the pages show clients, users, certificates and status; on 8446 a user in admin_users who
signed in with a password gets the same pages through the web session; a browser that is not
an administrator gets no admin nav (and 403 from the admin API) on either port.
Screenshots: ``test-artifacts/web/``."""

from __future__ import annotations

import asyncio
import configparser
from typing import Any

import pytest

from accord.cot.xml import encode_xml
from tests.conftest import Server, ServerFactory
from tests.e2e.clients import CotClient, sa
from tests.web.conftest import (
    HOSTILE,
    WAIT_MS,
    cert_page,
    needs_chromium,
    shot_path,
    signed_in_page,
    web_server,
)

pytak = pytest.importorskip("pytak")
WIDE = {"width": 1400, "height": 900}
pytestmark = [
    needs_chromium,
    pytest.mark.timeout(120),
    # pytak sets the deprecated OP_NO_TLSv1 flags on its own context: pytak's business.
    pytest.mark.filterwarnings("ignore:ssl.OP_NO_SSL:DeprecationWarning"),
]


async def pytak_device(server: Server, name: str) -> tuple[Any, Any]:
    cert, key = server.client_cert(name, group="Blue")
    parser = configparser.ConfigParser()
    parser["pytak"] = {
        "COT_URL": f"tls://127.0.0.1:{server.port('tls')}",
        "PYTAK_TLS_CLIENT_CERT": str(cert),
        "PYTAK_TLS_CLIENT_KEY": str(key),
        "PYTAK_TLS_CLIENT_CAFILE": str(server.pki.ca_cert),
    }
    return await pytak.protocol_factory(parser["pytak"])


async def open_page(page: Any, title: str) -> None:
    await page.click(f"#nav a:text-is('{title}')")


async def test_admin_revokes_a_certificate_and_that_device_is_cut(
    browser: Any, make_server: ServerFactory
) -> None:
    server = await make_server(revocation_check_s=0.2)
    reader, writer = await pytak_device(server, "mallory")
    writer.write(encode_xml(sa("ANDROID-MAL", f"MAL {HOSTILE}")))  # its self report
    await writer.drain()
    page = await cert_page(
        browser, server, server.pki.admin_cert, server.pki.admin_key, viewport=WIDE
    )
    await page.wait_for_function("window.accordAdmin && window.accordAdmin.ready", timeout=WAIT_MS)
    nav = await page.text_content("#nav")
    for title in (
        "Clients",
        "Users and groups",
        "Certificates",
        "Partners",
        "Drone feeds",
        "Status",
    ):
        assert title in (nav or "")

    await open_page(page, "Clients")
    await page.wait_for_function(
        "document.querySelector('#page-admin-clients').textContent.includes('mallory')",
        timeout=WAIT_MS,
    )
    clients_text = await page.text_content("#page-admin-clients") or ""
    assert HOSTILE in clients_text  # the hostile callsign shown as text, never markup
    assert await page.evaluate("window.__xss") is None
    await page.screenshot(path=shot_path("admin-clients"))

    await open_page(page, "Certificates")
    row = page.locator("#page-admin-certificates tr", has_text="mallory").first
    await row.get_by_role("button", name="Revoke").click()
    await page.wait_for_function(
        "[...document.querySelectorAll('#page-admin-certificates tr')]"
        ".some(r => r.textContent.includes('mallory') && r.textContent.includes('revoked'))",
        timeout=WAIT_MS,
    )
    await page.screenshot(path=shot_path("admin-certificate-revoked"))
    async with asyncio.timeout(10):  # the device's live session is closed
        while True:
            data = await reader.read(65536)
            if not data:
                break
    writer.close()
    clients = await page.evaluate("fetch('/api/admin/clients').then(r => r.json())")
    assert all(c["user"] != "mallory" for c in clients["clients"])

    await open_page(page, "Users and groups")
    await page.fill("#admin-user-name", "erin")
    await page.fill("#admin-user-password", "long enough 5")
    await page.fill("#admin-user-groups", "Blue, Red")
    await page.click("#page-admin-users button[type=submit]")
    erin = page.locator("#page-admin-users tr[data-key=erin]")
    await erin.wait_for(timeout=WAIT_MS)
    await erin.get_by_role("button", name="QR").click()
    await page.wait_for_selector("#page-admin-users .admin-qr img", timeout=WAIT_MS)
    assert "one-time password" in (await page.text_content("#page-admin-users .admin-qr") or "")
    await page.screenshot(path=shot_path("admin-users-qr"))

    await open_page(page, "Status")
    await page.wait_for_function("window.accordAdmin.samples.length >= 2", timeout=WAIT_MS)
    assert await page.locator("#page-admin-status svg.admin-chart").count() == 4
    await page.screenshot(path=shot_path("admin-status"))
    assert page.errors == []
    assert await page.text_content(".admin-error") == ""


async def test_a_browser_that_is_not_an_administrator_gets_no_admin_nav(
    browser: Any, make_server: ServerFactory
) -> None:
    server = await make_server()
    cert, key = server.client_cert("carol", group="Blue")
    page = await cert_page(browser, server, cert, key, viewport=WIDE)
    await page.wait_for_function(
        "window.accordAdmin && window.accordAdmin.allowed === false", timeout=WAIT_MS
    )
    assert "Clients" not in (await page.text_content("#nav") or "")
    status = await page.evaluate("fetch('/api/admin/users').then(r => r.status)")
    assert status == 403
    forged = await page.evaluate(
        "fetch('/api/admin/users', {method: 'POST', headers: {'X-Accord-CSRF': '1'},"
        " body: JSON.stringify({name: 'x', password: 'yyyyyyyy'})}).then(r => r.status)"
    )
    assert forged == 403


async def test_an_admin_user_signed_in_with_a_password_gets_the_admin_pages_on_8446(
    browser: Any, make_server: ServerFactory, tmp_path: Any
) -> None:
    server = await web_server(make_server, tmp_path, admin_users=("admin", "alice"))
    atak = await CotClient.connect(server.port("tcp"))
    await atak.send(sa("ANDROID-P1", "PAPA"))
    page = await signed_in_page(browser, server, "alice", viewport=WIDE)
    await page.wait_for_function("window.accordAdmin && window.accordAdmin.ready", timeout=WAIT_MS)
    await open_page(page, "Clients")
    await page.wait_for_function(
        "document.querySelector('#page-admin-clients').textContent.includes('PAPA')",
        timeout=WAIT_MS,
    )
    await open_page(page, "Users and groups")
    await page.fill("#admin-user-name", "frank")
    await page.fill("#admin-user-password", "long enough 6")
    await page.fill("#admin-user-groups", "Blue")
    await page.click("#page-admin-users button[type=submit]")  # a POST with the CSRF token
    await page.locator("#page-admin-users tr[data-key=frank]").wait_for(timeout=WAIT_MS)
    frank = page.locator("#page-admin-users tr[data-key=frank]")
    await frank.get_by_role("button", name="QR").click()
    await page.wait_for_selector("#page-admin-users .admin-qr img", timeout=WAIT_MS)
    await page.screenshot(path=shot_path("admin-on-8446-users"))
    # the Clients page disconnects the ATAK client through the session (DELETE)
    await open_page(page, "Clients")
    row = page.locator("#page-admin-clients tr", has_text="PAPA").first
    await row.get_by_role("button", name="Disconnect").click()
    with pytest.raises(ConnectionError):  # the server closed it
        await atak.recv_until(lambda e: False, timeout=10)
    await open_page(page, "Status")
    await page.wait_for_function("window.accordAdmin.samples.length >= 2", timeout=WAIT_MS)
    await page.screenshot(path=shot_path("admin-on-8446-status"))
    assert page.errors == []
    assert await page.text_content(".admin-error") == ""


async def test_a_user_who_is_not_an_admin_gets_no_admin_nav_on_8446(
    browser: Any, make_server: ServerFactory, tmp_path: Any
) -> None:
    server = await web_server(make_server, tmp_path, admin_users=("admin", "alice"))
    page = await signed_in_page(browser, server, "rita")
    await page.wait_for_function(
        "window.accordAdmin && window.accordAdmin.allowed === false", timeout=WAIT_MS
    )
    assert "Clients" not in (await page.text_content("#nav") or "")
    assert await page.evaluate("fetch('/api/admin/clients').then(r => r.status)") == 403
    csrf = await page.evaluate("fetch('/web/config.json').then(r => r.json()).then(c => c.csrf)")
    forged = await page.evaluate(
        "(csrf) => fetch('/api/admin/users', {method: 'POST', headers: {'X-Accord-CSRF': csrf},"
        " body: JSON.stringify({name: 'x', password: 'yyyyyyyy'})}).then(r => r.status)",
        csrf,
    )
    assert forged == 403
