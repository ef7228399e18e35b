"""Receipts: signed by the receiver, naming the sender's entry and leaf."""

from __future__ import annotations

import base64

import pytest

from accord.ledger.merkle import leaf_hash
from accord.ledger.note import NoteError, Signer, sign_note
from accord.ledger.receipt import (
    BATCH_ITEMS,
    Receipt,
    open_receipt,
    open_receipts,
    sign_receipt,
    sign_receipts,
)

B = Signer.generate("org-b.example")
LEAF = base64.b64encode(leaf_hash(b"e")).decode()
SHORT = base64.b64encode(b"short").decode()


def test_receipt_round_trips() -> None:
    receipt = Receipt("org-a.example/ledger/org-b/out", 7, leaf_hash(b"e"), 3, 1_780_000_000_123)
    assert open_receipt(sign_receipt(receipt, B), B.verifier) == receipt
    assert open_receipts(sign_receipt(receipt, B), B.verifier) == [receipt]


def test_receipt_by_another_key_or_changed_is_refused() -> None:
    note = sign_receipt(Receipt("o", 7, leaf_hash(b"e"), 3, 1), B)
    with pytest.raises(NoteError):
        open_receipt(note, Signer.generate("org-b.example").verifier)
    with pytest.raises(NoteError, match="invalid"):
        open_receipt(note.replace(b"\n7\n", b"\n8\n"), B.verifier)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("accord-checkpoint\no\n1\n", "not an accord-receipt/v1 receipt"),
        (f"accord-receipt/v1\no\nseven\n{LEAF}\n3\n1\n", "fields are malformed"),
        ("accord-receipt/v1\no\n7\nnot base64!\n3\n1\n", "fields are malformed"),
        (f"accord-receipt/v1\no\n7\n{SHORT}\n3\n1\n", "out of range"),
        (f"accord-receipt/v1\no\n-1\n{LEAF}\n3\n1\n", "out of range"),
    ],
)
def test_a_signed_receipt_of_the_wrong_shape_is_refused(text: str, message: str) -> None:
    with pytest.raises(NoteError, match=message):
        open_receipt(sign_note(text.encode(), B), B.verifier)


def test_a_batch_round_trips_in_order() -> None:
    receipts = [Receipt("o", i, leaf_hash(bytes([i])), 10 + i, 5) for i in range(3)]
    assert open_receipts(sign_receipts(receipts, B), B.verifier) == receipts


def test_a_batch_holds_one_origin_and_time_and_a_bounded_count() -> None:
    one = Receipt("o", 1, leaf_hash(b"e"), 1, 5)
    with pytest.raises(ValueError, match="1 to"):
        sign_receipts([], B)
    with pytest.raises(ValueError, match="1 to"):
        sign_receipts([one] * (BATCH_ITEMS + 1), B)
    with pytest.raises(ValueError, match="share their origin and time"):
        sign_receipts([one, Receipt("o", 2, leaf_hash(b"e"), 2, 6)], B)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("accord-receipts/v1\no\n5\n", "not an accord-receipt/v1 receipt or"),
        (f"accord-receipts/v1\no\nfive\n1 {LEAF} 2\n", "fields are malformed"),
        (f"accord-receipts/v1\no\n5\n1 {LEAF}\n", "fields are malformed"),
        (f"accord-receipts/v1\no\n5\n1 {SHORT} 2\n", "out of range"),
        (f"accord-receipts/v1\no\n5\n1 {LEAF} -2\n", "out of range"),
    ],
)
def test_a_signed_batch_of_the_wrong_shape_is_refused(text: str, message: str) -> None:
    with pytest.raises(NoteError, match=message):
        open_receipts(sign_note(text.encode(), B), B.verifier)
