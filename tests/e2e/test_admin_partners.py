"""The admin API's partners (links, release decisions, ledger and its verification) and data
packages, over real HTTPS, with two real servers linked over mutual TLS."""

from __future__ import annotations

import asyncio
import sqlite3
import ssl
from typing import Any

import httpx
import pytest

from accord.identity.ca import PkiPaths
from tests.conftest import Server
from tests.e2e.clients import CotClient, new_uid, sa
from tests.e2e.test_admin import as_admin, https
from tests.e2e.test_packages import commo_upload, package_bytes, package_files, sha256
from tests.federation.test_link_e2e import Org, orgs, pair

__all__ = ["orgs"]  # the fixture, used below

pytestmark = pytest.mark.timeout(60)


def admin_of(org: Org) -> httpx.AsyncClient:
    assert org.running is not None
    pki = PkiPaths(org.data_dir / "pki")
    ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
    ctx.load_cert_chain(pki.admin_cert, pki.admin_key)
    return httpx.AsyncClient(
        base_url=f"https://127.0.0.1:{org.running.ports['https']}", verify=ctx, timeout=10
    )


def with_https(orgs: Any) -> tuple[Any, Any]:
    """The linked pair of test_link_e2e, each also serving its HTTPS API (and admin API)."""
    make, launch = orgs

    async def launch_https(org: Org, *partners: Any, **kw: Any) -> Any:
        return await launch(org, *partners, https_port=8443, **kw)  # any_port: bound to 0

    return make, launch_https


async def partner_row(http: httpx.AsyncClient, name: str, done: Any) -> dict[str, Any]:
    """Poll /api/admin/partners until the partner's row satisfies ``done``."""
    async with asyncio.timeout(15):
        while True:
            rows = {
                p["partner"]: p for p in (await http.get("/api/admin/partners")).json()["partners"]
            }
            if name in rows and done(rows[name]):
                return rows[name]
            await asyncio.sleep(0.1)


async def test_partners_show_the_link_its_traffic_decisions_and_a_verified_ledger(
    orgs: Any,
) -> None:
    a, b = await pair(*with_https(orgs))
    assert a.running is not None
    assert b.running is not None
    alice = await CotClient.connect(a.running.ports["tcp"])
    bob = await CotClient.connect(b.running.ports["tcp"])
    await asyncio.sleep(0.1)
    uid = new_uid()
    await alice.send(sa(uid, "alice"))
    await bob.recv_until(lambda e: e.uid == uid)

    async with admin_of(a) as http:
        row = await partner_row(
            http,
            "ORG-B",
            lambda r: r["ledger"] and any(log["entries"] > 0 for log in r["ledger"]),
        )
        link = next(v for v in row["links"] if v["direction"] == "outgoing")  # A dials B
        assert link["state"] == "up"
        assert link["events_out"] >= 1
        out = next(log for log in row["ledger"] if log["direction"] == "out")
        assert out["entries"] >= 1
        assert out["cosignature_lag"] == out["checkpoint_size"] - out["cosigned_size"]
        verified = await http.get("/api/admin/partners/ORG-B/ledger")
        assert verified.status_code == 200, verified.text
        logs = {log["direction"]: log for log in verified.json()["logs"]}
        assert logs["out"]["consistent"] is True
        assert logs["out"]["error"] is None
        assert logs["out"]["entries"] >= out["entries"]  # it may have grown since
        assert (await http.get("/api/admin/partners/NOBODY/ledger")).status_code == 404
    async with admin_of(b) as http:
        row = await partner_row(
            http, "ORG-A", lambda r: any(v["state"] == "up" for v in r["links"])
        )
        incoming = next(v for v in row["links"] if v["direction"] == "incoming")
        assert incoming["events_in"] >= 1


async def test_a_tampered_ledger_entry_is_reported_inconsistent(orgs: Any) -> None:
    a, _b = await pair(*with_https(orgs))
    assert a.running is not None
    assert a.running.store is not None
    alice = await CotClient.connect(a.running.ports["tcp"])
    await asyncio.sleep(0.1)
    for n in range(3):
        await alice.send(sa(new_uid(), f"alice-{n}"))
    async with admin_of(a) as http:
        await partner_row(http, "ORG-B", lambda r: any(log["entries"] >= 3 for log in r["ledger"]))
        store: Any = a.running.store
        entries = await store.ledger_entries("ORG-B", "out", 0)
        first = entries[0]

        # Rewrite the first entry's data behind the ledger's back: the sqlite backend's own
        # write path, reached under the contract on purpose (a tampered database).
        def tamper(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE ledger_entries SET data = ? WHERE partner = ? AND direction = ? "
                "AND idx = ?",
                (first.data + b" ", "ORG-B", "out", first.seq),
            )

        await store._write(tamper)
        verified = (await http.get("/api/admin/partners/ORG-B/ledger")).json()
        out = next(log for log in verified["logs"] if log["direction"] == "out")
        assert out["consistent"] is False
        assert out["error"]


async def test_packages_are_listed_and_deleted_by_an_administrator(server: Server) -> None:
    data = package_bytes(seed=7)
    cert, key = server.client_cert("alice", "Blue")

    async with https(server, cert, key) as user:
        assert (await commo_upload(user, data, "ops.zip")).status_code == 200
    async with as_admin(server) as http:
        (listed,) = (await http.get("/api/admin/packages")).json()["packages"]
        assert listed["hash"] == sha256(data)
        assert listed["name"] == "ops.zip"
        assert listed["size"] == len(data)
        assert package_files(server)  # its bytes are stored
        gone = await http.delete(f"/api/admin/packages/{sha256(data)}")
        assert gone.status_code == 200
        assert (await http.get("/api/admin/packages")).json()["packages"] == []
        assert package_files(server) == []
        assert (await http.delete(f"/api/admin/packages/{sha256(data)}")).status_code == 404
