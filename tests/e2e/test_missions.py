"""The Mission API (Data Sync) end to end over HTTPS and TLS with real certificates: a scripted
session as the official load tester's client runs it, and the refusals (reference wave2 §1)."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import httpx

from accord.app import start
from tests.conftest import Server
from tests.e2e.clients import CotClient, client_tls_context, marker, new_uid, sa
from tests.e2e.test_marti import https
from tests.e2e.test_packages import package_bytes

M = "/Marti/api/missions"
ISO_MS = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"
MISSION_FIELDS = {
    "name", "description", "chatRoom", "baseLayer", "bbox", "path", "classification", "tool",
    "keywords", "creatorUid", "createTime", "lastEdited", "externalData", "feeds", "mapLayers",
    "ownerRole", "inviteOnly", "expiration", "guid", "uids", "contents", "passwordProtected",
}  # fmt: skip


async def tak_client(server: Server, name: str, group: str) -> tuple[CotClient, str]:
    """A streaming client on TLS that has sent its SA (so the hub knows its uid)."""
    cert, key = server.client_cert(name, group)
    client = await CotClient.connect(
        server.port("tls"), tls=client_tls_context(cert, key, server.pki.ca_cert)
    )
    uid = new_uid()
    await client.send(sa(uid, name))
    return client, uid


async def until_seen(server: Server, uid: str) -> None:
    async with asyncio.timeout(5):
        while server.running.hub.latest(uid) is None:
            await asyncio.sleep(0.01)


def data(answer: httpx.Response) -> Any:
    assert answer.status_code < 300, answer.text
    return answer.json()["data"]


def mission_notice(kind: str, name: str) -> Any:
    def match(event: Any) -> bool:
        return event.type == kind and f'name="{name}"' in event.detail.xml

    return match


async def test_a_data_sync_session_end_to_end(server: Server) -> None:
    alice, alice_uid = await tak_client(server, "alice", "Blue")
    bob, bob_uid = await tak_client(server, "bob", "Blue")
    await until_seen(server, alice_uid)
    await until_seen(server, bob_uid)
    async with https(server, "alice", "Blue") as a, https(server, "bob", "Blue") as b:
        created = await a.put(
            f"{M}/fire-2026",
            params={"creatorUid": alice_uid, "group": "Blue", "description": "the fire"},
        )
        assert created.status_code == 201, created.text
        body = created.json()
        assert body["type"] == "Mission"
        assert body["version"] == "3"
        mission = body["data"][0]
        assert set(mission) >= MISSION_FIELDS
        assert mission["token"]
        assert mission["groups"] == ["Blue"]
        guid = mission["guid"]
        # everyone in the mission's groups hears of it (t-x-m-n)
        notice = await bob.recv_until(mission_notice("t-x-m-n", "fire-2026"))
        assert 'type="CREATE"' in notice.detail.xml
        assert guid in notice.detail.xml

        # bob lists it, subscribes, reads it and its cot as the load tester does
        listed = data(await b.get(M))
        assert [m["name"] for m in listed] == ["fire-2026"]
        sub = await b.put(f"{M}/fire-2026/subscription", params={"uid": bob_uid})
        assert sub.status_code == 201
        assert sub.json()["type"] == "com.bbn.marti.sync.model.MissionSubscription"
        bob_token = sub.json()["data"]["token"]
        assert sub.json()["data"]["role"]["type"] == "MISSION_SUBSCRIBER"
        assert data(await b.get(f"{M}/guid/{guid}"))[0]["name"] == "fire-2026"

        # alice uploads a package and adds it and her marker's uid to the mission
        package = package_bytes(20_000, seed=7)
        digest = hashlib.sha256(package).hexdigest()
        up = await a.post(
            "/Marti/sync/upload",
            params={"name": "plan.zip", "CreatorUid": alice_uid},
            content=package,
            headers={"Content-Type": "application/zip"},
        )
        assert up.status_code == 200, up.text
        added = await a.put(
            f"{M}/fire-2026/contents",
            params={"creatorUid": alice_uid},
            json={"hashes": [digest], "uids": [alice_uid]},
        )
        mission = data(added)[0]
        assert [c["data"]["hash"] for c in mission["contents"]] == [digest]
        assert [u["data"] for u in mission["uids"]] == [alice_uid]
        assert mission["uids"][0]["details"]["callsign"] == "alice"
        # bob, a subscriber, is told of each change (t-x-m-c) with the MissionChange inside
        change = await bob.recv_until(lambda e: e.type == "t-x-m-c" and digest in e.detail.xml)
        assert "<type>ADD_CONTENT</type>" in change.detail.xml
        await bob.recv_until(lambda e: e.type == "t-x-m-c" and alice_uid in e.detail.xml)

        # a log entry, seen by bob through t-x-m-c-l and the log
        log = await b.post(
            f"{M}/logs/entries",
            json={"content": "crew on site", "creatorUid": bob_uid, "missionNames": ["fire-2026"],
                  "dtg": "2026-12-02T10:00:00.000Z"},
            headers={"MissionAuthorization": f"Bearer {bob_token}"},
        )  # fmt: skip
        assert log.status_code == 201, log.text
        entry = log.json()["data"]
        assert entry["missionNames"] == ["fire-2026"]
        assert entry["dtg"] == "2026-12-02T10:00:00.000Z"
        await alice.recv_until(lambda e: e.type == "t-x-m-c-l")
        logs = data(await b.get(f"{M}/fire-2026/log"))
        assert [x["content"] for x in logs] == ["crew on site"]

        # the changes, with secago, and the mission with changes and logs inlined
        changes = data(await b.get(f"{M}/fire-2026/changes", params={"secago": "600"}))
        assert [c["type"] for c in changes] == ["CREATE_MISSION", "ADD_CONTENT", "ADD_CONTENT"]
        assert changes[1]["contentResource"]["hash"] == digest
        assert changes[2]["contentUid"] == alice_uid
        assert all(c["missionGuid"] == guid and not c["isFederatedChange"] for c in changes)
        full = data(await b.get(f"{M}/fire-2026", params={"changes": "true", "logs": "true"}))[0]
        assert len(full["missionChanges"]) == 3
        assert len(full["logs"]) == 1

        # the mission's cot: the latest event of each of its uids
        cot = await b.get(f"{M}/fire-2026/cot")
        assert cot.status_code == 200
        assert f'uid="{alice_uid}"'.encode() in cot.content

        # bob unsubscribes (disconnectOnly by default: the subscription is kept, not live)
        assert (await b.delete(f"{M}/fire-2026/subscription", params={"uid": bob_uid})).is_success
        assert bob_uid not in data(await a.get(f"{M}/fire-2026/subscriptions"))
        await a.delete(
            f"{M}/fire-2026/contents", params={"uid": alice_uid, "creatorUid": alice_uid}
        )
        assert all(e.type != "t-x-m-c" for e in await bob.expect_silence(0.3))

        # only the owner deletes; everyone in the groups hears of it
        refused = await b.delete(f"{M}/fire-2026", params={"creatorUid": bob_uid})
        assert refused.status_code == 403
        gone = await a.delete(f"{M}/fire-2026", params={"creatorUid": alice_uid})
        assert gone.status_code == 200
        await bob.recv_until(mission_notice("t-x-m-d", "fire-2026"))
        assert data(await b.get(M)) == []
        assert (await b.get(f"{M}/fire-2026")).status_code == 404


async def test_missions_outside_ones_groups_are_never_seen_or_heard_of(server: Server) -> None:
    red, _ = await tak_client(server, "rita", "Red")
    async with https(server, "alice", "Blue") as blue, https(server, "rita", "Red") as r:
        made = await blue.put(f"{M}/blue-only", params={"creatorUid": "A-1", "group": "Blue"})
        assert made.status_code == 201
        guid = made.json()["data"][0]["guid"]
        assert data(await r.get(M)) == []
        for path in (f"{M}/blue-only", f"{M}/guid/{guid}", f"{M}/blue-only/changes",
                     f"{M}/blue-only/cot", f"{M}/blue-only/log"):  # fmt: skip
            assert (await r.get(path)).status_code == 404
        assert (
            await r.put(f"{M}/blue-only/subscription", params={"uid": "R-1"})
        ).status_code == 404
        # creating into a group one is not in is refused; the name is not given away
        assert (await r.put(f"{M}/x", params={"group": "Blue"})).status_code == 403
        assert (await r.put(f"{M}/blue-only", params={"creatorUid": "R-1"})).status_code == 409
        assert all(e.type != "t-x-m-n" for e in await red.expect_silence(0.3))


async def test_tokens_passwords_and_roles(server: Server) -> None:
    async with https(server, "alice", "Blue") as a, https(server, "bob", "Blue") as b:
        made = await a.put(
            f"{M}/secret",
            params={"creatorUid": "A-1", "group": "Blue", "password": "hunter2",
                    "defaultRole": "MISSION_READONLY_SUBSCRIBER"},
        )  # fmt: skip
        assert made.status_code == 201
        assert made.json()["data"][0]["passwordProtected"]
        owner_token = made.json()["data"][0]["token"]
        other = await a.put(f"{M}/open", params={"creatorUid": "A-1", "group": "Blue"})
        other_token = other.json()["data"][0]["token"]
        # without token or password: refused; wrong password: refused; right one: subscribed
        assert (await b.get(f"{M}/secret")).status_code == 403
        bad = await b.put(f"{M}/secret/subscription", params={"uid": "B-1", "password": "x"})
        assert bad.status_code == 401
        good = await b.put(f"{M}/secret/subscription", params={"uid": "B-1", "password": "hunter2"})
        assert good.status_code == 201
        token = good.json()["data"]["token"]
        assert good.json()["data"]["role"]["type"] == "MISSION_READONLY_SUBSCRIBER"
        # the token reads, in either header; a token of another mission or garbage is refused
        for header in ("MissionAuthorization", "Authorization"):
            ok = await b.get(f"{M}/secret", headers={header: f"Bearer {token}"})
            assert ok.status_code == 200
        wrong = await b.get(
            f"{M}/secret", headers={"MissionAuthorization": f"Bearer {other_token}"}
        )
        assert wrong.status_code == 401
        junk = await b.get(f"{M}/secret", headers={"MissionAuthorization": "Bearer abc.def.ghi"})
        assert junk.status_code == 401
        # iTAK: no token, but the certificate's user holds a subscription
        assert (await b.get(f"{M}/secret", params={"uid": "B-1"})).status_code == 200
        # read-only may not write; the owner raises the role, then it may
        headers = {"MissionAuthorization": f"Bearer {token}"}
        put = await b.put(f"{M}/secret/contents", json={"uids": ["u-1"]}, headers=headers)
        assert put.status_code == 403
        role = await a.put(
            f"{M}/secret/role",
            params={"clientUid": "B-1", "role": "MISSION_SUBSCRIBER"},
            headers={"MissionAuthorization": f"Bearer {owner_token}"},
        )
        assert role.status_code == 200
        put = await b.put(f"{M}/secret/contents", json={"uids": ["u-1"]}, headers=headers)
        assert put.status_code == 200
        got = data(await b.get(f"{M}/secret/role", headers=headers))
        assert got["type"] == "MISSION_SUBSCRIBER"
        assert "MISSION_WRITE" in got["permissions"]


async def test_bad_input_gets_a_clear_4xx_and_writes_nothing(server: Server) -> None:
    async with https(server, "alice", "Blue") as a:
        for name in ("..", ".hidden", "a<b>", "x&y", 'q"uote', " pad", "n" * 200):
            answer = await a.put(
                f"{M}/{httpx.URL(name).raw_path.decode()}", params={"group": "Blue"}
            )
            assert answer.status_code in (400, 404), (name, answer.status_code)
        assert data(await a.get(M)) == []
        assert (await a.get(f"{M}/nope")).status_code == 404
        await a.put(f"{M}/ok", params={"creatorUid": "A-1", "group": "Blue"})
        before = data(await a.get(f"{M}/ok/changes"))
        huge = {"content": "x" * 20_000, "creatorUid": "A-1", "missionNames": ["ok"]}
        assert (await a.post(f"{M}/logs/entries", json=huge)).status_code == 413
        bad_hash = await a.put(f"{M}/ok/contents", json={"hashes": ["../../etc/passwd"]})
        assert bad_hash.status_code == 400
        unknown = await a.put(f"{M}/ok/contents", json={"hashes": ["0" * 64], "uids": ["u-2"]})
        assert unknown.status_code == 404  # and the uid of that request was not added either
        assert (await a.put(f"{M}/ok/contents", content=b"{not json")).status_code == 400
        assert (await a.put(f"{M}/ok/contents", json={"uids": ["<x/>"]})).status_code == 400
        mission = data(await a.get(f"{M}/ok"))[0]
        assert mission["uids"] == []
        assert mission["contents"] == []
        assert data(await a.get(f"{M}/ok/log")) == []
        assert data(await a.get(f"{M}/ok/changes")) == before
        # concurrent edits: every one lands, each once, in order
        uids = [f"u-{i}" for i in range(20)]
        answers = await asyncio.gather(
            *(a.put(f"{M}/ok/contents", json={"uids": [u]}) for u in uids)
        )
        assert all(x.status_code == 200 for x in answers)
        mission = data(await a.get(f"{M}/ok"))[0]
        assert sorted(u["data"] for u in mission["uids"]) == sorted(uids)
        assert len(data(await a.get(f"{M}/ok/changes"))) == 1 + len(uids)


async def test_missions_survive_a_restart(server: Server) -> None:
    async with https(server, "alice", "Blue") as a:
        await a.put(f"{M}/kept", params={"creatorUid": "A-1", "group": "Blue"})
        await a.put(f"{M}/kept/contents", json={"uids": ["u-1"]}, params={"creatorUid": "A-1"})
    await server.running.close(grace_s=2.0)
    running = await start(server.config, any_port=True)
    again = Server(running, server.config, server.pki, server.certs_dir)
    try:
        async with https(again, "alice", "Blue") as a:
            mission = data(await a.get(f"{M}/kept"))[0]
            assert [u["data"] for u in mission["uids"]] == ["u-1"]
            assert len(data(await a.get(f"{M}/kept/changes"))) == 2
    finally:
        await running.close(grace_s=2.0)


async def test_a_cot_sent_to_a_mission_reaches_its_subscribers_and_joins_it(
    server: Server,
) -> None:
    alice, alice_uid = await tak_client(server, "alice", "Blue")
    bob, bob_uid = await tak_client(server, "bob", "Blue")
    carol, carol_uid = await tak_client(server, "carol", "Blue")  # in the group, not subscribed
    for uid in (alice_uid, bob_uid, carol_uid):
        await until_seen(server, uid)
    async with https(server, "alice", "Blue") as a, https(server, "bob", "Blue") as b:
        await a.put(f"{M}/ops", params={"creatorUid": alice_uid, "group": "Blue"})
        await b.put(f"{M}/ops/subscription", params={"uid": bob_uid})
        track = marker("track-1", detail='<marti><dest mission="ops"/></marti>')
        await alice.send(track)
        got = await bob.recv_until(lambda e: e.uid == "track-1")
        assert "<marti" not in got.detail.xml  # delivered as TAK Server does: dest stripped
        await bob.recv_until(lambda e: e.type == "t-x-m-c" and "track-1" in e.detail.xml)
        assert all(e.uid != "track-1" for e in await carol.expect_silence(0.3))
        async with asyncio.timeout(5):
            while not data(await b.get(f"{M}/ops"))[0]["uids"]:
                await asyncio.sleep(0.02)
        assert [u["data"] for u in data(await b.get(f"{M}/ops"))[0]["uids"]] == ["track-1"]
        # by guid too (TAK Server's <dest mission-guid>)
        guid = data(await b.get(f"{M}/ops"))[0]["guid"]
        await alice.send(marker("track-2", detail=f'<marti><dest mission-guid="{guid}"/></marti>'))
        await bob.recv_until(lambda e: e.uid == "track-2")
        await bob.recv_until(lambda e: e.type == "t-x-m-c" and "track-2" in e.detail.xml)
        async with asyncio.timeout(5):  # /cot reads the history, written in the background
            while b'uid="track-1"' not in (await b.get(f"{M}/ops/cot")).content:
                await asyncio.sleep(0.02)


async def test_an_invitee_is_told_and_subscribes_with_the_invited_role(server: Server) -> None:
    bob, bob_uid = await tak_client(server, "bob", "Blue")
    await until_seen(server, bob_uid)
    async with https(server, "alice", "Blue") as a, https(server, "bob", "Blue") as b:
        made = await a.put(f"{M}/inv", params={"creatorUid": "A-1", "group": "Blue"})
        owner = {"MissionAuthorization": f"Bearer {made.json()['data'][0]['token']}"}
        answer = await a.put(
            f"{M}/inv/invite/clientUid/{bob_uid}",
            params={"role": "MISSION_READONLY_SUBSCRIBER"},
            headers=owner,
        )
        assert answer.status_code == 200, answer.text
        told = await bob.recv_until(lambda e: e.type == "t-x-m-i")
        assert 'type="INVITE"' in told.detail.xml
        assert "token=" in told.detail.xml
        assert "MISSION_READONLY_SUBSCRIBER" in told.detail.xml
        assert data(await b.get(f"{M}/invitations", params={"clientUid": bob_uid})) == ["inv"]
        sub = await b.put(f"{M}/inv/subscription", params={"uid": bob_uid})
        assert sub.json()["data"]["role"]["type"] == "MISSION_READONLY_SUBSCRIBER"
        # keywords, by the owner, are on the mission
        kw = await a.put(f"{M}/inv/keywords", json=["fire", "north"], headers=owner)
        assert data(kw)[0]["keywords"] == ["fire", "north"]
        readonly = await b.put(f"{M}/inv/keywords", json=["x"], params={"uid": bob_uid})
        assert readonly.status_code == 403
