"""What a partner checks in the ledger messages it receives, and batch receipts."""

from __future__ import annotations

import pytest

from accord.ledger.entry import Direction
from accord.ledger.exchange import (
    CheckpointMessage,
    ExchangeError,
    Hello,
    PartnerLog,
    ReceiptsMessage,
    decode_checkpoint_message,
    decode_hello,
    decode_receipts,
    encode_checkpoint,
    encode_hello,
    encode_receipts,
    kind_of,
    program,
)
from accord.ledger.log import Appended, Log
from accord.ledger.merkle import Tree, leaf_hash
from accord.ledger.note import NoteError, Signer
from accord.ledger.receipt import Receipt, open_receipts, sign_receipts
from accord.ledger.verify import Inconsistency, LogVerifier

SENDER = Signer.generate("org-a.example")
RECEIVER = Signer.generate("org-b.example")
SECRET = b"s" * 32


def _log(n: int) -> tuple[Log, list[Appended]]:
    out = Log(SENDER, SENDER.name, "org-b", Direction.OUT)
    appended = []
    for i in range(n):
        if i % 3 == 2:
            appended.append(out.withhold(1000 + i, "held", b"<x/>", SECRET))
        else:
            appended.append(out.release(1000 + i, "rule", f"<event n='{i}'/>".encode()))
    return out, appended


def _message(out: Log, appended: list[Appended], start: int, size: int) -> CheckpointMessage:
    released = tuple(
        (a.index, a.data) for a in appended[start:size] if b'"decision":"released"' in a.data
    )
    leaves = tuple(out.tree.leaf(i) for i in range(start, size))
    return CheckpointMessage(out.checkpoint(size), start, leaves, released)


def test_a_partner_checks_checkpoints_against_its_copy_of_the_leaves() -> None:
    out, appended = _log(12)
    copy = PartnerLog(SENDER.verifier)
    first = copy.accept(_message(out, appended, 0, 5))
    assert [r.index for r in first] == [0, 1, 3, 4]
    assert first[0].item.startswith("sha256:")
    second = copy.accept(_message(out, appended, 5, 12))
    assert [r.index for r in second] == [6, 7, 9, 10]
    assert copy.size == 12
    assert copy.origin == out.origin


def test_a_rewritten_history_cannot_be_checkpointed() -> None:
    out, appended = _log(8)
    copy = PartnerLog(SENDER.verifier)
    copy.accept(_message(out, appended, 0, 4))
    # The sender rebuilds its log with entry 1 changed and signs the new root.
    forged = Log(SENDER, SENDER.name, "org-b", Direction.OUT)
    for a in appended:
        forged.release(a.entry.time_ms, "rule", b"changed" if a.index == 1 else a.data)
    message = _message(forged, appended, 4, 8)
    with pytest.raises(ExchangeError, match="root"):
        copy.accept(message)
    assert copy.size == 4  # nothing taken


@pytest.mark.parametrize(
    ("tamper", "why"),
    [
        (lambda m: CheckpointMessage(m.note, 1, m.leaves, m.released), "start at 1"),
        (lambda m: CheckpointMessage(m.note, 0, m.leaves[:-1], m.released), "do not reach"),
        (
            lambda m: CheckpointMessage(m.note, 0, m.leaves, ((0, m.released[1][1]),)),
            "does not hash",
        ),
        (
            lambda m: CheckpointMessage(m.note.replace(b"\n6\n", b"\n7\n"), 0, m.leaves, ()),
            "signature",
        ),
    ],
)
def test_a_message_that_does_not_add_up_is_refused(tamper: object, why: str) -> None:
    out, appended = _log(6)
    copy = PartnerLog(SENDER.verifier)
    with pytest.raises(ExchangeError, match=why):
        copy.accept(tamper(_message(out, appended, 0, 6)))  # type: ignore[operator]
    assert copy.size == 0


def test_a_checkpoint_signed_by_another_key_is_refused() -> None:
    out, appended = _log(3)
    forger = Log(Signer.generate(SENDER.name), SENDER.name, "org-b", Direction.OUT, [
        out.tree.leaf(i) for i in range(3)
    ])  # fmt: skip
    message = _message(out, appended, 0, 3)
    with pytest.raises(ExchangeError, match=r"signature|not signed"):
        PartnerLog(SENDER.verifier).accept(
            CheckpointMessage(forger.checkpoint(3), 0, message.leaves, message.released)
        )


def test_messages_round_trip_and_bad_ones_are_named() -> None:
    out, appended = _log(4)
    message = _message(out, appended, 0, 4)
    assert decode_checkpoint_message(encode_checkpoint(message)) == message
    hello = Hello(SENDER.verifier.vkey(), 7)
    assert decode_hello(encode_hello(hello)) == hello
    receipts = ReceiptsMessage(4, "— line", b"note", "")
    assert decode_receipts(encode_receipts(receipts)) == receipts
    assert kind_of(program("hello")) == "hello"
    assert kind_of("announce package") is None
    with pytest.raises(ExchangeError, match="have"):
        decode_hello(b'{"key": "k", "have": -1}')
    with pytest.raises(ExchangeError, match="leaves"):
        decode_checkpoint_message(b'{"note": "", "start": 0, "leaves": "AAA=", "released": []}')
    with pytest.raises(ExchangeError, match="JSON"):
        decode_receipts(b"\xff")


