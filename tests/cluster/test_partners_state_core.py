"""The partners record's pure parts: its shape, and what a node's own change does to it."""

from __future__ import annotations

import json

import pytest

from accord.cluster.partners_state import (
    decode_doc,
    differences,
    encode_doc,
    entry_bytes,
    rebase,
)
from accord.cluster.state import StateError

PIN = "ab" * 32


def entry(name: str, policy: str = "", prefix: str = "") -> bytes:
    table = {"name": name, "ca_sha256": PIN, "callsign_prefix": prefix, "ca_file": "/x.pem"}
    return entry_bytes(table, "PEM", policy)


def test_a_record_round_trips_and_carries_contents_not_paths() -> None:
    doc = {"P": entry("P", "name = 'x'"), "Q": entry("Q")}
    assert decode_doc(encode_doc(doc)) == doc
    assert "ca_file" not in json.loads(doc["P"])["partner"]


@pytest.mark.parametrize(
    "data",
    [
        b"not json",
        b'{"format": 2, "partners": {}}',
        b'{"format": 1}',
        b'{"format": 1, "partners": {"P": {"partner": {}, "ca_pem": "", "policy": ""}}}',
        b'{"format": 1, "partners": {"P": {"partner": {"name": "Q", "ca_sha256": "'
        + PIN.encode()
        + b'"}, "ca_pem": "", "policy": ""}}}',
        b'{"format": 1, "partners": {"P": {"partner": {"name": "P", "ca_sha256": "'
        + PIN.encode()
        + b'", "policy_file": "/etc/p"}, "ca_pem": "", "policy": ""}}}',
        b'{"format": 1, "partners": {"P": {"partner": {"name": "P"}, "ca_pem": 1, "policy": ""}}}',
    ],
)
def test_a_record_not_of_the_documented_shape_is_refused(data: bytes) -> None:
    with pytest.raises(StateError):
        decode_doc(data)


def test_only_what_changed_in_this_nodes_files_is_laid_over_the_cluster() -> None:
    shared = {"A": entry("A"), "B": entry("B", "v1")}  # B was added on another node
    before = {"A": entry("A")}
    # This node changes A's prefix and adds C; B (never in its files) stays.
    now = {"A": entry("A", prefix="[A] "), "C": entry("C")}
    assert rebase(shared, before, now) == {"A": now["A"], "B": shared["B"], "C": now["C"]}
    # Removing A here removes it from the cluster; B is still not touched.
    assert rebase(shared, before, {}) == {"B": shared["B"]}
    # Nothing changed here: the cluster's record as it is.
    assert rebase(shared, before, before) == shared


def test_differences_say_which_partner_and_what() -> None:
    shared = {"A": entry("A", "v2"), "B": entry("B")}
    local = {"A": entry("A", "v1"), "C": entry("C")}
    assert differences(shared, local) == [
        "A (policy)",
        "B (only the cluster's)",
        "C (only this node's)",
    ]
