"""The rest of TAK Server's API CloudTAK and node-tak call, in the shapes they validate, over
real TLS with real client certificates; and the smaller mismatches issue 12 found."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import ssl
import zipfile
from collections.abc import Awaitable, Callable

import httpx
from lxml import etree

from accord.store.export import KML_NS
from tests.conftest import Server, ServerFactory
from tests.e2e import shapes
from tests.e2e.clients import CotClient, client_tls_context, sa
from tests.e2e.test_marti import https
from tests.waiting import wait_until

DEADLINE_S = 5.0
ZIP = "application/x-zip-compressed"


def as_admin(server: Server) -> httpx.AsyncClient:
    """With the admin certificate the server keeps for `accord status` (CN admin)."""
    ctx = ssl.create_default_context(cafile=str(server.pki.ca_cert))
    ctx.load_cert_chain(server.pki.admin_cert, server.pki.admin_key)
    return httpx.AsyncClient(
        base_url=f"https://127.0.0.1:{server.port('https')}", verify=ctx, timeout=10
    )


def zip_bytes(size: int) -> bytes:
    """``size`` bytes that start as a zip does (the server does not open packages)."""
    body = b"PK\x03\x04" + bytes(range(256)) * (size // 256 + 1)
    return body[:size]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def commo_upload(
    http: httpx.AsyncClient, data: bytes, name: str = "report.zip"
) -> httpx.Response:
    query = {"hash": sha256(data), "filename": name, "creatorUid": "ANDROID-alpha"}
    return await http.post(
        "/Marti/sync/missionupload", params=query, files={"assetfile": (name, data, ZIP)}
    )


async def tls_client(server: Server, name: str, group: str | None) -> CotClient:
    cert, key = server.client_cert(name, group)
    return await CotClient.connect(
        server.port("tls"), tls=client_tls_context(cert, key, server.pki.ca_cert)
    )


async def until(check: Callable[[], Awaitable[object]], what: str) -> None:
    """Poll an async predicate until it holds, or fail naming what did not happen."""
    await wait_until(check, timeout_s=DEADLINE_S, what=what)


async def contacts_seen(http: httpx.AsyncClient, count: int) -> None:
    async def enough() -> bool:
        return len((await http.get("/Marti/api/contacts/all")).json()) >= count

    await until(enough, f"{count} contacts")


# -- the smaller mismatches ------------------------------------------------------------------
async def test_sync_search_results_always_carry_expiration(server: Server) -> None:
    async with https(server, "red-1", "Red") as red:
        data = zip_bytes(2048)
        assert (await commo_upload(red, data)).status_code == 200
        body = (await red.get("/Marti/sync/search", params={"keywords": "missionpackage"})).json()
        (result,) = body["results"]
        shapes.check(result, shapes.SYNC_RESULT)
        assert result["EXPIRATION"] == "-1"  # TAK Server's value for "never"


async def test_an_administrator_deletes_a_package_shared_in_groups_it_is_not_in(
    server: Server,
) -> None:
    data = zip_bytes(4096)
    async with https(server, "red-1", "Red") as red, as_admin(server) as admin:
        assert (await commo_upload(red, data)).status_code == 200
        # The admin certificate is not in Red: it does not see the package on the user API...
        assert (
            await admin.post("/Marti/sync/delete", params={"hash": sha256(data)})
        ).status_code == 404
        # ...but DELETE /Marti/api/files/{hash} is TAK Server's admin delete.
        deleted = await admin.delete(f"/Marti/api/files/{sha256(data)}")
        assert deleted.status_code == 200, deleted.text
        assert (
            await red.get("/Marti/sync/missionquery", params={"hash": sha256(data)})
        ).status_code == 404
        again = await admin.delete(f"/Marti/api/files/{sha256(data)}")
        assert again.status_code == 404


async def test_a_user_still_cannot_delete_a_package_of_groups_it_is_not_in(
    server: Server,
) -> None:
    data = zip_bytes(1024)
    async with https(server, "red-1", "Red") as red, https(server, "blue-1", "Blue") as blue:
        assert (await commo_upload(red, data)).status_code == 200
        assert (await blue.delete(f"/Marti/api/files/{sha256(data)}")).status_code == 404
        assert (
            await red.get("/Marti/sync/missionquery", params={"hash": sha256(data)})
        ).status_code == 200


async def test_client_endpoints_report_the_certificate_user(server: Server) -> None:
    client = await tls_client(server, "bluebird", "Blue")
    await client.send(sa("BLUE-1", "BLUEBIRD"))
    async with https(server, "blue-viewer", "Blue") as http:
        await contacts_seen(http, 1)
        (entry,) = (await http.get("/Marti/api/clientEndPoints")).json()["data"]
        assert (entry["uid"], entry["username"]) == ("BLUE-1", "bluebird")


# -- files -----------------------------------------------------------------------------------
async def test_file_metadata_count_and_upload_limit(make_server: ServerFactory) -> None:
    server = await make_server(max_package_bytes=5 * 1024 * 1024)
    async with https(server, "red-1", "Red") as red, https(server, "blue-1", "Blue") as blue:
        data = zip_bytes(3000)
        assert (await commo_upload(red, data)).status_code == 200
        meta = await red.get(f"/Marti/sync/{sha256(data)}/metadata")
        assert meta.status_code == 200
        shapes.check(meta.json(), shapes.SYNC_RESULT)
        assert (meta.json()["Hash"], meta.json()["Size"]) == (sha256(data), "3000")
        assert (await blue.get(f"/Marti/sync/{sha256(data)}/metadata")).status_code == 404
        assert (await red.get("/Marti/sync/nothex/metadata")).status_code == 400

        count = (await red.get("/Marti/api/files/metadata/count")).json()
        shapes.check(count, shapes.envelope(int))
        assert count["data"] == 1
        packages = await red.get(
            "/Marti/api/files/metadata/count", params={"missionPackage": "true"}
        )
        assert packages.json()["data"] == 1
        assert (await blue.get("/Marti/api/files/metadata/count")).json()["data"] == 0

        limit = await red.get("/files/api/config")
        assert limit.json() == {"uploadSizeLimit": 5}


# -- subscriptions, device profile, icon sets -------------------------------------------------
async def test_subscriptions_list_the_sessions_the_caller_may_hear(server: Server) -> None:
    blue = await tls_client(server, "bluebird", "Blue")
    red = await tls_client(server, "redbird", "Red")
    takv = '<takv device="Pixel" platform="ATAK-CIV" os="34" version="5.5"/>'
    await blue.send(sa("BLUE-1", "BLUEBIRD", extra=takv))
    await red.send(sa("RED-1", "REDBIRD"))
    async with https(server, "blue-viewer", "Blue") as viewer, as_admin(server) as admin:

        async def both_identified() -> bool:
            rows = (await admin.get("/Marti/api/subscriptions/all")).json()["data"]
            return sorted(r["clientUid"] for r in rows) == ["BLUE-1", "RED-1"]

        await until(both_identified, "both sessions to report")
        mine = (await viewer.get("/Marti/api/subscriptions/all")).json()
        shapes.check(mine, shapes.envelope([shapes.SUBSCRIPTION]))
        (entry,) = mine["data"]
        assert (entry["clientUid"], entry["callsign"], entry["username"]) == (
            "BLUE-1",
            "BLUEBIRD",
            "bluebird",
        )
        assert (entry["takClient"], entry["takVersion"], entry["team"]) == (
            "ATAK-CIV",
            "5.5",
            "Cyan",
        )
        assert entry["ipAddress"] == "127.0.0.1"
        assert entry["numProcessed"] >= 1
        assert {(g["name"], g["direction"]) for g in entry["groups"]} == {
            ("Blue", "IN"),
            ("Blue", "OUT"),
        }

        everyone = await admin.get(
            "/Marti/api/subscriptions/all", params={"sortBy": "UID", "direction": "DESCENDING"}
        )
        assert [s["clientUid"] for s in everyone.json()["data"]] == ["RED-1", "BLUE-1"]
        paged = await admin.get("/Marti/api/subscriptions/all", params={"page": "1", "limit": "1"})
        assert [s["callsign"] for s in paged.json()["data"]] == ["REDBIRD"]
        bad = await admin.get("/Marti/api/subscriptions/all", params={"sortBy": "AGE"})
        assert bad.status_code == 400
        assert "sortBy" in bad.json()["error"]


async def test_device_profile_and_icon_sets_answer_there_are_none(server: Server) -> None:
    async with https(server, "alice") as http:
        profile = await http.get(
            "/Marti/api/device/profile/connection",
            params={"clientUid": "ANDROID-1", "syncSecago": "0"},
        )
        assert (profile.status_code, profile.content) == (204, b"")
        assert (await http.get("/Marti/api/device/profile/connection")).status_code == 400
        icons = (await http.get("/Marti/api/iconset/all/uid")).json()
        shapes.check(icons, shapes.envelope([str]))
        assert icons["data"] == []


# -- security ---------------------------------------------------------------------------------
async def test_security_and_authentication_config_are_for_administrators(
    make_server: ServerFactory,
) -> None:
    server = await make_server(enroll_port=0)
    async with as_admin(server) as admin, https(server, "alice") as alice:
        for path in ("/Marti/api/security/config", "/Marti/api/authentication/config"):
            refused = await alice.get(path)
            assert refused.status_code == 403, path
            assert "admin" in refused.json()["error"]
        sec = (await admin.get("/Marti/api/security/config")).json()
        shapes.check(sec, shapes.envelope(shapes.SECURITY_CONFIG))
        assert sec["data"]["truststoreFile"] == str(server.pki.ca_cert)
        assert sec["data"]["enableEnrollment"] is False  # no enrollment port
        assert sec["data"]["keystorePass"] == ""  # never a secret
        auth = (await admin.get("/Marti/api/authentication/config")).json()
        shapes.check(auth, shapes.envelope(shapes.AUTH_CONFIG))


async def test_is_secure_names_the_plain_ports_and_verify_config_checks_the_files(
    make_server: ServerFactory,
) -> None:
    plain = await make_server()  # TCP streaming and UDP input on, as by default
    async with https(plain, "alice") as http:
        answer = (await http.get("/Marti/api/security/isSecure")).json()
        shapes.check(answer, shapes.envelope(str))
        ports = sorted((plain.port("tcp"), plain.port("udp")))
        assert answer["data"] == f"[{ports[0]}, {ports[1]}]"  # Java's List.toString()
        verified = (await http.get("/Marti/api/security/verifyConfig")).json()
        assert verified["data"] == "true"
    secure = await make_server(tcp_port=0, udp_port=0)
    async with https(secure, "alice") as http:
        assert (await http.get("/Marti/api/security/isSecure")).json()["data"] == "true"


# -- KML export -------------------------------------------------------------------------------
def placemarks(kml: bytes) -> list[str]:
    root = etree.fromstring(kml)
    return [
        mark.findtext(f"{{{KML_NS}}}name") or "" for mark in root.iter(f"{{{KML_NS}}}Placemark")
    ]


async def test_kml_export_holds_what_the_callers_groups_could_receive(server: Server) -> None:
    blue = await tls_client(server, "bluebird", "Blue")
    red = await tls_client(server, "redbird", "Red")
    await blue.send(sa("BLUE-1", "BLUEBIRD"))
    await red.send(sa("RED-1", "REDBIRD"))
    start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    form = {"startTime": start.isoformat(), "format": "kml", "extendedData": "true"}
    async with https(server, "blue-viewer", "Blue") as viewer, as_admin(server) as admin:

        async def archived() -> bool:
            answer = await viewer.post("/Marti/ExportMissionKML", data=form)
            return placemarks(answer.content) == ["BLUEBIRD"]

        await until(archived, "blue's SA in the export")
        answer = await viewer.post("/Marti/ExportMissionKML", data=form)
        assert answer.headers["content-type"].startswith("application/vnd.google-earth.kml+xml")
        assert answer.headers["content-disposition"].endswith(".kml")

        kmz = await viewer.get("/Marti/ExportMissionKML", params={**form, "format": "kmz"})
        assert kmz.headers["content-type"] == "application/vnd.google-earth.kmz"
        with zipfile.ZipFile(io.BytesIO(kmz.content)) as archive:
            assert placemarks(archive.read("doc.kml")) == ["BLUEBIRD"]

        # A caller may filter only on its own groups; an administrator on any.
        refused = await viewer.post("/Marti/ExportMissionKML", data={**form, "groups": "Red"})
        assert refused.status_code == 403
        red_only = await admin.post("/Marti/ExportMissionKML", data={**form, "groups": "Red"})
        assert placemarks(red_only.content) == ["REDBIRD"]
        one_uid = await admin.post(
            "/Marti/ExportMissionKML", data={**form, "groups": ["Red", "Blue"], "uid": "BLUE-1"}
        )
        assert placemarks(one_uid.content) == ["BLUEBIRD"]
        later = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()
        backwards = await viewer.post("/Marti/ExportMissionKML", data={"startTime": later})
        assert backwards.status_code == 400  # start after the default end (now)
        bad = await viewer.post("/Marti/ExportMissionKML", data={"startTime": "yesterday"})
        assert bad.status_code == 400
        assert "startTime" in bad.json()["error"]


async def test_plain_http_serves_the_user_endpoints_but_never_the_admin_ones(
    make_server: ServerFactory,
) -> None:
    server = await make_server(http_port=8080, max_package_bytes=3 * 1024 * 1024)
    base = f"http://127.0.0.1:{server.port('http')}"
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        assert (await http.get("/files/api/config")).json() == {"uploadSizeLimit": 3}
        assert (await http.get("/Marti/api/video")).json() == {"videoConnections": []}
        assert (await http.get("/Marti/api/subscriptions/all")).status_code == 200
        for path in ("/Marti/api/certadmin/cert", "/Marti/api/security/config"):
            assert (await http.get(path)).status_code == 404, path


async def test_the_kml_export_reads_a_bounded_number_of_history_pages(
    tmp_path: object, monkeypatch: object
) -> None:
    from pathlib import Path

    import pytest
    from starlette.applications import Starlette

    from accord.api import kml_export
    from accord.domain.groups import Membership
    from accord.store.opening import open_store
    from accord.store.records import HistoryPage, HistoryQuery, Payload, StoredEvent

    assert isinstance(tmp_path, Path)
    assert isinstance(monkeypatch, pytest.MonkeyPatch)
    monkeypatch.setattr(kml_export, "EXPORT_PAGE_ROWS", 5)
    now = int(dt.datetime.now(dt.UTC).timestamp() * 1000)

    def event(i: int, type_: str) -> StoredEvent:
        payload = (
            f'<event version="2.0" uid="u{i}" type="{type_}" how="h-e" time="2026-01-01T00:00:00Z"'
            ' start="2026-01-01T00:00:00Z" stale="2026-01-01T00:01:00Z">'
            '<point lat="1" lon="2" hae="0" ce="9" le="9"/><detail/></event>'
        ).encode()
        return StoredEvent(
            f"u{i}", type_, "h-e", now - 60_000 + i, now - 60_000 + i, now + 60_000,
            1.0, 2.0, 0.0, f"cs{i}", ("A",), payload, payload_format=Payload.XML,
        )  # fmt: skip

    store = await open_store("", tmp_path)
    try:
        chat = [event(i, "b-t-f") for i in range(200)]  # 40 pages of what the export leaves out
        await store.write_events([*chat, event(999, "a-f-G")], [])
        pages: list[int] = []

        class Counted:
            async def history(self, query: HistoryQuery) -> HistoryPage:
                pages.append(1)
                return await store.history(query)

        routes = kml_export.kml_export_routes(
            Counted(),  # type: ignore[arg-type]
            lambda request: Membership.both(["A"]),
            lambda request: None,
            lambda: now,
        )
        app = Starlette(routes=routes)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            answer = await http.get("/Marti/ExportMissionKML", params={"interval": "1"})
        assert answer.status_code == 200, answer.text
        assert len(pages) == kml_export.MAX_EXPORT_PAGES
        assert placemarks(answer.content) == []  # the one SA lies beyond the pages read
    finally:
        await store.close()


async def test_a_utf16_video_feed_with_an_entity_is_refused(server: Server) -> None:
    from tests.e2e.test_video import feeds

    body = (
        '<?xml version="1.0" encoding="UTF-16"?>'
        '<!DOCTYPE videoConnections [<!ENTITY x "10.9.9.9">]>'
        "<videoConnections><feed><uuid>f-16</uuid><alias>&x;</alias><protocol>rtsp</protocol>"
        "<address>10.1.2.3</address><port>8554</port><path>/e</path></feed></videoConnections>"
    )
    async with https(server, "red-1", "Red") as red:
        for raw in (body.encode("utf-16"), body.encode("utf-16-le")):
            posted = await red.post("/Marti/vcm", content=raw)
            assert posted.status_code == 400, posted.text
            assert "UTF-8" in posted.text
        assert feeds((await red.get("/Marti/vcm")).content) == []
