"""Partner entries as configured: parsed, checked, and written back the same."""

from __future__ import annotations

import pytest

from accord.domain.partners import (
    Partner,
    PartnerError,
    normalise_fingerprint,
    parse_partner,
    parse_partners,
    server_id,
    split_address,
    to_table,
)

PIN = "ab" * 32
OTHER_PIN = "cd" * 32


def test_a_fingerprint_is_accepted_as_openssl_prints_it_or_as_plain_hex() -> None:
    colons = ":".join(["AB"] * 32)
    assert normalise_fingerprint(colons) == PIN
    assert normalise_fingerprint(f" {PIN.upper()} ") == PIN
    with pytest.raises(PartnerError, match="openssl x509"):
        normalise_fingerprint("ab" * 31)


def test_a_partner_is_named_by_the_start_of_its_pinned_ca() -> None:
    partner = Partner("bravo", PIN)
    assert partner.server_id == server_id(PIN) == "accord-" + PIN[:16]


@pytest.mark.parametrize(
    ("address", "expected"),
    [("tak.example.org:9001", ("tak.example.org", 9001)), ("[::1]:8999", ("::1", 8999))],
)
def test_an_address_is_host_and_port(address: str, expected: tuple[str, int]) -> None:
    assert split_address(address) == expected


@pytest.mark.parametrize("address", ["tak.example.org", ":9001", "host:port", "host:0", "h:65536"])
def test_an_address_without_a_usable_port_is_refused(address: str) -> None:
    with pytest.raises(PartnerError, match="host:port"):
        split_address(address)


def test_a_full_entry_round_trips_through_its_table() -> None:
    entry = {
        "name": "bravo",
        "ca_sha256": PIN.upper(),
        "ca_file": "bravo-ca.pem",
        "address": "bravo.example.org:9001",
        "groups_in": ["Blue"],
        "groups_out": ["Blue", "Red"],
        "callsign_prefix": "[B] ",
        "share_all": True,
        "policy_file": "bravo.toml",
    }
    partner = parse_partner(entry, "config.toml")
    assert partner.ca_sha256 == PIN
    assert partner.groups_out == ("Blue", "Red")
    assert to_table(partner) == {**entry, "ca_sha256": PIN}
    assert parse_partner(to_table(partner), "again") == partner


def test_the_table_of_a_minimal_entry_leaves_the_defaults_out() -> None:
    partner = parse_partner({"name": "charlie", "ca_sha256": PIN}, "partners.toml")
    assert (partner.address, partner.share_all, partner.groups_in) == ("", False, ("__ANON__",))
    assert to_table(partner) == {
        "name": "charlie",
        "ca_sha256": PIN,
        "groups_in": ["__ANON__"],
        "groups_out": ["__ANON__"],
    }


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"name": "b", "ca_sha256": PIN, "colour": "red"}, r"unknown key\(s\) \['colour'\]"),
        ({"name": 7, "ca_sha256": PIN}, "name must be a string"),
        ({"name": "-b", "ca_sha256": PIN}, "name '-b' must be 1-64"),
        ({"name": "b"}, "ca_sha256 .* is required"),
        ({"name": "b", "ca_sha256": PIN, "address": "nowhere"}, "not host:port"),
        ({"name": "b", "ca_sha256": PIN, "share_all": "yes"}, "share_all must be true or false"),
        ({"name": "b", "ca_sha256": PIN, "groups_in": "Blue"}, "groups_in must be a list"),
        ({"name": "b", "ca_sha256": PIN, "groups_out": ["Blue", ""]}, "groups_out must be a list"),
        ({"name": "b", "ca_sha256": "not hex"}, "not a SHA-256 fingerprint"),
    ],
)
def test_a_bad_entry_names_where_and_what(entry: dict[str, object], message: str) -> None:
    with pytest.raises(PartnerError, match=f"^partners.toml: .*{message}|{message}"):
        parse_partner(entry, "partners.toml")


def test_a_partners_array_needs_tables_with_unique_names_and_pins() -> None:
    a = {"name": "a", "ca_sha256": PIN}
    b = {"name": "b", "ca_sha256": OTHER_PIN}
    assert [p.name for p in parse_partners([a, b], "config.toml")] == ["a", "b"]
    with pytest.raises(PartnerError, match=r"config.toml: partners\[1\] must be a table"):
        parse_partners([a, "b"], "config.toml")
    with pytest.raises(PartnerError, match="two partners are named 'a'"):
        parse_partners([a, {**b, "name": "a"}], "config.toml")
    with pytest.raises(PartnerError, match="two partners pin the same CA"):
        parse_partners([a, {**b, "ca_sha256": PIN}], "config.toml")
    with pytest.raises(PartnerError, match=r"partners\[0\]: unknown key"):
        parse_partners([{**a, "x": 1}], "config.toml")


def test_agreed_separation_thresholds_must_be_a_table_of_numbers() -> None:
    for bad in ("300 m", {"horizontal_m": "300"}, {"horizontal_m": True}):
        with pytest.raises(PartnerError, match="separation must be a table"):
            parse_partner({"name": "charlie", "ca_sha256": PIN, "separation": bad}, "p.toml")
