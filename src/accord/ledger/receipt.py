"""The receipt a receiver returns for each item: "your entry N, leaf L, is my mirror entry M".

A receipt is a signed note by the receiver's key whose text is ``accord-receipt/v1``, the
sender's log origin, the index, the base64 leaf hash, the mirror index and the time in ms, one
per line.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass

from accord.ledger.merkle import HASH_SIZE
from accord.ledger.note import NoteError, Signer, Verifier, open_note, sign_note

RECEIPT_HEADER = "accord-receipt/v1"


@dataclass(frozen=True, slots=True)
class Receipt:
    origin: str  # the sender's log
    index: int  # the sender's entry
    leaf: bytes  # the sender's leaf hash, as received
    mirror_index: int  # the receiver's mirror entry
    time_ms: int

    def text(self) -> bytes:
        leaf = base64.b64encode(self.leaf).decode()
        return (
            f"{RECEIPT_HEADER}\n{self.origin}\n{self.index}\n{leaf}\n"
            f"{self.mirror_index}\n{self.time_ms}\n"
        ).encode()


def sign_receipt(receipt: Receipt, signer: Signer) -> bytes:
    return sign_note(receipt.text(), signer)


def open_receipt(note: bytes, verifier: Verifier) -> Receipt:
    """The receipt in ``note`` if ``verifier`` signed it; :class:`NoteError` otherwise."""
    text = open_note(note, verifier)
    lines = text.decode(errors="replace").split("\n")
    if len(lines) != 7 or lines[0] != RECEIPT_HEADER:
        raise NoteError(f"not an {RECEIPT_HEADER} receipt")
    try:
        receipt = Receipt(
            lines[1],
            int(lines[2]),
            base64.b64decode(lines[3], validate=True),
            int(lines[4]),
            int(lines[5]),
        )
    except (ValueError, binascii.Error):
        raise NoteError("receipt fields are malformed") from None
    if len(receipt.leaf) != HASH_SIZE or receipt.index < 0 or receipt.mirror_index < 0:
        raise NoteError("receipt fields are out of range")
    return receipt


# Receipts for many items under one signature: a receiver would otherwise sign (and the sender
# verify, ~0.1 ms each) one note per released item, thousands a second on a busy link.
BATCH_HEADER = "accord-receipts/v1"
BATCH_ITEMS = 5000  # per note, at most (a note is at most 1 MiB)


def sign_receipts(receipts: Sequence[Receipt], signer: Signer) -> bytes:
    """One note receipting several items of one sender log: ``accord-receipts/v1``, the
    sender's origin, the time in ms, then one ``index leaf mirror_index`` line per item."""
    if not receipts or len(receipts) > BATCH_ITEMS:
        raise ValueError(f"a receipt note holds 1 to {BATCH_ITEMS} items")
    origin, time_ms = receipts[0].origin, receipts[0].time_ms
    if any(r.origin != origin or r.time_ms != time_ms for r in receipts):
        raise ValueError("the receipts of one note share their origin and time")
    lines = "".join(
        f"{r.index} {base64.b64encode(r.leaf).decode()} {r.mirror_index}\n" for r in receipts
    )
    return sign_note(f"{BATCH_HEADER}\n{origin}\n{time_ms}\n{lines}".encode(), signer)


def open_receipts(note: bytes, verifier: Verifier) -> list[Receipt]:
    """The receipts in ``note`` (one ``accord-receipt/v1`` or a batch) if ``verifier`` signed
    it; :class:`NoteError` otherwise."""
    text = open_note(note, verifier).decode(errors="replace")
    if text.startswith(RECEIPT_HEADER + "\n"):
        return [open_receipt(note, verifier)]
    lines = text.split("\n")
    if len(lines) < 5 or lines[0] != BATCH_HEADER or lines[-1] != "":
        raise NoteError(f"not an {RECEIPT_HEADER} receipt or {BATCH_HEADER} batch")
    origin = lines[1]
    out: list[Receipt] = []
    try:
        time_ms = int(lines[2])
        for line in lines[3:-1]:
            index, leaf, mirror = line.split(" ")
            out.append(
                Receipt(
                    origin, int(index), base64.b64decode(leaf, validate=True), int(mirror), time_ms
                )
            )
    except (ValueError, binascii.Error):
        raise NoteError("receipt fields are malformed") from None
    for receipt in out:
        if len(receipt.leaf) != HASH_SIZE or receipt.index < 0 or receipt.mirror_index < 0:
            raise NoteError("receipt fields are out of range")
    return out
