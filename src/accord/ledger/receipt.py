"""The receipt a receiver returns for each item: "your entry N, leaf L, is my mirror entry M".

A receipt is a signed note by the receiver's key whose text is ``accord-receipt/v1``, the
sender's log origin, the index, the base64 leaf hash, the mirror index and the time in ms, one
per line.
"""

from __future__ import annotations

import base64
import binascii
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
