"""Two real Accord servers share a mission under policy over gRPC + mutual TLS (issue 16):
an item added on A reaches B's mirror and B's subscriber, B's log entry reaches A, a withheld
part stays home and is counted, a link outage is caught up with nothing lost or doubled, and
both sharing ledgers verify."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import io
import ssl
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import httpx
import pytest

from accord.cli import main
from accord.identity.pki import PkiPaths, issue_client
from accord.missions.model import Mission
from tests.e2e.clients import CotClient, client_tls_context, new_uid, sa
from tests.e2e.test_packages import package_bytes
from tests.federation.test_link_e2e import Org, orgs, until, wait_up

__all__ = ["orgs"]  # the fixture

pytestmark = pytest.mark.timeout(90)

M = "/Marti/api/missions"
A_POLICY = """name = "a->b/joint"
partner = "ORG-B"

[[rule]]
name = "units"
types = ["a-*"]

[[mission]]
name = "joint"
missions = ["Joint*"]
share = ["items", "logs"]
accept = ["logs"]

[[mission]]
name = "files"
missions = ["Files*"]
share = ["files"]
"""
B_POLICY = """name = "b->a/joint"
partner = "ORG-A"

[[mission]]
name = "back"
missions = ["Joint*"]
share = ["logs"]
"""
MIRROR = "ORG-A:Joint Op"


def _https(org: Org, name: str, certs: Path) -> httpx.AsyncClient:
    pki = PkiPaths(org.data_dir / "pki")
    files = issue_client(pki, name, certs / org.name, dt.datetime.now(dt.UTC))
    ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
    ctx.load_cert_chain(files.cert, files.key)
    assert org.running is not None
    base = f"https://127.0.0.1:{org.running.ports['https']}"
    return httpx.AsyncClient(base_url=base, verify=ctx, timeout=10)


async def _subscriber(org: Org, name: str, certs: Path) -> tuple[CotClient, str]:
    pki = PkiPaths(org.data_dir / "pki")
    files = issue_client(pki, name, certs / f"{org.name}-tls", dt.datetime.now(dt.UTC))
    assert org.running is not None
    client = await CotClient.connect(
        org.running.ports["tls"], tls=client_tls_context(files.cert, files.key, pki.ca_cert)
    )
    uid = new_uid()
    await client.send(sa(uid, name))
    running = org.running
    await until(lambda: running.hub.latest(uid) is not None)
    return client, uid


async def _missions(org: Org) -> dict[str, Mission]:
    assert org.running is not None
    book = org.running.missions
    assert book is not None
    return {m.name: m for m in (await book.all_missions()).values()}


async def _mission(org: Org, name: str) -> Mission | None:
    return (await _missions(org)).get(name)


async def _until_async(check: Any, timeout: float = 15.0) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.02)


def _verify(org: Org) -> tuple[int, str]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = main(["ledger", "verify", "--data-dir", str(org.data_dir)])
    return code, out.getvalue()


async def _add(http: httpx.AsyncClient, uids: list[str], hashes: tuple[str, ...] = ()) -> None:
    answer = await http.put(
        f"{M}/Joint Op/contents",
        params={"creatorUid": "alice"},
        json={"uids": uids, "hashes": list(hashes)},
    )
    assert answer.status_code == 200, answer.text


async def test_two_servers_share_a_mission_under_policy(orgs: Any, tmp_path: Path) -> None:
    make, launch = orgs
    a, b = make("ORG-A"), make("ORG-B")
    (tmp_path / "a.toml").write_text(A_POLICY)
    (tmp_path / "b.toml").write_text(B_POLICY)
    ports = {"https_port": 8443, "tls_port": 8089}
    await launch(b, a.partner(share_all=False, policy_file=str(tmp_path / "b.toml")), **ports)
    to_b = b.partner(dial=b, share_all=False, policy_file=str(tmp_path / "a.toml"))
    await launch(a, to_b, **ports)
    await wait_up(a, "ORG-B")
    await wait_up(b, "ORG-A")
    assert "missions" in a.link("ORG-B").view().extensions
    assert a.running is not None
    assert b.running is not None
    certs = tmp_path / "certs"

    async with _https(a, "alice", certs) as at_a, _https(b, "bob", certs) as at_b:
        created = await at_a.put(f"{M}/Joint Op", params={"creatorUid": "alice"})
        assert created.status_code == 201, created.text
        local = await at_a.put(f"{M}/Local Only", params={"creatorUid": "alice"})
        assert local.status_code == 201, local.text
        first = new_uid("unit")
        await _add(at_a, [first])
        await _until_async(lambda: _has_items(b, [first]))
        mirror = await _mission(b, MIRROR)
        assert mirror is not None
        assert (mirror.origin, mirror.origin_guid) == ("ORG-A", created.json()["data"][0]["guid"])
        assert await _mission(b, "Local Only") is None  # no [[mission]] names it

        # bob subscribes to the mirror on B and hears of A's next item (t-x-m-c)
        bob, bob_uid = await _subscriber(b, "bob", certs)
        sub = await at_b.put(f"{M}/{MIRROR}/subscription", params={"uid": bob_uid})
        assert sub.status_code == 201, sub.text
        token = sub.json()["data"]["token"]
        second = new_uid("unit")
        await _add(at_a, [second])
        change = await bob.recv_until(lambda e: e.type == "t-x-m-c" and second in e.detail.xml)
        assert "ADD_CONTENT" in change.detail.xml
        await _until_async(lambda: _has_items(b, [first, second]))
        # the mirror's contents are A's: B may not edit them
        refused = await at_b.put(
            f"{M}/{MIRROR}/contents", json={"uids": [new_uid()]}, params={"uid": bob_uid}
        )
        assert refused.status_code == 403, refused.text

        # bob's log entry on the mirror reaches A's mission (A's policy accepts logs)
        wrote = await at_b.post(
            f"{M}/logs/entries",
            json={"content": "bridge clear", "creatorUid": bob_uid, "missionNames": [MIRROR]},
            headers={"MissionAuthorization": f"Bearer {token}"},
        )
        assert wrote.status_code < 300, wrote.text
        await _until_async(lambda: _has_log(a, "Joint Op", "bridge clear"))
        # bob removes his entry: it goes from A's mission too (B's mirror wrote it)
        removed = await at_b.delete(
            f"{M}/logs/entries/{wrote.json()['data']['id']}",
            headers={"MissionAuthorization": f"Bearer {token}"},
        )
        assert removed.status_code == 200, removed.text
        await _until_async(lambda: _lacks_log(a, "Joint Op", "bridge clear"))
        # alice's entry on A reaches B's mirror (and bob hears of it); removed on A, it goes
        noted = await at_a.post(
            f"{M}/logs/entries",
            json={
                "content": "holding at gate",
                "creatorUid": "alice",
                "missionNames": ["Joint Op"],
            },
        )
        assert noted.status_code < 300, noted.text
        await bob.recv_until(
            lambda e: e.type == "t-x-m-c-l" and 'authorUid="alice"' in e.detail.xml
        )
        await _until_async(lambda: _has_log(b, MIRROR, "holding at gate"))
        dropped = await at_a.delete(
            f"{M}/logs/entries/{noted.json()['data']['id']}", params={"creatorUid": "alice"}
        )
        assert dropped.status_code == 200, dropped.text
        await _until_async(lambda: _lacks_log(b, MIRROR, "holding at gate"))

        # a file is a part A's policy does not share: it stays home and is counted
        sharing = a.running.mission_sharing
        assert sharing is not None
        package = package_bytes(3000, seed=16)
        up = await at_a.post(
            "/Marti/sync/upload",
            params={"name": "plan.zip", "CreatorUid": "alice"},
            content=package,
            headers={"Content-Type": "application/zip"},
        )
        assert up.status_code == 200, up.text
        await _add(at_a, [], (hashlib.sha256(package).hexdigest(),))
        assert sharing.withheld[("ORG-B", "joint")] == 1
        assert sharing.withheld[("ORG-B", "(no [[mission]])")] == 0
        # (A's item added next crosses after it: had the file crossed, it would be there)
        third = new_uid("unit")
        await _add(at_a, [third])
        await _until_async(lambda: _has_items(b, [first, second, third]))
        mirror = await _mission(b, MIRROR)
        assert mirror is not None
        assert mirror.resources == {}

        # a mission that shares its files: the entry and the content reach B
        digest = hashlib.sha256(package).hexdigest()
        files = await at_a.put(f"{M}/Files Op", params={"creatorUid": "alice"})
        assert files.status_code == 201, files.text
        added = await at_a.put(
            f"{M}/Files Op/contents", params={"creatorUid": "alice"}, json={"hashes": [digest]}
        )
        assert added.status_code == 200, added.text
        store_b = b.running.store
        assert store_b is not None
        await _until_async(lambda: _stored(store_b, digest))
        copy = await _mission(b, "ORG-A:Files Op")
        assert copy is not None
        assert list(copy.resources) == [digest]
        # A deletes that mission: B's mirror of it goes too (the joint one stays)
        gone = await at_a.delete(f"{M}/Files Op", params={"creatorUid": "alice"})
        assert gone.status_code == 200, gone.text

        async def mirror_gone() -> bool:
            return await _mission(b, "ORG-A:Files Op") is None

        await _until_async(mirror_gone)
        assert await _mission(b, MIRROR) is not None

    # the link goes down; A goes on changing the mission; B comes back: caught up, once
    tcp_b, fed_b = b.running.ports["tcp"], b.port
    https_b, tls_b = b.running.ports["https"], b.running.ports["tls"]
    await b.running.close(grace_s=0.5)
    await until(lambda: a.link("ORG-B").state != "up", 10)
    later = [new_uid("late") for _ in range(3)]
    async with _https(a, "alice", certs) as at_a:
        for uid in later:
            await _add(at_a, [uid])
    await launch(
        b,
        a.partner(share_all=False, policy_file=str(tmp_path / "b.toml")),
        any_port=False,
        tcp_port=tcp_b,
        federation_port=fed_b,
        https_port=https_b,
        tls_port=tls_b,
        federation_files_port=0,
    )
    await wait_up(a, "ORG-B", 20)
    expected = [first, second, third, *later]
    await _until_async(lambda: _has_items(b, expected), 20)
    mirror = await _mission(b, MIRROR)
    assert mirror is not None
    assert sorted(mirror.items) == sorted(expected)
    assert len(mirror.applied) == len(set(mirror.applied))
    names = [m.name for m in (await _missions(b)).values()]
    assert names.count(MIRROR) == 1
    assert b.running is not None
    changes = await b.running.missions.changes(mirror) if b.running.missions else []
    adds = [c.item.uid for c in changes if c.item is not None]
    assert sorted(adds) == sorted(expected)  # each item's change applied once

    # both sharing ledgers hold what crossed, and verify
    for org in (a, b):
        assert org.running is not None
        assert org.running.ledger is not None
        await org.running.ledger.flush()
    await a.running.close(grace_s=1.0)
    await b.running.close(grace_s=1.0)
    for org in (a, b):
        code, text = await asyncio.to_thread(_verify, org)
        assert code == 0, text


async def _has_items(org: Org, uids: list[str]) -> bool:
    mirror = await _mission(org, MIRROR)
    return mirror is not None and all(u in mirror.items for u in uids)


async def _has_log(org: Org, name: str, text: str) -> bool:
    mission = await _mission(org, name)
    return mission is not None and any(e.content == text for e in mission.logs.values())


async def _lacks_log(org: Org, name: str, text: str) -> bool:
    mission = await _mission(org, name)
    return mission is not None and all(e.content != text for e in mission.logs.values())


async def _stored(store: Any, digest: str) -> bool:
    return await store.package(digest) is not None
