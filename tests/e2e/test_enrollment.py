"""Certificate enrollment over real HTTPS, as ATAK does it, then a real TLS session with it."""

from __future__ import annotations

import base64
import ssl
import time

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID
from lxml import etree

from accord.domain.groups import Membership
from accord.identity.users import UserStore
from tests.conftest import Server, ServerFactory
from tests.e2e.clients import CotClient, new_uid, sa

PASSWORD = "correct horse battery"


@pytest.fixture
async def server(make_server: ServerFactory, tmp_path) -> Server:  # type: ignore[no-untyped-def]
    data_dir = tmp_path / "server0"  # where make_server puts its first server
    data_dir.mkdir()
    UserStore(data_dir).add(
        "alice", PASSWORD, Membership.both(["Blue"]), now_ms=int(time.time() * 1000)
    )
    return await make_server()


def client(server: Server, password: str = PASSWORD, user: str = "alice") -> httpx.AsyncClient:
    ctx = ssl.create_default_context(cafile=str(server.pki.ca_cert))  # trust the shipped CA
    return httpx.AsyncClient(
        base_url=f"https://127.0.0.1:{server.port('enroll')}",
        verify=ctx,
        auth=(user, password),
        timeout=10,
    )


def assert_certificate_config(body: bytes) -> None:
    """The document node-tak parses as TAK Server marshals it: the root literally
    ``ns2:certificateConfig``, its children in the default namespace, two name entries."""
    assert body.startswith(b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>')
    assert b"<ns2:certificateConfig " in body
    root = etree.fromstring(body)
    assert root.prefix == "ns2"
    assert root.tag == "{com.bbn.marti.config}certificateConfig"
    assert root.nsmap == {None: "http://bbn.com/marti/xml/config", "ns2": "com.bbn.marti.config"}
    (entries,) = root
    assert entries.tag == "{http://bbn.com/marti/xml/config}nameEntries"
    assert entries.prefix is None
    names = [(e.tag, e.get("name"), e.get("value")) for e in entries]
    tag = "{http://bbn.com/marti/xml/config}nameEntry"
    assert names == [(tag, "O", "Accord"), (tag, "OU", "Accord")]


def csr_for(cn: str, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    """What ATAK posts: the CSR as base64 DER, PEM armour stripped."""
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Accord"),
                    x509.NameAttribute(NameOID.COMMON_NAME, cn),
                ]
            )
        )
        .sign(key, hashes.SHA256())
    )
    return base64.b64encode(csr.public_bytes(serialization.Encoding.DER))


async def test_enrolled_certificate_connects_and_gets_the_users_groups(server: Server) -> None:
    async with client(server) as http:
        config = await http.get("/Marti/api/tls/config")
        assert config.status_code == 200
        assert_certificate_config(config.content)

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        signed = await http.post(
            "/Marti/api/tls/signClient/v2?clientUid=ANDROID-1&version=4.10",
            content=csr_for("alice", key),
        )
        assert signed.status_code == 200, signed.text
        body = signed.json()
        cert = x509.load_der_x509_certificate(base64.b64decode(body["signedCert"]))
        ca = x509.load_der_x509_certificate(base64.b64decode(body["ca0"]))
        cert.verify_directly_issued_by(ca)
        assert cert.public_key().public_numbers() == key.public_key().public_numbers()  # type: ignore[union-attr]
        assert (await http.get("/Marti/api/tls/profile/enrollment")).status_code == 204

    # the device now connects with the key it kept and the certificate it got
    cert_path = server.certs_dir / "enrolled.pem"
    key_path = server.certs_dir / "enrolled.key"
    server.certs_dir.mkdir(exist_ok=True)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    ctx = ssl.create_default_context(cafile=str(server.pki.ca_cert))
    ctx.check_hostname = False
    ctx.load_cert_chain(cert_path, key_path)
    device = await CotClient.connect(server.port("tls"), tls=ctx)
    blue_cert, blue_key = server.client_cert("bluebird", group="Blue")
    other_ctx = ssl.create_default_context(cafile=str(server.pki.ca_cert))
    other_ctx.check_hostname = False
    other_ctx.load_cert_chain(blue_cert, blue_key)
    other = await CotClient.connect(server.port("tls"), tls=other_ctx)
    await device.send(sa(new_uid(), "ALICE"))
    assert (await other.recv()).detail.contact.callsign == "ALICE"  # type: ignore[union-attr]
    assert server.counters.enrolled == 1


