"""``accord policy check|explain`` run as a user would, in a subprocess."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from lxml import etree

from accord.cot.xml import decode_xml
from tests.cot.samples import UAS_TOOL_DIR

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "policy"


def accord(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "accord", "policy", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_check_summarises_a_valid_policy() -> None:
    result = accord("check", EXAMPLES / "partner-coarse.toml")
    assert result.returncode == 0, result.stderr
    assert "policy org-a->org-b/v1 for org-b (sha256:" in result.stdout
    assert "1. drones (line " in result.stdout
    assert "otherwise: withhold (deny by default)" in result.stdout


def test_check_accepts_the_deny_all_example() -> None:
    result = accord("check", EXAMPLES / "deny-all.toml")
    assert result.returncode == 0, result.stderr


def test_check_reports_each_error_as_file_line_key_why(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('name = "x"\npartner = "y"\n[[rule]]\nname = "a"\ngrid_m = -3\nfoo = 1\n')
    result = accord("check", path)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"{path}:5: rule[1].grid_m: -3 is out of range")
    assert lines[1].startswith(f"{path}:6: rule[1].foo: unknown key")
    assert result.stdout == ""


def test_check_reports_a_syntax_error_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('name = "x"\npartner = \n')
    result = accord("check", path)
    assert result.returncode == 2
    assert result.stderr.startswith(f"{path}:2: (syntax): ")


def test_explain_shows_the_rule_the_steps_and_the_event_sent() -> None:
    capture = UAS_TOOL_DIR / "uas-tool-1.xml"
    result = accord("explain", EXAMPLES / "partner-coarse.toml", capture)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "=> rule drones: matches" in out
    assert "decision: RELEASE by rule drones" in out
    assert "  - strip <__video>" in out
    sent = out.split("sent:\n", 1)[1].strip().encode()
    event = decode_xml(sent)
    assert event.uid.startswith("org-a.")
    root = etree.fromstring(sent)
    assert root.find("detail/__video") is None
    assert root.find("detail/__release") is not None


def test_explain_at_a_later_time_shows_the_age_limit(tmp_path: Path) -> None:
    capture = UAS_TOOL_DIR / "uas-tool-1.xml"
    result = accord(
        "explain", EXAMPLES / "partner-coarse.toml", capture, "--now", "2024-04-24T16:40:00Z"
    )
    assert result.returncode == 0, result.stderr
    assert "max_age_s = 10" in result.stdout
    assert "decision: WITHHOLD (everything-else): withhold rule" in result.stdout


def test_explain_a_delayed_event(tmp_path: Path) -> None:
    event = tmp_path / "sa.xml"
    event.write_text(
        '<event version="2.0" uid="ANDROID-1" type="a-f-G-U-C" how="m-g" '
        'time="2024-04-24T16:37:38Z" start="2024-04-24T16:37:38Z" stale="2024-04-24T16:43:38Z">'
        '<point lat="39.2" lon="-108.7" hae="1400" ce="5" le="3"/><detail/></event>'
    )
    result = accord("explain", EXAMPLES / "partner-coarse.toml", event)
    assert result.returncode == 0, result.stderr
    assert "decision: DELAY by rule ground-sa until 2024-04-24T16:38:08.000Z" in result.stdout


def test_explain_refuses_a_file_that_is_not_an_event(tmp_path: Path) -> None:
    event = tmp_path / "e.xml"
    event.write_text("<nothing/>")
    result = accord("explain", EXAMPLES / "deny-all.toml", event)
    assert result.returncode == 2
    assert "not a usable CoT event" in result.stderr


def test_explain_a_withheld_event_under_deny_all() -> None:
    result = accord("explain", EXAMPLES / "deny-all.toml", UAS_TOOL_DIR / "uas-tool-2.xml")
    assert result.returncode == 0, result.stderr
    assert "decision: WITHHOLD ((default)): no rule matches: deny by default" in result.stdout
    assert "sent:" not in result.stdout
