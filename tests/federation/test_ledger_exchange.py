"""Two Accord servers witness each other's sharing ledger over the link's ROL streams."""

from __future__ import annotations

import asyncio
import io
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest

from accord.cli import main
from accord.federation.ledger_exchange import LedgerExchange, rol
from accord.ledger.checkpoint import Checkpoint, sign_checkpoint
from accord.ledger.entry import Direction
from accord.ledger.exchange import CheckpointMessage, encode_checkpoint
from accord.ledger.merkle import leaf_hash, root_of
from accord.ledger.note import Signer
from tests.e2e.clients import marker, new_uid
from tests.federation.test_link_e2e import Org, client, orgs, pair

__all__ = ["orgs"]  # the fixture

pytestmark = pytest.mark.timeout(60)


def _exchange_of(org: Org) -> LedgerExchange:
    assert org.running is not None
    fed = org.running.federation
    assert fed is not None
    assert fed.ledger_exchange is not None
    return fed.ledger_exchange


async def _until(check: Any, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.05)


def _text(path: Path) -> str:
    return path.read_text()


def _verify(org: Org) -> tuple[int, str]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = main(["ledger", "verify", "--data-dir", str(org.data_dir)])
    return code, out.getvalue()


async def test_each_side_cosigns_and_receipts_what_the_other_released(orgs: Any) -> None:
    a, b = await pair(*orgs)
    assert a.running
    assert b.running
    assert "ledger" in a.link("ORG-B").view().extensions
    alice = await client(a.running)
    bob = await client(b.running)
    sent = [new_uid("MARK") for _ in range(30)]
    for uid in sent:
        await alice.send(marker(uid))
    await bob.recv_until(lambda e: e.uid == sent[-1])
    ledger_a = a.running.ledger
    assert ledger_a is not None
    await ledger_a.flush()  # store and checkpoint now (else within 10 s)
    released = ledger_a.size("ORG-B", "out")
    assert released >= 30

    # B checked A's checkpoint against its copy of A's leaves, cosigned it, receipted items.
    await _until(lambda: _exchange_of(a).view("ORG-B")["cosigned"] == released)
    await _until(lambda: _exchange_of(a).view("ORG-B")["receipts"] == released)
    assert _exchange_of(b).view("ORG-A")["partner_entries"] == released
    assert _exchange_of(b).view("ORG-A")["unreceived"] == 0
    assert _exchange_of(a).view("ORG-B")["errors"] == _exchange_of(b).view("ORG-A")["errors"] == 0

    # Keys were pinned on first use, each the other's own.
    pinned = _text(a.data_dir / "pki" / "partners" / "ORG-B.vkey")
    assert pinned == _text(b.data_dir / "pki" / "ledger.vkey")

    await a.running.close(grace_s=1.0)
    code, text = await asyncio.to_thread(_verify, a)
    assert code == 0, text
    assert f"{released} receipts" in text
    assert "(0 cosigned" not in text


async def test_a_forged_checkpoint_is_not_cosigned(orgs: Any) -> None:
    a, b = await pair(*orgs)
    assert a.running
    assert b.running
    alice = await client(a.running)
    bob = await client(b.running)
    uid = new_uid("MARK")
    await alice.send(marker(uid))
    await bob.recv_until(lambda e: e.uid == uid)
    ledger_a = a.running.ledger
    assert ledger_a is not None
    await ledger_a.flush()
    await _until(lambda: _exchange_of(a).view("ORG-B")["cosigned"] > 0)

    # A checkpoint over other leaves, signed by a key that is not A's: B refuses it.
    held = _exchange_of(b).view("ORG-A")["partner_entries"]
    leaves = (leaf_hash(b"forged"),)
    origin = ledger_a.log_of("ORG-B", Direction.OUT).origin
    forger = Signer.generate(ledger_a.signer.name)
    note = sign_checkpoint(Checkpoint(origin, held + 1, root_of(leaves)), forger)
    message = rol("checkpoint", encode_checkpoint(CheckpointMessage(note, held, leaves, ())))
    errors = _exchange_of(b).view("ORG-A")["errors"]
    await _exchange_of(b).receive("ORG-A", message)
    assert _exchange_of(b).view("ORG-A")["errors"] == errors + 1
    assert _exchange_of(b).view("ORG-A")["partner_entries"] == held
