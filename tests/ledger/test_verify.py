"""Replaying a log names the first inconsistency: tampered, dropped, reordered, forged."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from accord.ledger.checkpoint import cosign
from accord.ledger.entry import Direction
from accord.ledger.log import Appended, Log
from accord.ledger.merkle import leaf_hash
from accord.ledger.note import Signer
from accord.ledger.verify import (
    Inconsistency,
    LogVerifier,
    StoredCheckpoint,
    StoredCosignature,
    Summary,
)

A, B = Signer.generate("org-a.example"), Signer.generate("org-b.example")
Rows = list[tuple[int, bytes, bytes]]


def _log(n: int = 20) -> tuple[Log, Rows, list[StoredCheckpoint]]:
    log = Log(A, "org-a.example", "org-b", Direction.OUT)
    rows: Rows = []
    checkpoints = []
    for i in range(n):
        a: Appended = (
            log.withhold(i, "w", bytes([i]), b"k")
            if i % 3 == 0
            else log.release(i, "r", bytes([i]))
        )
        rows.append((a.index, a.data, a.leaf))
        if i % 5 == 4:
            checkpoints.append(StoredCheckpoint(log.size, log.checkpoint()))
    return log, rows, checkpoints


def _verify(log: Log, rows: Rows, checkpoints: list[StoredCheckpoint], **kw: object) -> Summary:
    v = LogVerifier(
        partner="org-b",
        direction="out",
        origin=log.origin,
        log_key=A.verifier,
        partner_key=B.verifier,
        checkpoints=checkpoints,
        **kw,
    )  # type: ignore[arg-type]
    v.feed(rows[:7])
    v.feed(rows[7:])
    return v.finish()


def test_an_intact_log_verifies() -> None:
    log, rows, cps = _log()
    cosigs = [StoredCosignature(c.size, cosign(c.note, B, 1)) for c in cps[:2]]
    summary = _verify(log, rows, cps, cosignatures=cosigs)
    assert (summary.entries, summary.checkpoints, summary.cosigned) == (20, 4, 2)


def _tamper(change: Callable[[Rows], None]) -> str:
    log, rows, cps = _log()
    change(rows)
    with pytest.raises(Inconsistency) as exc:
        _verify(log, rows, cps)
    return str(exc.value)


def test_changed_leaf_is_named() -> None:
    def change(rows: Rows) -> None:
        i, data, leaf = rows[11]
        rows[11] = (i, data.replace(b'"rule":"r"', b'"rule":"x"'), leaf)

    assert _tamper(change) == "entry 11: leaf hash does not match its contents"


def test_changed_leaf_with_its_hash_recomputed_breaks_the_checkpoint() -> None:
    from accord.ledger.merkle import leaf_hash

    def change(rows: Rows) -> None:
        i, data, _ = rows[11]
        data = data.replace(b'"rule":"r"', b'"rule":"x"')
        rows[11] = (i, data, leaf_hash(data))

    assert _tamper(change) == "checkpoint 3 at size 15: root differs from the log's"


def test_dropped_entry_is_named() -> None:
    assert _tamper(lambda rows: rows.pop(8)).startswith("entry 8 missing (sequence gap")


def test_dropped_last_entries_are_named_by_the_checkpoint() -> None:
    msg = _tamper(lambda rows: rows.pop())
    assert msg == "checkpoint 4 at size 20: the log has only 19 entries (entries 19..19 missing)"


def test_reordered_entries_are_named() -> None:
    def change(rows: Rows) -> None:
        (i, di, li), (j, dj, lj) = rows[10], rows[11]
        rows[10], rows[11] = (i, dj, lj), (j, di, li)

    assert _tamper(change).startswith("entries 10 and 11 out of order (sequence)")


def test_forged_checkpoint_is_named() -> None:
    log, rows, cps = _log()
    forger = Signer.generate("org-a.example")
    forged = Log(forger, "org-a.example", "org-b", "out", [r[2] for r in rows[:10]]).checkpoint()
    cps[1] = StoredCheckpoint(10, forged)
    with pytest.raises(Inconsistency, match=r"^checkpoint 2 \(size 10\): not signed by"):
        _verify(log, rows, cps)


def test_checkpoint_of_another_history_is_named() -> None:
    log, rows, cps = _log()
    fork = Log(A, "org-a.example", "org-b", "out")
    for i in range(10):
        fork.release(i, "r", b"other")
    cps[1] = StoredCheckpoint(10, fork.checkpoint())
    with pytest.raises(Inconsistency, match="checkpoint 2 at size 10: root differs"):
        _verify(log, rows, cps)


def test_bad_cosignature_is_named() -> None:
    log, rows, cps = _log()
    line = cosign(cps[0].note, Signer.generate("org-b.example"), 1)
    with pytest.raises(Inconsistency, match=r"cosignature of checkpoint at size 5: .*not partner"):
        _verify(log, rows, cps, cosignatures=[StoredCosignature(5, line)])


def test_receipt_that_disagrees_is_named() -> None:
    log, rows, cps = _log()
    mirror = Log(B, "org-b.example", "org-a", Direction.IN)
    good = mirror.receipt(mirror.receive(1, b"x", 4, rows[4][2]), log.origin, 1)
    bad = mirror.receipt(mirror.receive(1, b"y", 5, rows[4][2]), log.origin, 1)
    assert _verify(log, rows, cps, receipts=[good]).receipts == 1
    with pytest.raises(Inconsistency, match="entry 5 disagrees with the partner's receipt"):
        _verify(log, rows, cps, receipts=[good, bad])


def test_mirror_partner_indexes_must_rise() -> None:
    mirror = Log(B, "org-b.example", "org-a", Direction.IN)
    rows = [
        (a.index, a.data, a.leaf)
        for a in (mirror.receive(1, b"x", 4, bytes(32)), mirror.receive(2, b"y", 4, bytes(32)))
    ]
    v = LogVerifier(partner="org-a", direction="in", origin=mirror.origin, log_key=B.verifier)
    with pytest.raises(Inconsistency, match="mirror entry 1: partner entry 4 after 4"):
        v.feed(rows)


def test_without_the_partner_key_cosignatures_are_reported_unchecked() -> None:
    log, rows, cps = _log()
    v = LogVerifier(
        partner="org-b",
        direction="out",
        origin=log.origin,
        log_key=A.verifier,
        checkpoints=cps,
        cosignatures=[StoredCosignature(5, cosign(cps[0].note, B, 1))],
    )
    v.feed(rows)
    summary = v.finish()
    assert summary.cosigned == 0
    assert summary.unchecked == ["1 cosignature(s): no public key for partner 'org-b'"]


def test_a_checkpoint_stored_at_another_size_is_named() -> None:
    log, rows, cps = _log()
    moved = [StoredCheckpoint(6, cps[0].note), *cps[1:]]
    with pytest.raises(Inconsistency, match="checkpoint 1: stored at size 6 but signed for 5"):
        _verify(log, rows, moved)


def test_a_cosignature_without_its_checkpoint_is_named() -> None:
    log, rows, cps = _log()
    line = cosign(cps[0].note, B, 1)
    with pytest.raises(Inconsistency, match="cosignature at size 7: no checkpoint of that size"):
        _verify(log, rows, cps, cosignatures=[StoredCosignature(7, line)])


def test_receipts_that_cannot_be_opened_or_are_for_another_log_are_named() -> None:
    log, rows, cps = _log()
    mirror = Log(B, "org-b.example", "org-a", Direction.IN)
    appended = mirror.receive(1, b"x", 4, rows[4][2])
    forged = Log(Signer.generate("org-b.example"), "org-b.example", "org-a", Direction.IN)
    with pytest.raises(Inconsistency, match="receipt 1: "):
        _verify(log, rows, cps, receipts=[forged.receipt(appended, log.origin, 1)])
    with pytest.raises(Inconsistency, match="receipt 1 is for log 'elsewhere/out', not"):
        _verify(log, rows, cps, receipts=[mirror.receipt(appended, "elsewhere/out", 1)])


def test_a_receipt_for_an_entry_past_the_end_is_named() -> None:
    log, rows, cps = _log()
    mirror = Log(B, "org-b.example", "org-a", Direction.IN)
    receipt = mirror.receipt(mirror.receive(1, b"x", 20, bytes(32)), log.origin, 1)
    with pytest.raises(Inconsistency, match="receipt for entry 20: the log has only 20 entries"):
        _verify(log, rows, cps, receipts=[receipt])


def test_receipts_without_the_partner_key_are_reported_unchecked() -> None:
    log, rows, _ = _log()
    mirror = Log(B, "org-b.example", "org-a", Direction.IN)
    receipt = mirror.receipt(mirror.receive(1, b"x", 4, rows[4][2]), log.origin, 1)
    v = LogVerifier(
        partner="org-b", direction="out", origin=log.origin, log_key=A.verifier, receipts=[receipt]
    )
    v.feed(rows)
    assert v.finish().unchecked == ["1 receipt(s): no public key for partner 'org-b'"]


def test_an_entry_stored_twice_is_named() -> None:
    message = _tamper(lambda rows: rows.insert(3, rows[2]))
    assert message == "entry 2 stored twice or out of index order"


def test_an_entry_that_is_not_one_is_named() -> None:
    def garble(rows: Rows) -> None:
        data = b"not an entry"
        rows[3] = (3, data, leaf_hash(data))

    assert _tamper(garble).startswith("entry 3: not a ledger entry")


def test_an_entry_of_another_log_is_named() -> None:
    other = Log(A, "org-a.example", "org-c", Direction.OUT)
    fifth = [other.release(i, "r", bytes([i])) for i in range(5)][4]

    def swap(rows: Rows) -> None:
        rows[4] = (4, fifth.data, fifth.leaf)

    assert _tamper(swap) == "entry 4 belongs to the out log of 'org-c'"