async def test_xml_answer_and_v1_pkcs12(server: Server) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    async with client(server) as http:
        xml = await http.post(
            "/Marti/api/tls/signClient/v2",
            content=csr_for("alice", key),
            headers={"Accept": "application/xml"},
        )
        assert xml.status_code == 200
        root = etree.fromstring(xml.content)
        assert root.tag == "enrollment"
        assert root.findtext("signedCert")
        assert root.findtext("ca")
        v1 = await http.post("/Marti/api/tls/signClient", content=csr_for("alice", key))
        assert v1.status_code == 200
        loaded = pkcs12.load_pkcs12(v1.content, b"atakatak")
        assert len(loaded.additional_certs) == 2


@pytest.mark.parametrize(
    ("name", "body", "status", "reason"),
    [
        ("garbage", b"not a csr at all", 400, "not a certificate signing request"),
        ("empty", b"", 400, "empty request"),
        ("truncated", None, 400, "not a certificate signing request"),
        ("someone else", "bob", 400, "is not the signed-in user"),
        ("weak key", "weak", 400, "too weak"),
        ("oversized", b"A" * 20_000, 413, "larger than"),
    ],
)
async def test_bad_csrs_are_refused_with_a_reason_never_a_500(
    server: Server, name: str, body: bytes | str | None, status: int, reason: str
) -> None:
    good_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if body is None:
        body = csr_for("alice", good_key)[:120]
    elif body == "bob":
        body = csr_for("bob", good_key)
    elif body == "weak":
        body = csr_for("alice", rsa.generate_private_key(public_exponent=65537, key_size=1024))
    assert isinstance(body, bytes)
    async with client(server) as http:
        answer = await http.post("/Marti/api/tls/signClient/v2", content=body)
    assert answer.status_code == status, name
    assert reason in answer.text
    assert server.counters.enrolled == 0


async def test_wrong_passwords_are_refused_counted_and_throttled(server: Server) -> None:
    async with client(server, password="wrong password") as http:
        for _ in range(5):
            assert (await http.get("/Marti/api/tls/config")).status_code == 401
        assert (await http.get("/Marti/api/tls/config")).status_code == 429
    async with client(server, user="nobody") as http:
        assert (await http.get("/Marti/api/tls/config")).status_code == 429  # same address
    assert server.counters.enroll_auth_failed == 5
    assert server.counters.enroll_throttled == 2
    async with httpx.AsyncClient(
        base_url=f"https://127.0.0.1:{server.port('enroll')}",
        verify=ssl.create_default_context(cafile=str(server.pki.ca_cert)),
    ) as anonymous:
        answer = await anonymous.get("/Marti/api/tls/config")
        assert answer.status_code == 401
        assert "Basic" in answer.headers["www-authenticate"]


async def test_an_attacker_on_one_address_cannot_lock_out_the_user_on_another(
    server: Server,
) -> None:
    # Issue 13 §4: five wrong passwords for a name used to block its owner for a minute.
    verify = ssl.create_default_context(cafile=str(server.pki.ca_cert))
    attacker = httpx.AsyncClient(
        base_url=f"https://127.0.0.1:{server.port('enroll')}",
        transport=httpx.AsyncHTTPTransport(verify=verify, local_address="127.0.0.2"),
        auth=("alice", "guess"),
        timeout=10,
    )
    async with attacker:
        for _ in range(5):
            assert (await attacker.get("/Marti/api/tls/config")).status_code == 401
        refused = await attacker.get("/Marti/api/tls/config")
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) >= 59
    async with client(server) as owner:  # from 127.0.0.1
        assert (await owner.get("/Marti/api/tls/config")).status_code == 200
        token = await owner.post(
            "/oauth/token",
            params={"grant_type": "password", "username": "alice", "password": PASSWORD},
        )
        assert token.status_code == 200
    assert server.counters.enroll_auth_failed == 5
    assert server.counters.enroll_throttled == 1
