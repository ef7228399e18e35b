"""Bad client certificates (issue 3): expired, not yet valid, wrong purpose, CA:TRUE,
self-signed, forged and revoked ones. Each is refused at the TLS handshake, counted, logged with
its specific reason, and changes nothing: no session, no event, and good clients carry on."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import functools
import re
import ssl
from logging import WARNING
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from accord.app import start
from accord.identity import registry
from accord.identity.ca import Authority, cert_pem, key_pem, load_authority
from accord.identity.pki import issue_client
from tests.conftest import Server, ServerFactory
from tests.e2e.clients import CotClient, client_tls_context, new_uid, sa
from tests.waiting import wait_until

LOGGER = "accord.listen"
COUNTED_WITHIN_S = 2.0
REFUSED_WITHIN_S = 3.0  # a refusal comes within milliseconds on loopback


@functools.cache
def _key() -> rsa.RSAPrivateKey:
    """One key for every hand-built certificate: what is under test is the certificate."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Accord"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


@dataclasses.dataclass(frozen=True)
class Spec:
    """A client certificate: by default one shaped as Accord issues them (``ca.issue``)."""

    name: str
    reason: str = ""  # for a bad one: a regular expression the server's log line must match
    valid_from_days: float = -1.0  # relative to now
    valid_until_days: float = 30.0
    purposes: tuple[x509.ObjectIdentifier, ...] = (ExtendedKeyUsageOID.CLIENT_AUTH,)
    ca: bool = False
    signer: str = "ca"  # "ca", "self" (its own key, own name) or "forged" (CA's name, own key)


# The reasons are OpenSSL's verify messages (OpenSSL 1.1 spells two of them differently).
BAD = [
    Spec("expired", "certificate has expired", valid_from_days=-30, valid_until_days=-1),
    Spec("not yet valid", "certificate is not yet valid", valid_from_days=1, valid_until_days=30),
    Spec(
        "server purpose only",
        "(unsuitable|unsupported) certificate purpose",
        purposes=(ExtendedKeyUsageOID.SERVER_AUTH,),
    ),
    Spec("self-signed", "self[- ]signed certificate", signer="self"),
    Spec("forged issuer", "certificate signature failure", signer="forged"),
]
CA_LEAF = Spec("CA:TRUE leaf", "CA certificate", ca=True)
REVOKED_REASON = "certificate revoked"


def _build(ca: Authority, spec: Spec, out: Path) -> tuple[Path, Path]:
    """Write ``spec`` as PEM certificate and key files under ``out``."""
    now = dt.datetime.now(dt.UTC)
    key = _key()
    cn = spec.name.replace(" ", "-").replace(":", "")
    signer_key: rsa.RSAPrivateKey = ca.key
    issuer = ca.cert.subject
    if spec.signer == "self":
        signer_key, issuer = key, _name(cn)
    elif spec.signer == "forged":
        signer_key = key
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + dt.timedelta(days=spec.valid_from_days))
        .not_valid_after(now + dt.timedelta(days=spec.valid_until_days))
        .add_extension(x509.BasicConstraints(ca=spec.ca, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(list(spec.purposes)), critical=False)
    )
    if spec.signer == "ca":
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
    cert = builder.sign(signer_key, hashes.SHA256())
    out.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = out / f"{cn}.pem", out / f"{cn}.key"
    cert_path.write_bytes(cert_pem(cert))
    key_path.write_bytes(key_pem(key))
    return cert_path, key_path


def _tls(server: Server, cert: Path, key: Path) -> ssl.SSLContext:
    return client_tls_context(cert, key, server.pki.ca_cert)


async def _refused(server: Server, ctx: ssl.SSLContext) -> None:
    """TLS 1.3 reports a refused client certificate on the first read, not at connect; an
    accepted one shows as a session attached to the hub."""
    sessions = server.running.hub.session_count
    try:
        client = await CotClient.connect(server.port("tls"), tls=ctx)
        async with asyncio.timeout(REFUSED_WITHIN_S):
            reading = asyncio.ensure_future(client.recv(timeout=REFUSED_WITHIN_S))
            while not reading.done() and server.running.hub.session_count == sessions:
                await asyncio.sleep(0.01)  # two conditions raced: the refusal or a session
            if not reading.done():
                reading.cancel()
                pytest.fail("the server accepted the certificate: a session was attached")
            await reading
    except (ssl.SSLError, ConnectionError):
        return
    except TimeoutError:
        pytest.fail(f"no refusal within {REFUSED_WITHIN_S} s")
    pytest.fail("the server accepted the certificate and sent an event")


async def _counted(server: Server, failures: int) -> None:
    """Wait for the server to have counted ``failures`` failed handshakes (it logs just before)."""
    await wait_until(
        lambda: server.counters.tls_handshake_failed >= failures,
        timeout_s=COUNTED_WITHIN_S,
        what=f"{failures} failed handshakes",
    )
    assert server.counters.tls_handshake_failed == failures


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What the TLS listener warned about (the refused handshakes)."""
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == WARNING]


async def _good_client(server: Server, name: str) -> CotClient:
    """A client with a good certificate from the server's CA, once its session is attached."""
    sessions = server.running.hub.session_count
    cert, key = _build(load_authority(server.pki), Spec(name), server.certs_dir)
    client = await CotClient.connect(server.port("tls"), tls=_tls(server, cert, key))
    await _attached(server, sessions + 1)
    return client


