"""RFC 9162 (RFC 6962) Merkle trees over SHA-256: hashing, roots, and proofs.

leaf = SHA-256(0x00 || data), node = SHA-256(0x01 || left || right); the root of ``n`` leaves is
RFC 9162 MTH: the left subtree holds the largest power of two below ``n``. Proof generation and
verification follow RFC 9162 §2.1.3 (inclusion) and §2.1.4 (consistency). Subtree proofs (a
subtree ``[start, end)`` whose ``start`` is a multiple of the smallest power of two >= its size)
follow the subtree definitions of draft-ietf-plants-merkle-tree-certs; a plain consistency proof
is the subtree proof of ``[0, old)``.

- :class:`Frontier` is the compact range ``[0, size)``: O(log n) memory, O(1) amortised append,
  the root at the current size in O(log n). Verification streams leaves through one.
- :class:`Tree` keeps every complete node in memory (about twice the leaf hashes), so any
  aligned subtree hash, and so any proof, costs O(log n) hashes lookups.

Verifiers raise :class:`ProofError` naming what failed; they never return False.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

_sha256 = hashlib.sha256


class ProofError(ValueError):
    """A proof is malformed, or does not lead to the root it is checked against."""


def leaf_hash(data: bytes) -> bytes:
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return _sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly below ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def subtree_valid(start: int, end: int) -> bool:
    """``[start, end)`` is a subtree: non-empty, and ``start`` a multiple of the smallest
    power of two >= ``end - start``."""
    if not 0 <= start < end:
        return False
    ceil = 1 << (end - start - 1).bit_length()
    return start % ceil == 0


class Frontier:
    """The compact range ``[0, size)``: the roots of its perfect subtrees, largest first."""

    __slots__ = ("_nodes", "size")

    def __init__(self) -> None:
        self._nodes: list[bytes] = []
        self.size = 0

    def append(self, leaf: bytes) -> None:
        nodes = self._nodes
        nodes.append(leaf)
        self.size += 1
        size = self.size
        while not size & 1:
            right = nodes.pop()
            nodes[-1] = _sha256(b"\x01" + nodes[-1] + right).digest()
            size >>= 1

    def root(self) -> bytes:
        nodes = self._nodes
        if not nodes:
            return EMPTY_ROOT
        root = nodes[-1]
        for left in reversed(nodes[:-1]):
            root = _sha256(b"\x01" + left + root).digest()
        return root


def root_of(leaves: Iterable[bytes]) -> bytes:
    """MTH of the leaf hashes ``leaves``."""
    frontier = Frontier()
    for leaf in leaves:
        frontier.append(leaf)
    return frontier.root()


class Tree:
    """Every complete node of a growing tree: ``levels[k][i]`` covers leaves
    ``[i * 2**k, (i + 1) * 2**k)``."""

    def __init__(self, leaves: Iterable[bytes] = ()) -> None:
        self.levels: list[list[bytes]] = [[]]
        for leaf in leaves:
            self.append(leaf)

    @property
    def size(self) -> int:
        return len(self.levels[0])

    def append(self, leaf: bytes) -> int:
        """Add a leaf hash; returns its index."""
        if len(leaf) != HASH_SIZE:
            raise ValueError(f"a leaf hash is {HASH_SIZE} bytes, not {len(leaf)}")
        levels = self.levels
        levels[0].append(leaf)
        level = 0
        while not len(levels[level]) & 1:
            if level + 1 == len(levels):
                levels.append([])
            below = levels[level]
            levels[level + 1].append(node_hash(below[-2], below[-1]))
            level += 1
        return self.size - 1

    def leaf(self, index: int) -> bytes:
        return self.levels[0][index]

    def truncate(self, size: int) -> None:
        """Forget the leaves from ``size`` on (and every node that covers one)."""
        if not 0 <= size <= self.size:
            raise ValueError(f"cannot truncate a tree of {self.size} leaves to {size}")
        for level, nodes in enumerate(self.levels):
            del nodes[size >> level :]

    def subtree_hash(self, start: int, end: int) -> bytes:
        """The hash of the subtree ``[start, end)`` (MTH of those leaves)."""
        if start == end:
            return EMPTY_ROOT
        if not subtree_valid(start, end) or end > self.size:
            raise ValueError(f"[{start}, {end}) is not a subtree of a tree of {self.size}")
        return self._hash(start, end)

    def _hash(self, start: int, end: int) -> bytes:
        n = end - start
        if not n & (n - 1):
            level = n.bit_length() - 1
            return self.levels[level][start >> level]
        mid = start + _split(n)
        return node_hash(self._hash(start, mid), self._hash(mid, end))

    def root(self, size: int | None = None) -> bytes:
        size = self.size if size is None else size
        if not 0 <= size <= self.size:
            raise ValueError(f"no root at size {size}: the tree has {self.size} leaves")
        return EMPTY_ROOT if size == 0 else self._hash(0, size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """RFC 9162 PATH(index, D[0:size])."""
        size = self.size if size is None else size
        if not 0 <= index < size <= self.size:
            raise ValueError(f"no inclusion proof for leaf {index} in a tree of {size}")
        return self._path(index, 0, size)

    def subtree_inclusion_proof(self, index: int, start: int, end: int) -> list[bytes]:
        if not subtree_valid(start, end) or end > self.size or not start <= index < end:
            raise ValueError(f"no inclusion proof for leaf {index} in subtree [{start}, {end})")
        return self._path(index, start, end)

    def _path(self, index: int, start: int, end: int) -> list[bytes]:
        proof: list[bytes] = []
        while end - start > 1:
            mid = start + _split(end - start)
            if index < mid:
                proof.append(self._hash(mid, end))
                end = mid
            else:
                proof.append(self._hash(start, mid))
                start = mid
        proof.reverse()
        return proof

    def consistency_proof(self, old: int, new: int | None = None) -> list[bytes]:
        """RFC 9162 PROOF(old, D[0:new]); 0 < old <= new."""
        new = self.size if new is None else new
        if not 0 < old <= new <= self.size:
            raise ValueError(f"no consistency proof from size {old} to {new}")
        return self.subtree_consistency_proof(0, old, new)

    def subtree_consistency_proof(self, start: int, end: int, size: int) -> list[bytes]:
        """The proof that subtree ``[start, end)`` is part of the tree of ``size`` leaves."""
        if start == end and end <= size:
            return []
        if not subtree_valid(start, end) or not end <= size <= self.size:
            raise ValueError(f"no consistency proof for [{start}, {end}) in a tree of {size}")
        proof: list[bytes] = []
        lo, hi, known = 0, size, True
        while not (start == lo and end == hi):
            mid = lo + _split(hi - lo)
            if end <= mid:
                proof.append(self._hash(mid, hi))
                hi = mid
            elif start >= mid:
                proof.append(self._hash(lo, mid))
                lo = mid
            else:  # a subtree across ``mid`` starts at ``lo``: its right part is new to us
                proof.append(self._hash(lo, mid))
                start, lo, known = mid, mid, False
        if not known:
            proof.append(self._hash(lo, hi))
        proof.reverse()
        return proof


def _check(hashes: Sequence[bytes], what: str) -> None:
    for h in hashes:
        if len(h) != HASH_SIZE:
            raise ProofError(f"{what} has a hash of {len(h)} bytes, not {HASH_SIZE}")


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """RFC 9162 §2.1.3.2: the root that ``proof`` leads to from ``leaf`` at ``index``."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of {size}")
    _check([leaf], "the leaf")
    _check(proof, "the inclusion proof")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ProofError("the inclusion proof is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn:
        raise ProofError("the inclusion proof is too short")
    return r


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    if root_from_inclusion(index, size, leaf, proof) != root:
        raise ProofError(f"leaf {index} is not in the tree of {size} with this root")


def verify_subtree_inclusion(
    index: int, start: int, end: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    if not subtree_valid(start, end):
        raise ProofError(f"[{start}, {end}) is not a subtree")
    if not start <= index < end:
        raise ProofError(f"leaf {index} is outside the subtree [{start}, {end})")
    if root_from_inclusion(index - start, end - start, leaf, proof) != root:
        raise ProofError(f"leaf {index} is not in the subtree [{start}, {end}) with this root")


def verify_consistency(
    old: int, new: int, proof: Sequence[bytes], old_root: bytes, new_root: bytes
) -> None:
    """RFC 9162 §2.1.4.2; a proof from the empty tree means nothing and is refused."""
    if old == 0:
        raise ProofError("a consistency proof from the empty tree is meaningless")
    if old > new:
        raise ProofError(f"size {old} is larger than size {new}")
    verify_subtree_consistency(0, old, new, proof, old_root, new_root)


def verify_subtree_consistency(
    start: int, end: int, size: int, proof: Sequence[bytes], sub_root: bytes, root: bytes
) -> None:
    """``proof`` shows that the subtree ``[start, end)`` with hash ``sub_root`` is part of the
    tree of ``size`` leaves with hash ``root``."""
    _check(proof, "the consistency proof")
    if start == end:  # the empty subtree is in every tree: nothing to prove
        if end > size or proof or sub_root != EMPTY_ROOT:
            raise ProofError("an empty subtree has the empty root and an empty proof")
        return
    if not subtree_valid(start, end):
        raise ProofError(f"[{start}, {end}) is not a subtree")
    if end > size:
        raise ProofError(f"subtree [{start}, {end}) ends beyond the tree of {size}")
    if start == 0 and end == size:
        if proof:
            raise ProofError("the proof between equal trees must be empty")
        if sub_root != root:
            raise ProofError(f"the roots at size {size} differ")
        return
    if not proof:
        raise ProofError("the consistency proof is empty")
    fn, sn, tn = start, end - 1, size - 1
    if sn == tn:
        while fn != sn:
            fn, sn, tn = fn >> 1, sn >> 1, tn >> 1
    else:
        while fn != sn and sn & 1:
            fn, sn, tn = fn >> 1, sn >> 1, tn >> 1
    if fn == sn:
        fr = sr = sub_root
        rest = proof
    else:
        fr = sr = proof[0]
        rest = proof[1:]
    for c in rest:
        if tn == 0:
            raise ProofError("the consistency proof is too long")
        if sn & 1 or sn == tn:
            if fn < sn:
                fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not sn & 1 and sn:
                fn, sn, tn = fn >> 1, sn >> 1, tn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn, tn = fn >> 1, sn >> 1, tn >> 1
    if tn:
        raise ProofError("the consistency proof is too short")
    if fr != sub_root:
        raise ProofError(f"the proof does not lead to the root of [{start}, {end})")
    if sr != root:
        raise ProofError(f"the proof does not lead to the root at size {size}")
