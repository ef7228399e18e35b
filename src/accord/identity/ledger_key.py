"""The server's ledger signing key (Ed25519) and partners' ledger public keys.

``<data_dir>/pki/ledger.key`` (mode 0600) holds the signer key string, made on first use;
``ledger.vkey`` beside it is the public key to give partners. A partner's key is a verifier
key string (``name+keyid+base64``), kept in ``pki/partners/<partner>.vkey``.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from accord.identity.ca import PkiError, check_key_private, write_private, write_public
from accord.ledger.note import NoteError, Signer, Verifier, decode_skey, decode_vkey

LEDGER_KEY = "ledger.key"
LEDGER_VKEY = "ledger.vkey"
LEDGER_SECRET = "ledger.secret"  # HMAC key naming withheld items (and pseudonyms), hex
SECRET_BYTES = 32
PARTNERS = "partners"


def ensure_ledger_key(pki_root: Path, name: str) -> Signer:
    """The ledger key under ``pki_root``, made (named ``name``) when there is none yet."""
    path = pki_root / LEDGER_KEY
    if path.exists():
        return load_ledger_key(pki_root)
    pki_root.mkdir(parents=True, exist_ok=True)
    try:
        signer = Signer.generate(name)
    except NoteError as exc:
        raise PkiError(f"cannot name the ledger key {name!r}: {exc}") from None
    write_private(path, (signer.skey() + "\n").encode())
    write_public(pki_root / LEDGER_VKEY, (signer.verifier.vkey() + "\n").encode())
    return signer


def ensure_ledger_secret(pki_root: Path) -> bytes:
    """This server's secret for keyed hashes (withheld items in the ledger, uid pseudonyms),
    made on first use in ``pki/ledger.secret`` (mode 0600). Disclosing it lets a partner check
    what was withheld; losing it only means old withheld entries can no longer be opened."""
    path = pki_root / LEDGER_SECRET
    if not path.exists():
        pki_root.mkdir(parents=True, exist_ok=True)
        write_private(path, (secrets.token_hex(SECRET_BYTES) + "\n").encode())
    check_key_private(path)
    try:
        return bytes.fromhex(path.read_text("ascii").strip())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise PkiError(
            f"cannot read the ledger secret {path} ({exc}); remove it to make a new one"
        ) from None


def load_ledger_key(pki_root: Path) -> Signer:
    path = pki_root / LEDGER_KEY
    check_key_private(path)
    try:
        return decode_skey(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, NoteError) as exc:
        raise PkiError(
            f"cannot read the ledger key {path} ({exc}); restore it from a backup: a new key "
            "cannot continue the checkpoints partners hold"
        ) from None


def ledger_verifier(pki_root: Path) -> Verifier | None:
    """Our ledger public key, or None when no key was ever made."""
    if (pki_root / LEDGER_KEY).exists():
        return load_ledger_key(pki_root).verifier
    if (pki_root / LEDGER_VKEY).exists():
        return read_verifier(str(pki_root / LEDGER_VKEY))
    return None


def read_verifier(key: str) -> Verifier:
    """A verifier key string, or the path of a file holding one."""
    text = key
    if "+" not in key or Path(key).is_file():
        try:
            text = Path(key).read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise PkiError(f"cannot read the public key file {key}: {exc}") from None
    try:
        return decode_vkey(text)
    except NoteError as exc:
        raise PkiError(f"{key}: {exc}") from None


def partner_verifier(pki_root: Path, partner: str) -> Verifier | None:
    """The partner's key kept in ``pki/partners/<partner>.vkey``, if any."""
    path = pki_root / PARTNERS / f"{partner}.vkey"
    return read_verifier(str(path)) if path.is_file() else None


def pin_partner_key(pki_root: Path, partner: str, key: Verifier) -> None:
    """Keep ``key`` as the partner's ledger key (``pki/partners/<partner>.vkey``)."""
    path = pki_root / PARTNERS / f"{partner}.vkey"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(key.vkey() + "\n", "utf-8")
    except OSError as exc:
        raise PkiError(f"cannot keep the ledger key of {partner} in {path}: {exc}") from None
