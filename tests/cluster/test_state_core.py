"""The shared state's pure core: who may join; users merged three ways; certificates as a
grow-only set where a revocation always wins."""

from __future__ import annotations

import datetime as dt

import pytest

from accord.cluster.state import (
    Member,
    StateError,
    UserMerge,
    ca_fingerprint,
    cert_key,
    check_row,
    decode_member,
    encode_member,
    join_refusal,
    key_name,
    merge_certs,
    user_key,
)
from accord.identity.ca import cert_pem, create_authority

NOW = dt.datetime(2026, 12, 3, tzinfo=dt.UTC)


def test_the_ca_fingerprint_is_the_certificates_not_the_files_spelling() -> None:
    ca = create_authority("Accord CA", NOW)
    pem = cert_pem(ca.cert)
    other = cert_pem(create_authority("Accord CA", NOW).cert)
    assert ca_fingerprint(pem) == ca_fingerprint(pem.replace(b"\n", b"\r\n") + b"trailing\n")
    assert ca_fingerprint(pem) != ca_fingerprint(other)
    for bad in (b"", b"-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n"):
        with pytest.raises(StateError):
            ca_fingerprint(bad)


def test_join_refusal_names_what_differs_in_one_line() -> None:
    cluster = Member("node-a", 4, "a" * 64)
    assert join_refusal(Member("node-b", 4, "a" * 64), cluster, "acme") is None
    schema = join_refusal(Member("node-b", 3, "a" * 64), cluster, "acme")
    assert schema is not None
    assert "schema version 3, the cluster has 4" in schema
    ca = join_refusal(Member("node-b", 4, "b" * 64), cluster, "acme")
    assert ca is not None
    assert "its CA (sha256 bbbbbbbbbbbbbbbb...)" in ca
    assert "\n" not in schema + ca
    assert decode_member(encode_member(cluster)) == cluster
    for bad in (b"", b"{}", b'{"node": "a", "schema": "x", "ca": "c"}'):
        with pytest.raises(StateError):
            decode_member(bad)


def test_keys() -> None:
    assert key_name(user_key("alice.b"), "user.") == "alice.b"
    assert cert_key("00ab") == cert_key("AB") == "cert.AB"
    with pytest.raises(StateError):
        key_name("user.=ZZ", "user.")


def test_joining_adopts_the_buckets_users_or_seeds_an_empty_bucket() -> None:
    merge = UserMerge()
    seeded = merge.adopt({}, {"alice": b"1"})
    assert (seeded.push, seeded.file) == ({"alice": b"1"}, {})
    merge = UserMerge()
    plan = merge.adopt({"alice": b"2", "bob": b"1"}, {"alice": b"1", "carol": b"1"})
    assert plan.push == {}
    assert plan.file == {"alice": b"2", "bob": b"1", "carol": None}
    assert merge.base == {"alice": b"2", "bob": b"1"}


def test_users_changed_on_either_side_reach_the_other() -> None:
    merge = UserMerge()
    merge.adopt({"alice": b"1", "bob": b"1"}, {"alice": b"1", "bob": b"1"})
    # The file changed here: a password, a removal, a new user.
    local = {"alice": b"2", "carol": b"1"}
    assert merge.local_changed(local).push == {"alice": b"2", "bob": None, "carol": b"1"}
    assert merge.local_changed(local).push == {}
    # The bucket says what another node changed: the file follows; our own echo is a no-op.
    assert merge.remote("alice", b"2", local).file == {}
    assert merge.remote("dave", b"1", local).file == {"dave": b"1"}
    assert merge.remote("carol", None, local).file == {"carol": None}
    assert merge.base == {"alice": b"2", "dave": b"1"}
    # Once written, the file is what was agreed: nothing to push.
    assert merge.local_changed({"alice": b"2", "dave": b"1"}).push == {}


def row(serial: str, revoked_at: str = "", name: str = "alice") -> dict[str, str]:
    return {
        "name": name,
        "kind": "client",
        "serial": serial,
        "not_after": "2027-01-01T00:00:00+00:00",
        "revoked_at": revoked_at,
        "pem": "",
    }


def test_certificates_are_a_union_where_revocation_wins() -> None:
    local = [row("0A"), row("0B", "2026-12-02"), row("0C")]
    shared = {"A": row("A", "2026-12-03"), "B": row("B"), "D": row("D", name="bob")}
    plan = merge_certs(local, shared)
    assert plan.file is not None
    merged = {r["serial"]: r["revoked_at"] for r in plan.file}
    assert merged == {"0A": "2026-12-03", "0B": "2026-12-02", "0C": "", "D": ""}
    assert plan.revoked == {"A"}  # newly revoked here: the CRL must be re-signed
    # The bucket lacks C and holds B as valid: both pushed; A and D it has as merged.
    assert set(plan.push) == {"B", "C"}
    assert plan.push["B"]["revoked_at"] == "2026-12-02"
    # Merged again, nothing moves.
    again = merge_certs(plan.file, {**shared, **plan.push})
    assert (again.push, again.file, again.revoked) == ({}, None, frozenset())
    # Two revocations of one certificate: the earlier stands on both sides.
    both = merge_certs([row("E", "2026-12-02")], {"E": row("E", "2026-12-01")})
    assert both.file is not None
    assert both.file[0]["revoked_at"] == "2026-12-01"


def test_bad_certificate_rows_from_the_bucket_are_refused() -> None:
    assert check_row(row("0A")) == row("0A")
    for bad in ([], {"serial": 1}, {**row("A"), "extra": "x"}, {"name": "a"}, row("XYZ")):
        with pytest.raises(StateError):
            check_row(bad)
