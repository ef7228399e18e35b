"""Data packages end to end: upload, find, fetch and delete them as ATAK and iTAK do, over real
HTTPS with client certificates, and everything a client can get wrong (reference §4.4-4.10)."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import os
import socket
import ssl
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from lxml import etree

from accord.app import start
from accord.store.records import PackageQuery
from tests.conftest import Server, ServerFactory
from tests.e2e.clients import CotClient, client_tls_context, marker, new_uid, sa
from tests.e2e.test_marti import https
from tests.waiting import wait_until

ZIP = "application/x-zip-compressed"


def package_bytes(size: int = 50_000, seed: int = 0) -> bytes:
    block = hashlib.sha256(str(seed).encode()).digest()
    return b"PK\x03\x04" + (block * (size // len(block) + 1))[: size - 4]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def commo_upload(
    http: httpx.AsyncClient, data: bytes, name: str = "report.zip", **params: str
) -> httpx.Response:
    """What commo sends (missionpackagemanager.cpp, UPLOAD): hash, filename and creatorUid, one
    form part with the zip's content type."""
    query = {"hash": sha256(data), "filename": name, "creatorUid": "ANDROID-alpha", **params}
    return await http.post(
        "/Marti/sync/missionupload", params=query, files={"assetfile": (name, data, ZIP)}
    )


def package_files(server: Server) -> list[Path]:
    """Every file under the package directory: blobs and any temporary file."""
    root = server.config.data_dir / "packages"
    return sorted(p for p in root.rglob("*") if p.is_file())


async def assert_nothing_stored(server: Server) -> None:
    assert server.running.store is not None
    assert await server.running.store.packages(PackageQuery()) == []
    assert package_files(server) == []


def client_context(server: Server, name: str) -> ssl.SSLContext:
    """A client TLS context with a certificate from the server's CA (issued here: slow)."""
    cert, key = server.client_cert(name)
    ctx = ssl.create_default_context(cafile=str(server.pki.ca_cert))
    ctx.load_cert_chain(cert, key)
    return ctx


