"""The in-memory log API the federation link calls: append, checkpoint, prove, receipts."""

from __future__ import annotations

import dataclasses

import pytest

from accord.ledger.checkpoint import cosign, open_checkpoint, verify_cosignature
from accord.ledger.entry import Decision, Direction, Entry, EntryError, content_hash, encode_entry
from accord.ledger.log import Log
from accord.ledger.merkle import verify_consistency, verify_inclusion
from accord.ledger.note import Signer
from accord.ledger.receipt import open_receipt

A, B = Signer.generate("org-a.example"), Signer.generate("org-b.example")


def test_a_release_round_trip_between_two_servers() -> None:
    out = Log(A, "org-a.example", "org-b", Direction.OUT)
    mirror = Log(B, "org-b.example", "org-a", Direction.IN)
    first = out.withhold(1, "always-withhold", b"<chat/>", b"secret")
    sent = b"<event uid='x'/>"
    released = out.release(2, "own-uas", sent)
    assert (first.index, released.index) == (0, 1)
    assert released.entry.item == content_hash(sent)
    note = out.checkpoint()
    # The receiver: checkpoint signature, inclusion, then consistency from what it had.
    cp = open_checkpoint(note, A.verifier, out.origin)
    verify_inclusion(1, cp.size, released.leaf, out.prove_inclusion(1, cp.size), cp.root)
    got = mirror.receive(3, sent, released.index, released.leaf)
    receipt = open_receipt(mirror.receipt(got, out.origin, 4), B.verifier)
    assert (receipt.index, receipt.leaf, receipt.mirror_index) == (1, released.leaf, 0)
    line = cosign(note, B, 5)
    assert verify_cosignature(note, line, B.verifier) == 5
    out.release(6, "own-uas", b"more")
    later = open_checkpoint(out.checkpoint(), A.verifier, out.origin)
    verify_consistency(cp.size, later.size, out.prove_consistency(cp.size), cp.root, later.root)


def test_a_log_continues_from_stored_leaves() -> None:
    log = Log(A, "a", "b", "out")
    leaves = [log.release(i, "r", bytes([i])).leaf for i in range(5)]
    again = Log(A, "a", "b", "out", leaves)
    assert again.checkpoint() == log.checkpoint()
    assert again.release(9, "r", b"z").index == 5


def test_entries_must_continue_the_log() -> None:
    log = Log(A, "a", "b", "out")
    other = Log(A, "a", "c", "out")
    with pytest.raises(EntryError):
        log.append(other.release(1, "r", b"x").entry)
    with pytest.raises(EntryError):
        log.receipt(log.release(1, "r", b"x"), "o", 1)


def test_an_item_released_but_never_sent_is_logged_by_its_keyed_hash() -> None:
    log = Log(A, "a", "b", "out")
    secret = b"k" * 32
    dropped = log.drop(5, "rule-1", b"<event/>", secret, policy="v2")
    assert (dropped.entry.decision.value, dropped.entry.rule, dropped.entry.policy) == (
        "dropped",
        "rule-1",
        "v2",
    )
    assert dropped.entry.item.startswith("hmac-sha256:")
    assert content_hash(b"<event/>") not in dropped.data.decode()  # not named by its plain hash
    assert log.size == 1


def test_an_entry_of_the_other_direction_does_not_go_in_a_log() -> None:
    out = Log(A, "a", "b", "out")
    mirror = Log(A, "a", "b", "in")
    received = mirror.receive(1, b"x", 0, bytes(32)).entry
    with pytest.raises(EntryError, match="a in entry does not go in the out log"):
        out.append(dataclasses.replace(received, seq=0))
    assert out.size == 0


def test_the_links_plain_append_writes_the_entries_release_and_append_would() -> None:
    # The journal's hot path (append_plain) and the Entry path give the same log, entry for
    # entry: the same bytes, leaves and root, so verification and the exchange see no change.
    plain = Log(A, "org-a.example", "org-b", Direction.OUT)
    full = Log(A, "org-a.example", "org-b", Direction.OUT)
    for i, (rule, policy) in enumerate([("sa", "sha256:v1"), ('r\u00e9"x', ""), ("sa", "v1")]):
        frame = f"<frame n='{i}'/>".encode()
        index, leaf, data, item = plain.append_plain(10 + i, Decision.RELEASED, rule, frame, policy)
        want = full.release(10 + i, rule, frame, policy)
        assert (index, leaf, data, item) == (want.index, want.leaf, want.data, want.entry.item)
    assert plain.tree.root() == full.tree.root()
    mirror = Log(B, "org-b.example", "org-a", Direction.IN)
    index, leaf, data, item = mirror.append_plain(7, Decision.RECEIVED, "", b"got")
    entry = Entry(0, 7, Direction.IN, "org-a", Decision.RECEIVED, "", content_hash(b"got"))
    assert (index, data, item) == (0, encode_entry(entry), entry.item)
    with pytest.raises(EntryError, match="does not go in the out log"):
        plain.append_plain(1, Decision.RECEIVED, "", b"x")
    with pytest.raises(EntryError, match="does not go in the in log"):
        mirror.append_plain(1, Decision.RELEASED, "sa", b"x")
