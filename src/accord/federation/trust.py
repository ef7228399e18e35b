"""Which partner CA to trust: read from its file, accepted only if it is the pinned one."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from accord.domain.partners import Partner


class TrustError(Exception):
    """A partner's CA cannot be trusted; the message says why and what to do."""


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the DER certificate, lower-case hex (what ``ca_sha256`` pins)."""
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


@dataclass(frozen=True, slots=True)
class PinnedCa:
    partner: Partner
    cert: x509.Certificate
    pem: bytes


def load_pinned(partner: Partner, base: Path) -> PinnedCa:
    """The partner's CA from ``ca_file`` (relative to ``base``), if its fingerprint is the pin."""
    if not partner.ca_file:
        raise TrustError(f"partner {partner.name}: no ca_file; give the partner CA's PEM file")
    path = base / partner.ca_file
    try:
        pem = path.read_bytes()
        cert = x509.load_pem_x509_certificate(pem)
    except OSError as exc:
        raise TrustError(f"partner {partner.name}: cannot read ca_file {path}: {exc}") from None
    except ValueError:
        raise TrustError(
            f"partner {partner.name}: ca_file {path} is not a PEM certificate"
        ) from None
    actual = fingerprint(cert)
    if actual != partner.ca_sha256:
        raise TrustError(
            f"partner {partner.name}: ca_file {path} has SHA-256 {actual}, but the pinned "
            f"ca_sha256 is {partner.ca_sha256}: refusing it; check the fingerprint with the "
            "partner's admin out of band"
        )
    return PinnedCa(partner, cert, cert.public_bytes(serialization.Encoding.PEM))


def issued_by(leaf_pem: bytes, pinned: Sequence[PinnedCa]) -> PinnedCa | None:
    """The pinned CA that signed ``leaf_pem`` directly, if any."""
    try:
        leaf = x509.load_pem_x509_certificate(leaf_pem)
    except ValueError:
        return None
    for ca in pinned:
        try:
            leaf.verify_directly_issued_by(ca.cert)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return ca
    return None
