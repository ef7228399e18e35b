"""What the CA has issued and revoked: an index of certificates and the CRL every listener uses.

The index (``issued.json``) lets an operator list and revoke certificates by name; the CRL
(``crl.pem``) is what TLS enforces. A CRL that has passed its ``nextUpdate`` makes OpenSSL
refuse *every* client, so it is re-signed well before that (:func:`ensure_crl`).

The server's event loop (certificate admin), its enrollment worker threads and other
processes (``accord cert revoke``) all change the index: every read-modify-write of it, and
the CRL signed from it, happens under an exclusive ``flock`` on ``issued.json.lock``, so a
revocation is never lost to a concurrent record (and never undone at the next CRL).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
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


def lock_path(paths: PkiPaths) -> Path:
    return paths.root / "issued.json.lock"


@contextmanager
def _locked(paths: PkiPaths) -> Iterator[None]:
    """Hold the index's exclusive lock (threads and processes alike). Not re-entrant."""
    try:
        fd = os.open(lock_path(paths), os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise PkiError(f"cannot lock {lock_path(paths)}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


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
    with _locked(paths):
        _save_index(paths, [*load_index(paths), row])
    return row


def revoke(paths: PkiPaths, name: str, now: dt.datetime) -> list[Issued]:
    """Revoke every valid certificate issued to ``name``; re-sign the CRL; return them."""
    with _locked(paths):
        return _revoke_name(paths, name, now)


def _revoke_name(paths: PkiPaths, name: str, now: dt.datetime) -> list[Issued]:
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
    done = revoke_serials(paths, [serial], now)[0]
    if isinstance(done, PkiError):
        raise done
    return done


def revoke_serials(
    paths: PkiPaths, serials: Iterable[str], now: dt.datetime
) -> list[Issued | PkiError]:
    """Revoke each certificate of ``serials`` under one lock, one index write and one CRL;
    for each serial, in order, the revoked row or the error that says why it was not."""
    with _locked(paths):
        rows = load_index(paths)
        stamp = now.isoformat()
        results: list[Issued | PkiError] = []
        changed = False
        for serial in serials:
            try:
                wanted = int(serial, 16)
            except ValueError:
                results.append(PkiError(f"{serial!r} is not a hexadecimal serial"))
                continue
            at = next((i for i, r in enumerate(rows) if int(r.serial, 16) == wanted), None)
            if at is None:
                results.append(PkiError(f"no certificate with serial {serial} was issued here"))
                continue
            hit = rows[at]
            if hit.revoked:
                results.append(
                    PkiError(f"the certificate with serial {hit.serial} is already revoked")
                )
                continue
            rows[at] = replace(hit, revoked_at=stamp)
            results.append(rows[at])
            changed = True
        if changed:
            _save_index(paths, rows)
            write_crl(paths, load_authority(paths), rows, now)
        return results


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
    with _locked(paths):  # signed from the index as it is, not as it was before a revoke
        write_crl(paths, load_authority(paths), load_index(paths), now)
    return True


def update_index(
    paths: PkiPaths,
    change: Callable[[list[dict[str, str]]], list[dict[str, str]] | None],
    now: dt.datetime,
) -> bool:
    """Rewrite the index as ``change`` says (it gets the rows as they are, under the lock, and
    returns the new rows or None for no change); the CRL is re-signed when the revocations
    changed. A cluster's nodes share their certificates this way. True when written."""
    with _locked(paths):
        rows = load_index(paths)
        new = change([asdict(r) for r in rows])
        if new is None:
            return False
        try:
            fresh = [Issued(**row) for row in new]
        except TypeError as exc:
            raise PkiError(f"a shared certificate row is not an index row ({exc})") from None
        _save_index(paths, fresh)
        before = {int(r.serial, 16) for r in rows if r.revoked}
        if {int(r.serial, 16) for r in fresh if r.revoked} != before:
            write_crl(paths, load_authority(paths), fresh, now)
        return True


def revoked_serials(paths: PkiPaths) -> frozenset[str]:
    return frozenset(r.serial for r in load_index(paths) if r.revoked)
