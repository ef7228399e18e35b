"""What the CA has issued and revoked: an index of certificates and the CRL every listener uses.

The index (``issued.json``) lets an operator list and revoke certificates by name; the CRL
(``crl.pem``) is what TLS enforces. A CRL that has passed its ``nextUpdate`` makes OpenSSL
refuse *every* client, so it is re-signed well before that (:func:`ensure_crl`).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from accord.identity.ca import Authority, PkiError, PkiPaths, load_authority, write_public

CRL_DAYS = 30
CRL_RENEW_DAYS = 7  # re-sign when fewer days than this are left


@dataclass(frozen=True, slots=True)
class Issued:
    """One certificate the CA signed. ``serial`` is hexadecimal (as ``getpeercert`` gives it)."""

    name: str
    kind: str  # "client" or "server"
    serial: str
    not_after: str  # ISO-8601 UTC
    revoked_at: str = ""  # ISO-8601 UTC, empty while valid
    pem: str = ""  # the certificate itself (kept since certificate admin; empty in older rows)

    @property
    def revoked(self) -> bool:
        return bool(self.revoked_at)


def serial_hex(cert: x509.Certificate) -> str:
    """Upper-case hex without leading zeros (``getpeercert()`` may pad: compare as numbers)."""
    return f"{cert.serial_number:X}"


def index_path(paths: PkiPaths) -> Path:
    return paths.root / "issued.json"


def crl_path(paths: PkiPaths) -> Path:
    return paths.root / "crl.pem"


def load_index(paths: PkiPaths) -> list[Issued]:
    path = index_path(paths)
    if not path.exists():
        return []
    try:
        rows = json.loads(path.read_text())
        return [Issued(**row) for row in rows]
    except (OSError, ValueError, TypeError) as exc:
        raise PkiError(f"cannot read {path} ({exc}); restore it from a backup") from None


def _save_index(paths: PkiPaths, rows: list[Issued]) -> None:
    data = json.dumps([asdict(r) for r in rows], indent=1).encode()
    write_public(index_path(paths), data)


def record(paths: PkiPaths, name: str, kind: str, cert: x509.Certificate) -> Issued:
    """Add a newly issued certificate to the index."""
    pem = cert.public_bytes(serialization.Encoding.PEM).decode("ascii")
    row = Issued(name, kind, serial_hex(cert), cert.not_valid_after_utc.isoformat(), pem=pem)
    _save_index(paths, [*load_index(paths), row])
    return row


def revoke(paths: PkiPaths, name: str, now: dt.datetime) -> list[Issued]:
    """Revoke every valid certificate issued to ``name``; re-sign the CRL; return them."""
    rows = load_index(paths)
    hit = [r for r in rows if r.name == name and not r.revoked]
    if not hit:
        known = [r for r in rows if r.name == name]
        if known:
            raise PkiError(f"every certificate of {name!r} is already revoked")
        raise PkiError(f"no certificate was issued to {name!r}; see `accord cert list`")
    stamp = now.isoformat()
    rows = [replace(r, revoked_at=stamp) if r in hit else r for r in rows]
    _save_index(paths, rows)
    write_crl(paths, load_authority(paths), rows, now)
    return [replace(r, revoked_at=stamp) for r in hit]


def revoke_serial(paths: PkiPaths, serial: str, now: dt.datetime) -> Issued:
    """Revoke the one certificate with ``serial`` (hex, any case or padding); re-sign the CRL."""
    rows = load_index(paths)
    wanted = int(serial, 16)
    hit = next((r for r in rows if int(r.serial, 16) == wanted), None)
    if hit is None:
        raise PkiError(f"no certificate with serial {serial} was issued here")
    if hit.revoked:
        raise PkiError(f"the certificate with serial {hit.serial} is already revoked")
    done = replace(hit, revoked_at=now.isoformat())
    rows = [done if r is hit else r for r in rows]
    _save_index(paths, rows)
    write_crl(paths, load_authority(paths), rows, now)
    return done


def write_crl(paths: PkiPaths, ca: Authority, rows: list[Issued], now: dt.datetime) -> None:
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.cert.subject)
        .last_update(now - dt.timedelta(minutes=5))
        .next_update(now + dt.timedelta(days=CRL_DAYS))
    )
    for row in rows:
        if row.revoked:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(int(row.serial, 16))
                .revocation_date(dt.datetime.fromisoformat(row.revoked_at))
                .build()
            )
    crl = builder.sign(ca.key, hashes.SHA256())
    write_public(crl_path(paths), crl.public_bytes(serialization.Encoding.PEM))


def ensure_crl(paths: PkiPaths, now: dt.datetime) -> bool:
    """Make sure a current CRL exists; return True when it was (re)written."""
    path = crl_path(paths)
    if path.exists():
        try:
            crl = x509.load_pem_x509_crl(path.read_bytes())
        except ValueError:
            crl = None
        next_update = crl.next_update_utc if crl is not None else None
        if next_update is not None and next_update - now > dt.timedelta(days=CRL_RENEW_DAYS):
            return False
    write_crl(paths, load_authority(paths), load_index(paths), now)
    return True


def revoked_serials(paths: PkiPaths) -> frozenset[str]:
    return frozenset(r.serial for r in load_index(paths) if r.revoked)
