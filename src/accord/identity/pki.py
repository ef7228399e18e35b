"""CA operations as the operator sees them: init, server and client certificates, revocation.

Every certificate issued is recorded (:mod:`accord.identity.registry`) so it can be listed and
revoked by name; the CRL is kept current so that TLS can enforce it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from accord.identity import registry, users
from accord.identity.ca import (
    Authority,
    PkiError,
    PkiPaths,
    cert_pem,
    create_authority,
    issue,
    key_pem,
    load_authority,
    write_private,
    write_public,
)
from accord.identity.p12 import DEFAULT_PASSWORD, encode_client_bundle


def check_name(name: str) -> None:
    """A certificate name is a user name: it becomes a CN and file names (no path characters)."""
    try:
        users.check_name(name)
    except users.UserError as exc:
        raise PkiError(f"{name!r} cannot be a certificate name: {exc}") from None


def init_ca(root: Path, now: dt.datetime, cn: str = "Accord CA") -> PkiPaths:
    """Create a new root CA; refuse to overwrite one (its clients would all be orphaned)."""
    paths = PkiPaths(root)
    if paths.ca_cert.exists() or paths.ca_key.exists():
        raise PkiError(
            f"a CA already exists in {root}; keep it, or move the directory away to start over "
            "(every certificate it issued would stop working)"
        )
    root.mkdir(parents=True, exist_ok=True)
    ca = create_authority(cn, now)
    write_private(paths.ca_key, key_pem(ca.key))
    write_public(paths.ca_cert, cert_pem(ca.cert))
    registry.ensure_crl(paths, now)
    return paths


def issue_server(paths: PkiPaths, hostnames: tuple[str, ...], now: dt.datetime) -> None:
    """(Re)issue the server certificate for the names and addresses clients will dial."""
    if not hostnames:
        raise PkiError("name at least one host name or IP address for the server certificate")
    ca = load_authority(paths)
    cert, key = issue(ca, hostnames[0], now, server=True, hostnames=hostnames)
    write_private(paths.server_key, key_pem(key))
    write_public(paths.server_cert, cert_pem(cert))
    registry.record(paths, hostnames[0], "server", cert)


def ensure_federation_certificate(
    paths: PkiPaths, hostnames: tuple[str, ...], now: dt.datetime
) -> None:
    """Keep ``federation.pem``/``.key``: the server's identity on partner links, which it
    presents as TLS server and as TLS client (it dials partners too). Issued once."""
    if paths.federation_cert.exists() and paths.federation_key.exists():
        return
    ca = load_authority(paths)
    cert, key = issue(ca, hostnames[0], now, server=True, hostnames=hostnames, client_too=True)
    write_private(paths.federation_key, key_pem(key))
    write_public(paths.federation_cert, cert_pem(cert))
    registry.record(paths, hostnames[0], "server", cert)


def ensure_pki(root: Path, hostnames: tuple[str, ...], now: dt.datetime) -> PkiPaths:
    """First start: make the CA and server certificate; later: check they load, renew the CRL."""
    paths = PkiPaths(root)
    if not paths.ca_cert.exists():
        init_ca(root, now)
    else:
        load_authority(paths)
    if not paths.server_cert.exists() or not paths.server_key.exists():
        issue_server(paths, hostnames, now)
    registry.ensure_crl(paths, now)
    return paths


@dataclass(frozen=True, slots=True)
class ClientFiles:
    cert: Path
    key: Path
    p12: Path
    password: str


def issue_client_bundle(
    paths: PkiPaths, name: str, now: dt.datetime, *, password: str, ou: str | None = None
) -> bytes:
    """Issue a client certificate and return only its password-protected PKCS#12 (key,
    certificate, CA). Nothing of the key is written on the server: it leaves in the bundle."""
    ca, cert, key = _issue_recorded(paths, name, now, ou)
    return encode_client_bundle(key, cert, [ca.cert], password)


def _issue_recorded(
    paths: PkiPaths, name: str, now: dt.datetime, ou: str | None
) -> tuple[Authority, x509.Certificate, rsa.RSAPrivateKey]:
    check_name(name)
    ca = load_authority(paths)
    cert, key = issue(ca, name, now, server=False, ou=ou)
    registry.record(paths, name, "client", cert)
    return ca, cert, key


def issue_client(
    paths: PkiPaths,
    name: str,
    out_dir: Path,
    now: dt.datetime,
    *,
    ou: str | None = None,
    password: str = DEFAULT_PASSWORD,
) -> ClientFiles:
    """Issue a client certificate: ``NAME.pem``, ``NAME.key`` and a password-protected
    ``NAME.p12`` (key, certificate and CA, in the format ATAK, WinTAK and iTAK import)."""
    ca, cert, key = _issue_recorded(paths, name, now, ou)
    out_dir.mkdir(parents=True, exist_ok=True)
    base = out_dir / name
    files = ClientFiles(
        base.with_suffix(".pem"), base.with_suffix(".key"), base.with_suffix(".p12"), password
    )
    write_private(files.key, key_pem(key))
    write_public(files.cert, cert_pem(cert))
    write_private(files.p12, encode_client_bundle(key, cert, [ca.cert], password))
    return files


# Reissue the local admin certificate when it has less than this left (it is free to remake).
ADMIN_RENEW_BEFORE = dt.timedelta(days=30)


def ensure_admin_certificate(
    paths: PkiPaths, admins: tuple[str, ...], now: dt.datetime, revoked: frozenset[str]
) -> bool:
    """Keep ``admin.pem``/``admin.key`` (mode 0600) in the PKI directory: a client certificate
    for the first of ``admins``, with which ``accord status`` on this host calls the admin API.
    It is (re)issued when missing, revoked, about to expire, or for a name no longer listed;
    True when a new one was written. Nothing is issued when ``admins`` is empty."""
    if not admins:
        return False
    try:
        cert = x509.load_pem_x509_certificate(paths.admin_cert.read_bytes())
        paths.admin_key.stat()
    except (OSError, ValueError):
        cert = None
    if cert is not None:
        names = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        cn = str(names[0].value) if names else ""
        if (
            cn in admins
            and registry.serial_hex(cert) not in revoked
            and cert.not_valid_after_utc - now > ADMIN_RENEW_BEFORE
        ):
            return False
    _, cert, key = _issue_recorded(paths, admins[0], now, None)
    write_private(paths.admin_key, key_pem(key))
    write_private(paths.admin_cert, cert_pem(cert))
    return True
