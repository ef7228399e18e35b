"""The admin API's users, groups, certificates, packages and QR codes, over real HTTPS with
real client certificates, against real TLS streaming clients."""

from __future__ import annotations

import io
import ssl
import zipfile

import httpx
import pytest

from accord.identity import registry
from accord.identity.users import UserStore
from tests.conftest import Server, ServerFactory
from tests.e2e.clients import CotClient, client_tls_context, new_uid, sa
from tests.e2e.test_admin import as_admin, https

CSRF = {"X-Accord-CSRF": "1"}


async def connect(server: Server, name: str) -> CotClient:
    cert, key = server.client_cert(name, group="Ignored-OU")  # the user record wins
    return await CotClient.connect(
        server.port("tls"), tls=client_tls_context(cert, key, server.pki.ca_cert)
    )


@pytest.fixture
async def live(make_server: ServerFactory) -> Server:
    return await make_server(revocation_check_s=0.1)


async def test_users_are_added_listed_regrouped_and_live_sessions_follow(live: Server) -> None:
    async with as_admin(live) as http:
        added = await http.post(
            "/api/admin/users",
            json={"name": "alice", "password": "correct horse", "groups": ["Blue"]},
        )
        assert added.status_code == 201, added.text
        assert added.json()["groups"] == {"in": ["Blue"], "out": ["Blue"]}
        bob = {"name": "bob", "password": "battery staple", "groups": ["Red"]}
        assert (await http.post("/api/admin/users", json=bob)).status_code == 201
        taken = await http.post("/api/admin/users", json=bob)
        assert taken.status_code == 409
        assert "already exists" in taken.json()["error"]

        alice, bobs = await connect(live, "alice"), await connect(live, "bob")
        first = new_uid()
        await alice.send(sa(first, "ALICE"))
        assert await bobs.expect_silence() == []  # Blue does not reach Red

        listed = {u["name"]: u for u in (await http.get("/api/admin/users")).json()["users"]}
        assert listed["alice"]["sessions"] == 1
        assert listed["bob"]["groups"]["out"] == ["Red"]

        moved = await http.put(
            "/api/admin/users/bob/groups", json={"groups": ["Red"], "out": ["Blue"]}
        )
        assert moved.status_code == 200, moved.text
        assert moved.json()["groups"] == {"in": ["Red"], "out": ["Blue", "Red"]}
        assert (await bobs.recv(timeout=5)).type == "t-x-g-c"  # the live session moved
        assert (await bobs.recv()).uid == first
        await alice.send(sa("ALICE-2", "ALICE"))
        assert (await bobs.recv()).uid == "ALICE-2"

        groups = {g["name"]: g for g in (await http.get("/api/admin/groups")).json()["groups"]}
        assert groups["Blue"]["members"] == {"in": ["alice"], "out": ["alice", "bob"]}
        assert groups["Blue"]["sessions"] == {"in": 1, "out": 2}
        assert groups["Red"]["members"]["in"] == ["bob"]


async def test_a_user_added_or_regrouped_applies_at_once_not_at_the_next_round(
    make_server: ServerFactory,
) -> None:
    # The watcher's own round is ten minutes away: only the admin API's word can apply it.
    server = await make_server(revocation_check_s=600)
    async with as_admin(server) as http:
        for name, group in (("erin", "Blue"), ("frank", "Blue")):
            body = {"name": name, "password": "a long password", "groups": [group]}
            assert (await http.post("/api/admin/users", json=body)).status_code == 201
        erin, frank = await connect(server, "erin"), await connect(server, "frank")
        uid = new_uid()
        await erin.send(sa(uid, "ERIN"))
        got = await frank.recv()  # in Blue from the start, not in its certificate's OU
        assert got.uid == uid
        moved = await http.put("/api/admin/users/frank/groups", json={"groups": ["Red"]})
        assert moved.status_code == 200, moved.text
        assert (await frank.recv()).type == "t-x-g-c"  # moved now, not in ten minutes
        await erin.send(sa(uid, "ERIN"))
        assert await frank.expect_silence() == []  # Blue no longer reaches it


