"""A TLS client's identity and groups, read from its verified certificate."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography import x509

from accord.domain.groups import Membership


@dataclass(frozen=True, slots=True)
class CertIdentity:
    cn: str
    ous: tuple[str, ...] = ()
    serial: str = ""  # upper-case hex without leading zeros, as the registry writes it


def identity_from_peercert(peercert: Mapping[str, Any] | None) -> CertIdentity:
    """Read CN and OUs from the dict ``ssl.SSLSocket.getpeercert()`` returns."""
    cn, ous = "", []
    raw_serial = str((peercert or {}).get("serialNumber", ""))
    # OpenSSL pads the hex to whole bytes ("0A1B..."); the registry writes it unpadded.
    serial = f"{int(raw_serial, 16):X}" if raw_serial else ""
    for rdn in (peercert or {}).get("subject", ()):
        for name, value in rdn:
            if name == "commonName" and not cn:
                cn = value
            elif name == "organizationalUnitName":
                ous.append(value)
    return CertIdentity(cn, tuple(ous), serial)


def membership_for(
    identity: CertIdentity, groups_map: Mapping[str, Membership], default: Membership
) -> Membership:
    """The groups file wins (by CN); else the certificate's OUs; else the listener default."""
    mapped = groups_map.get(identity.cn)
    if mapped is not None:
        return mapped
    if identity.ous:
        return Membership.both(identity.ous)
    return default


class PeerRefused(Exception):
    """A peer that passed the TLS handshake but must not be served; the message says why."""


def check_client_certificate(der: bytes | None) -> None:
    """What OpenSSL verification lets through but a client certificate must not be: a CA.

    (OpenSSL accepts a CA:TRUE certificate as a TLS client, and Python's ssl has no hook to
    refuse it during the handshake.)"""
    if not der:
        raise PeerRefused("no client certificate")
    try:
        cert = x509.load_der_x509_certificate(der)
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return
    except ValueError:
        raise PeerRefused("client certificate cannot be parsed") from None
    if constraints.ca:
        raise PeerRefused("client certificate is a CA certificate (CA:TRUE)")
