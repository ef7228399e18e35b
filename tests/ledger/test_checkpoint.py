"""Checkpoints as signed notes, and partner cosignatures."""

from __future__ import annotations

import base64

import pytest

from accord.ledger.checkpoint import (
    Checkpoint,
    cosign,
    decode_checkpoint,
    open_checkpoint,
    sign_checkpoint,
    verify_cosignature,
)
from accord.ledger.merkle import leaf_hash
from accord.ledger.note import NoteError, Signer, decode_note

ORIGIN = "org-a.example/ledger/org-b/out"


def test_checkpoint_body_is_the_c2sp_format() -> None:
    cp = Checkpoint(ORIGIN, 5, bytes(32))
    assert cp.body() == (ORIGIN + "\n5\n" + "A" * 43 + "=\n").encode()
    assert decode_checkpoint(cp.body()) == cp


def test_signed_checkpoint_opens_with_the_log_key_and_origin() -> None:
    log = Signer.generate("org-a.example")
    cp = Checkpoint(ORIGIN, 12, leaf_hash(b"x"))
    assert open_checkpoint(sign_checkpoint(cp, log), log.verifier, ORIGIN) == cp


def test_forged_checkpoint_signature_is_refused() -> None:
    log = Signer.generate("org-a.example")
    note = sign_checkpoint(Checkpoint(ORIGIN, 12, leaf_hash(b"x")), log)
    forged = note.replace(b"\n12\n", b"\n13\n")
    with pytest.raises(NoteError, match="invalid"):
        open_checkpoint(forged, log.verifier, ORIGIN)
    other = Signer.generate("org-a.example")
    with pytest.raises(NoteError, match="not signed by"):
        open_checkpoint(
            sign_checkpoint(Checkpoint(ORIGIN, 12, bytes(32)), other), log.verifier, ORIGIN
        )


def test_wrong_origin_is_refused() -> None:
    log = Signer.generate("org-a.example")
    note = sign_checkpoint(Checkpoint("org-a.example/ledger/org-c/out", 1, bytes(32)), log)
    with pytest.raises(NoteError, match="origin"):
        open_checkpoint(note, log.verifier, ORIGIN)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"o\n1\n",
        b"o\n-1\nAAAA\n",
        b"o\n01\n" + b"A" * 43 + b"=\n",
        b"o\n1\nAAAA\n",
        b"\n1\nx\n",
    ],
)
def test_malformed_checkpoints_are_refused(body: bytes) -> None:
    with pytest.raises(NoteError):
        decode_checkpoint(body)


def test_cosignature_verifies_and_carries_its_time() -> None:
    log, partner = Signer.generate("org-a.example"), Signer.generate("org-b.example")
    note = sign_checkpoint(Checkpoint(ORIGIN, 3, leaf_hash(b"y")), log)
    line = cosign(note, partner, 1_780_000_000)
    assert verify_cosignature(note, line, partner.verifier) == 1_780_000_000
    # A cosigned note is still a valid note for the log key.
    cosigned = note + line.encode()
    assert open_checkpoint(cosigned, log.verifier, ORIGIN).size == 3
    assert len(decode_note(cosigned)[1]) == 2


def test_cosignature_over_another_checkpoint_or_by_another_key_fails() -> None:
    log, partner = Signer.generate("org-a.example"), Signer.generate("org-b.example")
    note = sign_checkpoint(Checkpoint(ORIGIN, 3, leaf_hash(b"y")), log)
    other = sign_checkpoint(Checkpoint(ORIGIN, 3, leaf_hash(b"z")), log)
    line = cosign(note, partner, 10)
    with pytest.raises(NoteError, match="invalid"):
        verify_cosignature(other, line, partner.verifier)
    with pytest.raises(NoteError, match="not partner key"):
        verify_cosignature(note, line, Signer.generate("org-c.example").verifier)
    with pytest.raises(NoteError, match="not partner key"):
        verify_cosignature(note, line, Signer.generate("org-b.example").verifier)


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"o\n1\n\xff\n", "not UTF-8"),
        (b"o\n1\nnot base64!\n", "root hash is not base64"),
    ],
)
def test_a_checkpoint_names_what_is_wrong(body: bytes, why: str) -> None:
    with pytest.raises(NoteError, match=why):
        decode_checkpoint(body)


def test_a_cosignature_of_the_wrong_length_is_refused() -> None:
    log, partner = Signer.generate("org-a.example"), Signer.generate("org-b.example")
    note = sign_checkpoint(Checkpoint(ORIGIN, 3, leaf_hash(b"y")), log)
    line = cosign(note, partner, 10)
    dash, name, raw = line.rstrip("\n").split(" ")
    cut = base64.b64encode(base64.b64decode(raw)[:-1]).decode()
    with pytest.raises(NoteError, match="has the wrong length"):
        verify_cosignature(note, f"{dash} {name} {cut}\n", partner.verifier)