def test_batch_receipts_open_and_verify_and_a_wrong_leaf_is_named() -> None:
    out, appended = _log(6)
    released = [a for a in appended if b'"decision":"released"' in a.data]
    receipts = [Receipt(out.origin, a.index, a.leaf, n, 5000) for n, a in enumerate(released)]
    note = sign_receipts(receipts, RECEIVER)
    assert open_receipts(note, RECEIVER.verifier) == receipts
    with pytest.raises(NoteError):
        open_receipts(note.replace(b" 0\n", b" 9\n", 1), RECEIVER.verifier)

    def verify(notes: list[bytes]) -> int:
        verifier = LogVerifier(
            partner="org-b",
            direction=Direction.OUT,
            origin=out.origin,
            log_key=SENDER.verifier,
            partner_key=RECEIVER.verifier,
            receipts=notes,
        )
        verifier.feed((a.index, a.data, a.leaf) for a in appended)
        return verifier.finish().receipts

    assert verify([note]) == len(released)
    wrong = [receipts[0], Receipt(out.origin, 1, Tree([b"\0" * 32]).root(), 1, 5000)]
    with pytest.raises(Inconsistency, match="entry 1 disagrees"):
        verify([sign_receipts(wrong, RECEIVER)])


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"[1]", "not a JSON object"),
        (b'{"key": 5, "have": 0}', "key: not a string"),
    ],
)
def test_a_hello_of_the_wrong_shape_is_named(data: bytes, why: str) -> None:
    with pytest.raises(ExchangeError, match=why):
        decode_hello(data)


@pytest.mark.parametrize(
    ("released", "why"),
    [
        ('"none"', "released: not a list"),
        ('[[0, "AAAA", 1]]', r"items are \[index, base64 entry\]"),
        ('[[-1, "AAAA"]]', "index is not a natural number"),
        ('[["0", "AAAA"]]', "index is not a natural number"),
        ('[[0, "not base64!"]]', "released entry: not base64"),
    ],
)
def test_a_checkpoint_message_with_bad_released_items_is_named(released: str, why: str) -> None:
    data = f'{{"note": "", "start": 0, "leaves": "", "released": {released}}}'.encode()
    with pytest.raises(ExchangeError, match=why):
        decode_checkpoint_message(data)


def test_only_an_out_log_towards_us_of_one_origin_is_accepted() -> None:
    inbound = Log(SENDER, SENDER.name, "org-b", Direction.IN)
    copy = PartnerLog(SENDER.verifier)
    with pytest.raises(ExchangeError, match="is not an out log"):
        copy.accept(CheckpointMessage(inbound.checkpoint(), 0, (), ()))
    out, appended = _log(2)
    copy.accept(_message(out, appended, 0, 2))
    other = Log(SENDER, SENDER.name, "org-c", Direction.OUT)
    with pytest.raises(ExchangeError, match=r"was 'org-a\.example/.*org-b/out'"):
        copy.accept(CheckpointMessage(other.checkpoint(), 2, (), ()))
    assert copy.size == 2


def test_a_log_that_shrank_is_refused() -> None:
    out, appended = _log(4)
    copy = PartnerLog(SENDER.verifier)
    copy.accept(_message(out, appended, 0, 4))
    with pytest.raises(ExchangeError, match="the log shrank"):
        copy.accept(CheckpointMessage(out.checkpoint(2), 4, (), ()))
    assert copy.size == 4


def test_released_items_must_be_releases_inside_the_checkpoint() -> None:
    out, appended = _log(4)
    message = _message(out, appended, 0, 3)
    withheld = appended[2]  # i % 3 == 2: withheld, its leaf is in the log
    for released, why in (
        (((3, appended[3].data),), "released entry 3 is outside this checkpoint"),
        (((2, withheld.data),), "entry 2 is not a release at that index"),
    ):
        copy = PartnerLog(SENDER.verifier)
        with pytest.raises(ExchangeError, match=why):
            copy.accept(CheckpointMessage(message.note, 0, message.leaves, released))
        assert copy.size == 0  # nothing taken


def test_a_released_item_that_is_not_json_is_refused() -> None:
    data = b"not json"
    out = Log(SENDER, SENDER.name, "org-b", Direction.OUT, [leaf_hash(data)])
    message = CheckpointMessage(out.checkpoint(1), 0, (leaf_hash(data),), ((0, data),))
    with pytest.raises(ExchangeError, match="released entry 0 is not JSON"):
        PartnerLog(SENDER.verifier).accept(message)


def test_a_release_is_read_alike_in_canonical_form_and_in_any_other_json() -> None:
    # The canonical form is read by a pattern, anything else by json.loads: the same item, and
    # the same refusal of a release that names another index than its place in the log.
    from accord.ledger.entry import Decision, Entry, content_hash, encode_entry

    def entry(seq: int, rule: str = 'r\u00e9 "x"', policy: str = "v1") -> bytes:
        item = content_hash(b"<e/>")
        return encode_entry(
            Entry(seq, 5, Direction.OUT, "org-b", Decision.RELEASED, rule, item, policy)
        )

    canonical = entry(0)
    spaced = canonical.replace(b'","partner"', b'", "partner"')
    for data in (canonical, spaced, entry(0, rule="", policy="")):
        out = Log(SENDER, SENDER.name, "org-b", Direction.OUT, [leaf_hash(data)])
        message = CheckpointMessage(out.checkpoint(1), 0, (leaf_hash(data),), ((0, data),))
        (got,) = PartnerLog(SENDER.verifier).accept(message)
        assert (got.index, got.leaf, got.item) == (0, leaf_hash(data), content_hash(b"<e/>"))
    for data in (entry(1), entry(1).replace(b'","partner"', b'", "partner"')):
        out = Log(SENDER, SENDER.name, "org-b", Direction.OUT, [leaf_hash(data)])
        message = CheckpointMessage(out.checkpoint(1), 0, (leaf_hash(data),), ((0, data),))
        with pytest.raises(ExchangeError, match="entry 0 is not a release at that index"):
            PartnerLog(SENDER.verifier).accept(message)
