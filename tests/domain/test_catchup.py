"""The latest-SA log that sessions behind on SAs read from by cursor."""

from __future__ import annotations

from accord.cot.outgoing import Outgoing
from accord.domain.catchup import SaLog
from accord.domain.groups import Membership
from tests.cot.samples import sa_event

BLUE = Membership.both(["Blue"])
RED = Membership.both(["Red"])


def sa(uid: str, n: int = 0) -> Outgoing:
    return Outgoing(sa_event(uid, uid.upper(), now_ms=1_700_000_000_000 + n))


def uids(items: list[Outgoing]) -> list[str]:
    return [item.event.uid for item in items]


def test_a_cursor_reads_only_the_latest_sa_of_each_uid_updated_after_it() -> None:
    log = SaLog()
    log.put("a", sa("a"), BLUE)
    cursor = log.put("b", sa("b"), BLUE)
    log.put("a", sa("a", 1), BLUE)  # supersedes a's first SA
    log.put("c", sa("c"), RED)
    items, new_cursor, _ = log.since(0, lambda e: True, items=10, scan=10)
    assert uids(items) == ["b", "a", "c"]
    assert new_cursor == log.head
    items, _, _ = log.since(cursor, lambda e: True, items=10, scan=10)
    assert uids(items) == ["a", "c"]


def test_reading_is_bounded_by_items_and_by_scan() -> None:
    log = SaLog()
    for i in range(10):
        log.put(f"u{i}", sa(f"u{i}"), BLUE)
    items, cursor, read = log.since(0, lambda e: True, items=3, scan=100)
    assert (uids(items), read) == (["u0", "u1", "u2"], 3)
    items, cursor, read = log.since(cursor, lambda e: e.item.event.uid == "u9", items=10, scan=4)
    assert (items, read) == ([], 4)
    items, cursor, _ = log.since(cursor, lambda e: True, items=10, scan=10)
    assert uids(items) == ["u7", "u8", "u9"]
    assert cursor == log.head


def test_groups_index_follows_a_uid_that_changes_groups_and_leaves() -> None:
    log = SaLog()
    log.put("a", sa("a"), BLUE)
    log.put("b", sa("b"), BLUE)
    log.put("a", sa("a", 1), RED)
    assert log.audible(lambda m: m == BLUE) == 1
    assert uids([e.item for e in log.latest_from(lambda m: m == RED)]) == ["a"]
    log.remove("a")
    log.remove("a")  # twice is nothing
    assert log.audible(lambda m: m == RED) == 0
    assert log.get("a") is None
    assert len(log) == 1


def test_pruning_forgets_what_is_refused_and_keeps_reading_in_order() -> None:
    log = SaLog()
    for i in range(6):
        log.put(f"u{i}", sa(f"u{i}"), BLUE if i % 2 else RED)
    log.prune(lambda e: e.sender == BLUE)
    assert len(log) == 3
    assert log.audible(lambda m: True) == 3
    items, _, _ = log.since(0, lambda e: True, items=10, scan=10)
    assert uids(items) == ["u1", "u3", "u5"]


def test_superseded_entries_are_compacted_away() -> None:
    log = SaLog()
    for n in range(3000):
        log.put("only", sa("only", n), BLUE)
    items, _, read = log.since(0, lambda e: True, items=10, scan=10_000)
    assert uids(items) == ["only"]
    assert read < 1100  # the order list was compacted, not 3,000 long
