"""``accord partner``: add pins the CA file's fingerprint, list shows, remove forgets."""

from __future__ import annotations

from pathlib import Path

import pytest

from accord.cli import main
from accord.federation import partners_file


def test_partner_add_list_remove(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    assert main(["cert", "init", "--data-dir", str(theirs)]) == 0  # partner self makes none
    assert main(["partner", "self", "--data-dir", str(theirs)]) == 0
    printed = capsys.readouterr().out
    pin = printed.split("ca_sha256 ")[1].split()[0]
    ca = theirs / "pki" / "ca.pem"
    wrong = "00" * 32
    assert main(["partner", "add", "org-b", "--ca", str(ca), "--sha256", wrong,
                 "--data-dir", str(ours)]) == 2  # fmt: skip
    assert "do not add it" in capsys.readouterr().err
    assert main(["partner", "add", "org-b", "--ca", str(ca), "--sha256", pin, "--address",
                 "127.0.0.1:9001", "--share-all", "--data-dir", str(ours)]) == 0  # fmt: skip
    (partner,) = partners_file.read(ours)
    assert partner.ca_sha256 == pin
    assert partner.callsign_prefix == "[org-b] "
    assert Path(partner.ca_file).read_bytes() == ca.read_bytes()
    assert main(["partner", "list", "--data-dir", str(ours)]) == 0
    assert "org-b\tdials 127.0.0.1:9001" in capsys.readouterr().out
    assert main(["partner", "remove", "org-b", "--data-dir", str(ours)]) == 0
    assert partners_file.read(ours) == ()


def test_partner_add_keeps_a_checked_policy_and_the_partners_ledger_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    assert main(["cert", "init", "--data-dir", str(theirs)]) == 0  # partner self makes none
    assert main(["partner", "self", "--data-dir", str(theirs)]) == 0
    printed = capsys.readouterr().out
    vkey = printed.split("ledger_key ")[1].split()[0]
    assert (theirs / "pki" / "ledger.vkey").read_text().strip() == vkey
    ca = str(theirs / "pki" / "ca.pem")
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\npartner = "org-b"\n[[rule]]\nname = "r"\ngrid_m = -1\n')
    args = ["partner", "add", "org-b", "--ca", ca, "--data-dir", str(ours)]
    assert main([*args, "--policy", str(bad)]) == 2
    assert "bad.toml:5: rule[1].grid_m" in capsys.readouterr().err
    assert partners_file.read(ours) == ()
    good = tmp_path / "good.toml"
    good.write_text('name = "x"\npartner = "org-b"\n')
    assert main([*args, "--policy", str(good), "--ledger-key", vkey]) == 0
    (partner,) = partners_file.read(ours)
    assert Path(partner.policy_file) == ours / "partners" / "org-b-policy.toml"
    assert Path(partner.policy_file).read_text() == good.read_text()
    assert (ours / "pki" / "partners" / "org-b.vkey").read_text().strip() == vkey
    assert main(["partner", "list", "--data-dir", str(ours)]) == 0
    assert "\tpolicy" in capsys.readouterr().out


def test_partner_add_policy_prints_the_copy_to_edit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    assert main(["cert", "init", "--data-dir", str(theirs)]) == 0
    policy = tmp_path / "a-to-b.toml"
    policy.write_text('name = "x"\npartner = "org-b"\n')
    ca = str(theirs / "pki" / "ca.pem")
    capsys.readouterr()
    assert main(["partner", "add", "org-b", "--ca", ca, "--policy", str(policy),
                 "--data-dir", str(ours)]) == 0  # fmt: skip
    out = capsys.readouterr().out
    copy = (ours / "partners" / "org-b-policy.toml").resolve()
    assert f"release policy checked and kept as {copy}\n" in out
    assert f"edit that copy, not {policy}" in out
    assert "kill -HUP" in out


def test_partner_self_on_a_mistyped_data_dir_makes_no_ca(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "acord-data"
    assert main(["partner", "self", "--data-dir", str(missing)]) == 2
    assert f"no data directory {missing}" in capsys.readouterr().err
    assert not missing.exists()
