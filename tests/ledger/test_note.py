"""Signed notes and key strings (C2SP signed-note)."""

from __future__ import annotations

import pytest

from accord.ledger.note import (
    MAX_NOTE_BYTES,
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


def _skey_with(signer: Signer, **parts: str) -> str:
    fields = dict(zip(("p", "k", "name", "id", "key"), signer.skey().split("+", 4), strict=True))
    return "+".join({**fields, **parts}.values())


def test_malformed_signer_keys_are_refused_by_what_is_wrong() -> None:
    signer = Signer.generate("org-a.example")
    other = Signer.generate("org-a.example")
    seed_of_33_with_alg_2 = "Ag" + signer.skey().split("+", 4)[4][2:]
    for text, why in (
        ("PUBLIC+KEY+a+00+AA==", "not a signer key"),
        (_skey_with(signer, key="not base64!"), "bad base64"),
        (_skey_with(signer, key="AAAA"), "not an Ed25519 key"),
        (_skey_with(signer, key=seed_of_33_with_alg_2), "not an Ed25519 key"),
        (_skey_with(signer, name="has space"), "empty or has a space"),
        (_skey_with(signer, id=other.verifier.key_id.hex()), "key ID does not match"),
    ):
        with pytest.raises(NoteError, match=why):
            decode_skey(text)


def test_a_key_name_must_be_one_word_without_plus() -> None:
    for name in ("", "two words", "a+b", "tab\there"):
        with pytest.raises(NoteError, match="empty or has a space or"):
            Signer.generate(name)


def test_notes_too_large_or_with_bad_signature_lines_are_refused() -> None:
    with pytest.raises(NoteError, match="too large"):
        decode_note(b"x" * (MAX_NOTE_BYTES + 1))
    with pytest.raises(NoteError, match="not UTF-8"):
        decode_note(b"text\n\n\xff\xfe\n")
    with pytest.raises(NoteError, match="too short"):
        decode_signature_line("\u2014 a AAAA\n")