async def test_password_is_set_and_a_removed_user_is_gone(live: Server) -> None:
    async with as_admin(live) as http:
        body = {"name": "carol", "password": "first password"}
        assert (await http.post("/api/admin/users", json=body)).status_code == 201
        changed = await http.put(
            "/api/admin/users/carol/password", json={"password": "second password"}
        )
        assert changed.status_code == 200
        store = UserStore(live.config.data_dir)
        assert store.verify("carol", "second password") is not None
        assert store.verify("carol", "first password") is None
        assert (await http.delete("/api/admin/users/carol")).status_code == 200
        assert UserStore(live.config.data_dir).get("carol") is None
        assert (await http.delete("/api/admin/users/carol")).status_code == 404
        missing = await http.put("/api/admin/users/carol/password", json={"password": "x" * 12})
        assert missing.status_code == 404
        bad = await http.post("/api/admin/users", json={"name": "dave"})
        assert bad.status_code == 400
        assert "'password' is required" in bad.json()["error"]
        worse = await http.post("/api/admin/users", content=b"{not json")
        assert worse.status_code == 400
        groups = await http.post(
            "/api/admin/users", json={"name": "dave", "password": "p" * 12, "groups": "Blue"}
        )
        assert groups.status_code == 400
        assert UserStore(live.config.data_dir).get("dave") is None  # refused: nothing made


async def test_revoking_a_certificate_cuts_that_device_and_only_it(live: Server) -> None:
    async with as_admin(live) as http:
        for name in ("mallory", "alice"):
            body = {"name": name, "password": "long enough 1", "groups": ["Blue"]}
            assert (await http.post("/api/admin/users", json=body)).status_code == 201
        mallory, alice = await connect(live, "mallory"), await connect(live, "alice")
        await mallory.send(sa(new_uid(), "MALLORY"))
        assert (await alice.recv()).detail.contact.callsign == "MALLORY"  # type: ignore[union-attr]

        certs = (await http.get("/api/admin/certificates")).json()["certificates"]
        (target,) = [c for c in certs if c["name"] == "mallory"]
        assert target["revoked"] is False
        revoked = await http.delete(f"/api/admin/certificates/{target['serial']}")
        assert revoked.status_code == 200, revoked.text
        assert revoked.json()["revoked"] is True
        with pytest.raises(ConnectionError):  # its live session is closed
            await mallory.recv(timeout=5)
        assert (await alice.recv()).type == "t-x-d-d"  # the others see it leave
        await alice.send(sa(new_uid(), "ALICE"))  # alice's own session is untouched
        again = await http.delete(f"/api/admin/certificates/{target['serial']}")
        assert again.status_code == 409
        assert (await http.delete("/api/admin/certificates/ABCDEF0123")).status_code == 404
        assert (await http.delete("/api/admin/certificates/not-hex")).status_code == 400
        rows = {r.serial: r for r in registry.load_index(live.pki)}
        assert rows[target["serial"]].revoked


async def test_connection_package_carries_a_fresh_certificate(live: Server) -> None:
    async with as_admin(live) as http:
        body = {"name": "erin", "password": "long enough 2"}
        assert (await http.post("/api/admin/users", json=body)).status_code == 201
        before = len(registry.load_index(live.pki))
        answer = await http.post("/api/admin/users/erin/package", json={"host": "tak.example"})
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == "application/zip"
        assert "erin-tak.example.zip" in answer.headers["content-disposition"]
        names = zipfile.ZipFile(io.BytesIO(answer.content)).namelist()
        assert "MANIFEST/manifest.xml" in names
        assert any(n.endswith("erin-tak.example.p12") for n in names)
        after = registry.load_index(live.pki)
        assert len(after) == before + 1
        assert after[-1].name == "erin"

        enroll = await http.post("/api/admin/users/erin/package", json={"enroll": True})
        enroll_names = zipfile.ZipFile(io.BytesIO(enroll.content)).namelist()
        assert not any("erin" in n and n.endswith(".p12") for n in enroll_names)
        assert len(registry.load_index(live.pki)) == before + 1  # no certificate for enrolment
        nobody = await http.post("/api/admin/users/nobody/package")
        assert nobody.status_code == 404
        wrong = await http.post("/api/admin/users/erin/package", json={"flavour": "wintak"})
        assert wrong.status_code == 400


