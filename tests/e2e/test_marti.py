"""The Marti endpoints ATAK calls on every connect, over HTTPS with client certificates."""

from __future__ import annotations

import datetime as dt
import ssl
from pathlib import Path

import httpx

from accord.cot.xml import decode_xml
from accord.identity import registry
from tests.conftest import Server, ServerFactory
from tests.e2e.clients import CotClient, client_tls_context, sa
from tests.waiting import wait_until


def https(server: Server, name: str, group: str | None = None) -> httpx.AsyncClient:
    cert, key = server.client_cert(name, group)
    ctx = ssl.create_default_context(cafile=str(server.pki.ca_cert))
    ctx.load_cert_chain(cert, key)
    return httpx.AsyncClient(
        base_url=f"https://127.0.0.1:{server.port('https')}", verify=ctx, timeout=10
    )


async def test_version_config_is_the_envelope_atak_parses(server: Server) -> None:
    async with https(server, "alice") as http:
        answer = await http.get("/Marti/api/version/config")
        body = answer.json()
        assert answer.status_code == 200
        assert body["type"] == "ServerConfig"
        assert int(body["version"]) >= 2  # ATAK: obj.getInt("version")
        assert body["data"]["api"] == "3"
        assert (await http.get("/Marti/api/version")).text.startswith("Accord ")


async def test_client_endpoints_and_contacts_show_only_what_the_caller_may_hear(
    server: Server,
) -> None:
    blue_cert, blue_key = server.client_cert("bluebird", "Blue")
    blue = await CotClient.connect(
        server.port("tls"), tls=client_tls_context(blue_cert, blue_key, server.pki.ca_cert)
    )
    await blue.send(
        sa(
            "BLUE-1",
            "BLUEBIRD",
            extra='<takv device="Pixel" platform="ATAK-CIV" os="34" version="5.5"/>',
        )
    )
    await wait_until(lambda: server.counters.events_in == 1, what="the SA routed")
    async with https(server, "blue-viewer", "Blue") as http:
        answer = await http.get("/Marti/api/clientEndPoints")
        body = answer.json()
        assert body["type"] == "com.bbn.marti.remote.ClientEndpoint"
        (entry,) = body["data"]
        assert (entry["uid"], entry["callsign"], entry["team"]) == ("BLUE-1", "BLUEBIRD", "Cyan")
        assert entry["lastStatus"] == "Connected"
        dt.datetime.strptime(entry["lastEventTime"], "%Y-%m-%dT%H:%M:%S.%fZ")  # ATAK parses it
        contacts = (await http.get("/Marti/api/contacts/all")).json()
        assert [c["callsign"] for c in contacts] == ["BLUEBIRD"]
        assert "ATAK-CIV" in contacts[0]["takv"]
        groups = (await http.get("/Marti/api/groups/all")).json()["data"]
        assert {(g["name"], g["direction"]) for g in groups} == {("Blue", "IN"), ("Blue", "OUT")}
        xml = await http.get("/Marti/api/cot/xml/BLUE-1")
        assert xml.status_code == 200
        assert decode_xml(xml.content).uid == "BLUE-1"
        missing = await http.get("/Marti/api/cot/xml/NOBODY")
        # As TAK Server: 404 and an empty body (clients parse any body as CoT).
        assert (missing.status_code, missing.content) == (404, b"")
    async with https(server, "red-viewer", "Red") as http:
        assert (await http.get("/Marti/api/clientEndPoints")).json()["data"] == []
        hidden = await http.get("/Marti/api/cot/xml/BLUE-1")
        assert (hidden.status_code, hidden.content) == (404, b"")


async def test_revoked_certificate_gets_nothing_from_the_api(make_server: ServerFactory) -> None:
    server = await make_server(revocation_check_s=0.1)
    async with https(server, "alice") as http:
        assert (await http.get("/Marti/api/contacts/all")).status_code == 200
        registry.revoke(server.pki, "alice", dt.datetime.now(dt.UTC))

        async def refused() -> bool:  # the revocation list is read again every 0.1 s
            return (await http.get("/Marti/api/contacts/all")).status_code == 401

        await wait_until(refused, what="401 once the certificate is revoked")


async def test_a_client_switches_its_own_channels_off_and_on(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    groups = tmp_path / "groups.toml"
    groups.write_text('alice = ["Red", "Blue"]\nmallory = ["Red", "Blue"]\n')
    server = await make_server(groups_file=str(groups))

    async def stream(name: str, group: str | None = None) -> CotClient:
        cert, key = server.client_cert(name, group)
        ctx = client_tls_context(cert, key, server.pki.ca_cert)
        return await CotClient.connect(server.port("tls"), tls=ctx)

    alice, red, blue = (
        await stream("alice"),
        await stream("red", "Red"),
        await stream("blue", "Blue"),
    )
    await alice.send(sa("ALICE-1", "ALICE"))
    await red.recv()
    await blue.recv()
    off = [{"name": "Blue", "direction": "OUT", "active": False}]
    async with https(server, "mallory") as mallory:
        # Same groups, another person: may not switch alice's session.
        stolen = await mallory.put("/Marti/api/groups/active?clientUid=ALICE-1", json=off)
        assert stolen.status_code == 404
    async with https(server, "alice") as http:
        answer = await http.put("/Marti/api/groups/active?clientUid=ALICE-1", json=off)
        assert answer.status_code == 200, answer.text
        assert (await alice.recv()).type == "t-x-g-c"  # told to refresh its groups
        await blue.send(sa("BLUE-1", "BLUE"))
        await red.send(sa("RED-1", "RED"))
        assert [e.uid for e in await alice.expect_silence()] == ["RED-1"]
        back = [{"name": "Blue", "direction": "OUT", "active": True}]
        assert (await http.put("/Marti/api/groups/active?clientUid=ALICE-1", json=back)).is_success
        assert (await alice.recv()).type == "t-x-g-c"
        await blue.send(sa("BLUE-1", "BLUE"))
        assert (await alice.recv()).uid == "BLUE-1"
        for body, words in (
            (b"{}", "JSON list"),
            (b"not json", "JSON list"),
            (b'[{"direction": "IN"}]', "name"),
            (b'[{"name": "Red", "direction": "SIDEWAYS"}]', "direction"),
            (b'[{"name": "Red", "active": "no"}]', "active"),
        ):
            bad = await http.put("/Marti/api/groups/active?clientUid=ALICE-1", content=body)
            assert bad.status_code == 400
            assert words in bad.json()["error"]
        assert (await http.put("/Marti/api/groups/active", json=off)).status_code == 400
