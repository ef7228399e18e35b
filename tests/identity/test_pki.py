"""The admin certificate the server keeps for `accord status`."""

from __future__ import annotations

import datetime as dt
import stat
from pathlib import Path

from cryptography import x509

from accord.identity import registry
from accord.identity.pki import ensure_admin_certificate, ensure_pki

NOW = dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.UTC)


def common_name(path: Path) -> str:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    return str(cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value)


def test_admin_certificate_is_issued_once_private_and_recorded(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path / "pki", ("localhost",), NOW)
    assert ensure_admin_certificate(pki, ("admin",), NOW, frozenset())
    first = pki.admin_cert.read_bytes()
    assert common_name(pki.admin_cert) == "admin"
    for path in (pki.admin_cert, pki.admin_key):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not ensure_admin_certificate(pki, ("admin",), NOW, frozenset())
    assert pki.admin_cert.read_bytes() == first
    assert [row.name for row in registry.load_index(pki) if row.kind == "client"] == ["admin"]


def test_admin_certificate_is_reissued_when_revoked_renamed_or_expiring(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path / "pki", ("localhost",), NOW)
    ensure_admin_certificate(pki, ("admin",), NOW, frozenset())
    registry.revoke(pki, "admin", NOW)
    assert ensure_admin_certificate(pki, ("admin",), NOW, registry.revoked_serials(pki))
    assert not ensure_admin_certificate(pki, ("ops", "admin"), NOW, frozenset())  # still listed
    assert ensure_admin_certificate(pki, ("ops",), NOW, frozenset())  # admin is no longer
    assert common_name(pki.admin_cert) == "ops"
    assert not ensure_admin_certificate(pki, ("admin", "ops"), NOW, frozenset())
    in_two_years = NOW + dt.timedelta(days=800)
    assert ensure_admin_certificate(pki, ("admin", "ops"), in_two_years, frozenset())
    assert common_name(pki.admin_cert) == "admin"


def test_no_admin_users_means_no_admin_certificate(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path / "pki", ("localhost",), NOW)
    assert not ensure_admin_certificate(pki, (), NOW, frozenset())
    assert not pki.admin_cert.exists()
