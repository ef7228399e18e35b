"""``accord ledger``: tamper with the stored ledger; ``verify`` names what was done."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest

from accord.cli import main
from accord.identity.ledger_key import PARTNERS, ensure_ledger_key
from accord.ledger.checkpoint import cosign
from accord.ledger.entry import Direction
from accord.ledger.log import Log
from accord.ledger.note import Signer
from accord.store.opening import open_store
from accord.store.records import LedgerCheckpoint, LedgerCosignature, LedgerEntry, LedgerReceipt

PARTNER = Signer.generate("org-b.example")


def _populate(data_dir: Path, n: int = 30) -> None:
    signer = ensure_ledger_key(data_dir / "pki", "org-a.example")
    partners = data_dir / "pki" / PARTNERS
    partners.mkdir()
    (partners / "org-b.vkey").write_text(PARTNER.verifier.vkey() + "\n")

    async def write() -> None:
        store = await open_store("", data_dir)
        out = Log(signer, signer.name, "org-b", Direction.OUT)
        mirror = Log(PARTNER, "org-b.example", "org-a", Direction.IN)
        rows = []
        for i in range(n):
            if i % 4 == 3:
                a = out.withhold(1_780_000_000_000 + i, "chat", b"<chat/>", b"secret")
            else:
                a = out.release(1_780_000_000_000 + i, "own-uas", f"<event n='{i}'/>".encode())
                got = mirror.receive(i, f"<event n='{i}'/>".encode(), a.index, a.leaf)
                note = mirror.receipt(got, out.origin, i)
                await store.add_ledger_receipt(LedgerReceipt("org-b", "out", a.index, note))
            rows.append(LedgerEntry("org-b", "out", a.index, a.data, a.leaf))
            if out.size % 10 == 0:
                await store.ledger_append(rows)
                rows = []
                note = out.checkpoint()
                await store.add_ledger_checkpoint(LedgerCheckpoint("org-b", "out", out.size, note))
                line = cosign(note, PARTNER, 1_780_000_000)
                await store.add_ledger_cosignature(
                    LedgerCosignature("org-b", "out", out.size, line)
                )
        await store.ledger_append(rows)
        await store.close()

    asyncio.run(write())


def _verify(data_dir: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str]:
    code = main(["ledger", "verify", "--data-dir", str(data_dir), *extra])
    return code, capsys.readouterr().out.strip()


def _sql(data_dir: Path, *statements: str) -> None:
    conn = sqlite3.connect(data_dir / "accord.db")
    with conn:
        for statement in statements:
            conn.execute(statement)
    conn.close()


def test_an_intact_ledger_verifies(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _populate(tmp_path)
    assert _verify(tmp_path, capsys) == (
        0,
        "ledger consistent: 30 entries, 3 checkpoints (3 cosigned by the partner), 23 receipts",
    )


def test_a_changed_leaf_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _populate(tmp_path)
    _sql(
        tmp_path,
        "UPDATE ledger_entries SET data = replace(data, 'own-uas', 'own-uav') WHERE idx = 13",
    )
    assert _verify(tmp_path, capsys) == (
        1,
        "ledger inconsistent: org-b out: entry 13: leaf hash does not match its contents",
    )


def test_a_dropped_entry_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _populate(tmp_path)
    _sql(tmp_path, "DELETE FROM ledger_entries WHERE idx = 17")
    code, out = _verify(tmp_path, capsys)
    assert code == 1
    assert out.startswith("ledger inconsistent: org-b out: entry 17 missing (sequence gap")


def test_two_reordered_entries_are_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _populate(tmp_path)
    _sql(
        tmp_path,
        "UPDATE ledger_entries SET idx = 1000000 WHERE idx = 21",
        "UPDATE ledger_entries SET idx = 21 WHERE idx = 22",
        "UPDATE ledger_entries SET idx = 22 WHERE idx = 1000000",
    )
    code, out = _verify(tmp_path, capsys)
    assert code == 1
    assert out.startswith("ledger inconsistent: org-b out: entries 21 and 22 out of order")


def test_a_forged_checkpoint_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _populate(tmp_path)
    conn = sqlite3.connect(tmp_path / "accord.db")
    (note,) = conn.execute("SELECT note FROM ledger_checkpoints WHERE size = 20").fetchone()
    conn.close()
    forged = bytes(note).replace(b"\n20\n", b"\n19\n")
    _sql(tmp_path, f"UPDATE ledger_checkpoints SET note = x'{forged.hex()}' WHERE size = 20")
    code, out = _verify(tmp_path, capsys)
    assert (code, out) == (
        1,
        "ledger inconsistent: org-b out: checkpoint 2 (size 20): signature by org-a.example is "
        "invalid",
    )


def test_export_verifies_offline_and_tampering_shows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _populate(tmp_path)
    export = tmp_path / "ledger.jsonl"
    assert main(["ledger", "export", "--data-dir", str(tmp_path), "--out", str(export)]) == 0
    capsys.readouterr()
    elsewhere = tmp_path / "auditor"
    assert _verify(
        elsewhere, capsys, "--file", str(export), "--partner-key", PARTNER.verifier.vkey()
    ) == (
        0,
        "ledger consistent: 30 entries, 3 checkpoints (3 cosigned by the partner), 23 receipts",
    )
    lines = export.read_text().splitlines()
    records = [json.loads(line) for line in lines]
    at = next(i for i, r in enumerate(records) if r["type"] == "entry" and r["seq"] == 5)
    records[at]["data"] = records[at]["data"].replace("own-uas", "other")
    export.write_text("".join(json.dumps(r) + "\n" for r in records))
    code, out = _verify(elsewhere, capsys, "--file", str(export))
    assert (code, out) == (
        1,
        "ledger inconsistent: org-b out: entry 5: leaf hash does not match its contents",
    )


def test_show_lists_logs_and_last_entries(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _populate(tmp_path)
    assert main(["ledger", "show", "--data-dir", str(tmp_path), "--last", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "org-b out: 30 entries, 3 checkpoints (3 cosigned), last checkpoint at 30"
    assert len(out) == 3
    assert "released" in out[2]
    assert " 29 " in out[2]


def test_verify_without_a_ledger_key_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _populate(tmp_path)
    for name in ("ledger.key", "ledger.vkey"):
        (tmp_path / "pki" / name).unlink(missing_ok=True)
    assert main(["ledger", "verify", "--data-dir", str(tmp_path)]) == 2
    assert "no ledger key" in capsys.readouterr().err


def test_verify_on_a_server_that_never_signed_anything_has_nothing_to_verify(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async def first_start() -> None:  # what a server without partners leaves: a database
        store = await open_store("", tmp_path)
        await store.close()

    asyncio.run(first_start())
    assert main(["ledger", "verify", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("nothing to verify: no ledger entries in ")
    assert main(["ledger", "verify", "--data-dir", str(tmp_path), "--partner", "org-z"]) == 0
    assert "no ledger entries with org-z" in capsys.readouterr().out


def test_ledger_commands_on_a_missing_data_directory_create_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "acord-data"  # mistyped
    for verb in (["show"], ["verify"], ["export", "--out", str(tmp_path / "x.jsonl")]):
        assert main(["ledger", *verb, "--data-dir", str(missing)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1
        assert f"no data directory {missing}" in err
    assert not missing.exists()
    assert not (tmp_path / "x.jsonl").exists()
