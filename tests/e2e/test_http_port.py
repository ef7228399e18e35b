"""The optional plain-HTTP Marti port: what ATAK on a TCP stream calls (basic auth)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from accord.cot.xml import encode_xml
from accord.domain.groups import Membership
from accord.identity.users import UserStore
from tests.conftest import ServerFactory
from tests.e2e.clients import CotClient, new_uid, sa
from tests.e2e.test_tcp_auth import CHEAP, auth


async def test_anonymous_when_tcp_needs_no_sign_in(make_server: ServerFactory) -> None:
    server = await make_server(http_port=8080)
    alpha = await CotClient.connect(server.port("tcp"))
    await alpha.send(sa("ALPHA-7", "ALPHA"))
    base = f"http://127.0.0.1:{server.port('http')}"
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        for _ in range(50):
            rows = (await http.get("/Marti/api/clientEndPoints")).json()["data"]
            if rows:
                break
            await alpha.expect_silence(0.05)
        assert [r["callsign"] for r in rows] == ["ALPHA"]
        assert (await http.get("/Marti/api/version/config")).json()["type"] == "ServerConfig"


async def test_basic_auth_with_tcp_sign_in_on(make_server: ServerFactory, tmp_path: Path) -> None:
    data_dir = tmp_path / "server0"
    data_dir.mkdir()
    users = UserStore(data_dir, hasher=CHEAP)
    now = int(time.time() * 1000)
    users.add("alice", "alice password", Membership.both(["Blue"]), now_ms=now)
    users.add("eve", "eve password", Membership.both(["Red"]), now_ms=now)
    server = await make_server(http_port=8080, tcp_auth=True)
    bob = await CotClient.connect(server.port("tcp"))
    await bob.send(auth("alice", "alice password") + encode_xml(sa(new_uid(), "BLUE-ONE")))
    await bob.expect_silence(0.2)
    base = f"http://127.0.0.1:{server.port('http')}"
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        nobody = await http.get("/Marti/api/clientEndPoints")
        assert nobody.status_code == 401
        assert nobody.headers["www-authenticate"].startswith("Basic")
        wrong = await http.get("/Marti/api/clientEndPoints", auth=("alice", "guess"))
        assert wrong.status_code == 401
        blue = await http.get("/Marti/api/clientEndPoints", auth=("alice", "alice password"))
        assert [r["callsign"] for r in blue.json()["data"]] == ["BLUE-ONE"]
        red = await http.get("/Marti/api/clientEndPoints", auth=("eve", "eve password"))
        assert red.json()["data"] == []  # Red hears nothing of Blue
        garbage = await http.get(
            "/Marti/api/clientEndPoints", headers={"Authorization": "Basic !!!not-base64"}
        )
        assert garbage.status_code == 401
