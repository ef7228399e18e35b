"""Data packages across a partner link: announced with a b-f-t-r, fetched by the partner over
its federation certificate, served to the partner's users from the partner's own server."""

from __future__ import annotations

import datetime as dt
import ssl
from pathlib import Path
from typing import Any

import httpx
import pytest
from lxml import etree

from accord.cot.model import CotEvent
from accord.identity.ca import PkiPaths
from accord.identity.pki import issue_client
from tests.e2e.clients import marker, new_uid, sa
from tests.e2e.test_packages import commo_upload, package_bytes, sha256
from tests.federation.test_link_e2e import Org, client, orgs, wait_up

__all__ = ["orgs"]  # the fixture

pytestmark = pytest.mark.timeout(60)


def _https(org: Org, name: str, certs: Path, port: str = "https") -> httpx.AsyncClient:
    pki = PkiPaths(org.data_dir / "pki")
    files = issue_client(pki, name, certs / org.name, dt.datetime.now(dt.UTC))
    ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
    ctx.load_cert_chain(files.cert, files.key)
    assert org.running is not None
    base = f"https://127.0.0.1:{org.running.ports[port]}"
    return httpx.AsyncClient(base_url=base, verify=ctx, timeout=10)


def _as_partner(org: Org, of: Org) -> httpx.AsyncClient:
    """``org``'s federation certificate towards ``of``'s partner package port."""
    pki = PkiPaths(org.data_dir / "pki")
    ctx = ssl.create_default_context(cafile=str(PkiPaths(of.data_dir / "pki").ca_cert))
    ctx.load_cert_chain(pki.federation_cert, pki.federation_key)
    assert of.running is not None
    base = f"https://127.0.0.1:{of.running.ports['federation_files']}"
    return httpx.AsyncClient(base_url=base, verify=ctx, timeout=10)


def _share(event: CotEvent) -> Any:
    share = etree.fromstring(f"<detail>{event.detail.xml}</detail>").find("fileshare")
    assert share is not None
    return share


async def _linked(orgs: Any) -> tuple[Org, Org]:
    make, launch = orgs
    a, b = make("ORG-A"), make("ORG-B")
    await launch(b, a.partner(), https_port=8443)  # any_port: 8443 becomes a free port
    await launch(a, b.partner(dial=b), https_port=8443)
    await wait_up(a, "ORG-B")
    await wait_up(b, "ORG-A")
    return a, b


async def test_an_announced_package_is_fetched_by_the_partner_and_served_there(
    orgs: Any, tmp_path: Path
) -> None:
    a, b = await _linked(orgs)
    assert a.running
    assert b.running
    data = package_bytes(300_000, seed=3)
    digest = sha256(data)
    secret = package_bytes(1000, seed=4)
    async with _https(a, "alpha", tmp_path) as http:
        url = (await commo_upload(http, data, name="photo.zip")).text
        assert (await commo_upload(http, secret, name="secret.zip")).status_code == 200
    alice = await client(a.running)
    bob = await client(b.running)
    detail = (
        f'<fileshare filename="photo.zip" senderUrl="{url}" sizeInBytes="{len(data)}" '
        f'sha256="{digest}" senderUid="ALPHA-1" senderCallsign="ALPHA" name="photo"/>'
    )
    await alice.send(marker(new_uid("transfer"), type_="b-f-t-r", detail=detail))

    # Bob is told only once B holds the package, and fetches it from B, not from A.
    offer = await bob.recv_until(lambda e: e.type == "b-f-t-r", timeout=20)
    fetch = _share(offer).get("senderUrl")
    assert fetch == (
        f"https://localhost:{b.running.ports['https']}/Marti/sync/content?hash={digest}"
    )
    async with _https(b, "bravo", tmp_path) as http:
        got = await http.get(fetch.replace("localhost", "127.0.0.1"))
    assert got.status_code == 200
    assert got.content == data
    assert b.running.store is not None
    stored = await b.running.store.package(digest)
    assert stored is not None
    assert stored.submitter == "partner:ORG-A"

    # B may fetch from A only what was announced to it; A's users cannot use that port.
    async with _as_partner(b, a) as partner:
        assert (await partner.get(f"/Marti/sync/content?hash={digest}")).status_code == 200
        missing = await partner.get(f"/Marti/sync/content?hash={sha256(secret)}")
        assert missing.status_code == 404
    with pytest.raises(httpx.HTTPError):
        async with _https(a, "mallory", tmp_path, port="federation_files") as http:
            await http.get(f"/Marti/sync/content?hash={digest}")


async def test_a_file_request_the_policy_withholds_fetches_nothing(
    orgs: Any, tmp_path: Path
) -> None:
    make, launch = orgs
    a, b = make("ORG-A"), make("ORG-B")
    policy = tmp_path / "policy.toml"
    policy.write_text(
        'name = "sa-only"\npartner = "ORG-B"\n[[rule]]\nname = "sa"\ntypes = ["a-f-*"]\n'
    )
    await launch(b, a.partner(), https_port=8443)
    await launch(a, b.partner(dial=b, share_all=False, policy_file=str(policy)), https_port=8443)
    await wait_up(a, "ORG-B")
    assert a.running
    assert b.running
    data = package_bytes(5000, seed=5)
    async with _https(a, "alpha", tmp_path) as http:
        url = (await commo_upload(http, data, name="plan.zip")).text
    alice = await client(a.running)
    bob = await client(b.running)
    detail = f'<fileshare filename="plan.zip" senderUrl="{url}" sha256="{sha256(data)}"/>'
    await alice.send(marker(new_uid("transfer"), type_="b-f-t-r", detail=detail))
    # An SA the policy releases, sent after it, goes the same ordered way (alice's session,
    # A's hub, the one link's stream): whatever bob gets before it is all the request could be.
    after = new_uid()
    await alice.send(sa(after, "alice"))
    before: list[CotEvent] = []
    await bob.recv_until(lambda e: before.append(e) or e.uid == after)
    assert [e for e in before if e.type == "b-f-t-r"] == []
    assert b.running.store is not None
    assert await b.running.store.package(sha256(data)) is None
    async with _as_partner(b, a) as partner:
        refused = await partner.get(f"/Marti/sync/content?hash={sha256(data)}")
    assert refused.status_code == 404
