"""PolicyGate without links: a released contact's departure gets through a policy that
withholds ``t-*``, under the uid the partner knows; a never-released uid's does not."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pytest

from accord.cot.model import CotEvent
from accord.domain.contacts import Party
from accord.domain.groups import Membership
from accord.domain.partners import Partner
from accord.domain.routing import deleted, departure
from accord.federation import gate as gate_module
from accord.federation.gate import SHARE_ALL_RULE, PolicyGate
from accord.policy import decode_policy
from accord.policy.departure import DEPARTURE_RULE
from tests.cot.samples import sa_event

NOW_MS = 1_700_000_000_000
POLICY = """
name = "org-a->org-b/contacts"
partner = "org-b"
pseudonymise = true
pseudonym_prefix = "org-a."
secret = "0123456789abcdef0123456789abcdef"

[always_withhold]
types = ["t-*"]

[[rule]]
name = "sa"
types = ["a-f-G*"]
"""
ORG_B = Partner(name="ORG-B", ca_sha256="ab" * 32)


@dataclass
class Decisions:
    """A DecisionLog (the ledger's side of the gate) that keeps what it is told."""

    kept_back: list[tuple[str, str]] = field(default_factory=list)

    def withheld(self, partner: str, rule: str, policy: str, item: bytes, now_ms: int) -> None:
        self.kept_back.append((partner, rule))


def make_gate() -> tuple[PolicyGate, Decisions]:
    decisions = Decisions()
    return PolicyGate({"ORG-B": decode_policy(POLICY)}, decisions=decisions), decisions


def leave(uid: str, sa_type: str = "a-f-G-U-C") -> CotEvent:
    """The hub's notice that the client ``uid`` disconnected."""
    party = Party(1, Membership.both(["A"]), "x", uid=uid)
    party.last_sa = replace(sa_event(uid, "x"), type=sa_type)
    notice = departure(party, "delete-1", NOW_MS)
    assert notice is not None
    return notice


def test_a_released_contacts_departure_is_released_under_its_pseudonym() -> None:
    gate, decisions = make_gate()
    released = gate.release(sa_event("ANDROID-alice", "alice"), ORG_B, NOW_MS)
    assert released is not None
    sa = released.event
    assert sa.uid.startswith("org-a.")
    departed = gate.release(leave("ANDROID-alice"), ORG_B, NOW_MS)
    assert departed is not None
    gone = departed.event
    assert deleted(gone) == (sa.uid, "a-f-G-U-C")
    assert "ANDROID-alice" not in gone.detail.xml
    version = gate.policies["ORG-B"].version
    # Each decision comes back with its event: the rule travels with the frame to the ledger.
    assert (released.rule, released.policy) == ("sa", version)
    assert (departed.rule, departed.policy) == (DEPARTURE_RULE, version)
    assert decisions.kept_back == []
    assert gate.decisions("ORG-B")[DEPARTURE_RULE] == {"release": 1}
    # Asked again (a partner both sides dial has two links): released again.
    assert gate.outbound(leave("ANDROID-alice"), ORG_B, NOW_MS) is not None


def test_the_departure_of_a_uid_never_released_stays_withheld() -> None:
    gate, decisions = make_gate()
    hostile = replace(sa_event("ANDROID-dave", "dave"), type="a-h-G")
    assert gate.outbound(hostile, ORG_B, NOW_MS) is None  # no rule: deny by default
    assert gate.outbound(leave("ANDROID-dave", "a-h-G"), ORG_B, NOW_MS) is None
    assert gate.release(leave("ANDROID-nobody"), ORG_B, NOW_MS) is None
    assert decisions.kept_back == [
        ("ORG-B", "(default)"),
        ("ORG-B", "(always_withhold)"),
        ("ORG-B", "(always_withhold)"),
    ]


def test_released_uids_are_remembered_per_partner() -> None:
    gate, _ = make_gate()
    gate.policies["ORG-C"] = gate.policies["ORG-B"]
    gate.states["ORG-C"] = gate.states["ORG-B"]
    org_c = replace(ORG_B, name="ORG-C", ca_sha256="cd" * 32)
    assert gate.outbound(sa_event("ANDROID-alice", "alice"), ORG_B, NOW_MS) is not None
    assert gate.outbound(leave("ANDROID-alice"), org_c, NOW_MS) is None


def test_the_record_of_released_uids_is_bounded_least_recent_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(gate_module, "MAX_RELEASED_UIDS", 2)
    gate, _ = make_gate()
    for uid in ("u-1", "u-2", "u-1", "u-3"):  # u-1 released again: u-2 is the oldest
        assert gate.outbound(sa_event(uid, uid), ORG_B, NOW_MS) is not None
    assert gate.outbound(leave("u-2"), ORG_B, NOW_MS) is None
    assert gate.outbound(leave("u-1"), ORG_B, NOW_MS) is not None
    assert gate.outbound(leave("u-3"), ORG_B, NOW_MS) is not None


def test_a_share_all_partner_gets_a_departure_as_it_is() -> None:
    gate = PolicyGate({})
    notice = leave("ANDROID-alice")
    released = gate.release(notice, replace(ORG_B, share_all=True), NOW_MS)
    assert released is not None
    assert (released.event, released.rule, released.policy) == (notice, SHARE_ALL_RULE, "")
    assert gate.release(notice, ORG_B, NOW_MS) is None  # neither a policy nor share_all
