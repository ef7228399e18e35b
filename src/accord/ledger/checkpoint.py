"""Checkpoints (C2SP ``tlog-checkpoint.md``) and cosignatures (``tlog-cosignature.md``).

Body: ``<origin>\\n<tree size>\\n<base64 root hash>\\n``, signed as a note by the log's key.
A partner cosigns the same body: Ed25519 over ``cosignature/v1\\ntime <unix s>\\n<body>``,
written as a signature line whose payload is key ID (type 0x04) || 8-byte time || signature.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from accord.ledger.merkle import HASH_SIZE
from accord.ledger.note import (
    ALG_COSIGNATURE_V1,
    NoteError,
    Signature,
    Signer,
    Verifier,
    decode_note,
    decode_signature_line,
    key_id,
    open_note,
    sign_note,
)

_SIZE = re.compile(r"^(0|[1-9][0-9]{0,19})$")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes

    def body(self) -> bytes:
        root = base64.b64encode(self.root).decode()
        return f"{self.origin}\n{self.size}\n{root}\n".encode()


def decode_checkpoint(body: bytes) -> Checkpoint:
    try:
        lines = body.decode().split("\n")
    except UnicodeDecodeError:
        raise NoteError("checkpoint is not UTF-8") from None
    if len(lines) < 4 or lines[-1] != "" or not lines[0] or not _SIZE.match(lines[1]):
        raise NoteError("not a checkpoint (origin, size, root hash lines)")
    try:
        root = base64.b64decode(lines[2], validate=True)
    except binascii.Error:
        raise NoteError("checkpoint root hash is not base64") from None
    if len(root) != HASH_SIZE:
        raise NoteError(f"checkpoint root hash is {len(root)} bytes, not {HASH_SIZE}")
    return Checkpoint(lines[0], int(lines[1]), root)


def sign_checkpoint(checkpoint: Checkpoint, signer: Signer) -> bytes:
    return sign_note(checkpoint.body(), signer)


def open_checkpoint(note: bytes, verifier: Verifier, origin: str) -> Checkpoint:
    """The checkpoint in ``note``, if signed by ``verifier`` for log ``origin``."""
    checkpoint = decode_checkpoint(open_note(note, verifier))
    if checkpoint.origin != origin:
        raise NoteError(f"origin is {checkpoint.origin!r}, not {origin!r}")
    return checkpoint


def _cosigned_message(body: bytes, time_s: int) -> bytes:
    return f"cosignature/v1\ntime {time_s}\n".encode() + body


def cosign(note: bytes, signer: Signer, time_s: int) -> str:
    """The cosignature line ``signer`` adds to the checkpoint in ``note`` (not re-verified:
    check the log's signature and a consistency proof before cosigning)."""
    body, _ = decode_note(note)
    sig = signer.sign(_cosigned_message(body, time_s))
    kid = key_id(signer.name, signer.verifier.public, ALG_COSIGNATURE_V1)
    return Signature(signer.name, kid, time_s.to_bytes(8, "big") + sig).line()


def verify_cosignature(note: bytes, line: str, verifier: Verifier) -> int:
    """The time of ``verifier``'s cosignature ``line`` over the checkpoint in ``note``."""
    body, _ = decode_note(note)
    sig = decode_signature_line(line)
    if sig.name != verifier.name or sig.key_id != key_id(
        verifier.name, verifier.public, ALG_COSIGNATURE_V1
    ):
        raise NoteError(f"cosignature is by {sig.name!r}, not partner key {verifier.name!r}")
    if len(sig.signature) != 8 + 64:
        raise NoteError(f"cosignature by {sig.name!r} has the wrong length")
    time_s = int.from_bytes(sig.signature[:8], "big")
    if not verifier.check(_cosigned_message(body, time_s), sig.signature[8:]):
        raise NoteError(f"cosignature by {sig.name!r} is invalid")
    return time_s