async def _attached(server: Server, sessions: int) -> None:
    """Wait for the hub to hold ``sessions`` sessions (the server attaches after the client's
    side of the TLS 1.3 handshake has finished)."""
    await wait_until(
        lambda: server.running.hub.session_count >= sessions,
        timeout_s=COUNTED_WITHIN_S,
        what=f"{sessions} sessions",
    )
    assert server.running.hub.session_count == sessions


async def _watcher(server: Server) -> CotClient:
    """A good TLS client that is connected throughout (and must hear nothing of the attempt)."""
    return await _good_client(server, "watcher")


async def _good_clients_still_route(server: Server, watcher: CotClient) -> None:
    """A good client still connects over TLS and what it sends reaches the others."""
    alice = await _good_client(server, "alice")
    event = sa(new_uid(), "ALICE")
    await alice.send(event)
    assert (await watcher.recv()).uid == event.uid  # the very next thing the watcher hears


async def _assert_refused_and_nothing_changed(
    server: Server, ctx: ssl.SSLContext, caplog: pytest.LogCaptureFixture
) -> str:
    """Refused, counted, logged once, and nothing else: return the log line."""
    watcher = await _watcher(server)
    sessions = server.running.hub.session_count
    before = server.counters.snapshot()
    with caplog.at_level(WARNING, logger=LOGGER):
        await _refused(server, ctx)
        await _counted(server, 1)
    assert server.running.hub.session_count == sessions  # no session was attached
    after = server.counters.snapshot()
    changed = {k: (before[k], v) for k, v in after.items() if before[k] != v}
    assert changed == {"tls_handshake_failed": (0, 1)}
    assert await watcher.expect_silence(0.1) == []  # no presence, no departure
    warnings = _warnings(caplog)
    assert len(warnings) == 1, warnings
    assert "peer=127.0.0.1:" in warnings[0], warnings[0]  # names who was refused
    await _good_clients_still_route(server, watcher)
    return warnings[0]


async def _revoked_before_start(server: Server, out: Path) -> ssl.SSLContext:
    """Issue mallory a certificate (with ``issue_client``) and show it works; stop the server,
    revoke it, start the server again on the same data directory: the CRL is loaded at start."""
    files = issue_client(server.pki, "mallory", out, dt.datetime.now(dt.UTC))
    ctx = _tls(server, files.cert, files.key)
    await CotClient.connect(server.port("tls"), tls=ctx)
    await _attached(server, 1)  # accepted before the revocation
    await server.running.close(grace_s=1.0)
    registry.revoke(server.pki, "mallory", dt.datetime.now(dt.UTC))
    server.running = await start(server.config, any_port=True)  # the fixture closes this one
    return ctx


@pytest.mark.parametrize("bad", BAD, ids=[b.name for b in BAD])
async def test_bad_client_certificate_is_refused_and_changes_nothing(
    server: Server, bad: Spec, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cert, key = _build(load_authority(server.pki), bad, tmp_path / "bad")
    await _assert_refused_and_nothing_changed(server, _tls(server, cert, key), caplog)


async def test_certificate_revoked_before_start_is_refused_and_changes_nothing(
    make_server: ServerFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = await make_server(revocation_check_s=60.0)  # no live CRL reload within this test
    ctx = await _revoked_before_start(server, tmp_path / "mallory")
    await _assert_refused_and_nothing_changed(server, ctx, caplog)


async def test_ca_certificate_as_client_certificate_is_refused(
    server: Server, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Accord never issues a CA:TRUE client certificate; one signed by its CA is refused."""
    cert, key = _build(load_authority(server.pki), CA_LEAF, tmp_path / "bad")
    line = await _assert_refused_and_nothing_changed(server, _tls(server, cert, key), caplog)
    assert re.search(CA_LEAF.reason, line), line


async def test_each_refusal_is_logged_with_its_specific_reason(
    make_server: ServerFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = await make_server(revocation_check_s=60.0)
    attempts = [(REVOKED_REASON, await _revoked_before_start(server, tmp_path / "mallory"))]
    ca = load_authority(server.pki)
    for bad in BAD:
        cert, key = _build(ca, bad, tmp_path / "bad")
        attempts.append((bad.reason, _tls(server, cert, key)))
    with caplog.at_level(WARNING, logger=LOGGER):
        for n, (_, ctx) in enumerate(attempts, 1):
            await _refused(server, ctx)
            await _counted(server, n)
    warnings = _warnings(caplog)
    assert len(warnings) == len(attempts), warnings
    unspecific = [
        (reason, line)
        for (reason, _), line in zip(attempts, warnings, strict=True)
        if not re.search(reason, line)
    ]
    assert unspecific == []


async def test_silent_client_is_cut_after_the_handshake_timeout(
    make_server: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """A client that connects and never sends a ClientHello holds nothing for long."""
    server = await make_server(tls_handshake_timeout_s=0.5)
    watcher = await _watcher(server)
    sessions = server.running.hub.session_count
    loop = asyncio.get_running_loop()
    with caplog.at_level(WARNING, logger=LOGGER):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port("tls"))
        started = loop.time()
        try:
            async with asyncio.timeout(3.0):
                assert await reader.read(1024) == b""  # cut: not a byte was sent
        except ConnectionResetError:
            pass  # cut with a reset
        waited = loop.time() - started
        writer.close()
        await _counted(server, 1)
    assert 0.4 <= waited < 2.0, waited
    assert server.running.hub.session_count == sessions
    warnings = _warnings(caplog)
    assert len(warnings) == 1, warnings
    assert re.search(r"timed out|taking longer than 0\.5 seconds", warnings[0]), warnings[0]
    await _good_clients_still_route(server, watcher)
