"""``/Marti/vcm``: video feeds listed, added, switched and removed, by group."""

from __future__ import annotations

from lxml import etree

from tests.conftest import Server
from tests.e2e.test_marti import https

FEEDS = b"""<?xml version="1.0" encoding="UTF-8"?>
<videoConnections>
  <feed>
    <uuid>drone-7-eo</uuid><alias>Drone 7 EO</alias><protocol>rtsp</protocol>
    <address>10.1.2.3</address><port>8554</port><path>/live/eo</path>
    <fov>62</fov><latitude>48.1</latitude><longitude>11.5</longitude><buffer>200</buffer>
  </feed>
</videoConnections>"""


def feeds(body: bytes) -> list[dict[str, str]]:
    root = etree.fromstring(body)
    assert root.tag == "videoConnections"
    return [{c.tag: c.text or "" for c in feed} for feed in root.findall("feed")]


async def test_a_feed_posted_in_a_group_is_listed_there_only(server: Server) -> None:
    async with https(server, "red-1", "Red") as red, https(server, "blue-1", "Blue") as blue:
        posted = await red.post("/Marti/vcm", content=FEEDS)
        assert posted.status_code == 200, posted.text
        [feed] = feeds((await red.get("/Marti/vcm")).content)
        assert feed["uuid"] == "drone-7-eo"
        assert (feed["protocol"], feed["address"], feed["port"], feed["path"]) == (
            "rtsp",
            "10.1.2.3",
            "8554",
            "/live/eo",
        )
        assert (feed["alias"], feed["fov"], feed["buffer"]) == ("Drone 7 EO", "62", "200")
        assert feeds((await blue.get("/Marti/vcm")).content) == []
        # Blue can neither switch nor remove nor overwrite what it cannot see.
        assert (await blue.delete("/Marti/vcm", params={"id": "drone-7-eo"})).status_code == 404
        overwrite = await blue.post("/Marti/vcm", content=FEEDS)
        assert overwrite.status_code == 403

        switched = await red.post(
            "/Marti/vcm", params={"action": "setActive", "id": "drone-7-eo", "active": "false"}
        )
        assert switched.status_code == 200
        assert feeds((await red.get("/Marti/vcm")).content)[0]["active"] == "false"
        assert (await red.delete("/Marti/vcm", params={"id": "drone-7-eo"})).status_code == 200
        assert feeds((await red.get("/Marti/vcm")).content) == []


async def test_bad_feeds_are_refused_with_a_reason(server: Server) -> None:
    async with https(server, "red-1", "Red") as red:
        for body, words in (
            (b"<videoConnections><feed><protocol>rtsp</protocol>", "well-formed"),
            (b"<videoConnections/>", "expected <videoConnections>"),
            (b"<feed><protocol>gopher</protocol><address>h</address></feed>", "protocol"),
            (b"<feed><protocol>rtsp</protocol><address>a/b</address></feed>", "address"),
            (
                b"<feed><protocol>rtsp</protocol><address>h</address><port>70000</port></feed>",
                "port",
            ),
            (
                b'<!DOCTYPE x [<!ENTITY e "boom">]><feed><alias>&e;</alias></feed>',
                "not allowed",
            ),
        ):
            answer = await red.post("/Marti/vcm", content=body)
            assert answer.status_code == 400, body
            assert words in answer.json()["error"], (body, answer.json())
        big = await red.post("/Marti/vcm", content=b"<videoConnections>" + b" " * 300_000)
        assert big.status_code == 413
        bad_flag = await red.post("/Marti/vcm", params={"action": "setActive", "id": "x"})
        assert bad_flag.status_code == 400
        assert feeds((await red.get("/Marti/vcm")).content) == []
