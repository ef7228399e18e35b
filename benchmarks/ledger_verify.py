"""Verify a sharing ledger of N entries (default 1,000,000) from a SQLite store.

Builds one ``out`` log with the Log API (3 of 4 entries released, 1 withheld), a checkpoint
every 10,000 entries with a partner cosignature, stores it, then times what
``accord ledger verify`` does: page the entries out of the store and replay them (leaf hashes,
decoding, sequence, Merkle frontier, every checkpoint root and signature).

    .venv/bin/python benchmarks/ledger_verify.py [--entries N]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from accord.ledger.checkpoint import cosign
from accord.ledger.entry import Direction
from accord.ledger.log import Log
from accord.ledger.note import Signer
from accord.ledger.verify import LogVerifier, StoredCheckpoint, StoredCosignature
from accord.store.opening import open_store
from accord.store.records import LedgerCheckpoint, LedgerCosignature, LedgerEntry

CHECKPOINT_EVERY = 10_000
LIMIT_S = 30.0


async def run(n: int, data_dir: Path) -> float:
    a, b = Signer.generate("org-a.example"), Signer.generate("org-b.example")
    store = await open_store("", data_dir)
    log = Log(a, a.name, "org-b", Direction.OUT)
    t0 = time.perf_counter()
    rows: list[LedgerEntry] = []
    for i in range(n):
        t = 1_780_000_000_000 + i
        item = f"<event uid='uas-{i % 50}' n='{i}'/>".encode()
        done = log.withhold(t, "chat", item, b"k") if i % 4 == 3 else log.release(t, "uas", item)
        rows.append(LedgerEntry("org-b", "out", done.index, done.data, done.leaf))
        if log.size % CHECKPOINT_EVERY == 0 or log.size == n:
            await store.ledger_append(rows)
            rows = []
            note = log.checkpoint()
            await store.add_ledger_checkpoint(LedgerCheckpoint("org-b", "out", log.size, note))
            line = cosign(note, b, 1_780_000_000)
            await store.add_ledger_cosignature(LedgerCosignature("org-b", "out", log.size, line))
    print(f"built and stored {n:,} entries in {time.perf_counter() - t0:.1f} s")

    t0, cpu0 = time.perf_counter(), time.process_time()
    checkpoints = await store.ledger_checkpoints("org-b", "out")
    cosignatures = await store.ledger_cosignatures("org-b", "out")
    verifier = LogVerifier(
        partner="org-b",
        direction="out",
        origin=log.origin,
        log_key=a.verifier,
        partner_key=b.verifier,
        checkpoints=[StoredCheckpoint(c.size, c.note) for c in checkpoints],
        cosignatures=[StoredCosignature(c.size, c.line) for c in cosignatures],
    )
    start = 0
    while page := await store.ledger_entries("org-b", "out", start):
        verifier.feed([(e.seq, e.data, e.leaf) for e in page])
        start = page[-1].seq + 1
    summary = verifier.finish()
    took, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    await store.close()
    print(
        f"verified {summary.entries:,} entries, {summary.checkpoints} checkpoints "
        f"({summary.cosigned} cosigned) in {took:.1f} s "
        f"({took / max(1, n) * 1e6:.1f} us/entry; {cpu:.1f} s CPU; limit {LIMIT_S:.0f} s)"
    )
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="accord-ledger-bench-") as tmp:
        took = asyncio.run(run(args.entries, Path(tmp)))
    if took > LIMIT_S:
        raise SystemExit(f"too slow: {took:.1f} s > {LIMIT_S:.0f} s")


if __name__ == "__main__":
    main()
