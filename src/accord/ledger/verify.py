"""Replay a stored log and name its first inconsistency.

Streaming: entries are fed in index order (a page at a time) through a :class:`Frontier`, so
memory stays O(log n) and each entry costs two SHA-256 hashes and a JSON parse. What is
checked, in order: every checkpoint's signature and origin, every cosignature and receipt
signature (with the partner's key, when known); then per entry: no gap, the leaf hash of its
bytes, its canonical form, its sequence number, partner and direction, the partner's index
rising in the mirror, receipts naming its leaf; each checkpoint's root when the log reaches
its size; at the end, checkpoints beyond the last entry.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from accord.ledger.checkpoint import Checkpoint, open_checkpoint, verify_cosignature
from accord.ledger.entry import Direction, EntryError, entry_fields
from accord.ledger.merkle import Frontier, leaf_hash
from accord.ledger.note import NoteError, Verifier
from accord.ledger.receipt import Receipt, open_receipts


class Inconsistency(Exception):
    """The first thing in the ledger that does not add up; the message names it."""


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    size: int
    note: bytes


@dataclass(frozen=True, slots=True)
class StoredCosignature:
    size: int
    line: str


@dataclass(slots=True)
class Summary:
    entries: int = 0
    checkpoints: int = 0
    cosigned: int = 0  # checkpoints with at least one valid partner cosignature
    receipts: int = 0
    unchecked: list[str] = field(default_factory=list)  # what could not be checked, and why


class LogVerifier:
    """Feed with :meth:`feed` in index order, then :meth:`finish`; both raise
    :class:`Inconsistency` at the first problem."""

    def __init__(
        self,
        *,
        partner: str,
        direction: Direction | str,
        origin: str,
        log_key: Verifier,
        partner_key: Verifier | None = None,
        checkpoints: Sequence[StoredCheckpoint] = (),
        cosignatures: Sequence[StoredCosignature] = (),
        receipts: Sequence[bytes] = (),
    ) -> None:
        self.partner = partner
        self.direction = Direction(direction)
        self.summary = Summary()
        self._frontier = Frontier()
        self._last_partner_index = -1
        ordered = sorted(checkpoints, key=lambda c: c.size)
        self._checkpoints: list[tuple[int, Checkpoint]] = []
        for number, stored in enumerate(ordered, 1):
            try:
                cp = open_checkpoint(stored.note, log_key, origin)
            except NoteError as exc:
                raise Inconsistency(f"checkpoint {number} (size {stored.size}): {exc}") from None
            if cp.size != stored.size:
                raise Inconsistency(
                    f"checkpoint {number}: stored at size {stored.size} but signed for {cp.size}"
                )
            self._checkpoints.append((number, cp))
        self.summary.checkpoints = len(ordered)
        self._next_checkpoint = 0
        notes = {c.size: c.note for c in ordered}
        cosigned: set[int] = set()
        for cosig in cosignatures:
            if cosig.size not in notes:
                raise Inconsistency(f"cosignature at size {cosig.size}: no checkpoint of that size")
            if partner_key is None:
                continue
            try:
                verify_cosignature(notes[cosig.size], cosig.line, partner_key)
            except NoteError as exc:
                raise Inconsistency(
                    f"cosignature of checkpoint at size {cosig.size}: {exc}"
                ) from None
            cosigned.add(cosig.size)
        self.summary.cosigned = len(cosigned)
        if cosignatures and partner_key is None:
            self.summary.unchecked.append(
                f"{len(cosignatures)} cosignature(s): no public key for partner {partner!r}"
            )
        self._receipts: dict[int, list[Receipt]] = {}
        if receipts and partner_key is None:
            self.summary.unchecked.append(
                f"{len(receipts)} receipt(s): no public key for partner {partner!r}"
            )
        elif partner_key is not None:
            for number, note in enumerate(receipts, 1):
                try:
                    items = open_receipts(note, partner_key)
                except NoteError as exc:
                    raise Inconsistency(f"receipt {number}: {exc}") from None
                for receipt in items:
                    if receipt.origin != origin:
                        raise Inconsistency(
                            f"receipt {number} is for log {receipt.origin!r}, not {origin!r}"
                        )
                    self._receipts.setdefault(receipt.index, []).append(receipt)
                    self.summary.receipts += 1
        self._check_checkpoints()  # a checkpoint of the empty log

    def feed(self, rows: Iterable[tuple[int, bytes, bytes]]) -> None:
        """``rows``: (index, entry bytes, stored leaf hash), in index order."""
        frontier = self._frontier
        for index, data, stored_leaf in rows:
            expected = frontier.size
            if index != expected:
                if index > expected:
                    raise Inconsistency(f"entry {expected} missing (sequence gap before {index})")
                raise Inconsistency(f"entry {index} stored twice or out of index order")
            leaf = leaf_hash(data)
            if leaf != stored_leaf:
                raise Inconsistency(f"entry {index}: leaf hash does not match its contents")
            try:
                seq, partner, direction, partner_index = entry_fields(data)
            except EntryError as exc:
                raise Inconsistency(f"entry {index}: {exc}") from None
            if seq != index:
                raise Inconsistency(
                    f"entries {index} and {seq} out of order (sequence): "
                    f"entry {index} holds sequence {seq}"
                )
            if partner != self.partner or direction is not self.direction:
                raise Inconsistency(f"entry {index} belongs to the {direction} log of {partner!r}")
            if partner_index is not None:
                if partner_index <= self._last_partner_index:
                    raise Inconsistency(
                        f"mirror entry {index}: partner entry {partner_index} after "
                        f"{self._last_partner_index} (repeated or out of order)"
                    )
                self._last_partner_index = partner_index
            for receipt in self._receipts.get(index, ()):
                if receipt.leaf != leaf:
                    raise Inconsistency(
                        f"entry {index} disagrees with the partner's receipt "
                        f"(mirror entry {receipt.mirror_index}): leaf hashes differ"
                    )
            frontier.append(leaf)
            self._check_checkpoints()

    def _check_checkpoints(self) -> None:
        size = self._frontier.size
        while (
            self._next_checkpoint < len(self._checkpoints)
            and self._checkpoints[self._next_checkpoint][1].size <= size
        ):
            number, cp = self._checkpoints[self._next_checkpoint]
            if cp.size == size and cp.root != self._frontier.root():
                raise Inconsistency(
                    f"checkpoint {number} at size {size}: root differs from the log's"
                )
            self._next_checkpoint += 1

    def finish(self) -> Summary:
        size = self._frontier.size
        if self._next_checkpoint < len(self._checkpoints):
            number, cp = self._checkpoints[self._next_checkpoint]
            raise Inconsistency(
                f"checkpoint {number} at size {cp.size}: the log has only {size} entries "
                f"(entries {size}..{cp.size - 1} missing)"
            )
        beyond = [i for i in self._receipts if i >= size]
        if beyond:
            raise Inconsistency(f"receipt for entry {min(beyond)}: the log has only {size} entries")
        self.summary.entries = size
        return self.summary
