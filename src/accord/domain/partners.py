"""Partners: other organisations' servers we federate with, as configured.

A partner is known by the SHA-256 fingerprint of its CA certificate, pinned in the
configuration: a link is trusted only when the partner's chain ends at exactly that CA.
The same spec is read from ``[[partners]]`` in the config file and from
``<data_dir>/partners.toml`` (written by ``accord partner add``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# What the TAK Server listens on for federation v2 (reference tak-protocol §6.1 `v2port`).
FEDERATION_V2_PORT = 9001
_HEX64 = re.compile(r"[0-9a-f]{64}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class PartnerError(ValueError):
    """A partner entry is not of the documented shape; the message names the key."""


@dataclass(frozen=True, slots=True)
class Partner:
    """One partner server and what crosses the link to it."""

    name: str  # short, unique: used in logs, metrics and the CLI
    ca_sha256: str  # the pinned CA fingerprint, 64 lower-case hex digits
    ca_file: str = ""  # PEM of the partner's CA; its SHA-256 must equal ca_sha256
    address: str = ""  # "host:port" to dial; "" = the partner dials us
    groups_in: tuple[str, ...] = ("__ANON__",)  # local groups its events are delivered into
    groups_out: tuple[str, ...] = ("__ANON__",)  # local groups whose events may go to it
    callsign_prefix: str = ""  # put before the callsign of its contacts, e.g. "[ORG-B] "
    share_all: bool = False  # without a policy: release everything (tests, demos) or nothing
    policy_file: str = ""  # the release policy document, for the policy engine
    # The separation thresholds agreed with this partner: [separation] keys and values that
    # replace ours for pairs with its tracks (checked against the keys when the server starts).
    separation: tuple[tuple[str, float], ...] = ()

    @property
    def server_id(self) -> str:
        """How this partner is named in federation provenance (see ``server_id``)."""
        return server_id(self.ca_sha256)


def server_id(ca_sha256: str) -> str:
    """A server's id in provenance: the start of its CA fingerprint, which each side already
    holds pinned for the other, so that every server of a federation names it alike."""
    return "accord-" + ca_sha256[:16]


def normalise_fingerprint(text: str) -> str:
    """``AB:CD:…`` or ``abcd…`` -> 64 lower-case hex digits; PartnerError if it is not one."""
    value = text.replace(":", "").replace(" ", "").lower()
    if not _HEX64.fullmatch(value):
        raise PartnerError(
            f"{text!r} is not a SHA-256 fingerprint (64 hex digits, colons allowed); "
            "`openssl x509 -in ca.pem -noout -fingerprint -sha256` prints one"
        )
    return value


def split_address(address: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` too) -> (host, port); PartnerError otherwise."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise PartnerError(f"address {address!r} is not host:port (e.g. tak.example.org:9001)")
    return host.strip("[]"), int(port)


_KEYS = {
    "name",
    "address",
    "ca_file",
    "ca_sha256",
    "groups_in",
    "groups_out",
    "callsign_prefix",
    "share_all",
    "policy_file",
    "separation",
}


def parse_partner(data: Mapping[str, object], where: str) -> Partner:
    unknown = set(data) - _KEYS
    if unknown:
        raise PartnerError(
            f"{where}: unknown key(s) {sorted(unknown)}; known: {', '.join(sorted(_KEYS))}"
        )

    def text(key: str, default: str = "") -> str:
        value = data.get(key, default)
        if not isinstance(value, str):
            raise PartnerError(f"{where}: {key} must be a string")
        return value

    def names(key: str) -> tuple[str, ...]:
        value = data.get(key, ["__ANON__"])
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise PartnerError(f"{where}: {key} must be a list of group names")
        return tuple(value)

    name = text("name")
    if not _NAME.fullmatch(name):
        raise PartnerError(f"{where}: name {name!r} must be 1-64 letters, digits, '.', '_' or '-'")
    if "ca_sha256" not in data:
        raise PartnerError(f"{where}: ca_sha256 (the partner CA's pinned fingerprint) is required")
    address = text("address")
    if address:
        split_address(address)
    share_all = data.get("share_all", False)
    if not isinstance(share_all, bool):
        raise PartnerError(f"{where}: share_all must be true or false")
    separation = data.get("separation", {})
    if not isinstance(separation, Mapping) or not all(
        isinstance(k, str) and isinstance(v, int | float) and not isinstance(v, bool)
        for k, v in separation.items()
    ):
        raise PartnerError(
            f"{where}: separation must be a table of [separation] keys and numbers, e.g. "
            "{ horizontal_m = 300, vertical_m = 50 }"
        )
    return Partner(
        name=name,
        ca_sha256=normalise_fingerprint(text("ca_sha256")),
        ca_file=text("ca_file"),
        address=address,
        groups_in=names("groups_in"),
        groups_out=names("groups_out"),
        callsign_prefix=text("callsign_prefix"),
        share_all=share_all,
        policy_file=text("policy_file"),
        separation=tuple((k, float(v)) for k, v in sorted(separation.items())),
    )


def parse_partners(entries: Sequence[object], where: str) -> tuple[Partner, ...]:
    """Read a ``[[partners]]`` array; names and fingerprints must be unique."""
    out: list[Partner] = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            raise PartnerError(f"{where}: partners[{i}] must be a table")
        out.append(parse_partner(entry, f"{where}: partners[{i}]"))
    check_unique(out, where)
    return tuple(out)


def check_unique(partners: Sequence[Partner], where: str) -> None:
    seen: set[str] = set()
    for p in partners:
        if p.name in seen:
            raise PartnerError(f"{where}: two partners are named {p.name!r}")
        seen.add(p.name)
    pins = [p.ca_sha256 for p in partners]
    if len(set(pins)) != len(pins):
        raise PartnerError(f"{where}: two partners pin the same CA; one entry per partner CA")


def to_table(partner: Partner) -> dict[str, object]:
    """The TOML table of a partner (what ``accord partner add`` writes), defaults left out."""
    out: dict[str, object] = {"name": partner.name, "ca_sha256": partner.ca_sha256}
    for key, default in (
        ("address", ""),
        ("ca_file", ""),
        ("callsign_prefix", ""),
        ("policy_file", ""),
    ):
        value = getattr(partner, key)
        if value != default:
            out[key] = value
    out["groups_in"] = list(partner.groups_in)
    out["groups_out"] = list(partner.groups_out)
    if partner.share_all:
        out["share_all"] = True
    if partner.separation:
        out["separation"] = dict(partner.separation)
    return out
