"""C2SP signed notes with Ed25519 keys (``signed-note.md``), and their key strings.

A note is UTF-8 text ending in a newline, a blank line, then one line per signature:
``— <name> <base64(key ID || signature)>``. The key ID of an Ed25519 key is the first four
bytes of SHA-256(name || "\\n" || 0x01 || public key). Verifiers skip signatures by keys they
do not know and reject the note when a known key's signature fails.

Keys travel as Go ``note`` strings: verifier ``<name>+<hex key ID>+<base64(0x01 || key)>``,
signer ``PRIVATE+KEY+<name>+<hex key ID>+<base64(0x01 || seed)>``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ALG_ED25519 = 0x01
ALG_COSIGNATURE_V1 = 0x04  # tlog-cosignature: Ed25519 over a timestamped checkpoint
_DASH = "\u2014"  # — (em dash)
MAX_NOTE_BYTES = 1 << 20


class NoteError(ValueError):
    """A note, signature or key that is malformed or does not verify."""


def key_id(name: str, public: bytes, alg: int = ALG_ED25519) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([alg]) + public).digest()[:4]


def _check_name(name: str) -> None:
    if not name or any(c.isspace() or c == "+" for c in name):
        raise NoteError(f"key name {name!r} is empty or has a space or '+'")


@dataclass(frozen=True, slots=True)
class Verifier:
    name: str
    public: bytes  # raw Ed25519 public key, 32 bytes

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.public)

    def vkey(self) -> str:
        raw = base64.b64encode(bytes([ALG_ED25519]) + self.public).decode()
        return f"{self.name}+{self.key_id.hex()}+{raw}"

    def check(self, message: bytes, signature: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public).verify(signature, message)
        except InvalidSignature:
            return False
        return True


def decode_vkey(text: str) -> Verifier:
    """A verifier key string (type 0x01 or the cosignature type 0x04)."""
    try:
        name, hex_id, raw_b64 = text.strip().split("+", 2)
        raw = base64.b64decode(raw_b64, validate=True)
        given_id = bytes.fromhex(hex_id)
    except (ValueError, binascii.Error):
        raise NoteError(f"not a verifier key (name+keyid+base64): {text.strip()[:60]!r}") from None
    _check_name(name)
    if len(raw) != 33 or raw[0] not in (ALG_ED25519, ALG_COSIGNATURE_V1):
        raise NoteError(f"verifier key {name!r} is not an Ed25519 key")
    if key_id(name, raw[1:], raw[0]) != given_id:
        raise NoteError(f"verifier key {name!r}: its key ID does not match the key")
    return Verifier(name, raw[1:])


@dataclass(frozen=True, slots=True)
class Signer:
    name: str
    key: Ed25519PrivateKey

    @classmethod
    def generate(cls, name: str) -> Signer:
        _check_name(name)
        return cls(name, Ed25519PrivateKey.generate())

    @property
    def verifier(self) -> Verifier:
        public = self.key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return Verifier(self.name, public)

    def sign(self, message: bytes) -> bytes:
        return self.key.sign(message)

    def skey(self) -> str:
        seed = self.key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        raw = base64.b64encode(bytes([ALG_ED25519]) + seed).decode()
        return f"PRIVATE+KEY+{self.name}+{self.verifier.key_id.hex()}+{raw}"


def decode_skey(text: str) -> Signer:
    parts = text.strip().split("+", 4)
    if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
        raise NoteError("not a signer key (PRIVATE+KEY+name+keyid+base64)")
    try:
        raw = base64.b64decode(parts[4], validate=True)
    except binascii.Error:
        raise NoteError("signer key: bad base64") from None
    if len(raw) != 33 or raw[0] != ALG_ED25519:
        raise NoteError("signer key: not an Ed25519 key")
    _check_name(parts[2])
    signer = Signer(parts[2], Ed25519PrivateKey.from_private_bytes(raw[1:]))
    if signer.verifier.key_id.hex() != parts[3].lower():
        raise NoteError("signer key: its key ID does not match the key")
    return signer


@dataclass(frozen=True, slots=True)
class Signature:
    name: str
    key_id: bytes
    signature: bytes  # what follows the key ID

    def line(self) -> str:
        raw = base64.b64encode(self.key_id + self.signature).decode()
        return f"{_DASH} {self.name} {raw}\n"


def decode_signature_line(line: str) -> Signature:
    parts = line.rstrip("\n").split(" ")
    if len(parts) != 3 or parts[0] != _DASH:
        raise NoteError(f"not a signature line: {line.strip()[:60]!r}")
    try:
        raw = base64.b64decode(parts[2], validate=True)
    except binascii.Error:
        raise NoteError(f"signature by {parts[1]!r}: bad base64") from None
    if len(raw) < 5:
        raise NoteError(f"signature by {parts[1]!r} is too short")
    return Signature(parts[1], raw[:4], raw[4:])


def sign_note(text: bytes, signer: Signer) -> bytes:
    """``text`` (ending in a newline) signed by ``signer``: the whole note."""
    if not text.endswith(b"\n") or b"\n\n" in text:
        raise NoteError("note text must end in a newline and hold no blank line")
    sig = Signature(signer.name, signer.verifier.key_id, signer.sign(text))
    return text + b"\n" + sig.line().encode()


def decode_note(note: bytes) -> tuple[bytes, list[Signature]]:
    """The text of a note and its signature lines (not verified)."""
    if len(note) > MAX_NOTE_BYTES:
        raise NoteError("note too large")
    split = note.rfind(b"\n\n")
    if split < 0 or not note.endswith(b"\n"):
        raise NoteError("not a signed note (text, blank line, signature lines)")
    text, sigs = note[: split + 1], note[split + 2 :]
    try:
        lines = sigs.decode().splitlines()
    except UnicodeDecodeError:
        raise NoteError("signature lines are not UTF-8") from None
    if not lines:
        raise NoteError("the note has no signature")
    return text, [decode_signature_line(line) for line in lines]


def add_signature(note: bytes, signature: Signature) -> bytes:
    decode_note(note)
    return note + signature.line().encode()


def open_note(note: bytes, verifier: Verifier) -> bytes:
    """The text of ``note`` if ``verifier`` signed it; :class:`NoteError` otherwise."""
    text, signatures = decode_note(note)
    found = False
    for sig in signatures:
        if sig.name == verifier.name and sig.key_id == verifier.key_id:
            if not verifier.check(text, sig.signature):
                raise NoteError(f"signature by {verifier.name} is invalid")
            found = True
    if not found:
        raise NoteError(f"not signed by {verifier.name} (key {verifier.key_id.hex()})")
    return text
