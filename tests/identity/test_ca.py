"""Accord's CA: made once, reused, and issuing certificates stock TAK clients accept."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from accord.identity.ca import PkiError, load_authority
from accord.identity.pki import ensure_pki, issue_client

NOW = dt.datetime(2026, 11, 29, tzinfo=dt.UTC)


def test_first_start_creates_a_ca_and_later_starts_reuse_it(tmp_path: Path) -> None:
    paths = ensure_pki(tmp_path / "pki", ("localhost", "127.0.0.1"), NOW)
    first = paths.ca_cert.read_bytes(), paths.server_cert.read_bytes()
    again = ensure_pki(tmp_path / "pki", ("localhost", "127.0.0.1"), NOW)
    assert (again.ca_cert.read_bytes(), again.server_cert.read_bytes()) == first
    assert paths.ca_key.stat().st_mode & 0o777 == 0o600
    assert paths.server_key.stat().st_mode & 0o777 == 0o600


def test_server_certificate_names_every_host_and_chains_to_the_ca(tmp_path: Path) -> None:
    paths = ensure_pki(tmp_path / "pki", ("tak.example.org", "127.0.0.1"), NOW)
    cert = x509.load_pem_x509_certificate(paths.server_cert.read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["tak.example.org"]
    assert sans.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku
    ca = load_authority(paths)
    cert.verify_directly_issued_by(ca.cert)


def test_client_certificate_carries_cn_and_group_ou(tmp_path: Path) -> None:
    paths = ensure_pki(tmp_path / "pki", ("localhost",), NOW)
    files = issue_client(paths, "alice", tmp_path / "out", NOW, ou="Blue")
    cert_path, key_path = files.cert, files.key
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "alice"
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value == "Blue"
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.CLIENT_AUTH in eku
    # the pair loads as a TLS client identity that trusts the CA
    ctx = ssl.create_default_context(cafile=str(paths.ca_cert))
    ctx.load_cert_chain(cert_path, key_path)


def test_a_damaged_ca_is_reported_not_replaced(tmp_path: Path) -> None:
    paths = ensure_pki(tmp_path / "pki", ("localhost",), NOW)
    paths.ca_key.write_text("garbage")
    with pytest.raises(PkiError, match="cannot read the CA"):
        ensure_pki(tmp_path / "pki", ("localhost",), NOW)


def test_a_replaced_ca_key_is_checked_again_not_taken_from_an_earlier_load(tmp_path: Path) -> None:
    # The parsed key is kept per process for the same file bytes: a key whose numbers do not
    # agree (well-formed PEM, so only RSA's consistency check can tell) is refused after the
    # good one loaded, and the good one loads again after it.
    paths = ensure_pki(tmp_path / "pki", ("localhost",), NOW)
    good = paths.ca_key.read_bytes()
    assert isinstance(load_authority(paths).key, rsa.RSAPrivateKey)
    numbers = load_authority(paths).key.private_numbers()
    broken = rsa.RSAPrivateNumbers(
        numbers.p,
        numbers.q,
        numbers.d,
        numbers.dmp1 ^ 2,
        numbers.dmq1,
        numbers.iqmp,
        numbers.public_numbers,
    ).private_key(unsafe_skip_rsa_key_validation=True)
    paths.ca_key.write_bytes(
        broken.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(PkiError, match="cannot read the CA"):
        load_authority(paths)
    paths.ca_key.write_bytes(good)
    assert load_authority(paths).key.private_numbers() == numbers


def test_a_ca_key_others_can_read_is_refused(tmp_path: Path) -> None:
    paths = ensure_pki(tmp_path / "pki", ("localhost",), NOW)
    paths.ca_key.chmod(0o644)
    with pytest.raises(PkiError, match="chmod 600"):
        load_authority(paths)
