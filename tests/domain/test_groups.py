"""Groups: IN/OUT membership, reachability and the groups-file mapping (reference §5)."""

from __future__ import annotations

from typing import Any

import pytest

from accord.domain.groups import ANON, ANONYMOUS, GroupsFileError, Membership, parse_groups_map


def test_membership_in_both_directions() -> None:
    m = Membership.both(["A", "B", "A"])
    assert m.inbound == m.outbound == frozenset({"A", "B"})


def test_anonymous_users_share_one_group() -> None:
    assert Membership.both([ANON]) == ANONYMOUS
    assert ANON == "__ANON__"
    assert ANONYMOUS.reaches(ANONYMOUS)


@pytest.mark.parametrize(
    ("sender", "receiver", "reaches"),
    [
        (Membership.both(["A"]), Membership.both(["A"]), True),
        (Membership.both(["A"]), Membership.both(["B"]), False),
        (Membership.both(["A", "B"]), Membership.both(["B", "C"]), True),
        (
            Membership(frozenset({"A"}), frozenset()),
            Membership(frozenset(), frozenset({"A"})),
            True,
        ),
        (
            Membership(frozenset(), frozenset({"A"})),
            Membership(frozenset({"A"}), frozenset()),
            False,
        ),
        (Membership(frozenset({"A"}), frozenset({"B"})), Membership.both(["B"]), False),
        (Membership.both([]), Membership.both([]), False),
    ],
)
def test_a_sender_reaches_receivers_in_the_out_group_of_one_of_its_in_groups(
    sender: Membership, receiver: Membership, reaches: bool
) -> None:
    assert sender.reaches(receiver) is reaches


def test_groups_map_list_means_both_directions() -> None:
    assert parse_groups_map({"alice": ["Red", "Blue"]}) == {
        "alice": Membership.both(["Red", "Blue"])
    }


def test_groups_map_table_gives_each_direction() -> None:
    parsed = parse_groups_map(
        {
            "feed": {"in": ["Sensors"]},
            "viewer": {"out": ["Sensors", "Ops"]},
            "lead": {"in": ["Ops"], "out": ["Intel"], "both": ["Team"]},
            "nobody": {},
        }
    )
    assert parsed["feed"] == Membership(frozenset({"Sensors"}), frozenset())
    assert parsed["viewer"] == Membership(frozenset(), frozenset({"Sensors", "Ops"}))
    assert parsed["lead"] == Membership(frozenset({"Ops", "Team"}), frozenset({"Intel", "Team"}))
    assert parsed["nobody"] == Membership(frozenset(), frozenset())
    assert parsed["feed"].reaches(parsed["viewer"])
    assert not parsed["viewer"].reaches(parsed["feed"])


def test_empty_groups_map_is_empty() -> None:
    assert parse_groups_map({}) == {}


@pytest.mark.parametrize(
    ("data", "complaint"),
    [
        ({"alice": "Red"}, "alice"),
        ({"alice": 3}, "list of group names or an in/out table"),
        ({"alice": None}, "alice"),
        ({"alice": ["Red", ""]}, "non-empty"),
        ({"alice": ["Red", 7]}, "non-empty names"),
        ({"alice": {"inn": ["Red"]}}, "in/out/both"),
        ({"alice": {"in": "Red"}}, "list"),
        ({"alice": {"out": [None]}}, "alice"),
        ({"alice": {"both": ("Red",)}}, "alice"),
    ],
)
def test_groups_map_of_the_wrong_shape_is_refused_with_the_culprit_named(
    data: dict[str, Any], complaint: str
) -> None:
    with pytest.raises(GroupsFileError, match=complaint):
        parse_groups_map(data)


def test_groups_file_error_is_a_value_error() -> None:
    assert issubclass(GroupsFileError, ValueError)
