"""Accord's own certificate authority: made on first start, kept, and reused.

RSA-2048 and SHA-256 throughout: that is what ATAK, WinTAK and iTAK trust stores and the
official TAK Server's scripts use, so every stock client accepts these certificates.
"""

from __future__ import annotations

import datetime as dt
import functools
import ipaddress
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificatePublicKeyTypes,
    PrivateKeyTypes,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

KEY_BITS = 2048
CA_DAYS = 3650
LEAF_DAYS = 825  # the longest leaf lifetime Apple platforms (iTAK) accept


class PkiError(Exception):
    """A certificate or key file is missing, unreadable or does not match."""


@dataclass(frozen=True, slots=True)
class PkiPaths:
    """Where the CA and the server's own certificate live under the data directory."""

    root: Path

    @property
    def ca_cert(self) -> Path:
        return self.root / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.root / "ca.key"

    @property
    def server_cert(self) -> Path:
        return self.root / "server.pem"

    @property
    def server_key(self) -> Path:
        return self.root / "server.key"

    @property
    def federation_cert(self) -> Path:
        """The server certificate partner links use both ways (server and client auth)."""
        return self.root / "federation.pem"

    @property
    def federation_key(self) -> Path:
        return self.root / "federation.key"

    @property
    def admin_cert(self) -> Path:
        """The client certificate the server issues for ``accord status`` (admin API)."""
        return self.root / "admin.pem"

    @property
    def admin_key(self) -> Path:
        return self.root / "admin.key"


@dataclass(frozen=True, slots=True)
class Authority:
    cert: x509.Certificate
    key: rsa.RSAPrivateKey


def _name(cn: str, ou: str | None = None, org: str = "Accord") -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)]
    if ou:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)


def create_authority(cn: str, now: dt.datetime) -> Authority:
    key = _new_key()
    name = _name(cn)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Authority(cert, key)


def issue(
    ca: Authority,
    cn: str,
    now: dt.datetime,
    *,
    server: bool,
    ou: str | None = None,
    hostnames: tuple[str, ...] = (),
    client_too: bool = False,
) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    """Make a key and issue a server or client certificate for it; ``ou`` carries a group;
    ``client_too``: a server certificate that may also authenticate as a client (federation:
    one server dials the other with it)."""
    key = _new_key()
    cert = issue_for_key(
        ca,
        cn,
        key.public_key(),
        now,
        server=server,
        ou=ou,
        hostnames=hostnames,
        client_too=client_too,
    )
    return cert, key


def issue_for_key(
    ca: Authority,
    cn: str,
    public_key: CertificatePublicKeyTypes,
    now: dt.datetime,
    *,
    server: bool,
    ou: str | None = None,
    hostnames: tuple[str, ...] = (),
    client_too: bool = False,
) -> x509.Certificate:
    """Issue a certificate for a key someone else holds (enrollment: the device keeps it)."""
    usages = [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
    if server and client_too:
        usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn, ou))
        .issuer_name(ca.cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=LEAF_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(usages),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
    )
    if server:
        sans: list[x509.GeneralName] = []
        for host in hostnames:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                sans.append(x509.DNSName(host))
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(ca.key, hashes.SHA256())


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def write_private(path: Path, data: bytes) -> None:
    """Write a key readable by its owner only, atomically (never half-written)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def write_public(path: Path, data: bytes) -> None:
    """Write a world-readable file atomically, through a temporary file of its own (two
    writers of the same file never share one)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_key_private(path: Path) -> None:
    """Refuse a CA key that others can read: whoever reads it can mint any identity."""
    try:
        mode = path.stat().st_mode & 0o777
    except OSError:
        return  # reading it will report the problem
    if mode & 0o077:
        raise PkiError(
            f"{path} can be read by other users (mode {mode:04o}); "
            f"run `chmod 600 {path}` and consider the CA compromised if they did"
        )


@functools.lru_cache(maxsize=8)
def _private_key(pem: bytes) -> PrivateKeyTypes:
    """The key in ``pem``, parsed and checked once per process for the same bytes: the CA key
    is read at every start, every certificate issued and every CRL written, and the RSA
    consistency check is most of the cost (~0.05-0.1 s for 2048 bits). Other bytes (a key
    replaced or damaged) are parsed and checked anew; a failure is not remembered."""
    return serialization.load_pem_private_key(pem, password=None)


def load_authority(paths: PkiPaths) -> Authority:
    check_key_private(paths.ca_key)
    try:
        cert = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
        key = _private_key(paths.ca_key.read_bytes())
    except (OSError, ValueError, TypeError) as exc:
        raise PkiError(
            f"cannot read the CA in {paths.root} ({exc}); restore ca.pem/ca.key "
            "or move the directory away to create a new CA"
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise PkiError(f"{paths.ca_key} is not an RSA key")
    return Authority(cert, key)