async def raw_https(
    server: Server, name: str | ssl.SSLContext, port: int | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A bare TLS connection to the HTTPS port with a client certificate (a name to issue one
    for, or a context holding one), for what httpx will not do (stop mid-body, stop reading).
    Bounded: pytest-timeout cannot interrupt uvloop."""
    ctx = client_context(server, name) if isinstance(name, str) else name
    async with asyncio.timeout(10):
        return await asyncio.open_connection("127.0.0.1", port or server.port("https"), ssl=ctx)


async def tls_client(server: Server, name: str, group: str | None = None) -> CotClient:
    cert, key = server.client_cert(name, group)
    ctx = client_tls_context(cert, key, server.pki.ca_cert)
    async with asyncio.timeout(10):
        return await CotClient.connect(server.port("tls"), tls=ctx)


# -- the ATAK flow ---------------------------------------------------------------------------
async def test_commo_upload_then_query_mark_private_and_download(server: Server) -> None:
    data = package_bytes()
    digest = sha256(data)
    url = f"https://127.0.0.1:{server.port('https')}/Marti/sync/content?hash={digest}"
    async with https(server, "alpha") as http:
        assert (
            await http.get("/Marti/sync/missionquery", params={"hash": digest})
        ).status_code == 404
        uploaded = await commo_upload(http, data)
        assert uploaded.status_code == 200
        assert uploaded.headers["content-type"].startswith("text/plain")
        assert uploaded.text == url
        query = await http.get("/Marti/sync/missionquery", params={"hash": digest})
        assert (query.status_code, query.text) == (200, url)

        marked = await http.put(f"/Marti/api/sync/metadata/{digest}/tool", content=b"private")
        assert marked.status_code == 200
        public = await http.get(
            "/Marti/sync/search", params={"keywords": "missionpackage", "tool": "public"}
        )
        assert public.json() == {"resultCount": 0, "results": []}
        private = (await http.get("/Marti/sync/search", params={"tool": "private"})).json()
        assert private["resultCount"] == 1
        (entry,) = private["results"]
        assert entry["Hash"] == entry["UID"] == digest
        assert (entry["Name"], entry["Size"], entry["Tool"]) == (
            "report.zip",
            str(len(data)),
            "private",
        )
        assert (entry["MIMEType"], entry["Keywords"]) == (ZIP, ["missionpackage"])
        assert (entry["CreatorUid"], entry["SubmissionUser"]) == ("ANDROID-alpha", "alpha")
        assert int(entry["PrimaryKey"]) >= 0  # ATAK's MissionPackageQueryResult requires it

        fetched = await http.get(url)
        assert fetched.status_code == 200
        assert fetched.content == data
        assert fetched.headers["content-type"] == ZIP
        assert fetched.headers["content-disposition"] == 'inline; filename="report.zip"'


async def test_download_resumes_at_an_offset_and_reads_a_range(server: Server) -> None:
    data = package_bytes(700_000)
    digest = sha256(data)
    async with https(server, "alpha") as http:
        await commo_upload(http, data)
        resumed = await http.get("/Marti/sync/content", params={"hash": digest, "offset": 123_457})
        assert resumed.status_code == 200  # as TAK Server: an offset alone is not "partial"
        assert resumed.content == data[123_457:]
        assert resumed.headers["content-length"] == str(len(data) - 123_457)
        part = await http.get(
            "/Marti/sync/content", params={"hash": digest, "offset": 10, "length": 1000}
        )
        assert part.status_code == 206
        assert part.content == data[10:1010]
        assert part.headers["content-range"] == f"bytes 10-1009/{len(data)}"
        end = await http.get("/Marti/sync/content", params={"hash": digest, "offset": len(data)})
        assert (end.status_code, end.content) == (200, b"")
        by_uid = await http.get("/Marti/sync/content", params={"UID": digest.upper()})
        assert by_uid.content == data


async def test_head_tells_the_size_without_the_bytes(server: Server) -> None:
    data = package_bytes(300_000)
    async with https(server, "alpha") as http:
        await commo_upload(http, data, name="map.kmz", mimetype="application/vnd.google-earth.kmz")
        head = await http.head("/Marti/sync/content", params={"hash": sha256(data)})
        assert head.status_code == 200
        assert head.headers["content-length"] == str(len(data))
        assert head.headers["content-type"] == "application/vnd.google-earth.kmz"
        assert head.content == b""
        # The connection is still usable: no body was left in it.
        assert (
            await http.get("/Marti/sync/content", params={"hash": sha256(data)})
        ).content == data


async def test_send_a_file_to_a_contact_through_the_server(server: Server) -> None:
    """§4.10: A uploads, tells B with a b-f-t-r routed like any event, B fetches the URL."""
    alpha = await tls_client(server, "alpha", "Blue")
    bravo = await tls_client(server, "bravo", "Blue")
    await alpha.send(sa("ALPHA-1", "ALPHA"))
    await bravo.send(sa("BRAVO-1", "BRAVO"))
    await alpha.recv(), await bravo.recv()
    data = package_bytes(250_000, seed=7)
    digest = sha256(data)
    async with https(server, "alpha", "Blue") as http:
        url = (await commo_upload(http, data, name="photo.zip")).text
        assert (
            await http.put(f"/Marti/api/sync/metadata/{digest}/tool", content=b"private")
        ).status_code == 200
    detail = (
        f'<fileshare filename="photo.zip" senderUrl="{url}" sizeInBytes="{len(data)}" '
        f'sha256="{digest}" senderUid="ALPHA-1" senderCallsign="ALPHA" name="photo"/>'
        '<ackrequest uid="ack-1" ackrequested="true" tag="photo"/>'
        '<marti><dest callsign="BRAVO"/></marti>'
    )
    await alpha.send(marker(new_uid("transfer"), type_="b-f-t-r", detail=detail))
    offer = await bravo.recv_until(lambda e: e.type == "b-f-t-r")
    share = etree.fromstring(f"<detail>{offer.detail.xml}</detail>").find("fileshare")
    assert share is not None
    async with https(server, "bravo", "Blue") as http:
        fetched = await http.get(share.get("senderUrl"))
    assert fetched.status_code == 200
    assert sha256(fetched.content) == share.get("sha256") == digest


async def test_itak_uploads_the_raw_body_to_sync_upload(server: Server) -> None:
    """iTAK (taky #81, OpenTAKServer #157): POST /Marti/sync/upload?CreatorUid=&keywords=&name=
    with the file as the body; TAK Server's UploadServlet answers the metadata as JSON."""
    data = package_bytes(80_000, seed=3)
    async with https(server, "ios", "Blue") as http:
        answer = await http.post(
            "/Marti/sync/upload",
            params={
                "CreatorUid": "1874F828-5CF1",
                "keywords": "missionpackage",
                "name": "FM05-iOS.zip",
            },
            content=data,
            headers={"content-type": "application/zip"},
        )
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/json")
        meta = answer.json()
        assert meta["Hash"] == meta["UID"] == sha256(data)
        assert (meta["Name"], meta["MIMEType"], meta["Size"]) == (
            "FM05-iOS.zip",
            "application/zip",
            str(len(data)),
        )
        assert (meta["CreatorUid"], meta["Keywords"], meta["Groups"]) == (
            "1874F828-5CF1",
            ["missionpackage"],
            ["Blue"],
        )
        listed = (
            await http.get("/Marti/sync/search", params={"keywords": "missionpackage"})
        ).json()
        assert [r["Hash"] for r in listed["results"]] == [sha256(data)]
        fetched = await http.get("/Marti/sync/content", params={"hash": sha256(data)})
        assert fetched.content == data
        # The Data Sync plugin and browsers send a form instead; the part's name and type count.
        form = await http.post(
            "/Marti/sync/upload",
            params={"Latitude": "48.5", "Longitude": "-3.25"},
            files={"resource": ("notes.txt", b"hello", "text/plain")},
        )
        assert form.status_code == 200
        assert (form.json()["Name"], form.json()["MIMEType"]) == ("notes.txt", "text/plain")
        assert (form.json()["Latitude"], form.json()["Longitude"]) == ("48.5", "-3.25")


async def test_api_search_answers_the_envelope_of_resources(server: Server) -> None:
    data = package_bytes(1000)
    async with https(server, "alpha") as http:
        await commo_upload(http, data, keyword="survey")
        body = (await http.get("/Marti/api/sync/search", params={"keyword": "survey"})).json()
        assert (body["version"], body["type"]) == ("3", "Resource")
        (item,) = body["data"]
        assert (item["hash"], item["name"], item["size"], item["keywords"]) == (
            sha256(data),
            "report.zip",
            1000,
            ["survey"],
        )
        none = (await http.get("/Marti/api/sync/search", params={"keyword": "other"})).json()
        assert none["data"] == []
        later = {"startTime": "2100-01-01T00:00:00Z"}
        assert (await http.get("/Marti/api/sync/search", params=later)).json()["data"] == []
        by_name = await http.get("/Marti/sync/search", params={"Filename": "report.zip"})
        assert by_name.json()["resultCount"] == 1


# -- groups ----------------------------------------------------------------------------------
async def test_a_package_is_invisible_outside_its_groups(server: Server) -> None:
    data = package_bytes(seed=11)
    digest = sha256(data)
    async with https(server, "blue", "Blue") as blue:
        assert (await commo_upload(blue, data)).status_code == 200
    async with https(server, "red", "Red") as red:
        for answer in (
            await red.get("/Marti/sync/missionquery", params={"hash": digest}),
            await red.get("/Marti/sync/content", params={"hash": digest}),
            await red.put(f"/Marti/api/sync/metadata/{digest}/tool", content=b"public"),
            await red.delete("/Marti/sync/delete", params={"hash": digest}),
            await red.delete(f"/Marti/api/files/{digest}"),
        ):
            assert answer.status_code == 404
            assert answer.json() == {"error": f"no package with hash {digest}"}
        assert (await red.head("/Marti/sync/content", params={"hash": digest})).status_code == 404
        assert (await red.get("/Marti/sync/search")).json() == {"resultCount": 0, "results": []}
        assert (await red.get("/Marti/api/sync/search")).json()["data"] == []
    async with https(server, "blue-2", "Blue") as blue:
        assert (await blue.get("/Marti/sync/content", params={"hash": digest})).content == data


async def test_an_uploader_may_name_only_groups_it_sends_into(server: Server) -> None:
    data = package_bytes()
    async with https(server, "blue", "Blue") as blue:
        refused = await commo_upload(blue, data, groups="Blue,Red")
        assert refused.status_code == 403
        assert refused.json() == {"error": "you may not share into group(s) Red"}
        await assert_nothing_stored(server)
        assert (await commo_upload(blue, data, groups="Blue")).status_code == 200


async def test_shared_bytes_are_deleted_only_by_who_is_in_all_their_groups(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    groups = tmp_path / "groups.toml"
    groups.write_text('both = ["Blue", "Red"]\n')
    server = await make_server(groups_file=str(groups))
    data = package_bytes(seed=5)
    digest = sha256(data)
    async with https(server, "blue", "Blue") as blue, https(server, "red", "Red") as red:
        await commo_upload(blue, data)
        await commo_upload(red, data)  # the same bytes, shared in Red too
        assert (await red.get("/Marti/sync/content", params={"hash": digest})).content == data
        refused = await blue.delete("/Marti/sync/delete", params={"hash": digest})
        assert refused.status_code == 403
        assert "Red" in refused.json()["error"]
    async with https(server, "both") as both:
        deleted = await both.post("/Marti/sync/delete", params={"Hash": digest})
        assert deleted.json() == {"deleted": digest}
    await assert_nothing_stored(server)


async def test_delete_removes_metadata_and_bytes(server: Server) -> None:
    data = package_bytes()
    digest = sha256(data)
    async with https(server, "alpha") as http:
        await commo_upload(http, data)
        assert len(package_files(server)) == 1
        assert (await http.delete(f"/Marti/api/files/{digest}")).status_code == 200
        await assert_nothing_stored(server)
        gone = await http.get("/Marti/sync/content", params={"hash": digest})
        assert gone.status_code == 404
        again = await http.delete("/Marti/sync/delete", params={"hash": digest})
        assert again.status_code == 404


# -- what a client can get wrong -------------------------------------------------------------
BAD_HASH = "not-a-hash/../../etc/passwd"


BAD_UPLOADS: list[tuple[dict[str, Any], bool | None, int, str]] = [
    ({"hash": BAD_HASH}, True, 400, "hash must be a sha256"),
    ({"hash": "0" * 64}, True, 400, "not to the hash given " + "0" * 64),
    ({"filename": None}, True, 400, "the filename parameter is required"),
    ({"filename": "../.."}, True, 400, "names no file"),
    ({"mimetype": "zip; rm -rf"}, True, 400, "is not a MIME type"),
    ({"tool": "pub lic"}, True, 400, "tool must be a word"),
    ({"creatorUid": "a\nb"}, True, 400, "creatorUid must be"),
    ({}, False, 400, "no file in the form"),
    ({}, None, 400, "the file in the form is empty"),
]


async def test_bad_uploads_are_refused_with_a_reason_and_store_nothing(server: Server) -> None:
    data = package_bytes()
    async with https(server, "alpha") as http:
        for params, files, status, reason in BAD_UPLOADS:
            query = {"hash": sha256(data), "filename": "p.zip", "creatorUid": "ANDROID-x", **params}
            query = {k: v for k, v in query.items() if v is not None}
            if files is None:
                form = {"assetfile": ("p.zip", b"", ZIP)}
            else:
                form = {"assetfile": ("p.zip", data, ZIP)} if files else {"note": (None, b"text")}
            answer = await http.post("/Marti/sync/missionupload", params=query, files=form)
            assert answer.status_code == status, params
            assert reason in answer.json()["error"], params
            await assert_nothing_stored(server)


async def test_a_path_in_the_filename_is_only_a_display_name(server: Server) -> None:
    data = package_bytes()
    async with https(server, "alpha") as http:
        answer = await commo_upload(http, data, name="../../../../tmp/evil\\..\\x.zip")
        assert answer.status_code == 200
        (entry,) = (await http.get("/Marti/sync/search")).json()["results"]
        assert entry["Name"] == "x.zip"
        fetched = await http.get("/Marti/sync/content", params={"hash": sha256(data)})
        assert fetched.headers["content-disposition"] == 'inline; filename="x.zip"'
        other = package_bytes(seed=1)
        await commo_upload(http, other, name='карта "north".zip')
        named = await http.get("/Marti/sync/content", params={"hash": sha256(other)})
        assert named.headers["content-disposition"] == (
            'inline; filename="_____ _north_.zip"; '
            "filename*=UTF-8''%D0%BA%D0%B0%D1%80%D1%82%D0%B0%20%22north%22.zip"
        )
    assert sorted(p.name for p in package_files(server)) == sorted([sha256(data), sha256(other)])
    assert not (server.config.data_dir.parent / "tmp").exists()


async def test_a_body_that_is_not_a_form_is_refused(server: Server) -> None:
    data = package_bytes()
    async with https(server, "alpha") as http:
        answer = await http.post(
            "/Marti/sync/missionupload",
            params={"filename": "p.zip"},
            content=data,
            headers={"content-type": ZIP},
        )
        assert answer.status_code == 400
        assert "multipart/form-data" in answer.json()["error"]
        empty = await http.post("/Marti/sync/upload", params={"name": "e.zip"}, content=b"")
        assert empty.status_code == 400
        assert "empty" in empty.json()["error"]
        nameless = await http.post("/Marti/sync/upload", content=b"bytes")
        assert nameless.status_code == 400
        assert "name parameter is required" in nameless.json()["error"]
    await assert_nothing_stored(server)


async def test_a_form_without_its_closing_boundary_is_refused(server: Server) -> None:
    body = (
        b"--XyZ\r\n"
        b'Content-Disposition: form-data; name="assetfile"; filename="p.zip"\r\n'
        b"Content-Type: application/x-zip-compressed\r\n\r\n" + package_bytes() + b"\r\n"
    )  # no "--XyZ--"
    async with https(server, "alpha") as http:
        answer = await http.post(
            "/Marti/sync/missionupload",
            params={"filename": "p.zip"},
            content=body,
            headers={"content-type": "multipart/form-data; boundary=XyZ"},
        )
        assert answer.status_code == 400
        assert "ended before its closing boundary" in answer.json()["error"]
        garbled = await http.post(
            "/Marti/sync/missionupload",
            params={"filename": "p.zip"},
            content=b"this is not a form at all",
            headers={"content-type": "multipart/form-data; boundary=XyZ"},
        )
        assert garbled.status_code == 400
        assert "malformed" in garbled.json()["error"]
        unbounded = await http.post(
            "/Marti/sync/missionupload",
            params={"filename": "p.zip"},
            content=b"x",
            headers={"content-type": "multipart/form-data"},
        )
        assert unbounded.status_code == 400
        assert "boundary" in unbounded.json()["error"]
    await assert_nothing_stored(server)


async def test_a_client_that_goes_away_mid_upload_leaves_nothing(server: Server) -> None:
    _, writer = await raw_https(server, "quitter")
    part = (
        b'--B\r\nContent-Disposition: form-data; name="assetfile"; filename="p.zip"\r\n\r\n'
        + package_bytes(3_000_000)
    )
    writer.write(
        b"POST /Marti/sync/missionupload?filename=p.zip HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: multipart/form-data; boundary=B\r\n"
        b"Content-Length: 9000000\r\n\r\n" + part
    )
    async with asyncio.timeout(10):
        await writer.drain()
    await wait_until(lambda: package_files(server), what="streaming into a temporary file")
    writer.close()
    await wait_until(lambda: not package_files(server), what="the temporary file removed")
    await assert_nothing_stored(server)


async def test_oversized_uploads_are_refused_up_front_and_while_streaming(
    make_server: ServerFactory,
) -> None:
    server = await make_server(max_package_bytes=100_000)
    limit_reason = "larger than this server's limit of 100000 bytes"
    async with https(server, "alpha") as http:
        declared = await commo_upload(http, package_bytes(300_000))
        assert declared.status_code == 413
        assert limit_reason in declared.json()["error"]

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: chunked
            yield b"x" * 60_000
            yield b"x" * 60_000

        streamed = await http.post(
            "/Marti/sync/upload", params={"name": "big.bin"}, content=chunks()
        )
        assert streamed.status_code == 413
        assert limit_reason in streamed.json()["error"]
        assert (
            await commo_upload(http, package_bytes(100_000))
        ).status_code == 200  # the limit itself


BAD_DOWNLOADS: list[tuple[dict[str, str], int, str]] = [
    ({"hash": None}, 400, "the hash (or uid) parameter is required"),
    ({"hash": BAD_HASH}, 400, "hash must be a sha256"),
    ({"hash": "ab" * 32}, 404, "no package with hash " + "ab" * 32),
    ({"offset": "ten"}, 400, "offset must be a whole number of bytes"),
    ({"offset": "-1"}, 400, "offset must be a whole number of bytes"),
    ({"offset": "1.5"}, 400, "offset must be a whole number of bytes"),
    ({"length": "x"}, 400, "length must be a whole number of bytes"),
    ({"offset": "50001"}, 416, "offset 50001 is past the end of the package (50000 bytes)"),
]


async def test_bad_downloads_are_refused_with_a_reason(server: Server) -> None:
    data = package_bytes(50_000)
    async with https(server, "alpha") as http:
        await commo_upload(http, data)
        for params, status, reason in BAD_DOWNLOADS:
            query = {k: v for k, v in {"hash": sha256(data), **params}.items() if v is not None}
            for method in ("HEAD", "GET"):
                answer = await http.request(method, "/Marti/sync/content", params=query)
                assert answer.status_code == status, (method, params)
            assert reason in answer.json()["error"], params
            if status == 416:
                assert answer.headers["content-range"] == "bytes */50000"


BAD_METADATA: list[tuple[str, bytes, int, str]] = [
    ("{hash}/keywords", b'["a"]', 400, "only tool and mimetype can be set this way"),
    ("{hash}/tool", b"", 400, "the body must be the new tool"),
    ("{hash}/tool", b"not a word!", 400, "tool must be a word"),
    ("{hash}/tool", b"\xff\xfe", 400, "not UTF-8"),
    ("{hash}/tool", b"x" * 5000, 413, "longer than 4096 bytes"),
    ("{hash}/mimetype", b"text", 400, "is not a MIME type"),
    ("not-a-hash/tool", b"private", 400, "hash must be a sha256"),
    ("cd" * 32 + "/tool", b"private", 404, "no package with hash " + "cd" * 32),
]


async def test_bad_metadata_changes_are_refused_with_a_reason(server: Server) -> None:
    data = package_bytes()
    digest = sha256(data)
    async with https(server, "alpha") as http:
        await commo_upload(http, data)
        for path, body, status, reason in BAD_METADATA:
            where = f"/Marti/api/sync/metadata/{path.format(hash=digest)}"
            answer = await http.put(where, content=body)
            assert answer.status_code == status, path
            assert reason in answer.json()["error"], path
        (entry,) = (await http.get("/Marti/sync/search")).json()["results"]
        assert (entry["Tool"], entry["MIMEType"]) == ("public", ZIP)  # unchanged
        changed = await http.put(
            f"/Marti/api/sync/metadata/{digest}/MIMEType", content=b"application/zip\n"
        )
        assert changed.status_code == 200
        (entry,) = (await http.get("/Marti/sync/search")).json()["results"]
        assert entry["MIMEType"] == "application/zip"


async def test_bad_searches_and_deletes_are_refused_with_a_reason(server: Server) -> None:
    async with https(server, "alpha") as http:
        bad_time = await http.get("/Marti/sync/search", params={"StartTime": "yesterday"})
        assert bad_time.status_code == 400
        assert "ISO 8601" in bad_time.json()["error"]
        for answer in (
            await http.delete("/Marti/sync/delete"),
            await http.delete("/Marti/sync/delete", params={"hash": BAD_HASH}),
            await http.delete("/Marti/api/files/" + "z" * 64),
            await http.get("/Marti/sync/missionquery"),
            await http.get("/Marti/sync/missionquery", params={"hash": "abc"}),
        ):
            assert answer.status_code == 400
            assert "hash" in answer.json()["error"]


def established(port: int) -> int:
    """How many TCP connections to ``port`` on 127.0.0.1 are open on the server's side, as
    the kernel lists them (/proc/net/tcp: local address, state 01 = ESTABLISHED)."""
    local = f"0100007F:{port:04X}"
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return sum(1 for row in rows if row.split()[1] == local and row.split()[3] == "01")


def open_blob_files(server: Server, digest: str) -> list[str]:
    """The file descriptors of this process (the server runs in it) open on the blob."""
    blob = str(server.config.data_dir / "packages" / digest[:2] / digest)
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == blob:
                found.append(fd)
        except OSError:
            continue
    return found


async def abandon_download(server: Server, name: str | ssl.SSLContext, digest: str) -> None:
    """Start downloading the blob, read a little, stop reading (the server is then held by flow
    control) and drop the connection; the connection is dropped whatever goes wrong."""
    reader, writer = await raw_https(server, name)
    try:
        writer.write(f"GET /Marti/sync/content?hash={digest} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        async with asyncio.timeout(10):
            assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200 ")
            await reader.read(65536)
        await wait_until(lambda: open_blob_files(server, digest), what="the blob is open")
    finally:
        writer.transport.abort()


async def test_a_download_the_client_abandons_stops_and_closes_the_file(server: Server) -> None:
    data = package_bytes(8_000_000, seed=2)
    digest = sha256(data)
    async with https(server, "alpha") as http:
        await commo_upload(http, data)
    await abandon_download(server, "quitter", digest)
    await wait_until(lambda: not open_blob_files(server, digest), what="the blob is closed")
    async with https(server, "alpha") as http:
        assert (await http.get("/Marti/sync/content", params={"hash": digest})).content == data


# 50 rounds with RUN_SLOW=1 (the load the hang was seen under); a short form by default.
ABANDON_ROUNDS = 50 if os.environ.get("RUN_SLOW") == "1" else 5
ABANDONS_PER_ROUND = 4


@pytest.mark.slow
@pytest.mark.timeout(60 + 6 * ABANDON_ROUNDS)
async def test_downloads_abandoned_again_and_again_under_load_all_stop_and_close(
    server: Server,
) -> None:
    abandoned, loaded = package_bytes(8_000_000, seed=4), package_bytes(2_000_000, seed=5)
    async with https(server, "alpha") as http:
        for data in (abandoned, loaded):
            assert (await commo_upload(http, data)).status_code == 200
    stop = asyncio.Event()

    async def load() -> int:
        """Whole downloads of another package, back to back, while the others are abandoned."""
        done = 0
        async with https(server, "loader") as http:
            while not stop.is_set():
                got = await http.get("/Marti/sync/content", params={"hash": sha256(loaded)})
                assert got.content == loaded
                done += 1
        return done

    quitters = [client_context(server, f"quitter{i}") for i in range(ABANDONS_PER_ROUND)]
    loader = asyncio.create_task(load())
    try:
        for _ in range(ABANDON_ROUNDS):
            await asyncio.gather(
                *(abandon_download(server, q, sha256(abandoned)) for q in quitters)
            )
            await wait_until(
                lambda: not open_blob_files(server, sha256(abandoned)),
                what="every abandoned download closed its file",
            )
    finally:
        stop.set()
        assert await loader > 0
    await wait_until(
        lambda: established(server.port("https")) == 0,
        what="every abandoned connection is gone",
    )
    async with https(server, "alpha") as http:
        fetched = await http.get("/Marti/sync/content", params={"hash": sha256(abandoned)})
        assert fetched.content == abandoned


async def test_closing_the_server_drops_a_download_the_client_stopped_reading(
    make_server: ServerFactory,
) -> None:
    # A response still held by flow control when the server closes ends with the grace: a
    # graceful TLS close would wait for the client to read on, and hold the event loop's close.
    server = await make_server()
    data = package_bytes(8_000_000, seed=6)
    digest = sha256(data)
    async with https(server, "alpha") as http:
        await commo_upload(http, data)
    reader, writer = await raw_https(server, "stalled")
    try:
        writer.write(f"GET /Marti/sync/content?hash={digest} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        async with asyncio.timeout(10):
            await reader.readuntil(b"\r\n\r\n")
            await reader.read(65536)  # then stop reading, and stay connected
        await wait_until(lambda: open_blob_files(server, digest), what="the blob is open")
        port = server.port("https")
        async with asyncio.timeout(30):
            await server.running.close(grace_s=0.5)
        assert established(port) == 0
        assert open_blob_files(server, digest) == []
    finally:
        writer.transport.abort()


async def test_closing_the_server_lets_a_download_under_way_finish_and_takes_no_new_one(
    make_server: ServerFactory,
) -> None:
    # The other half of the grace: a response under way when the server closes is sent to the
    # end (a client still reading gets all of it), while the port takes no new connection.
    server = await make_server()
    data = package_bytes(2_000_000, seed=7)
    digest = sha256(data)
    async with https(server, "alpha") as http:
        await commo_upload(http, data)
    port = server.port("https")
    reader, writer = await raw_https(server, "reader")
    try:
        writer.write(f"GET /Marti/sync/content?hash={digest} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        async with asyncio.timeout(10):
            head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        # Held by flow control (the client reads nothing yet): the response is under way.
        await wait_until(lambda: open_blob_files(server, digest), what="the blob is open")
        async with asyncio.timeout(20), asyncio.TaskGroup() as group:
            group.create_task(server.running.close(grace_s=5.0))
            await wait_until(lambda: not _accepts(port), what="the port takes no new connection")
            body = await reader.readexactly(len(data))
        assert body == data
        assert established(port) == 0
        assert open_blob_files(server, digest) == []
    finally:
        writer.transport.abort()


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


# -- durability and memory -------------------------------------------------------------------
async def test_what_was_acknowledged_survives_a_restart(make_server: ServerFactory) -> None:
    server = await make_server()
    data = package_bytes(400_000, seed=9)
    async with https(server, "alpha") as http:
        assert (await commo_upload(http, data)).status_code == 200
    await server.running.close()
    root = server.config.data_dir / "packages"
    (root / ".upload-deadbeef.part").write_bytes(b"a crash mid-upload")
    orphan = hashlib.sha256(b"orphan").hexdigest()
    (root / orphan[:2]).mkdir()
    (root / orphan[:2] / orphan).write_bytes(b"orphan")  # bytes whose metadata never committed

    running = await start(server.config, any_port=True)
    try:
        restarted = dataclasses.replace(server, running=running)
        async with https(restarted, "alpha") as http:
            fetched = await http.get("/Marti/sync/content", params={"hash": sha256(data)})
            assert fetched.content == data
        assert sorted(str(p.relative_to(root)) for p in package_files(restarted)) == [
            f"{sha256(data)[:2]}/{sha256(data)}",
            f"orphans/{orphan}",  # set aside, not served, not deleted
        ]
    finally:
        await running.close()


async def fetch_flow_controlled(server: Server, name: str, url: str) -> str:
    """GET ``url`` on a plain asyncio stream (which stops reading while its buffer is full, where
    httpx's transport keeps every byte the server sends) and return the body's sha256."""
    target = httpx.URL(url)
    reader, writer = await raw_https(server, name, target.port)
    path = target.raw_path.decode()
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    digest = hashlib.sha256()
    async with asyncio.timeout(60):
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 "), head
        while chunk := await reader.read(65536):
            digest.update(chunk)
    writer.close()
    return digest.hexdigest()


async def test_a_large_upload_and_download_stream_in_flat_memory(server: Server) -> None:
    size, piece = 32 * 1024 * 1024, 256 * 1024
    block = os.urandom(piece)
    boundary = b"accord-large"
    head = (
        b"--" + boundary + b'\r\nContent-Disposition: form-data; name="assetfile"; '
        b'filename="big.zip"\r\nContent-Type: application/x-zip-compressed\r\n\r\n'
    )
    tail = b"\r\n--" + boundary + b"--\r\n"
    expected = hashlib.sha256()
    for _ in range(size // piece):
        expected.update(block)

    async def body() -> AsyncIterator[bytes]:
        yield head
        for _ in range(size // piece):
            yield block
        yield tail

    tracemalloc.start()
    try:
        async with https(server, "alpha") as http:
            http.timeout = httpx.Timeout(60)
            uploaded = await http.post(
                "/Marti/sync/missionupload",
                params={"filename": "big.zip", "hash": expected.hexdigest()},
                content=body(),
                headers={
                    "content-type": f"multipart/form-data; boundary={boundary.decode()}",
                    "content-length": str(len(head) + size + len(tail)),
                },
            )
            assert uploaded.status_code == 200
            _, upload_peak = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            received = await fetch_flow_controlled(server, "alpha", uploaded.text)
            _, download_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert received == expected.hexdigest()
    # Server and client share this process: both stream, so neither peak is near the 32 MiB.
    assert upload_peak < 8 * 1024 * 1024, upload_peak
    assert download_peak < 8 * 1024 * 1024, download_peak
