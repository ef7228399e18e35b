"""The admin pages in a real headless Chromium holding the admin's client certificate, against
a real Accord: the admin revokes a certificate and that device (a pytak TLS client) is cut;
the pages show clients, users, certificates and status; a browser that is not an administrator
gets no admin nav (and 403 from the admin API). Screenshots: ``test-artifacts/web/``."""

from __future__ import annotations

import asyncio
import configparser
from typing import Any

import pytest

from accord.cot.xml import encode_xml
from tests.conftest import Server, ServerFactory
from tests.e2e.clients import sa
from tests.web.conftest import needs_chromium, shot_path
from tests.web.test_webapp import HOSTILE, WAIT_MS

pytak = pytest.importorskip("pytak")
pytestmark = [
    needs_chromium,
    pytest.mark.timeout(120),
    # pytak sets the deprecated OP_NO_TLSv1 flags on its own context: pytak's business.
    pytest.mark.filterwarnings("ignore:ssl.OP_NO_SSL:DeprecationWarning"),
]


async def cert_page(browser: Any, server: Server, cert: Any, key: Any) -> Any:
    origin = f"https://127.0.0.1:{server.port('https')}"
    context = await browser.new_context(
        ignore_https_errors=True,
        bypass_csp=True,  # wait_for_function evaluates strings; the page's own CSP forbids it
        viewport={"width": 1400, "height": 900},
        client_certificates=[{"origin": origin, "certPath": str(cert), "keyPath": str(key)}],
    )
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    page.errors = errors
    await page.goto(f"{origin}/web/")
    await page.wait_for_function("window.accord && window.accord.ready", timeout=WAIT_MS)
    return page


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
    page = await cert_page(browser, server, server.pki.admin_cert, server.pki.admin_key)
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
    page = await cert_page(browser, server, cert, key)
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
