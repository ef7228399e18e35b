"""Acknowledgements of alerts by uid: kept, shared as records, cleared with the alert."""

from __future__ import annotations

import pytest

from accord.domain.alert_acks import Ack, AckBook, decode_ack


def test_an_acknowledgement_is_kept_once_with_its_first_author() -> None:
    book = AckBook()
    first = book.acknowledge("sep.org.abc", "alice", 1000)
    assert first == Ack("sep.org.abc", "alice", 1000)
    again = book.acknowledge("sep.org.abc", "bob", 2000)
    assert again == first
    assert book.views() == [{"uid": "sep.org.abc", "by": "alice", "at": 1000}]


@pytest.mark.parametrize(
    ("uid", "reason"),
    [("", "no uid"), (None, "no uid"), (7, "no uid"), ("x" * 257, "uid too long"),
     ("a\nb", "uid not printable"), (" a", "uid not printable")],
)  # fmt: skip
def test_unusable_uids_are_refused_and_counted(uid: object, reason: str) -> None:
    book = AckBook()
    assert book.acknowledge(uid, "alice", 1) == reason
    assert book.refused[reason] == 1
    assert book.acks == {}


def test_records_round_trip_and_bad_ones_are_counted() -> None:
    book = AckBook()
    ack = Ack("sep.o.k", "carol", 5)
    assert decode_ack(ack.encode()) == ack
    assert book.apply("sep.o.k", ack.encode())
    assert not book.apply("sep.o.k", ack.encode())  # the same again: nothing changed
    assert book.acks["sep.o.k"] == ack
    bad = [b"not json", b"[1]", b'{"uid": "", "by": "x", "at": 1}',
           b'{"uid": "u", "by": 3, "at": 1}', b'{"uid": "u", "by": "x", "at": true}',
           b'{"uid": "u", "by": "x", "at": -1}', b'\xff']  # fmt: skip
    for data in bad:
        assert not book.apply("u", data)
    assert not book.apply("other", ack.encode())  # a record under another key
    assert book.refused["bad record"] == len(bad) + 1
    assert book.apply("sep.o.k", None)  # deleted elsewhere
    assert not book.apply("sep.o.k", None)
    assert book.acks == {}


def test_the_cancel_clears_and_the_book_is_bounded() -> None:
    book = AckBook(limit=2)
    for n in range(3):
        book.acknowledge(f"u{n}", "a" * 500, n)
    assert list(book.acks) == ["u1", "u2"]  # the oldest forgotten
    assert len(book.acks["u1"].by) == 128
    assert book.clear("u1")
    assert not book.clear("u1")
    book.cleared("u2")
    assert book.acks == {}
