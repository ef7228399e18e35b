"""The web app's HTTP and WebSocket rules, with real sockets and no browser.

Sessions are tokens of the web audience (an API token is not a session, a session is not an
API token), cookies are HttpOnly/Secure/SameSite=Strict, every state-changing request must come
from the app's own origin (sign-out also with its CSRF token), the feed refuses other origins
and signed-out browsers, drops and counts bad messages without closing, and closes a browser
that stops reading, its queue bounded meanwhile.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from accord.api.web import SESSION_COOKIE, csrf_token
from tests.conftest import Server, ServerFactory
from tests.e2e.clients import CotClient, client_tls_context, sa
from tests.web.conftest import PASSWORDS
from tests.web.conftest import web_server as start_web_server
from tests.web.wsclient import WsClient

pytestmark = pytest.mark.timeout(60)


async def web_server(make_server: ServerFactory, tmp_path: Any, **overrides: Any) -> Server:
    return await start_web_server(make_server, tmp_path, input_rate=0, **overrides)


def jar(token: str) -> dict[str, str]:
    return {"cookie": f"{SESSION_COOKIE}={token}"}


def base(server: Server) -> str:
    return f"https://127.0.0.1:{server.port('enroll')}"


async def sign_in(client: httpx.AsyncClient, server: Server, user: str = "alice") -> str:
    response = await client.post(
        f"{base(server)}/web/signin",
        data={"username": user, "password": PASSWORDS[user]},
        headers={"origin": base(server)},
    )
    assert response.status_code == 303, response.text
    return str(response.cookies[SESSION_COOKIE])


async def until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_the_session_cookie_is_strict_and_only_a_web_session(
    make_server: ServerFactory, tmp_path: Any
) -> None:
    server = await web_server(make_server, tmp_path)
    async with httpx.AsyncClient(verify=False) as client:
        response = await client.post(
            f"{base(server)}/web/signin",
            data={"username": "alice", "password": PASSWORDS["alice"]},
            headers={"origin": base(server)},
        )
        flags = response.headers["set-cookie"].lower()
        assert "httponly" in flags
        assert "secure" in flags
        assert "samesite=strict" in flags
        session = response.cookies[SESSION_COOKIE]
        client.cookies.clear()
        ok = await client.get(f"{base(server)}/web/config.json", headers=jar(session))
        assert ok.status_code == 200
        assert ok.json()["user"] == "alice"
        assert ok.json()["groups"] == ["Blue"]
        # a session is not an API token
        api = await client.get(
            f"{base(server)}/Marti/api/clientEndPoints",
            headers={"authorization": f"Bearer {session}"},
        )
        assert api.status_code == 401
        # and an API token is not a session
        token = await client.post(
            f"{base(server)}/oauth/token",
            data={"grant_type": "password", "username": "alice", "password": PASSWORDS["alice"]},
        )
        access = token.json()["access_token"]
        client.cookies.clear()
        refused = await client.get(f"{base(server)}/web/config.json", headers=jar(access))
        assert refused.status_code == 401
        wrong = await client.post(
            f"{base(server)}/web/signin",
            data={"username": "alice", "password": "wrong"},
            headers={"origin": base(server)},
        )
        assert wrong.status_code == 303
        assert SESSION_COOKIE not in wrong.cookies


async def test_state_changing_requests_need_the_apps_origin_and_sign_out_its_token(
    make_server: ServerFactory, tmp_path: Any
) -> None:
    server = await web_server(make_server, tmp_path)
    form = {"username": "alice", "password": PASSWORDS["alice"]}
    async with httpx.AsyncClient(verify=False) as client:
        for headers in ({}, {"origin": "https://evil.example"}, {"origin": "null"}):
            response = await client.post(f"{base(server)}/web/signin", data=form, headers=headers)
            assert response.status_code == 403, headers
            assert SESSION_COOKIE not in response.cookies
        session = await sign_in(client, server)
        out = f"{base(server)}/web/signout"
        client.cookies.clear()
        no_token = await client.post(out, headers={"origin": base(server), **jar(session)})
        assert no_token.status_code == 403
        foreign = await client.post(
            out,
            headers={
                "origin": "https://evil.example",
                "x-accord-csrf": csrf_token(session),
                **jar(session),
            },
        )
        assert foreign.status_code == 403
        done = await client.post(
            out,
            headers={"origin": base(server), "x-accord-csrf": csrf_token(session), **jar(session)},
        )
        assert done.status_code == 200
        assert 'accord_web=""' in done.headers["set-cookie"]


async def test_the_feed_refuses_other_origins_and_signed_out_browsers(
    make_server: ServerFactory, tmp_path: Any
) -> None:
    server = await web_server(make_server, tmp_path)
    async with httpx.AsyncClient(verify=False) as client:
        session = await sign_in(client, server)
    cookie = f"{SESSION_COOKIE}={session}"
    port = server.port("enroll")
    evil = await WsClient.connect(port, origin="https://evil.example", cookie=cookie)
    assert not await evil.accepted()
    nobody = await WsClient.connect(port, origin=base(server))
    assert not await nobody.accepted()
    good = await WsClient.connect(port, origin=base(server), cookie=cookie)
    assert await good.accepted()
    hello = await good.next_batch()
    assert hello["items"][0]["op"] == "hello"
    for client in (evil, nobody, good):
        client.close()


@pytest.mark.parametrize("compress", [False, True])
async def test_the_feed_compresses_only_when_configured(
    make_server: ServerFactory, tmp_path: Any, compress: bool
) -> None:
    """A browser offers permessage-deflate; the server takes it only with ``web_compress``
    (it costs the server per browser), and the features arrive either way."""
    server = await web_server(make_server, tmp_path, web_compress=compress)
    async with httpx.AsyncClient(verify=False) as client:
        session = await sign_in(client, server)
    atak = await CotClient.connect(server.port("tcp"))
    web = await WsClient.connect(
        server.port("enroll"),
        origin=base(server),
        cookie=f"{SESSION_COOKIE}={session}",
        deflate=True,
    )
    assert await web.accepted()
    assert [type(e).__name__ for e in web.extensions] == (["PerMessageDeflate"] if compress else [])
    await atak.send(sa("ANDROID-1", "SQUEEZED"))
    while True:
        batch = await web.next_batch()
        if any(i.get("callsign") == "SQUEEZED" for i in batch["items"]):
            break
    web.close()


async def test_bad_messages_are_dropped_and_counted_and_the_session_goes_on(
    make_server: ServerFactory, tmp_path: Any
) -> None:
    server = await web_server(make_server, tmp_path)
    async with httpx.AsyncClient(verify=False) as client:
        session = await sign_in(client, server)
    atak = await CotClient.connect(server.port("tcp"))
    await atak.send(sa("ANDROID-1", "ATAK"))
    web = await WsClient.connect(
        server.port("enroll"), origin=base(server), cookie=f"{SESSION_COOKIE}={session}"
    )
    assert await web.accepted()
    before = server.counters.malformed
    for bad in ("not json", json.dumps({"op": "chat", "text": "x" * 5000}), '{"op":"nuke"}'):
        await web.send_text(bad)
    await web.send_text(json.dumps({"op": "chat", "text": "still here"}))
    chat = await atak.recv_until(lambda e: e.type == "b-t-f", timeout=10)
    assert "still here" in chat.detail.xml
    assert server.counters.malformed - before == 3
    # and the feed still delivers
    await atak.send(sa("ANDROID-1", "ATAK-2"))
    while True:
        batch = await web.next_batch()
        if any(i.get("callsign") == "ATAK-2" for i in batch["items"]):
            break
    web.close()


async def test_a_browser_that_stops_reading_is_bounded_then_closed(
    make_server: ServerFactory, tmp_path: Any
) -> None:
    server = await web_server(make_server, tmp_path, blocked_timeout_s=1.0, web_queue_items=200)
    async with httpx.AsyncClient(verify=False) as client:
        session = await sign_in(client, server)
    web = await WsClient.connect(
        server.port("enroll"),
        origin=base(server),
        cookie=f"{SESSION_COOKIE}={session}",
        receive_buffer=4096,
    )
    assert await web.accepted()  # and then never reads again
    atak = await CotClient.connect(server.port("tcp"))
    remarks = "<remarks>" + "r" * 4000 + "</remarks>"
    deadline = time.monotonic() + 20
    i = 0
    while not server.counters.blocked_closed and time.monotonic() < deadline:
        await atak.send(sa(f"FLOOD-{i}", f"F{i}", extra=remarks))  # 4 kB tracks, all distinct
        i += 1
    await until(lambda: server.counters.blocked_closed >= 1)
    assert server.counters.queue_dropped > 0  # the queue stayed at its bound meanwhile
    web.close()


async def test_history_plays_back_only_what_the_user_could_have_seen(
    make_server: ServerFactory, tmp_path: Any
) -> None:
    server = await web_server(make_server, tmp_path)
    blue = await CotClient.connect(server.port("tcp"))  # plain TCP is Blue here
    cert, key = server.client_cert("red-device", group="Red")
    red = await CotClient.connect(
        server.port("tls"), tls=client_tls_context(cert, key, server.pki.ca_cert)
    )
    await blue.send(sa("BLUE-1", "B1"))
    await red.send(sa("RED-1", "R1"))
    async with httpx.AsyncClient(verify=False) as client:
        alice, rita = await sign_in(client, server, "alice"), await sign_in(client, server, "rita")
        client.cookies.clear()

        async def seen(token: str) -> set[str]:
            response = await client.get(
                f"{base(server)}/web/history", params={"since": "10m"}, headers=jar(token)
            )
            assert response.status_code == 200, response.text
            return {i["uid"] for i in response.json()["items"]}

        deadline = time.monotonic() + 10
        while not ({"BLUE-1"} <= await seen(alice) and {"RED-1"} <= await seen(rita)):
            assert time.monotonic() < deadline, "history not written in time"
            await asyncio.sleep(0.1)
        assert "RED-1" not in await seen(alice)
        assert "BLUE-1" not in await seen(rita)
        nobody = await client.get(f"{base(server)}/web/history")
        assert nobody.status_code == 401
