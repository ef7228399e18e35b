"""Video API v2 (``/Marti/api/video``): connections in node-tak's shapes, by group, the same
feeds as ``/Marti/vcm``, and the drones' ``<__video>`` streams."""

from __future__ import annotations

from pathlib import Path

from accord.bridges.simulator import Fleet
from accord.config import DroneFeed
from tests.conftest import Server, ServerFactory
from tests.e2e import shapes
from tests.e2e.test_drone import fly
from tests.e2e.test_marti import https
from tests.e2e.test_video import FEEDS, feeds
from tests.waiting import wait_until

CONNECTION = {
    "uuid": "c-1",
    "active": True,
    "alias": "Hangar cameras",
    "feeds": [
        {
            "uuid": "f-1",
            "active": True,
            "alias": "Door",
            "url": "rtsp://10.0.0.5:8554/door",
            "latitude": "48.1",
            "bufferTime": "200",
            "width": 1920,
        },
        {"uuid": "f-2", "active": False, "alias": "Roof", "url": "srt://10.0.0.6:9000"},
    ],
}


async def test_a_connection_is_created_listed_changed_and_removed_in_its_group(
    server: Server,
) -> None:
    async with https(server, "red-1", "Red") as red, https(server, "blue-1", "Blue") as blue:
        created = await red.post("/Marti/api/video", json={"videoConnections": [CONNECTION]})
        assert created.status_code == 200, created.text
        listing = (await red.get("/Marti/api/video")).json()
        shapes.check(listing, {"videoConnections": [shapes.VIDEO_CONNECTION]})
        (conn,) = listing["videoConnections"]
        assert (conn["uuid"], conn["alias"], conn["active"]) == ("c-1", "Hangar cameras", True)
        door, roof = conn["feeds"]
        assert (door["url"], door["latitude"], door["bufferTime"], door["width"]) == (
            "rtsp://10.0.0.5:8554/door",
            "48.1",
            "200",
            1920,
        )
        assert (roof["uuid"], roof["active"], roof["latitude"]) == ("f-2", False, None)
        one = (await red.get("/Marti/api/video/c-1")).json()
        shapes.check(one, shapes.VIDEO_CONNECTION)
        # The same feeds on /Marti/vcm, where ATAK reads them.
        by_vcm = {f["uuid"]: f for f in feeds((await red.get("/Marti/vcm")).content)}
        assert (by_vcm["f-1"]["address"], by_vcm["f-1"]["port"]) == ("10.0.0.5", "8554")
        assert set(by_vcm) == {"f-1", "f-2"}

        srt_only = (await red.get("/Marti/api/video", params={"protocol": "srt"})).json()
        assert [c["uuid"] for c in srt_only["videoConnections"]] == ["c-1"]
        assert (await red.get("/Marti/api/video", params={"protocol": "rtmp"})).json() == {
            "videoConnections": []
        }

        # Blue sees nothing, and can neither change nor remove Red's connection.
        assert (await blue.get("/Marti/api/video")).json() == {"videoConnections": []}
        assert (await blue.get("/Marti/api/video/c-1")).status_code == 404
        assert (await blue.put("/Marti/api/video/c-1", json=CONNECTION)).status_code == 403
        assert (await blue.delete("/Marti/api/video/c-1")).status_code == 404

        # PUT replaces the connection: Roof goes, Yard comes.
        changed = {
            **CONNECTION,
            "alias": "Hangar",
            "feeds": [
                CONNECTION["feeds"][0],  # type: ignore[index]
                {"alias": "Yard", "url": "rtsp://10.0.0.7/yard"},
            ],
        }
        put = await red.put("/Marti/api/video/c-1", json=changed)
        assert put.status_code == 200, put.text
        assert put.json()["alias"] == "Hangar"
        assert [f["alias"] for f in put.json()["feeds"]] == ["Door", "Yard"]
        assert len(feeds((await red.get("/Marti/vcm")).content)) == 2

        assert (await red.delete("/Marti/api/video/c-1")).status_code == 200
        assert (await red.get("/Marti/api/video")).json() == {"videoConnections": []}
        assert feeds((await red.get("/Marti/vcm")).content) == []


async def test_a_vcm_feed_is_a_connection_of_one_feed(server: Server) -> None:
    async with https(server, "red-1", "Red") as red:
        assert (await red.post("/Marti/vcm", content=FEEDS)).status_code == 200
        (conn,) = (await red.get("/Marti/api/video")).json()["videoConnections"]
        assert conn["uuid"] == "drone-7-eo"
        (feed,) = conn["feeds"]
        assert (feed["url"], feed["fov"], feed["bufferTime"]) == (
            "rtsp://10.1.2.3:8554/live/eo",
            "62",
            "200",
        )


