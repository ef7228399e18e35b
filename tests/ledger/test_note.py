"""Signed notes and key strings (C2SP signed-note)."""

from __future__ import annotations

import pytest

from accord.ledger.note import (
    NoteError,
    Signer,
    add_signature,
    decode_note,
    decode_signature_line,
    decode_skey,
    decode_vkey,
    open_note,
    sign_note,
)

# The example of Go's golang.org/x/mod/sumdb/note package documentation.
PETER = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
PETER_NOTE = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
    "\n"
    "\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfq"
    "dngotpRZb6KE6RyyBwJnAM=\n"
).encode()


def test_the_go_note_example_verifies() -> None:
    text = open_note(PETER_NOTE, decode_vkey(PETER))
    assert text.startswith(b"If you think")


def test_a_changed_text_fails_its_signature() -> None:
    forged = PETER_NOTE.replace(b"don't", b"do")
    with pytest.raises(NoteError, match="invalid"):
        open_note(forged, decode_vkey(PETER))


def test_signed_note_round_trips_and_other_keys_are_ignored() -> None:
    a, b = Signer.generate("a.example/log"), Signer.generate("b.example")
    note = sign_note(b"hello\nworld\n", a)
    other = sign_note(b"hello\nworld\n", b)
    both = add_signature(note, decode_note(other)[1][0])
    assert open_note(both, a.verifier) == b"hello\nworld\n"
    assert open_note(both, b.verifier) == b"hello\nworld\n"
    with pytest.raises(NoteError, match="not signed by"):
        open_note(note, b.verifier)


def test_a_signature_by_a_same_named_other_key_is_not_accepted() -> None:
    real, impostor = Signer.generate("org-a"), Signer.generate("org-a")
    with pytest.raises(NoteError, match="not signed by"):
        open_note(sign_note(b"x\n", impostor), real.verifier)


def test_key_strings_round_trip() -> None:
    signer = Signer.generate("org-a.example/ledger")
    assert decode_skey(signer.skey()).verifier == signer.verifier
    assert decode_vkey(signer.verifier.vkey()) == signer.verifier


@pytest.mark.parametrize(
    "text",
    ["", "a+b", "name+00000000+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", PETER[:-4]],
)
def test_malformed_verifier_keys_are_refused(text: str) -> None:
    with pytest.raises(NoteError):
        decode_vkey(text)


@pytest.mark.parametrize(
    "note", [b"", b"text\n", b"text\n\n", b"text\n\nno dash here\n", b"text\n\n\xe2\x80\x94 a !!\n"]
)
def test_malformed_notes_are_refused(note: bytes) -> None:
    with pytest.raises(NoteError):
        decode_note(note)


def test_text_with_a_blank_line_cannot_be_signed() -> None:
    with pytest.raises(NoteError):
        sign_note(b"a\n\nb\n", Signer.generate("x"))
    with pytest.raises(NoteError):
        decode_signature_line("- x AAAA")
