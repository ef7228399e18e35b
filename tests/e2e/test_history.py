"""History end to end: archived while routing, queried over HTTPS by group, kept over restarts."""

from __future__ import annotations

import dataclasses
import json
import time

from lxml import etree

from accord.app import start
from accord.cot.xml import decode_xml
from tests.conftest import Server
from tests.e2e.clients import CotClient, client_tls_context, marker, new_uid, sa
from tests.e2e.test_marti import https
from tests.waiting import wait_until


async def archived(server: Server, events: int) -> None:
    """Wait for the sessions to have read the ``events`` sent, then for them to be stored."""
    writer = server.running.history_writer
    assert writer is not None
    await wait_until(lambda: server.counters.events_in >= events, what=f"{events} events read")
    await writer.flush()


async def tls_client(server: Server, name: str, group: str) -> CotClient:
    cert, key = server.client_cert(name, group)
    return await CotClient.connect(
        server.port("tls"), tls=client_tls_context(cert, key, server.pki.ca_cert)
    )


async def test_newcomers_get_live_sas_from_before_a_restart(server: Server) -> None:
    alpha = await CotClient.connect(server.port("tcp"))
    report = sa(new_uid(), "ALPHA", lat=12.5)
    gone = dataclasses.replace(sa(new_uid(), "STALE"), stale=report.time + 500)
    await alpha.send(report)
    await alpha.send(gone)
    await archived(server, 2)
    await server.running.close()
    await wait_until(lambda: time.time() * 1000 > gone.stale, what="`gone` is stale")

    again = await start(server.config, any_port=True)
    try:
        bravo = await CotClient.connect(again.ports["tcp"])
        got = await bravo.recv()
        assert (got.uid, got.point.lat) == (report.uid, 12.5)
        assert await bravo.expect_silence() == []  # and not the stale one
        # The owner reconnects and moves: newcomers get the live position, not the stored one.
        alpha = await CotClient.connect(again.ports["tcp"])
        moved = sa(report.uid, "ALPHA", lat=13.0)
        await alpha.send(moved)
        assert (await bravo.recv()).point.lat == 13.0
        charlie = await CotClient.connect(again.ports["tcp"])
        assert [e.point.lat for e in await charlie.expect_silence()] == [13.0]
    finally:
        await again.close(grace_s=2.0)


async def test_history_api_filters_pages_and_respects_groups(server: Server) -> None:
    red = await tls_client(server, "red", "Red")
    blue = await tls_client(server, "blue", "Blue")
    red_uid = new_uid()
    for i in range(5):
        await red.send(sa(red_uid, "RED", lat=10 + i, lon=20))
    await blue.send(sa(new_uid(), "BLUE", lat=11, lon=20))
    await blue.send(marker(new_uid()))
    await archived(server, 7)

    async with https(server, "red-viewer", "Red") as http:
        body = (await http.get("/api/history")).json()
        assert [e["uid"] for e in body["events"]] == [red_uid] * 5  # nothing of Blue's
        assert body["events"][0]["groups"] == ["Red"]
        assert body["events"][0]["callsign"] == "RED"

        box = (await http.get("/api/history", params={"bbox": "10.5,19,12.5,21"})).json()
        assert [e["lat"] for e in box["events"]] == [11.0, 12.0]

        seen, cursor = [], None
        while True:
            params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
            answer = await http.get("/api/history", params=params)
            seen += [e["lat"] for e in answer.json()["events"]]
            cursor = answer.headers.get("X-Accord-Next-Cursor")
            assert cursor == answer.json()["next"]
            if cursor is None:
                break
        assert seen == [10.0, 11.0, 12.0, 13.0, 14.0]

        geo = (await http.get("/api/history", params={"format": "geojson", "limit": "1"})).json()
        assert geo["type"] == "FeatureCollection"
        feature = geo["features"][0]
        assert feature["geometry"] == {"type": "Point", "coordinates": [20.0, 10.0, 10.0]}
        assert feature["properties"]["uid"] == red_uid

        kml = await http.get("/api/history", params={"format": "kml"})
        ns = {"k": "http://www.opengis.net/kml/2.2"}
        marks = etree.fromstring(kml.content).findall(".//k:Placemark", ns)
        assert [m.findtext("k:name", namespaces=ns) for m in marks] == ["RED"] * 5
        assert marks[0].findtext("k:Point/k:coordinates", namespaces=ns) == "20.0,10.0,10.0"

        cot = await http.get("/api/history", params={"format": "cot"})
        events = etree.fromstring(cot.content).findall("event")
        assert [decode_xml(etree.tostring(e)).point.lat for e in events] == [10, 11, 12, 13, 14]

        per_uid = await http.get(f"/Marti/api/cot/xml/{red_uid}/all", params={"secago": "60"})
        assert len(etree.fromstring(per_uid.content).findall("event")) == 5


async def test_bad_history_parameters_get_a_reason_not_a_500(server: Server) -> None:
    async with https(server, "viewer") as http:
        for params, words in (
            ({"bbox": "1,2,3"}, "south,west,north,east"),
            ({"bbox": "95,0,96,1"}, "latitudes"),
            ({"since": "yesterday"}, "ISO 8601"),
            ({"since": "2h", "until": "3h"}, "until must be after since"),
            ({"limit": "-1"}, "whole number"),
            ({"limit": "5000"}, "limit must be"),
            ({"cursor": "abc"}, "cursor"),
            ({"format": "shp"}, "format"),
            ({"colour": "red"}, "unknown parameter"),
        ):
            answer = await http.get("/api/history", params=params)
            assert answer.status_code == 400, params
            assert words in answer.json()["error"], (params, answer.json())
        secago = await http.get("/Marti/api/cot/xml/x/all", params={"secago": "ten"})
        assert secago.status_code == 400
        unknown = await http.get("/Marti/api/cot/xml/nobody-at-all")
        assert (unknown.status_code, unknown.content) == (404, b"")  # as TAK Server


async def test_latest_event_of_a_uid_is_served_after_its_owner_left(server: Server) -> None:
    red = await tls_client(server, "red", "Red")
    uid = new_uid()
    await red.send(sa(uid, "RED", lat=33.0))
    await archived(server, 1)
    await red.close()
    await wait_until(lambda: server.running.hub.session_count == 0, what="the owner has left")
    async with https(server, "red-viewer", "Red") as http:
        answer = await http.get(f"/Marti/api/cot/xml/{uid}")
        assert answer.status_code == 200
        assert decode_xml(answer.content).point.lat == 33.0
    async with https(server, "blue-viewer", "Blue") as http:
        assert (await http.get(f"/Marti/api/cot/xml/{uid}")).status_code == 404


def test_summary_is_plain_json() -> None:
    # The JSON listing must stay serialisable by the standard library alone.
    from accord.store.export import summary
    from tests.store.test_contract import ev

    assert json.loads(json.dumps(summary(ev("a"))))["uid"] == "a"
