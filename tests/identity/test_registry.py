"""The index of issued certificates and the CRL built from it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509

from accord.identity import registry
from accord.identity.ca import PkiError
from accord.identity.pki import ensure_pki, issue_client

NOW = dt.datetime(2026, 11, 29, tzinfo=dt.UTC)


def crl_serials(path: Path) -> set[int]:
    crl = x509.load_pem_x509_crl(path.read_bytes())
    return {entry.serial_number for entry in crl}


def test_revoking_a_name_puts_its_serials_in_a_signed_crl(tmp_path: Path) -> None:
    paths = ensure_pki(tmp_path / "pki", ("localhost",), NOW)
    first = issue_client(paths, "alice", tmp_path / "a", NOW)
    second = issue_client(paths, "alice", tmp_path / "b", NOW)
    bob = issue_client(paths, "bob", tmp_path / "c", NOW)
    assert crl_serials(registry.crl_path(paths)) == set()

    revoked = registry.revoke(paths, "alice", NOW)
    serials = {
        x509.load_pem_x509_certificate(f.cert.read_bytes()).serial_number for f in (first, second)
    }
    assert {int(r.serial, 16) for r in revoked} == serials
    assert crl_serials(registry.crl_path(paths)) == serials
    ca = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
    crl = x509.load_pem_x509_crl(registry.crl_path(paths).read_bytes())
    assert crl.is_signature_valid(ca.public_key())  # type: ignore[arg-type]
    bob_serial = x509.load_pem_x509_certificate(bob.cert.read_bytes()).serial_number
    assert f"{bob_serial:X}" not in registry.revoked_serials(paths)


def test_crl_is_renewed_before_it_expires_and_not_before(tmp_path: Path) -> None:
    paths = ensure_pki(tmp_path / "pki", ("localhost",), NOW)
    assert registry.ensure_crl(paths, NOW + dt.timedelta(days=1)) is False
    later = NOW + dt.timedelta(days=registry.CRL_DAYS - registry.CRL_RENEW_DAYS + 1)
    assert registry.ensure_crl(paths, later) is True
    crl = x509.load_pem_x509_crl(registry.crl_path(paths).read_bytes())
    assert crl.next_update_utc is not None
    assert crl.next_update_utc > later + dt.timedelta(days=registry.CRL_RENEW_DAYS)


def test_revoking_unknown_or_revoked_names_says_so(tmp_path: Path) -> None:
    paths = ensure_pki(tmp_path / "pki", ("localhost",), NOW)
    with pytest.raises(PkiError, match="no certificate was issued"):
        registry.revoke(paths, "ghost", NOW)
    issue_client(paths, "alice", tmp_path / "a", NOW)
    registry.revoke(paths, "alice", NOW)
    with pytest.raises(PkiError, match="already revoked"):
        registry.revoke(paths, "alice", NOW)


def test_a_damaged_index_is_reported(tmp_path: Path) -> None:
    paths = ensure_pki(tmp_path / "pki", ("localhost",), NOW)
    registry.index_path(paths).write_text("{not json")
    with pytest.raises(PkiError, match=r"issued\.json"):
        registry.load_index(paths)


def test_revoking_one_serial_leaves_the_names_other_certificates_valid(tmp_path: Path) -> None:
    paths = ensure_pki(tmp_path / "pki", ("localhost",), NOW)
    old = issue_client(paths, "alice", tmp_path / "a", NOW)
    new = issue_client(paths, "alice", tmp_path / "b", NOW)
    old_cert = x509.load_pem_x509_certificate(old.cert.read_bytes())
    rows = [r for r in registry.load_index(paths) if r.name == "alice"]
    assert [r.pem.encode() for r in rows] == [old.cert.read_bytes(), new.cert.read_bytes()]

    done = registry.revoke_serial(paths, f"{old_cert.serial_number:032x}", NOW)  # padded, lower
    assert done.revoked
    assert crl_serials(registry.crl_path(paths)) == {old_cert.serial_number}
    assert registry.revoked_serials(paths) == {done.serial}
    with pytest.raises(PkiError, match="already revoked"):
        registry.revoke_serial(paths, done.serial, NOW)
    with pytest.raises(PkiError, match="no certificate with serial"):
        registry.revoke_serial(paths, "ABC", NOW)


def _certs(paths: registry.PkiPaths, count: int) -> list[x509.Certificate]:
    from accord.identity.ca import issue_for_key, load_authority

    ca = load_authority(paths)
    key = ca.key.public_key()  # any key will do: the index only keeps the certificate
    return [issue_for_key(ca, f"u{i}", key, NOW, server=False) for i in range(count)]


def test_concurrent_records_and_revokes_from_threads_lose_nothing(tmp_path: Path) -> None:
    import threading

    paths = ensure_pki(tmp_path / "pki", ("localhost",), NOW)
    victims = _certs(paths, 12)
    for cert in victims:
        registry.record(paths, "victim", "client", cert)
    fresh = _certs(paths, 36)
    errors: list[BaseException] = []

    def run(work: list[x509.Certificate], revoke: bool) -> None:
        try:
            for cert in work:
                if revoke:
                    registry.revoke_serial(paths, registry.serial_hex(cert), NOW)
                else:
                    registry.record(paths, "fresh", "client", cert)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(victims[i::2], True)) for i in range(2)]
    threads += [threading.Thread(target=run, args=(fresh[i::3], False)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    rows = registry.load_index(paths)
    serials = {r.serial for r in rows}
    assert {registry.serial_hex(c) for c in fresh} <= serials
    assert registry.revoked_serials(paths) == {registry.serial_hex(c) for c in victims}
    assert crl_serials(registry.crl_path(paths)) == {c.serial_number for c in victims}


def test_a_revoke_in_another_process_during_records_is_kept(tmp_path: Path) -> None:
    import subprocess
    import sys

    paths = ensure_pki(tmp_path / "pki", ("localhost",), NOW)
    victims = _certs(paths, 10)
    for cert in victims:
        registry.record(paths, "victim", "client", cert)
    serials = [registry.serial_hex(c) for c in victims]
    script = (
        "import datetime as dt, sys\n"
        "from pathlib import Path\n"
        "from accord.identity import registry\n"
        "from accord.identity.ca import PkiPaths\n"
        "paths = PkiPaths(Path(sys.argv[1]))\n"
        "for serial in sys.argv[2:]:\n"
        "    registry.revoke_serial(paths, serial, dt.datetime(2026, 11, 29, tzinfo=dt.UTC))\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script, str(paths.root), *serials])
    fresh = _certs(paths, 60)
    for cert in fresh:
        registry.record(paths, "fresh", "client", cert)
    assert child.wait(timeout=60) == 0
    assert registry.revoked_serials(paths) == set(serials)
    assert {registry.serial_hex(c) for c in fresh} <= {r.serial for r in registry.load_index(paths)}


def test_revoking_many_serials_at_once_reports_each(tmp_path: Path) -> None:
    paths = ensure_pki(tmp_path / "pki", ("localhost",), NOW)
    certs = _certs(paths, 3)
    for cert in certs:
        registry.record(paths, "alice", "client", cert)
    first, second = (registry.serial_hex(c) for c in certs[:2])
    registry.revoke_serial(paths, first, NOW)
    results = registry.revoke_serials(paths, [first, second, "ABC", "zz"], NOW)
    assert isinstance(results[0], PkiError)
    assert "already revoked" in str(results[0])
    assert isinstance(results[1], registry.Issued)
    assert results[1].revoked
    assert isinstance(results[2], PkiError)
    assert "no certificate" in str(results[2])
    assert isinstance(results[3], PkiError)
    assert "hexadecimal" in str(results[3])
    assert crl_serials(registry.crl_path(paths)) == {certs[0].serial_number, certs[1].serial_number}
    assert registry.revoke_serials(paths, [], NOW) == []
