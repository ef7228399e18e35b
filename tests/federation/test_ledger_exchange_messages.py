"""The ledger exchange's sending side, against a real store: a partner that holds nothing is
caught up in steps that each end at a stored checkpoint and check out on the partner's side."""

from __future__ import annotations

import asyncio
from pathlib import Path

from accord.federation.journal import LedgerJournal
from accord.federation.ledger_exchange import CHUNK_ENTRIES, LedgerExchange, rol
from accord.federation.proto import fig_pb2
from accord.ledger.exchange import (
    HELLO,
    CheckpointMessage,
    Hello,
    PartnerLog,
    decode_checkpoint_message,
    encode_hello,
    kind_of,
)
from accord.ledger.note import Signer
from accord.store.opening import open_store

ENTRIES = 2 * CHUNK_ENTRIES + 1500


async def test_a_partner_far_behind_is_caught_up_in_checkpointed_steps(tmp_path: Path) -> None:
    store = await open_store("", tmp_path / "a")
    ours, theirs = Signer.generate("org-a.example"), Signer.generate("org-b.example")
    journal = LedgerJournal(store, ours, b"s" * 32, wall_ms=lambda: 1_000_000)
    await journal.restore(["org-b"])
    for n in range(ENTRIES):
        if n % 5 == 4:
            journal.withheld("org-b", "held", "", b"<x/>", 1_000_000)
        else:
            journal.released("org-b", n, f"<frame n='{n}'/>".encode(), "sa", "v1")
        if n % 1000 == 999:
            await journal.flush()  # stored and checkpointed every 1000
    await journal.flush()
    pki = tmp_path / "a" / "pki"
    exchange = LedgerExchange(journal, store, pki, wall_ms=lambda: 1_000_000)
    sent: list[bytes] = []
    task = asyncio.create_task(exchange.run())
    try:
        exchange.opened("org-b", sent.append)
        hello = Hello(theirs.verifier.vkey(), 0)
        await exchange.receive("org-b", rol(HELLO, encode_hello(hello)))
        async with asyncio.timeout(20):
            while not sent or decode_size(sent[-1]) < ENTRIES:
                await asyncio.sleep(0.05)
    finally:
        exchange.stop()
        await task
        await store.close()
    assert (pki / "partners" / "org-b.vkey").read_text().strip() == theirs.verifier.vkey()
    copy = PartnerLog(ours.verifier)
    steps = [_step(m) for m in sent[1:]]  # sent[0]: our hello
    assert len(steps) >= ENTRIES // CHUNK_ENTRIES + 1
    released = 0
    for step in steps:
        assert len(step.leaves) <= CHUNK_ENTRIES
        released += len(copy.accept(step))
    assert copy.size == ENTRIES
    assert released == ENTRIES - ENTRIES // 5


def decode_size(message: bytes) -> int:
    """How far a checkpoint message reaches (0 for any other message)."""
    if kind_of(fig_pb2.ROL.FromString(message).program) != "checkpoint":
        return 0
    step = _step(message)
    return step.start + len(step.leaves)


def _step(message: bytes) -> CheckpointMessage:
    msg = fig_pb2.ROL.FromString(message)
    assert kind_of(msg.program) == "checkpoint"
    return decode_checkpoint_message(msg.payload[0].data)