async def test_bad_connections_are_refused_with_a_reason(server: Server) -> None:
    async with https(server, "red-1", "Red") as red:
        for body, words in (
            ({"videoConnections": [{"alias": "x", "feeds": []}]}, "feeds"),
            ({"videoConnections": [{"feeds": [{"url": "rtsp://h/a"}]}]}, "alias"),
            ({"videoConnections": [{"alias": "x", "feeds": [{"url": "gopher://h"}]}]}, "protocol"),
            ({"videoConnections": [{"alias": "x", "feeds": [{"url": "rtsp:///p"}]}]}, "host"),
            ({"videoConnections": [{"alias": "x", "feeds": [{"url": 5}]}]}, "url"),
            ({"videoConnections": [{"alias": "x", "active": "yes", "feeds": []}]}, "active"),
            ({"connections": []}, "videoConnections"),
        ):
            answer = await red.post("/Marti/api/video", json=body)
            assert answer.status_code == 400, body
            assert words in answer.json()["error"], (body, answer.json())
        not_json = await red.post("/Marti/api/video", content=b"{nope")
        assert not_json.status_code == 400
        assert (await red.get("/Marti/api/video")).json() == {"videoConnections": []}


async def test_a_drones_video_stream_is_listed_while_its_feed_runs(
    make_server: ServerFactory,
) -> None:
    feed = DroneFeed(
        name="sim", kind="udp", address="127.0.0.1:0", org="org", groups=("Red",),
        video_url="rtsp://video.example/sim",
    )  # fmt: skip
    server = await make_server(drone_feeds=(feed,))
    await fly(server, Fleet(1), 0.5)
    async with https(server, "red-1", "Red") as red, https(server, "blue-1", "Blue") as blue:

        async def listed() -> object:
            return (await red.get("/Marti/api/video")).json()["videoConnections"]

        await wait_until(listed, timeout_s=5.0, what="the drone's stream listed")
        listing = (await red.get("/Marti/api/video")).json()
        shapes.check(listing, {"videoConnections": [shapes.VIDEO_CONNECTION]})
        (conn,) = listing["videoConnections"]
        assert (conn["uuid"], conn["alias"]) == ("org.sim.1.video", "sim-1")
        assert conn["feeds"][0]["url"] == "rtsp://video.example/sim"
        assert (await blue.get("/Marti/api/video")).json() == {"videoConnections": []}
        refused = await red.delete("/Marti/api/video/org.sim.1.video")
        assert refused.status_code == 409
        assert "drone feed" in refused.json()["error"]


async def test_a_sender_only_shares_and_a_listener_only_cannot(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    groups = tmp_path / "groups.toml"
    groups.write_text('sender = { in = ["Ops"] }\nlistener = { out = ["Ops"] }\n')
    server = await make_server(groups_file=str(groups))
    async with https(server, "sender") as sender, https(server, "listener") as listener:
        put = await sender.put("/Marti/api/video/c-1", json=CONNECTION)
        assert put.status_code == 200, put.text  # answered as stored, though it cannot see it
        assert [f["uuid"] for f in put.json()["feeds"]] == ["f-1", "f-2"]
        assert (await sender.get("/Marti/api/video")).json() == {"videoConnections": []}
        (conn,) = (await listener.get("/Marti/api/video")).json()["videoConnections"]
        assert conn["uuid"] == "c-1"
        refused = await listener.post("/Marti/api/video", json={"videoConnections": [CONNECTION]})
        assert refused.status_code == 403
        assert "no group" in refused.json()["error"]


async def test_a_feed_is_changed_only_by_those_who_send_into_all_its_groups(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    groups = tmp_path / "groups.toml"
    groups.write_text(
        'red = ["Red"]\nblue = ["Blue"]\nboth = ["Red", "Blue"]\n'
        'wide = { in = ["Blue"], out = ["Blue", "Red"] }\n'
    )
    server = await make_server(groups_file=str(groups))
    async with (
        https(server, "red") as red,
        https(server, "blue") as blue,
        https(server, "both") as both,
        https(server, "wide") as wide,
    ):
        made = await red.post("/Marti/api/video", json={"videoConnections": [CONNECTION]})
        assert made.status_code == 200, made.text
        # wide reads Red's feeds but does not send into Red: it may not remove or move them.
        assert (await wide.get("/Marti/api/video/c-1")).status_code == 200
        assert (await wide.delete("/Marti/api/video/c-1")).status_code == 403
        moved = await wide.put("/Marti/api/video/c-1", json=CONNECTION)
        assert moved.status_code == 403, moved.text
        assert (await blue.get("/Marti/api/video")).json() == {"videoConnections": []}
        # both sends into Red: it may change the connection, which stays Red's only.
        changed = await both.put("/Marti/api/video/c-1", json={**CONNECTION, "alias": "Hangar"})
        assert changed.status_code == 200, changed.text
        assert (await blue.get("/Marti/api/video")).json() == {"videoConnections": []}
        (conn,) = (await red.get("/Marti/api/video")).json()["videoConnections"]
        assert conn["alias"] == "Hangar"
        # A feed of Red and Blue is not red's alone to remove.
        shared = {
            **CONNECTION,
            "uuid": "c-2",
            "feeds": [{"uuid": "f-9", "alias": "Gate", "url": "rtsp://10.0.0.9/gate"}],
        }
        assert (await both.post("/Marti/api/video", json={"videoConnections": [shared]})).is_success
        assert (await red.delete("/Marti/api/video/c-2")).status_code == 403
        assert (await both.delete("/Marti/api/video/c-2")).status_code == 200
        assert (await red.delete("/Marti/api/video/c-1")).status_code == 200
