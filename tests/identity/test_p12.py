"""PKCS#12 truststore and client bundle: open with the password, refuse others, legacy crypto."""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from accord.identity import p12
from accord.identity.ca import Authority, issue, load_authority
from accord.identity.pki import ensure_pki

NOW = dt.datetime(2026, 5, 1, 12, 0, tzinfo=dt.UTC)

# DER-encoded OIDs (tag, length, value) as they appear in a PKCS#12 file.
OID_PBE_SHA1_3DES = bytes.fromhex("060a2a864886f70d010c0103")  # 1.2.840.113549.1.12.1.3
OID_PBE_SHA1_RC2_40 = bytes.fromhex("060a2a864886f70d010c0106")  # 1.2.840.113549.1.12.1.6
OID_PBES2 = bytes.fromhex("06092a864886f70d01050d")  # 1.2.840.113549.1.5.13
OID_SHA1 = bytes.fromhex("06052b0e03021a")  # 1.3.14.3.2.26
OID_SHA256 = bytes.fromhex("0609608648016503040201")  # 2.16.840.1.101.3.4.2.1


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Authority:
    root: Path = tmp_path_factory.mktemp("pki")
    return load_authority(ensure_pki(root, ("tak.example.org",), NOW))


@pytest.fixture(scope="module")
def client(ca: Authority) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    return issue(ca, "alice", NOW, server=False, ou="Cyan")


def test_truststore_opens_with_its_password_and_holds_only_the_ca(ca: Authority) -> None:
    data = p12.encode_truststore([ca.cert], "s3cret-pass")
    key, cert, extra = pkcs12.load_key_and_certificates(data, b"s3cret-pass")
    assert key is None
    assert cert is None
    assert extra == [ca.cert]


def test_truststore_names_the_ca_by_its_common_name(ca: Authority) -> None:
    loaded = pkcs12.load_pkcs12(p12.encode_truststore([ca.cert]), b"atakatak")
    assert [c.friendly_name for c in loaded.additional_certs] == [b"Accord CA"]


def test_truststore_default_password_is_atakatak(ca: Authority) -> None:
    _, _, extra = pkcs12.load_key_and_certificates(p12.encode_truststore([ca.cert]), b"atakatak")
    assert extra == [ca.cert]


def test_truststore_refuses_a_wrong_password(ca: Authority) -> None:
    data = p12.encode_truststore([ca.cert], "right-password")
    with pytest.raises(ValueError, match="password"):
        pkcs12.load_key_and_certificates(data, b"wrong-password")


def test_client_bundle_holds_key_cert_and_ca_chain(
    ca: Authority, client: tuple[x509.Certificate, rsa.RSAPrivateKey]
) -> None:
    cert, key = client
    data = p12.encode_client_bundle(key, cert, [ca.cert], "client-pass")
    loaded = pkcs12.load_pkcs12(data, b"client-pass")
    assert loaded.cert is not None
    assert loaded.cert.certificate == cert
    assert loaded.cert.friendly_name == b"alice"
    assert isinstance(loaded.key, rsa.RSAPrivateKey)
    assert loaded.key.private_numbers() == key.private_numbers()
    assert [c.certificate for c in loaded.additional_certs] == [ca.cert]


def test_client_cert_in_bundle_chains_to_the_ca_in_the_truststore(
    ca: Authority, client: tuple[x509.Certificate, rsa.RSAPrivateKey]
) -> None:
    cert, key = client
    _, bundled, _ = pkcs12.load_key_and_certificates(
        p12.encode_client_bundle(key, cert, [ca.cert], "pw-client"), b"pw-client"
    )
    _, _, trusted = pkcs12.load_key_and_certificates(
        p12.encode_truststore([ca.cert], "pw-trust"), b"pw-trust"
    )
    assert bundled is not None
    bundled.verify_directly_issued_by(trusted[0])  # raises if the signature does not verify


def test_client_bundle_refuses_a_wrong_password(
    ca: Authority, client: tuple[x509.Certificate, rsa.RSAPrivateKey]
) -> None:
    cert, key = client
    data = p12.encode_client_bundle(key, cert, [ca.cert], "client-pass")
    with pytest.raises(ValueError, match="password"):
        pkcs12.load_key_and_certificates(data, b"atakatak")


def test_client_bundle_refuses_a_key_of_another_certificate(
    ca: Authority, client: tuple[x509.Certificate, rsa.RSAPrivateKey]
) -> None:
    cert, _ = client
    with pytest.raises(ValueError, match="does not belong"):
        p12.encode_client_bundle(ca.key, cert, [ca.cert])


@pytest.mark.parametrize("which", ["truststore", "client"])
def test_files_use_legacy_3des_and_sha1_mac_only(
    which: str, ca: Authority, client: tuple[x509.Certificate, rsa.RSAPrivateKey]
) -> None:
    cert, key = client
    if which == "truststore":
        data = p12.encode_truststore([ca.cert], "pw-pw-pw")
    else:
        data = p12.encode_client_bundle(key, cert, [ca.cert], "pw-pw-pw")
    assert OID_PBE_SHA1_3DES in data
    assert OID_SHA1 in data
    for modern_or_weak in (OID_PBES2, OID_SHA256, OID_PBE_SHA1_RC2_40):
        assert modern_or_weak not in data


@pytest.mark.parametrize("bad", ["", "pässword", "tab\there", "x" * 129])
def test_unusable_passwords_are_refused(bad: str, ca: Authority) -> None:
    with pytest.raises(ValueError, match="password"):
        p12.encode_truststore([ca.cert], bad)


def test_truststore_needs_a_ca() -> None:
    with pytest.raises(ValueError, match="at least one CA"):
        p12.encode_truststore([])


def test_generated_password_uses_the_unambiguous_alphabet_and_the_given_randomness() -> None:
    counter = itertools.count()

    def fake_random(n: int) -> bytes:
        return bytes(next(counter) % 256 for _ in range(n))

    password = p12.new_password(fake_random)
    assert len(password) == p12.GENERATED_PASSWORD_CHARS
    assert set(password) <= set(p12.PASSWORD_ALPHABET)
    assert password == p12.PASSWORD_ALPHABET[:20]  # bytes 0..19 map to the first symbols
    p12.check_password(password)


def test_generated_password_skips_biased_bytes() -> None:
    # 255 is above the largest multiple of 57 below 256 and must be rejected, not wrapped.
    stream = iter([255] * 5 + list(range(40)))

    def fake_random(n: int) -> bytes:
        return bytes(next(stream) for _ in range(n))

    assert p12.new_password(fake_random, length=12) == p12.PASSWORD_ALPHABET[:12]


def test_generated_password_opens_the_file_it_protects(ca: Authority) -> None:
    import secrets

    password = p12.new_password(secrets.token_bytes)
    data = p12.encode_truststore([ca.cert], password)
    _, _, extra = pkcs12.load_key_and_certificates(data, password.encode())
    assert extra == [ca.cert]
