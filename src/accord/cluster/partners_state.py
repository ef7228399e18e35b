"""The organisation's partners and release policies shared by a cluster's nodes, pure parts
(issue 17).

One record, ``partners`` in the state bucket, is the one source of truth: every partner of
the organisation as ``partners.toml`` spells it, with its CA certificate and its release
policy document inlined (a node's files name paths; the record carries what they hold, so
every node validates and puts in force the same bytes). One record, not one key per
partner: a change is one atomic version, a node joining takes one, and "the cluster has no
partners" (an empty record) differs from "no node has spoken yet" (no record).

A node publishes only what its operator changed on it: the difference between its own files
before and after (:func:`rebase`) is laid over the cluster's current record, so a node whose
files never held another node's partner does not remove it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from accord.cluster.state import StateError, canonical
from accord.domain.partners import PartnerError, parse_partner

PARTNERS_KEY = "partners"
FORMAT = 1  # the record's layout; another one is refused

Doc = dict[str, bytes]  # partner name -> its entry (canonical JSON)


def entry_bytes(table: Mapping[str, object], ca_pem: str, policy: str) -> bytes:
    """One partner's entry: its table (without file paths), its CA's PEM, its policy's text
    ("" when it has none)."""
    table = {k: v for k, v in table.items() if k not in ("ca_file", "policy_file")}
    return canonical({"partner": table, "ca_pem": ca_pem, "policy": policy})


def encode_doc(doc: Mapping[str, bytes]) -> bytes:
    return canonical(
        {"format": FORMAT, "partners": {name: json.loads(doc[name]) for name in sorted(doc)}}
    )


def decode_doc(data: bytes | None) -> Doc:
    """The record's entries, each checked as a partner table: :class:`StateError` otherwise
    (the policy text is checked by the node that puts it in force, as its own files are)."""
    try:
        doc = json.loads(data or b"")
    except ValueError:
        raise StateError("the partners record is not JSON") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise StateError(f"the partners record is not of format {FORMAT}")
    entries = doc.get("partners")
    if not isinstance(entries, dict):
        raise StateError("the partners record has no partners table")
    out: Doc = {}
    for name, entry in entries.items():
        out[name] = _checked(name, entry)
    return out


def _checked(name: str, entry: object) -> bytes:
    if not isinstance(entry, dict) or set(entry) != {"partner", "ca_pem", "policy"}:
        raise StateError(f"partner {name!r}: an entry holds partner, ca_pem and policy")
    table, ca_pem, policy = entry["partner"], entry["ca_pem"], entry["policy"]
    if not isinstance(table, dict) or not isinstance(ca_pem, str) or not isinstance(policy, str):
        raise StateError(f"partner {name!r}: partner is a table, ca_pem and policy strings")
    if "ca_file" in table or "policy_file" in table:
        raise StateError(f"partner {name!r}: the record carries contents, not file paths")
    try:
        partner = parse_partner(table, f"the cluster's partner {name!r}")
    except PartnerError as exc:
        raise StateError(str(exc)) from None
    if partner.name != name:
        raise StateError(f"partner {name!r}: its table names {partner.name!r}")
    return entry_bytes(table, ca_pem, policy)


def rebase(
    shared: Mapping[str, bytes], before: Mapping[str, bytes], now: Mapping[str, bytes]
) -> Doc:
    """The cluster's record with what changed in this node's files (``before`` -> ``now``)
    laid over it: partners added or changed here replace the cluster's, partners removed
    here are removed; every other partner stays as the cluster has it."""
    out = dict(shared)
    for name in before.keys() | now.keys():
        if before.get(name) == now.get(name):
            continue
        if name in now:
            out[name] = now[name]
        else:
            out.pop(name, None)
    return out


def differences(shared: Mapping[str, bytes], local: Mapping[str, bytes]) -> list[str]:
    """What differs between the cluster's record and this node's files, one word each."""
    out = []
    for name in sorted(shared.keys() | local.keys()):
        if name not in local:
            out.append(f"{name} (only the cluster's)")
        elif name not in shared:
            out.append(f"{name} (only this node's)")
        elif shared[name] != local[name]:
            out.append(f"{name} ({_what_differs(shared[name], local[name])})")
    return out


def _what_differs(a: bytes, b: bytes) -> str:
    x, y = json.loads(a), json.loads(b)
    labels = (("partner", "settings"), ("ca_pem", "CA"), ("policy", "policy"))
    return ", ".join(label for key, label in labels if x.get(key) != y.get(key))
