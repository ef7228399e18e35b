"""The ``[[mission]]`` section of a release policy: parsed, checked, errors named by line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from accord.policy import PolicyError, decode_policy
from accord.policy.model import MISSION_PARTS

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "policy" / "joint-mission.toml"
HEAD = 'name = "p"\npartner = "org-b"\n'


def test_a_mission_section_reads_names_keywords_and_parts() -> None:
    policy = decode_policy(
        HEAD + '[[mission]]\nname = "j"\nmissions = ["Joint*"]\nkeywords = ["k"]\n'
        'share = ["items", "logs"]\naccept = ["logs"]\n'
    )
    (share,) = policy.missions
    assert share.name == "j"
    assert share.line == 3
    assert share.missions == ("Joint*",)
    assert share.keywords == ("k",)
    assert share.share == {"items", "logs"}
    assert share.accept == {"logs"}


def test_share_defaults_to_every_part_and_accept_to_nothing() -> None:
    (share,) = decode_policy(HEAD + '[[mission]]\nname = "j"\nmissions = ["x"]\n').missions
    assert share.share == frozenset(MISSION_PARTS)
    assert share.accept == frozenset()
    assert decode_policy(HEAD).missions == ()


@pytest.mark.parametrize(
    ("body", "line", "key", "why"),
    [
        ('name = "j"\n', 3, "mission[1]", "names no mission"),
        ('missions = ["x"]\n', 3, "mission[1].name", "needs a name"),
        ('name = "j"\nmissions = ["x"]\nshare = ["secrets"]\n', 6, "mission[1].share", "'secrets'"),
        ('name = "j"\nmissions = ["x"]\naccept = ["items"]\n', 6, "mission[1].accept", "'items'"),
        ('name = "j"\nmissions = ["x"]\nshare = ["items"]\naccept = ["logs"]\n', 7,
         "mission[1].accept", "does not share them"),
        ('name = "j"\nmissions = ["x"]\ncolour = 1\n', 6, "mission[1].colour", "unknown key"),
        ('name = "j"\nmissions = 3\n', 5, "mission[1].missions", "list of non-empty strings"),
    ],
)  # fmt: skip
def test_bad_mission_sections_are_named_by_line_and_key(
    body: str, line: int, key: str, why: str
) -> None:
    with pytest.raises(PolicyError) as caught:
        decode_policy(HEAD + "[[mission]]\n" + body)
    issue = caught.value.issues[0]
    assert (issue.line, issue.key) == (line, key)
    assert why in issue.message


def test_duplicate_mission_section_names_are_refused() -> None:
    text = (
        HEAD
        + '[[mission]]\nname = "j"\nmissions = ["a"]\n[[mission]]\nname = "j"\nmissions = ["b"]\n'
    )
    with pytest.raises(PolicyError, match=r"line 7: mission\[2\]\.name: duplicate"):
        decode_policy(text)


def _check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "accord", "policy", "check", str(path)],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip


def test_policy_check_shows_the_shared_missions_of_the_example() -> None:
    result = _check(EXAMPLE)
    assert result.returncode == 0, result.stderr
    assert (
        "mission joint-op (line 12): Joint Op*, keyword share-org-b; shares files, items, logs;"
        " accepts logs" in result.stdout
    )


def test_policy_check_names_the_line_of_a_bad_mission_section(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(HEAD + '[[mission]]\nname = "j"\nmissions = ["x"]\nshare = ["everything"]\n')
    result = _check(path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith(f"{path}:6: mission[1].share: 'everything' is not one of")
