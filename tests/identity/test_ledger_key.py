"""The ledger signing key: made once, private, reused; partner keys from files."""

from __future__ import annotations

from pathlib import Path

import pytest

from accord.identity.ca import PkiError
from accord.identity.ledger_key import (
    LEDGER_KEY,
    ensure_ledger_key,
    ledger_verifier,
    partner_verifier,
    read_verifier,
)
from accord.ledger.note import Signer


def test_key_is_made_once_private_and_reused(tmp_path: Path) -> None:
    assert ledger_verifier(tmp_path) is None
    first = ensure_ledger_key(tmp_path, "org-a.example")
    assert (tmp_path / LEDGER_KEY).stat().st_mode & 0o777 == 0o600
    again = ensure_ledger_key(tmp_path, "ignored")
    assert again.verifier == first.verifier == ledger_verifier(tmp_path)
    assert read_verifier(str(tmp_path / "ledger.vkey")) == first.verifier


def test_a_readable_key_is_refused(tmp_path: Path) -> None:
    ensure_ledger_key(tmp_path, "org-a.example")
    (tmp_path / LEDGER_KEY).chmod(0o644)
    with pytest.raises(PkiError, match="chmod 600"):
        ensure_ledger_key(tmp_path, "org-a.example")


def test_partner_keys_come_from_files_or_strings(tmp_path: Path) -> None:
    b = Signer.generate("org-b.example")
    assert partner_verifier(tmp_path, "org-b") is None
    (tmp_path / "partners").mkdir()
    (tmp_path / "partners" / "org-b.vkey").write_text(b.verifier.vkey() + "\n")
    assert partner_verifier(tmp_path, "org-b") == b.verifier
    assert read_verifier(b.verifier.vkey()) == b.verifier
    with pytest.raises(PkiError):
        read_verifier("no-such-file")
