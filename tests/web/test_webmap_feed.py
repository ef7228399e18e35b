"""The web feed under load, with real sockets and no browser: what arrives within the flush
interval goes out as one WebSocket message per interval (not one per hub turn), the latest
position of each uid winning, so a busy picture costs a web client a few messages a second."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from accord.api.web import SESSION_COOKIE
from accord.api.web_batches import WEB_FLUSH_INTERVAL_S
from tests.conftest import ServerFactory
from tests.e2e.clients import CotClient, sa
from tests.web.test_web_http import base, sign_in, web_server
from tests.web.wsclient import WsClient

pytestmark = pytest.mark.timeout(60)
UIDS = 20
ROUNDS = 25


async def test_a_burst_reaches_the_browser_in_few_messages_latest_position_winning(
    make_server: ServerFactory, tmp_path: Any
) -> None:
    server = await web_server(make_server, tmp_path)
    async with httpx.AsyncClient(verify=False) as client:
        session = await sign_in(client, server)
    web = await WsClient.connect(
        server.port("enroll"), origin=base(server), cookie=f"{SESSION_COOKIE}={session}"
    )
    assert await web.accepted()
    assert (await web.next_batch())["items"][0]["op"] == "hello"
    atak = await CotClient.connect(server.port("tcp"))
    started = time.monotonic()
    for r in range(ROUNDS):
        for i in range(UIDS):  # one write (and usually one hub turn) per report
            await atak.send(sa(f"BURST-{i}", f"B{i}", lat=10.0 + r, lon=20.0 + i))
    latest: dict[str, float] = {}
    messages = items = 0
    while len(latest) < UIDS or any(lat < 10.0 + ROUNDS - 1 for lat in latest.values()):
        batch = await web.next_batch(timeout=10)
        messages += 1
        for item in batch["items"]:
            if item.get("op") == "put" and item["uid"].startswith("BURST-"):
                items += 1
                latest[item["uid"]] = item["lat"]
    elapsed = time.monotonic() - started
    # every uid ends at its last position, and no position arrives after a newer one was seen
    assert latest == {f"BURST-{i}": 10.0 + ROUNDS - 1 for i in range(UIDS)}
    # at most one message per flush interval (plus the first, sent at once), whatever the
    # number of hub turns; the web session's own beacon may add one
    assert messages <= elapsed / WEB_FLUSH_INTERVAL_S + 2, (messages, elapsed)
    assert items < UIDS * ROUNDS  # reports superseded within an interval were not sent
    web.close()
