"""Geofences sent over the web feed (``{"op": "fence"}``): a bad one is dropped and counted and
the session goes on; a good one (up to 200 vertices) reaches the user's group as a ``u-d-f``
and the coordination monitor holds it as a fence."""

from __future__ import annotations

import json
import math
from typing import Any

import httpx

from accord.api.web import SESSION_COOKIE
from tests.conftest import ServerFactory
from tests.e2e.clients import CotClient
from tests.web.test_web_http import base, sign_in, until, web_server
from tests.web.wsclient import WsClient

SQUARE = [[48.0, 11.0], [48.0, 11.1], [48.1, 11.1], [48.1, 11.0]]


def fence(**fields: Any) -> str:
    return json.dumps(
        {"op": "fence", "name": "Zone", "trigger": "Entry", "points": SQUARE} | fields
    )


def ring(n: int) -> list[list[float]]:
    """A convex n-gon (never self-intersecting) of about 1 km around 48, 11."""
    return [
        [48.0 + 0.01 * math.sin(2 * math.pi * i / n), 11.0 + 0.01 * math.cos(2 * math.pi * i / n)]
        for i in range(n)
    ]


async def test_drawn_fences_are_checked_routed_and_monitored(
    make_server: ServerFactory, tmp_path: Any
) -> None:
    server = await web_server(make_server, tmp_path)
    async with httpx.AsyncClient(verify=False) as client:
        session = await sign_in(client, server)
    atak = await CotClient.connect(server.port("tcp"))  # Blue, alice's group
    web = await WsClient.connect(
        server.port("enroll"), origin=base(server), cookie=f"{SESSION_COOKIE}={session}"
    )
    assert await web.accepted()
    bad = [
        fence(trigger="Sometimes"),
        fence(points=SQUARE[:2]),
        fence(points=ring(201)),
        fence(name="x" * 81),
        fence(name=""),
        fence(points=[[48.0, 11.0], [float("nan"), 11.0], [48.1, 11.1]]),
        fence(points=[[48.0, 11.0], [48.0, 200.0], [48.1, 11.1]]),
        fence(points="48,11;48,12;49,12"),
        fence(points=ring(200), pad="p" * 20_000),  # beyond the message limit
    ]
    before = server.counters.malformed
    for text in bad:
        await web.send_text(text)
    await web.send_text(fence(name="Big zone", trigger="Both", points=ring(200)))
    made = await atak.recv_until(lambda e: e.type == "u-d-f", timeout=10)
    assert server.counters.malformed - before == len(bad)
    assert made.uid.startswith("fence.WEB-alice-")
    assert made.detail.xml.count("<link point=") == 200
    assert '<__geofence trigger="Both"' in made.detail.xml
    coordination = server.running.coordination
    assert coordination is not None
    await until(lambda: made.uid in coordination.fences.fences)
    held = coordination.fences.fences[made.uid]
    assert (held.name, held.trigger, len(held.vertices)) == ("Big zone", "both", 200)
    web.close()
