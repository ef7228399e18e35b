"""Certificate admin (``/Marti/api/certadmin/cert…``) over Accord's CA, administrators only."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.conftest import Server, ServerFactory
from tests.e2e import shapes
from tests.e2e.test_marti import https
from tests.e2e.test_marti_more import as_admin

BASE = "/Marti/api/certadmin/cert"


def fingerprint(pem_path: Path) -> str:
    cert = x509.load_pem_x509_certificate(pem_path.read_bytes())
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


async def test_only_administrators_see_certificates(server: Server) -> None:
    async with https(server, "alice") as alice:
        for path in (BASE, f"{BASE}/active", f"{BASE}/revoked", f"{BASE}/0123/download"):
            assert (await alice.get(path)).status_code == 403, path
        assert (await alice.delete(f"{BASE}/0123")).status_code == 403


async def test_an_administrator_lists_downloads_and_revokes_a_certificate(
    make_server: ServerFactory,
) -> None:
    server = await make_server(revocation_check_s=30.0)  # the revocation must not wait for it
    cert_path, _ = server.client_cert("carol", "Red")
    server.client_cert("dave", "Blue")
    carol_hash = fingerprint(cert_path)
    async with as_admin(server) as admin, https(server, "erin", "Red") as erin:
        assert (await erin.get("/Marti/api/contacts/all")).status_code == 200
        listing = (await admin.get(BASE)).json()
        shapes.check(listing, shapes.envelope([shapes.CERTIFICATE]))
        names = [c["userDn"] for c in listing["data"]]
        assert {"admin", "carol", "dave", "erin"} <= set(names)
        assert len({c["id"] for c in listing["data"]}) == len(names)

        (carol,) = (await admin.get(BASE, params={"username": "carol"})).json()["data"]
        assert carol["hash"] == carol_hash
        assert "OU=Red" in carol["subjectDn"]
        assert "revocationDate" not in carol
        one = (await admin.get(f"{BASE}/{carol_hash.upper()}")).json()
        shapes.check(one, shapes.envelope(shapes.CERTIFICATE))
        assert one["data"]["id"] == carol["id"]
        pem = await admin.get(f"{BASE}/{carol_hash}/download")
        assert pem.status_code == 200
        assert pem.content == cert_path.read_bytes()
        assert (await admin.get(f"{BASE}/{'0' * 64}")).status_code == 404

        # Revoking erin's certificate shuts its HTTPS session out at once.
        (erin_row,) = (await admin.get(BASE, params={"username": "erin"})).json()["data"]
        revoked = await admin.delete(f"{BASE}/{erin_row['hash']}")
        assert revoked.status_code == 200, revoked.text
        shapes.check(revoked.json(), shapes.envelope(shapes.CERTIFICATE))
        assert "revocationDate" in revoked.json()["data"]
        assert (await erin.get("/Marti/api/contacts/all")).status_code == 401
        assert (await admin.delete(f"{BASE}/{erin_row['hash']}")).status_code == 409
        revoked_list = (await admin.get(f"{BASE}/revoked")).json()["data"]
        assert [c["userDn"] for c in revoked_list] == ["erin"]
        active = {c["userDn"] for c in (await admin.get(f"{BASE}/active")).json()["data"]}
        assert "erin" not in active
        assert {"carol", "dave"} <= active

        # By id: a ZIP of PEMs, and a revocation of several at once.
        dave_id = next(c["id"] for c in listing["data"] if c["userDn"] == "dave")
        archive = await admin.get(f"{BASE}/download/{carol['id']},{dave_id}")
        assert archive.headers["content-type"] == "application/zip"
        with zipfile.ZipFile(io.BytesIO(archive.content)) as zipped:
            assert zipped.namelist() == ["1_carol_ClientCert.pem", "2_dave_ClientCert.pem"]
            assert zipped.read("1_carol_ClientCert.pem") == cert_path.read_bytes()
        assert (await admin.get(f"{BASE}/download/x")).status_code == 400
        assert (await admin.get(f"{BASE}/download/99999")).status_code == 404
        both = await admin.delete(f"{BASE}/revoke/{carol['id']},{dave_id}")
        assert [c["userDn"] for c in both.json()["data"]] == ["carol", "dave"]
        assert all("revocationDate" in c for c in both.json()["data"])


async def test_a_newer_certificate_replaces_the_older_one(server: Server) -> None:
    server.client_cert("frank", "Red")
    server.client_cert("frank", "Red")
    async with as_admin(server) as admin:
        rows = (await admin.get(BASE, params={"username": "frank"})).json()["data"]
        older, newer = sorted(rows, key=lambda c: c["id"])
        replaced = (await admin.get(f"{BASE}/replaced")).json()["data"]
        assert [c["id"] for c in replaced] == [older["id"]]
        active = [c["id"] for c in (await admin.get(f"{BASE}/active")).json()["data"]]
        assert newer["id"] in active
        assert older["id"] not in active


async def test_revoking_many_ids_revokes_them_all_in_one_crl(server: Server) -> None:
    from accord.identity import registry

    names = [f"bulk{i}" for i in range(5)]
    paths = [server.client_cert(name, "Red")[0] for name in names]
    async with as_admin(server) as admin:
        rows = (await admin.get(BASE)).json()["data"]
        ids = [next(c["id"] for c in rows if c["userDn"] == name) for name in names]
        first = await admin.delete(f"{BASE}/revoke/{ids[0]}")
        assert first.status_code == 200, first.text
        every = await admin.delete(f"{BASE}/revoke/{','.join(map(str, ids))}")  # one already
        assert every.status_code == 200, every.text
        assert [c["userDn"] for c in every.json()["data"]] == names
        assert all("revocationDate" in c for c in every.json()["data"])
    pki = registry.PkiPaths(server.config.data_dir / "pki")
    crl = x509.load_pem_x509_crl(registry.crl_path(pki).read_bytes())
    in_crl = {entry.serial_number for entry in crl}
    assert {x509.load_pem_x509_certificate(p.read_bytes()).serial_number for p in paths} <= in_crl
