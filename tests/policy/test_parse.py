"""Policy files: what they mean, and every kind of mistake named by line, key and why."""

from __future__ import annotations

import pytest

from accord.policy.lines import Issue, PolicyError
from accord.policy.model import Circle, Polygon
from accord.policy.parse import decode_policy

HEAD = 'name = "org-a->org-b"\npartner = "org-b"\n'


def issues(text: str) -> list[Issue]:
    with pytest.raises(PolicyError) as info:
        decode_policy(text)
    return info.value.issues


def only(text: str) -> Issue:
    found = issues(text)
    assert len(found) == 1, found
    return found[0]


def test_a_complete_policy_reads_into_areas_rules_and_transforms() -> None:
    policy = decode_policy(
        HEAD
        + """pseudonymise = true
pseudonym_prefix = "org-a."
secret = "0123456789abcdef0123"
valid_from = 2026-01-01T00:00:00Z
valid_until = "2026-07-01T00:00:00Z"

[area.region]
polygon = [
  [47.10, 7.90],
  [47.10, 8.20],
  [46.90, 8.20],
]

[area.base]
circle = { lat = 47.0, lon = 8.0, radius_m = 500 }

[always_withhold]
types = ["b-t-f*", "t-*"]
areas = ["base"]

[[rule]]
name = "uas"
types = ["a-f-A-M-H-Q*"]
areas = ["region"]
not_areas = ["base"]
max_age_s = 10
keep = ["track", "link"]
grid_m = 100
altitude_m = 10
min_interval_s = 1

[[rule]]
name = "chatter"
types = ["b-*"]
action = "withhold"
"""
    )
    assert policy.name == "org-a->org-b"
    assert policy.partner == "org-b"
    assert policy.secret == b"0123456789abcdef0123"
    assert policy.valid_from_ms == 1_767_225_600_000
    assert policy.valid_until_ms is not None
    assert policy.valid_until_ms > policy.valid_from_ms
    assert policy.areas["region"].shape == Polygon(((47.1, 7.9), (47.1, 8.2), (46.9, 8.2)))
    assert policy.areas["base"].shape == Circle(47.0, 8.0, 500.0)
    assert policy.always_withhold.types == ("b-t-f*", "t-*")
    uas, chatter = policy.rules
    assert (uas.name, uas.line, uas.release) == ("uas", 23, True)
    assert uas.transform.keep == frozenset({"track", "link"})
    assert (uas.transform.grid_m, uas.transform.altitude_m) == (100.0, 10.0)
    assert uas.max_age_s == 10.0
    assert not chatter.release
    assert policy.version.startswith("sha256:")
    assert len(policy.version) == len("sha256:") + 16


def test_the_version_is_the_hash_of_the_file_bytes() -> None:
    a = decode_policy(HEAD)
    b = decode_policy(HEAD + "# a comment changes the version\n")
    assert a.version != b.version
    assert decode_policy(HEAD).version == a.version


def test_a_closed_polygon_ring_is_accepted_without_its_repeated_vertex() -> None:
    policy = decode_policy(HEAD + "[area.a]\npolygon = [[0, 0], [0, 1], [1, 1], [0, 0]]\n")
    assert policy.areas["a"].shape == Polygon(((0.0, 0.0), (0.0, 1.0), (1.0, 1.0)))


def test_a_syntax_error_names_its_line() -> None:
    issue = only(HEAD + "\n[[rule]]\nname = \n")
    assert (issue.line, issue.key) == (5, "(syntax)")


def test_missing_name_and_partner_are_reported_together() -> None:
    found = issues("[[rule]]\nname = 'x'\n")
    assert [(i.key, i.message) for i in found] == [
        ("name", "must be a non-empty string"),
        ("partner", "must be a non-empty string"),
    ]


def test_an_unknown_key_names_its_line_and_the_keys_that_exist() -> None:
    issue = only(HEAD + "\n[[rule]]\nname = 'a'\n\n[[rule]]\nname = 'b'\ngrid = 100\n")
    assert (issue.line, issue.key) == (9, "rule[2].grid")
    assert "unknown key" in issue.message
    assert "grid_m" in issue.message


def test_an_unknown_top_level_key_is_reported() -> None:
    issue = only(HEAD + "default = 'allow'\n")
    assert (issue.line, issue.key) == (3, "default")


def test_a_number_out_of_range_says_the_range_and_unit() -> None:
    issue = only(HEAD + "[[rule]]\nname = 'a'\ngrid_m = 0.5\n")
    assert (issue.line, issue.key) == (5, "rule[1].grid_m")
    assert "at least 1 metres" in issue.message or "between 1 and" in issue.message


def test_a_wrong_type_is_reported() -> None:
    issue = only(HEAD + "[[rule]]\nname = 'a'\ndelay_s = '30'\n")
    assert (issue.line, issue.key) == (5, "rule[1].delay_s")
    assert "must be a number of seconds" in issue.message


def test_a_bool_is_not_a_number() -> None:
    issue = only(HEAD + "[[rule]]\nname = 'a'\naltitude_m = true\n")
    assert issue.key == "rule[1].altitude_m"


def test_a_reference_to_an_undeclared_area_is_reported() -> None:
    issue = only(HEAD + "[[rule]]\nname = 'a'\nnot_areas = ['bse']\n")
    assert (issue.line, issue.key) == (5, "rule[1].not_areas")
    assert "no area named 'bse'" in issue.message


