"""Ledger entries: canonical bytes, and which decisions may carry which hash."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accord.ledger.entry import (
    Decision,
    Direction,
    Entry,
    EntryError,
    canonical_json,
    content_hash,
    decode_entry,
    encode_entry,
    encode_plain,
    keyed_hash,
)


def test_released_entry_has_a_stable_canonical_form() -> None:
    e = Entry(0, 1000, Direction.OUT, "org-b", Decision.RELEASED, "own-uas", content_hash(b"x"))
    assert encode_entry(e) == (
        b'{"decision":"released","direction":"out","item":"sha256:2d711642b726b04401627ca9fbac32f5'
        b'c8530fb1903cc4db02258717921a4881","partner":"org-b","rule":"own-uas","seq":0,'
        b'"time_ms":1000,"v":1}'
    )
    assert decode_entry(encode_entry(e)) == e


@given(
    st.integers(0, 2**40),
    st.integers(0, 2**45),
    st.text(max_size=20),
    st.text(max_size=20),
    st.binary(max_size=50),
    st.sampled_from([Decision.RELEASED, Decision.WITHHELD]),
)
def test_entries_round_trip(
    seq: int, t: int, partner: str, rule: str, item: bytes, decision: Decision
) -> None:
    h = content_hash(item) if decision is Decision.RELEASED else keyed_hash(b"k", item)
    e = Entry(seq, t, Direction.OUT, partner, decision, rule, h, policy="p/v3")
    assert decode_entry(encode_entry(e)) == e


def test_mirror_entry_round_trips() -> None:
    e = Entry(
        2,
        5,
        Direction.IN,
        "org-a",
        Decision.RECEIVED,
        "",
        content_hash(b"x"),
        partner_index=9,
        partner_leaf=bytes(range(32)),
    )
    assert decode_entry(encode_entry(e)) == e


def test_a_withheld_item_cannot_be_named_by_its_plain_hash() -> None:
    with pytest.raises(EntryError, match="hmac"):
        Entry(0, 0, Direction.OUT, "b", Decision.WITHHELD, "r", content_hash(b"secret"))
    with pytest.raises(EntryError):
        Entry(0, 0, Direction.OUT, "b", Decision.RELEASED, "r", keyed_hash(b"k", b"x"))
    with pytest.raises(EntryError):
        Entry(0, 0, Direction.OUT, "b", Decision.RECEIVED, "", content_hash(b"x"))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"[]",
        b'{"v":2}',
        b'{"v":1,"seq":0}',
        b'{"decision":"released","direction":"out","item":"sha256:00","partner":"b","rule":"r",'
        b'"seq":0,"time_ms":1, "v":1}',
    ],
)
def test_non_canonical_or_broken_bytes_are_refused(data: bytes) -> None:
    with pytest.raises(EntryError):
        decode_entry(data)


def test_entry_fields_agree_with_decoding_and_name_broken_bytes() -> None:
    from accord.ledger.entry import entry_fields

    e = Entry(
        7,
        5,
        Direction.IN,
        "org-a",
        Decision.RECEIVED,
        "",
        content_hash(b"x"),
        partner_index=9,
        partner_leaf=bytes(32),
    )
    assert entry_fields(encode_entry(e)) == (7, "org-a", Direction.IN, 9)
    bad = encode_entry(e).replace(b'"seq":7', b'"seq":"7"')
    with pytest.raises(EntryError, match="not an integer"):
        entry_fields(bad)
    with pytest.raises(EntryError):
        entry_fields(encode_entry(e).replace(b"received", b"released"))


@given(
    seq=st.integers(0, 2**63),
    time_ms=st.integers(0, 2**63),
    partner=st.text(),
    rule=st.text(),
    policy=st.text(),
    received=st.booleans(),
    partner_index=st.none() | st.integers(0, 2**63),
    partner_leaf=st.none() | st.binary(min_size=32, max_size=32),
)
def test_the_direct_encoding_is_byte_for_byte_the_json_canonical_form(
    seq: int,
    time_ms: int,
    partner: str,
    rule: str,
    policy: str,
    received: bool,
    partner_index: int | None,
    partner_leaf: bytes | None,
) -> None:
    # Any text (quotes, control characters, non-ASCII, surrogates' neighbours) in the names.
    if received:
        e = Entry(
            seq, time_ms, Direction.IN, partner, Decision.RECEIVED, rule, content_hash(b"x"),
            policy, partner_index, partner_leaf,
        )  # fmt: skip
    else:
        e = Entry(
            seq, time_ms, Direction.OUT, partner, Decision.WITHHELD, rule,
            keyed_hash(b"k", b"x"), policy,
        )  # fmt: skip
    assert encode_entry(e) == canonical_json(e)
    assert decode_entry(encode_entry(e)) == e


def test_an_entry_needs_a_natural_sequence_number_and_string_fields() -> None:
    with pytest.raises(EntryError, match="sequence -1 is negative"):
        Entry(-1, 5, Direction.OUT, "b", Decision.RELEASED, "r", content_hash(b"x"))
    good = encode_entry(Entry(0, 5, Direction.OUT, "b", Decision.RELEASED, "r", content_hash(b"x")))
    with pytest.raises(EntryError, match="7 is not a string"):
        decode_entry(good.replace(b'"rule":"r"', b'"rule":7'))


def test_entry_fields_names_what_is_wrong_with_bytes_that_are_not_json() -> None:
    from accord.ledger.entry import entry_fields

    with pytest.raises(EntryError, match="not a ledger entry"):
        entry_fields(b"not json")


@given(
    seq=st.integers(0, 2**63),
    time_ms=st.integers(0, 2**63),
    partner=st.text(),
    rule=st.text(),
    policy=st.text(),
    received=st.booleans(),
    item=st.binary(max_size=64),
)
def test_the_plain_encoding_of_the_links_entries_is_the_canonical_form(
    seq: int, time_ms: int, partner: str, rule: str, policy: str, received: bool, item: bytes
) -> None:
    decision = Decision.RECEIVED if received else Decision.RELEASED
    direction = Direction.IN if received else Direction.OUT
    name = content_hash(item)
    e = Entry(seq, time_ms, direction, partner, decision, rule, name, policy)
    data = encode_plain(decision, partner, rule, policy, name.removeprefix("sha256:"), seq, time_ms)
    assert data == canonical_json(e) == encode_entry(e)
    assert decode_entry(data) == e


def test_the_plain_encoding_refuses_what_an_entry_refuses() -> None:
    digest = content_hash(b"x").removeprefix("sha256:")
    with pytest.raises(EntryError, match="withheld item is not named by sha256"):
        encode_plain(Decision.WITHHELD, "b", "r", "", digest, 0, 5)
    with pytest.raises(EntryError, match="sequence -1 is negative"):
        encode_plain(Decision.RELEASED, "b", "r", "", digest, -1, 5)
