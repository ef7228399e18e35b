"""One partner's log in one direction, in memory: the API the federation link calls.

The link appends a decision (``release``/``withhold``/``drop`` on ``out``, ``receive`` on
``in``), stores the returned :class:`Appended` in the same transaction as it sends, signs
checkpoints every few seconds or N entries, proves inclusion and consistency for the partner,
and returns receipts for what it received. Nothing here does I/O or reads a clock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from accord.ledger.checkpoint import Checkpoint, sign_checkpoint
from accord.ledger.entry import (
    Decision,
    Direction,
    Entry,
    EntryError,
    content_hash,
    encode_entry,
    encode_plain,
    keyed_hash,
)
from accord.ledger.merkle import Tree, leaf_hash
from accord.ledger.note import Signer
from accord.ledger.receipt import Receipt, sign_receipt

_sha256 = hashlib.sha256


def origin_for(server: str, partner: str, direction: Direction | str) -> str:
    """The checkpoint origin of our log for ``partner`` in ``direction``."""
    return f"{server}/ledger/{partner}/{Direction(direction).value}"


@dataclass(frozen=True, slots=True)
class Appended:
    index: int
    leaf: bytes  # the Merkle leaf hash
    data: bytes  # the canonical entry bytes to store
    entry: Entry


class Log:
    def __init__(
        self,
        signer: Signer,
        server: str,
        partner: str,
        direction: Direction | str,
        leaves: Iterable[bytes] = (),
    ) -> None:
        """``leaves``: the stored leaf hashes, in order, to continue an existing log."""
        self.signer = signer
        self.partner = partner
        self.direction = Direction(direction)
        self.origin = origin_for(server, partner, self.direction)
        self.tree = Tree(leaves)

    @property
    def size(self) -> int:
        return self.tree.size

    def append(self, entry: Entry) -> Appended:
        if entry.seq != self.size or entry.partner != self.partner:
            raise EntryError(
                f"entry {entry.seq} for {entry.partner!r} does not continue the log of "
                f"{self.partner!r} at {self.size}"
            )
        if entry.direction is not self.direction:
            raise EntryError(f"a {entry.direction} entry does not go in the {self.direction} log")
        return self._appended(entry)

    def _appended(self, entry: Entry) -> Appended:
        data = encode_entry(entry)
        leaf = leaf_hash(data)
        self.tree.append(leaf)
        return Appended(entry.seq, leaf, data, entry)

    def _new(self, time_ms: int, decision: Decision, rule: str, item: str, policy: str) -> Appended:
        # Made here at the log's size, for its partner and direction: nothing to check again.
        entry = Entry(
            self.size, time_ms, self.direction, self.partner, decision, rule, item, policy
        )
        return self._appended(entry)

    def release(self, time_ms: int, rule: str, sent: bytes, policy: str = "") -> Appended:
        """``sent``: the exact bytes that go to the partner."""
        return self._new(time_ms, Decision.RELEASED, rule, content_hash(sent), policy)

    def append_plain(
        self, time_ms: int, decision: Decision, rule: str, item: bytes, policy: str = ""
    ) -> tuple[int, bytes, bytes, str]:
        """:meth:`release` (or a mirror entry with no partner index, as the link's journal
        makes them) without the :class:`Appended` and :class:`Entry` values: the link's hot
        path. Returns (index, leaf hash, entry bytes, item name); the same entry bytes."""
        if (decision is Decision.RECEIVED) != (self.direction is Direction.IN):
            raise EntryError(f"a {decision} entry does not go in the {self.direction} log")
        digest = _sha256(item).hexdigest()
        index = self.tree.size
        data = encode_plain(decision, self.partner, rule, policy, digest, index, time_ms)
        leaf = _sha256(b"\x00" + data).digest()
        self.tree.append(leaf)
        return index, leaf, data, "sha256:" + digest

    def withhold(
        self, time_ms: int, rule: str, item: bytes, secret: bytes, policy: str = ""
    ) -> Appended:
        """An item the policy kept back, named by a keyed hash under ``secret``."""
        item_hash = keyed_hash(secret, item)
        return self._new(time_ms, Decision.WITHHELD, rule, item_hash, policy)

    def drop(
        self, time_ms: int, rule: str, item: bytes, secret: bytes, policy: str = ""
    ) -> Appended:
        """An item released by policy but never sent (link down, queue full)."""
        item_hash = keyed_hash(secret, item)
        return self._new(time_ms, Decision.DROPPED, rule, item_hash, policy)

    def receive(
        self, time_ms: int, received: bytes, partner_index: int, partner_leaf: bytes
    ) -> Appended:
        """Mirror what the partner sent: its bytes, and its entry index and leaf hash."""
        entry = Entry(
            self.size, time_ms, self.direction, self.partner, Decision.RECEIVED, "",
            content_hash(received), partner_index=partner_index, partner_leaf=partner_leaf,
        )  # fmt: skip
        return self.append(entry)

    def receipt(self, appended: Appended, partner_origin: str, time_ms: int) -> bytes:
        """The signed receipt for a mirror entry, to send back to the partner."""
        entry = appended.entry
        if entry.partner_index is None or entry.partner_leaf is None:
            raise EntryError("a receipt is for a received (mirror) entry")
        receipt = Receipt(
            partner_origin, entry.partner_index, entry.partner_leaf, appended.index, time_ms
        )
        return sign_receipt(receipt, self.signer)

    def checkpoint(self, size: int | None = None) -> bytes:
        """The signed checkpoint (note) at ``size`` (default: now)."""
        size = self.size if size is None else size
        return sign_checkpoint(Checkpoint(self.origin, size, self.tree.root(size)), self.signer)

    def prove_inclusion(self, index: int, size: int | None = None) -> list[bytes]:
        return self.tree.inclusion_proof(index, size)

    def prove_consistency(self, old: int, new: int | None = None) -> list[bytes]:
        return self.tree.consistency_proof(old, new)
