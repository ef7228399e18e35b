"""A TLS client's groups: groups file by CN, else certificate OU, else the listener default."""

from __future__ import annotations

from accord.domain.groups import ANONYMOUS, Membership
from accord.identity.peer import CertIdentity, identity_from_peercert, membership_for

PEERCERT = {
    "subject": (
        (("organizationName", "Accord"),),
        (("organizationalUnitName", "Blue"),),
        (("organizationalUnitName", "Medics"),),
        (("commonName", "alice"),),
    )
}


def test_cn_and_every_ou_are_read_from_the_certificate() -> None:
    assert identity_from_peercert(PEERCERT) == CertIdentity("alice", ("Blue", "Medics"))
    assert identity_from_peercert(None) == CertIdentity("")


def test_groups_file_wins_over_ou_which_wins_over_default() -> None:
    alice = CertIdentity("alice", ("Blue",))
    mapped = {"alice": Membership(frozenset({"HQ"}), frozenset({"Field"}))}
    assert membership_for(alice, mapped, ANONYMOUS) == mapped["alice"]
    assert membership_for(alice, {}, ANONYMOUS) == Membership.both(["Blue"])
    assert membership_for(CertIdentity("bob"), {}, ANONYMOUS) == ANONYMOUS


def test_serial_is_read_without_the_padding_openssl_adds() -> None:
    padded = {**PEERCERT, "serialNumber": "0A1B2C"}
    assert identity_from_peercert(padded).serial == "A1B2C"