async def test_enrollment_qr_sets_a_one_time_password_png_and_svg(live: Server) -> None:
    async with as_admin(live) as http:
        body = {"name": "frank", "password": "long enough 3"}
        assert (await http.post("/api/admin/users", json=body)).status_code == 201
        png = await http.post("/api/admin/users/frank/qr", json={"host": "tak.example"})
        assert png.status_code == 200, png.text
        assert png.content.startswith(b"\x89PNG\r\n\x1a\n")
        token = png.headers["x-accord-password"]
        assert f"token={token}" in png.headers["x-accord-qr-payload"]
        assert "host=tak.example" in png.headers["x-accord-qr-payload"]
        store = UserStore(live.config.data_dir)
        assert store.verify("frank", token) is not None
        assert store.verify("frank", "long enough 3") is None
        svg = await http.post("/api/admin/users/frank/qr?format=svg", json={"host": "tak.example"})
        assert svg.headers["content-type"].startswith("image/svg+xml")
        assert svg.content.lstrip().startswith(b"<svg")
        itak = await http.post(
            "/api/admin/users/frank/qr", json={"host": "tak.example", "itak": True}
        )
        assert "x-accord-password" not in itak.headers
        assert itak.headers["x-accord-qr-payload"].endswith(",tak.example,8089,SSL")
        gif = await http.post("/api/admin/users/frank/qr?format=gif")
        assert gif.status_code == 400


async def test_a_browsers_state_change_needs_the_csrf_header_and_its_own_origin(
    live: Server,
) -> None:
    own = f"https://127.0.0.1:{live.port('https')}"
    body = {"name": "grace", "password": "long enough 4"}
    async with as_admin(live) as http:
        evil = await http.post(
            "/api/admin/users", json=body, headers={"Origin": "https://evil.example", **CSRF}
        )
        assert evil.status_code == 403
        assert "evil.example" in evil.json()["error"]
        bare = await http.post("/api/admin/users", json=body, headers={"Origin": own})
        assert bare.status_code == 403
        assert "X-Accord-CSRF" in bare.json()["error"]
        site = await http.post(
            "/api/admin/users", json=body, headers={"Sec-Fetch-Site": "cross-site", **CSRF}
        )
        assert site.status_code == 403
        cookie = await http.delete("/api/admin/users/grace", headers={"Cookie": "s=1"})
        assert cookie.status_code == 403
        assert UserStore(live.config.data_dir).get("grace") is None  # nothing was changed
        ok = await http.post("/api/admin/users", json=body, headers={"Origin": own, **CSRF})
        assert ok.status_code == 201
        # Reading needs no header, from anywhere (a cross-site page cannot read the answer).
        listed = await http.get("/api/admin/users", headers={"Origin": "https://evil.example"})
        assert listed.status_code == 200


async def test_non_administrators_get_403_on_every_new_route(live: Server) -> None:
    cert, key = live.client_cert("alice", "Blue")
    async with https(live, cert, key) as http:
        for method, path in [
            ("GET", "/api/admin/users"),
            ("POST", "/api/admin/users"),
            ("PUT", "/api/admin/users/admin/groups"),
            ("PUT", "/api/admin/users/admin/password"),
            ("DELETE", "/api/admin/users/admin"),
            ("GET", "/api/admin/groups"),
            ("GET", "/api/admin/certificates"),
            ("DELETE", "/api/admin/certificates/01"),
            ("POST", "/api/admin/users/admin/package"),
            ("POST", "/api/admin/users/admin/qr"),
            ("GET", "/api/admin/partners"),
            ("GET", "/api/admin/partners/x/ledger"),
            ("GET", "/api/admin/packages"),
            ("DELETE", "/api/admin/packages/ab"),
        ]:
            answer = await http.request(method, path, json={})
            assert answer.status_code == 403, (method, path)
    async with httpx.AsyncClient(
        base_url=f"https://127.0.0.1:{live.port('https')}",
        verify=ssl.create_default_context(cafile=str(live.pki.ca_cert)),
        timeout=10,
    ) as anonymous:
        with pytest.raises(httpx.HTTPError):  # 8443 requires a certificate at the handshake
            await anonymous.get("/api/admin/users")
