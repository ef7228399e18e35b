"""``accord mission`` against a real data directory."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from accord.store.opening import open_store
from tests.e2e.test_cli import accord


async def made(data_dir: Path) -> None:
    store = await open_store("", data_dir)  # a database as a server leaves it
    await store.close()


async def test_create_list_show_export_delete(tmp_path: Path) -> None:
    await made(tmp_path)
    d = ("--data-dir", str(tmp_path))
    created = accord("mission", "create", "fire 2026", "--group", "Blue", "--group", "Red", *d)
    assert created.returncode == 0, created.stderr
    listed = accord("mission", "list", *d)
    assert listed.stdout.split("\t")[:2] == ["fire 2026", "Blue,Red"]
    shown = json.loads(accord("mission", "show", "fire 2026", *d).stdout)
    assert shown["name"] == "fire 2026"
    assert shown["groups"] == ["Blue", "Red"]
    exported = json.loads(accord("mission", "export", "fire 2026", *d).stdout)
    assert [c["type"] for c in exported["missionChanges"]] == ["CREATE_MISSION"]
    again = accord("mission", "create", "fire 2026", "--group", "Blue", *d)
    assert again.returncode == 2
    assert "taken" in again.stderr
    assert accord("mission", "delete", "fire 2026", *d).returncode == 0
    gone = accord("mission", "show", "fire 2026", *d)
    assert gone.returncode == 2
    assert "no mission" in gone.stderr


def test_hostile_names_are_refused(tmp_path: Path) -> None:
    asyncio.run(made(tmp_path))
    bad = accord("mission", "create", "../x", "--group", "Blue", "--data-dir", str(tmp_path))
    assert bad.returncode == 2
    assert "bad mission name" in bad.stderr


def test_no_verb_makes_a_data_directory(tmp_path: Path) -> None:
    missing = tmp_path / "typo"
    for verb in (("list",), ("show", "x"), ("create", "x", "--group", "A")):
        answer = accord("mission", *verb, "--data-dir", str(missing))
        assert answer.returncode == 2
        assert "no database" in answer.stderr
    assert not missing.exists()
