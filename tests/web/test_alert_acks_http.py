"""The web app's acknowledgements of alerts over HTTP, on one server (no cluster): kept by
uid for every browser, only for a signed-in user, and a POST under the web app's CSRF rule."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from accord.api.web import csrf_token
from tests.conftest import ServerFactory
from tests.web.test_web_http import base, jar, sign_in, web_server

pytestmark = pytest.mark.timeout(60)
UID = "sep.org.0123456789abcdef"


async def test_an_acknowledgement_is_the_servers_and_needs_a_session_and_its_csrf(
    make_server: ServerFactory, tmp_path: Any
) -> None:
    server = await web_server(make_server, tmp_path)
    url = f"{base(server)}/web/alerts/acks"
    async with httpx.AsyncClient(verify=False) as client:
        assert (await client.get(url)).status_code == 401
        assert (await client.post(url, json={"uid": UID})).status_code == 401
        alice, rita = await sign_in(client, server, "alice"), await sign_in(client, server, "rita")
        client.cookies.clear()
        good = {"origin": base(server), "x-accord-csrf": csrf_token(alice)} | jar(alice)
        no_csrf = {"origin": base(server)} | jar(alice)
        assert (await client.post(url, json={"uid": UID}, headers=no_csrf)).status_code == 403
        foreign = good | {"origin": "https://elsewhere.example"}
        assert (await client.post(url, json={"uid": UID}, headers=foreign)).status_code == 403
        for body in (b"[1]", b"not json", b"x" * 5000):
            answer = await client.post(url, content=body, headers=good)
            assert answer.status_code == 400, body
        assert (await client.post(url, json={"uid": ""}, headers=good)).status_code == 400
        answer = await client.post(url, json={"uid": UID}, headers=good)
        assert answer.status_code == 200, answer.text
        assert answer.json()["ack"]["by"] == "alice"
        # Another user's browser shows it, acknowledged by alice.
        listed = await client.get(url, headers=jar(rita))
        assert listed.status_code == 200
        assert [(a["uid"], a["by"]) for a in listed.json()["acks"]] == [(UID, "alice")]
    assert server.running.alert_acks.refused["no uid"] == 1
