"""Receipts: signed by the receiver, naming the sender's entry and leaf."""

from __future__ import annotations

import pytest

from accord.ledger.merkle import leaf_hash
from accord.ledger.note import NoteError, Signer
from accord.ledger.receipt import Receipt, open_receipt, sign_receipt


def test_receipt_round_trips() -> None:
    b = Signer.generate("org-b.example")
    receipt = Receipt("org-a.example/ledger/org-b/out", 7, leaf_hash(b"e"), 3, 1_780_000_000_123)
    assert open_receipt(sign_receipt(receipt, b), b.verifier) == receipt


def test_receipt_by_another_key_or_changed_is_refused() -> None:
    b = Signer.generate("org-b.example")
    note = sign_receipt(Receipt("o", 7, leaf_hash(b"e"), 3, 1), b)
    with pytest.raises(NoteError):
        open_receipt(note, Signer.generate("org-b.example").verifier)
    with pytest.raises(NoteError, match="invalid"):
        open_receipt(note.replace(b"\n7\n", b"\n8\n"), b.verifier)
