"""RFC 9162 hashing and proofs: every shared vector, and properties over random trees."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accord.ledger.merkle import (
    EMPTY_ROOT,
    Frontier,
    ProofError,
    Tree,
    leaf_hash,
    root_from_inclusion,
    root_of,
    subtree_valid,
    verify_consistency,
    verify_inclusion,
    verify_subtree_consistency,
    verify_subtree_inclusion,
)

VECTORS = Path(__file__).resolve().parents[3] / "shared" / "data" / "merkle-vectors"
if not VECTORS.is_dir():  # a worktree beside the shared folder, or the main checkout
    VECTORS = Path("/work/shared/data/merkle-vectors")


def _files(family: str) -> list[Path]:
    return sorted((VECTORS / family).rglob("*.json"))


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _b(value: str | None) -> bytes:
    return base64.b64decode(value or "")


def _proof(value: list[str] | None) -> list[bytes]:
    return [_b(p) for p in value or []]


def _id(path: Path) -> str:
    return str(path.relative_to(VECTORS))


def _outcome(check: Any) -> bool:
    try:
        check()
    except ProofError:
        return True
    return False


@pytest.mark.parametrize("path", _files("inclusion"), ids=_id)
def test_inclusion_vector(path: Path) -> None:
    v = _load(path)
    failed = _outcome(
        lambda: verify_inclusion(
            v["leafIdx"], v["treeSize"], _b(v["leafHash"]), _proof(v["proof"]), _b(v["root"])
        )
    )
    assert failed == v["wantErr"], v["desc"]


@pytest.mark.parametrize("path", _files("consistency"), ids=_id)
def test_consistency_vector(path: Path) -> None:
    v = _load(path)
    failed = _outcome(
        lambda: verify_consistency(
            v["size1"], v["size2"], _proof(v["proof"]), _b(v["root1"]), _b(v["root2"])
        )
    )
    assert failed == v["wantErr"], v["desc"]


@pytest.mark.parametrize("path", _files("subtreeinclusion"), ids=_id)
def test_subtree_inclusion_vector(path: Path) -> None:
    v = _load(path)
    failed = _outcome(
        lambda: verify_subtree_inclusion(
            v["leafIdx"],
            v["start"],
            v["end"],
            _b(v["leafHash"]),
            _proof(v["proof"]),
            _b(v["root"]),
        )
    )
    assert failed == v["wantErr"], v["desc"]


@pytest.mark.parametrize("path", _files("subtreeconsistency"), ids=_id)
def test_subtree_consistency_vector(path: Path) -> None:
    v = _load(path)
    failed = _outcome(
        lambda: verify_subtree_consistency(
            v["start"], v["end"], v["size"], _proof(v["proof"]), _b(v["root1"]), _b(v["root2"])
        )
    )
    assert failed == v["wantErr"], v["desc"]


def test_every_vector_family_is_present() -> None:
    counts = {f: len(_files(f)) for f in _FAMILIES}
    assert all(counts.values()), counts
    assert sum(counts.values()) == len(list(VECTORS.rglob("*.json")))


_FAMILIES = ("inclusion", "consistency", "subtreeinclusion", "subtreeconsistency")


def _tree(n: int) -> Tree:
    return Tree(leaf_hash(i.to_bytes(4, "big")) for i in range(n))


def _mth(leaves: list[bytes]) -> bytes:
    """RFC 9162 MTH written recursively, as the RFC does: the reference for the rest."""
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return leaves[0]
    k = 1 << ((n - 1).bit_length() - 1)
    return hashlib.sha256(b"\x01" + _mth(leaves[:k]) + _mth(leaves[k:])).digest()


def test_rfc6962_eight_leaf_root() -> None:
    # The eight leaves of the RFC 6962 test tree (transparency-dev/merkle testonly).
    data = [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
    root = root_of(leaf_hash(bytes.fromhex(d)) for d in data)
    assert root.hex() == "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"


def test_empty_tree_root_is_the_hash_of_nothing() -> None:
    assert Tree().root() == EMPTY_ROOT == Frontier().root()


@given(st.integers(0, 70))
def test_tree_frontier_and_recursive_mth_agree_at_every_size(n: int) -> None:
    tree = _tree(n)
    frontier = Frontier()
    for size in range(n + 1):
        assert tree.root(size) == frontier.root() == _mth(tree.levels[0][:size])
        if size < n:
            frontier.append(tree.leaf(size))


@given(st.data())
def test_inclusion_proofs_verify_for_every_index_and_size(data: st.DataObject) -> None:
    size = data.draw(st.integers(1, 300))
    index = data.draw(st.integers(0, size - 1))
    tree = _tree(size + data.draw(st.integers(0, 5)))
    proof = tree.inclusion_proof(index, size)
    verify_inclusion(index, size, tree.leaf(index), proof, tree.root(size))
    with pytest.raises(ProofError):
        verify_inclusion(index, size, leaf_hash(b"changed"), proof, tree.root(size))
    if proof:
        bent = [*proof]
        bent[-1] = leaf_hash(b"bent")
        with pytest.raises(ProofError):
            verify_inclusion(index, size, tree.leaf(index), bent, tree.root(size))


@given(st.data())
def test_consistency_proofs_verify_for_every_pair_of_sizes(data: st.DataObject) -> None:
    new = data.draw(st.integers(1, 300))
    old = data.draw(st.integers(1, new))
    tree = _tree(new)
    proof = tree.consistency_proof(old, new)
    verify_consistency(old, new, proof, tree.root(old), tree.root(new))
    # A history rewritten at any one leaf below ``old`` fails.
    changed = data.draw(st.integers(0, old - 1))
    leaves = [*tree.levels[0]]
    leaves[changed] = leaf_hash(b"rewritten")
    forged = Tree(leaves)
    with pytest.raises(ProofError):
        verify_consistency(old, new, proof, forged.root(old), tree.root(new))
    with pytest.raises(ProofError):
        verify_consistency(
            old, new, forged.consistency_proof(old, new), tree.root(old), forged.root(new)
        )


@given(st.data())
def test_subtree_proofs_verify_for_every_valid_subtree(data: st.DataObject) -> None:
    size = data.draw(st.integers(1, 200))
    start = data.draw(st.integers(0, size - 1))
    ends = [e for e in range(start + 1, size + 1) if subtree_valid(start, e)]
    end = data.draw(st.sampled_from(ends))
    index = data.draw(st.integers(start, end - 1))
    tree = _tree(size)
    sub = tree.subtree_hash(start, end)
    assert sub == _mth(tree.levels[0][start:end])
    verify_subtree_inclusion(
        index, start, end, tree.leaf(index), tree.subtree_inclusion_proof(index, start, end), sub
    )
    proof = tree.subtree_consistency_proof(start, end, size)
    verify_subtree_consistency(start, end, size, proof, sub, tree.root())
    with pytest.raises(ProofError):
        verify_subtree_consistency(start, end, size, proof, leaf_hash(b"x"), tree.root())


def test_inclusion_proof_of_wrong_length_hash_is_refused() -> None:
    tree = _tree(4)
    with pytest.raises(ProofError, match="bytes"):
        root_from_inclusion(0, 4, tree.leaf(0)[:31], tree.inclusion_proof(0))


def test_a_subtree_that_ends_the_tree_is_proven_consistent() -> None:
    tree = _tree(6)
    for start, end in ((4, 6), (5, 6), (0, 6)):
        proof = tree.subtree_consistency_proof(start, end, 6)
        verify_subtree_consistency(start, end, 6, proof, tree.subtree_hash(start, end), tree.root())


def test_asking_a_tree_for_what_it_does_not_hold_is_a_value_error() -> None:
    tree = _tree(6)
    for ask in (
        lambda: tree.append(b"short"),
        lambda: tree.truncate(7),
        lambda: tree.truncate(-1),
        lambda: tree.subtree_hash(1, 3),  # not a subtree
        lambda: tree.subtree_hash(4, 8),  # past the end
        lambda: tree.root(7),
        lambda: tree.inclusion_proof(6),
        lambda: tree.inclusion_proof(0, 7),
        lambda: tree.subtree_inclusion_proof(4, 4, 8),
        lambda: tree.subtree_inclusion_proof(3, 4, 6),
        lambda: tree.consistency_proof(0),
        lambda: tree.consistency_proof(3, 7),
        lambda: tree.subtree_consistency_proof(1, 3, 6),
        lambda: tree.subtree_consistency_proof(4, 6, 7),
    ):
        with pytest.raises(ValueError, match=r"leaf|tree|subtree|size"):
            ask()
    assert tree.size == 6  # nothing changed
    tree.truncate(4)
    assert (tree.size, tree.root()) == (4, _tree(4).root())
    assert tree.subtree_hash(2, 2) == EMPTY_ROOT
    assert tree.subtree_consistency_proof(3, 3, 4) == []