def test_a_polygon_with_too_few_vertices_is_reported_at_its_key() -> None:
    issue = only(HEAD + "[area.a]\n\npolygon = [[0, 0], [1, 1]]\n")
    assert (issue.line, issue.key) == (5, "area.a.polygon")
    assert "at least 3 vertices" in issue.message


def test_a_vertex_out_of_range_is_reported() -> None:
    issue = only(HEAD + "[area.a]\npolygon = [[0, 0], [1, 1], [91, 0]]\n")
    assert issue.key == "area.a.polygon"
    assert "vertex 3" in issue.message


def test_an_area_needs_exactly_one_shape() -> None:
    issue = only(
        HEAD + "[area.a]\npolygon = [[0, 0], [1, 1], [1, 0]]\ncircle = {lat=0, lon=0, radius_m=1}\n"
    )
    assert (issue.line, issue.key) == (3, "area.a")


def test_a_circle_with_a_negative_radius_is_reported() -> None:
    issue = only(HEAD + "[area.a]\ncircle = { lat = 0, lon = 0, radius_m = -5 }\n")
    assert (issue.line, issue.key) == (4, "area.a.circle.radius_m")


def test_a_circle_with_missing_fields_is_reported() -> None:
    issue = only(HEAD + "[area.a]\ncircle = { lat = 0, lon = 0 }\n")
    assert issue.key == "area.a.circle"
    assert "radius_m" in issue.message


def test_a_duplicate_rule_name_points_to_the_first() -> None:
    issue = only(HEAD + "[[rule]]\nname = 'a'\n[[rule]]\nname = 'a'\n")
    assert (issue.line, issue.key) == (6, "rule[2].name")
    assert "first at line 3" in issue.message


def test_a_rule_without_a_name_is_reported_at_its_header() -> None:
    issue = only(HEAD + "\n[[rule]]\ntypes = ['a-f-*']\n")
    assert (issue.line, issue.key) == (4, "rule[1].name")


def test_a_bad_action_is_reported() -> None:
    issue = only(HEAD + "[[rule]]\nname = 'a'\naction = 'allow'\n")
    assert issue.key == "rule[1].action"


def test_a_withhold_rule_with_transforms_is_reported() -> None:
    issue = only(HEAD + "[[rule]]\nname = 'a'\naction = 'withhold'\ngrid_m = 100\n")
    assert (issue.line, issue.key) == (6, "rule[1].grid_m")


def test_a_tag_both_kept_and_stripped_is_reported() -> None:
    issue = only(HEAD + "[[rule]]\nname = 'a'\nkeep = ['track', 'remarks']\nstrip = ['remarks']\n")
    assert (issue.line, issue.key) == (6, "rule[1].strip")


def test_allowing_a_tag_that_is_not_stripped_by_default_is_reported() -> None:
    issue = only(HEAD + "[[rule]]\nname = 'a'\nallow = ['track']\n")
    assert issue.key == "rule[1].allow"
    assert "remarks" in issue.message


def test_a_bad_type_glob_is_reported() -> None:
    issue = only(HEAD + "[always_withhold]\ntypes = ['a f']\n")
    assert (issue.line, issue.key) == (4, "always_withhold.types")


def test_a_max_age_no_longer_than_the_delay_is_reported() -> None:
    issue = only(HEAD + "[[rule]]\nname = 'a'\ndelay_s = 30\nmax_age_s = 10\n")
    assert (issue.line, issue.key) == (6, "rule[1].max_age_s")
    assert "no event would ever" in issue.message


def test_a_short_secret_is_reported() -> None:
    issue = only(HEAD + "secret = 'short'\n")
    assert (issue.line, issue.key) == (3, "secret")


def test_validity_that_ends_before_it_begins_is_reported() -> None:
    issue = only(HEAD + "valid_from = 2026-02-01T00:00:00Z\nvalid_until = 2026-01-01T00:00:00Z\n")
    assert (issue.line, issue.key) == (4, "valid_until")


def test_a_bad_time_is_reported() -> None:
    issue = only(HEAD + "valid_from = 'next tuesday'\n")
    assert issue.key == "valid_from"


def test_keys_after_a_multiline_array_keep_their_lines() -> None:
    issue = only(HEAD + "[[rule]]\nname = 'a'\ntypes = [\n  'a-f-*',\n  'a-h-*',\n]\ngrid_m = -1\n")
    assert (issue.line, issue.key) == (9, "rule[1].grid_m")


def test_every_problem_is_reported_at_once_in_line_order() -> None:
    found = issues(HEAD + "[[rule]]\nname = 'a'\ngrid_m = -1\ndelay_s = 'x'\nfoo = 1\n")
    assert [i.line for i in found] == [5, 6, 7]


def test_issues_format_as_file_line_key_why() -> None:
    issue = Issue(7, "rule[1].grid_m", "must be a number")
    assert issue.format("p.toml") == "p.toml:7: rule[1].grid_m: must be a number"


def test_not_utf8_is_reported() -> None:
    with pytest.raises(PolicyError) as info:
        decode_policy(b"name = '\xff'\n")
    assert info.value.issues[0].key == "(file)"
