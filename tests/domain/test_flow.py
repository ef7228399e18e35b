"""Flow control written once: the bounded send queue and the input token bucket."""

from __future__ import annotations

import pytest

from accord.cot.outgoing import Outgoing
from accord.domain.flow import Push, SendQueue, TokenBucket
from tests.cot.samples import make_event


def position(uid: str, n: int = 0) -> Outgoing:
    return Outgoing(make_event(uid, "a-f-G-U-C", now_ms=1_700_000_000_000 + n))


def other(uid: str) -> Outgoing:
    return Outgoing(make_event(uid, "b-t-f"))


def test_queue_keeps_everything_in_order_while_there_is_room() -> None:
    queue = SendQueue(capacity=4)
    items = [position("A", 1), other("chat"), position("A", 2), position("B")]
    assert [queue.push(item) for item in items] == [Push.QUEUED] * 4
    assert len(queue) == 4
    assert queue.drain() == items


def test_full_queue_replaces_the_queued_position_of_the_same_uid_in_place() -> None:
    queue = SendQueue(capacity=3)
    a1, chat, b1 = position("A", 1), other("chat"), position("B", 1)
    for item in (a1, chat, b1):
        queue.push(item)
    a2 = position("A", 2)
    assert queue.push(a2) is Push.COALESCED
    assert len(queue) == 3
    a3 = position("A", 3)
    assert queue.push(a3) is Push.COALESCED
    assert queue.drain() == [a3, chat, b1]


def test_full_queue_coalesces_into_the_latest_report_of_that_uid() -> None:
    queue = SendQueue(capacity=3)
    a1, a2, b1 = position("A", 1), position("A", 2), position("B", 1)
    for item in (a1, a2, b1):
        queue.push(item)
    a3 = position("A", 3)
    assert queue.push(a3) is Push.COALESCED
    assert queue.drain() == [a1, a3, b1]


def test_full_queue_drops_anything_else() -> None:
    queue = SendQueue(capacity=2)
    queued = [position("A"), other("chat-1")]
    for item in queued:
        queue.push(item)
    assert queue.push(other("chat-2")) is Push.DROPPED
    assert queue.push(position("C")) is Push.DROPPED  # no queued report of C to replace
    # A non-position event with a queued position's uid is not a replacement either.
    assert queue.push(other("A")) is Push.DROPPED
    assert queue.drain() == queued


def test_drain_empties_the_queue_and_forgets_positions() -> None:
    queue = SendQueue(capacity=1)
    queue.push(position("A", 1))
    assert len(queue.drain()) == 1
    assert len(queue) == 0
    assert queue.drain() == []
    a2 = position("A", 2)
    assert queue.push(a2) is Push.QUEUED
    assert queue.push(position("A", 3)) is Push.COALESCED
    assert len(queue.drain()) == 1


def test_zero_capacity_queue_drops_everything() -> None:
    queue = SendQueue(capacity=0)
    assert queue.push(position("A")) is Push.DROPPED
    assert queue.push(other("x")) is Push.DROPPED
    assert queue.drain() == []


# -- token bucket ---------------------------------------------------------------------------------


def test_bucket_allows_a_burst_then_refuses() -> None:
    bucket = TokenBucket(rate=2.0, burst=3.0)
    assert [bucket.allow(100.0) for _ in range(4)] == [True, True, True, False]


def test_bucket_refills_at_its_rate() -> None:
    bucket = TokenBucket(rate=2.0, burst=3.0)
    for _ in range(3):
        bucket.allow(100.0)
    assert not bucket.allow(100.25)  # half a token
    assert bucket.allow(100.5)  # one token (0.5 s x 2/s, counted from the last call)
    assert not bucket.allow(100.5)


def test_bucket_never_holds_more_than_its_burst() -> None:
    bucket = TokenBucket(rate=10.0, burst=2.0)
    bucket.allow(0.0)
    results = [bucket.allow(3600.0) for _ in range(3)]
    assert results == [True, True, False]


def test_steady_input_at_the_rate_is_always_allowed() -> None:
    bucket = TokenBucket(rate=4.0, burst=1.0)
    assert all(bucket.allow(t * 0.25) for t in range(100))


def test_input_faster_than_the_rate_is_cut_to_the_rate() -> None:
    bucket = TokenBucket(rate=10.0, burst=5.0)
    allowed = sum(bucket.allow(t * 0.01) for t in range(1000))  # 100 events/s for 10 s
    assert allowed == pytest.approx(5 + 10 * 10, abs=2)


@pytest.mark.parametrize("rate", [0.0, -1.0])
def test_bucket_with_no_rate_is_unlimited(rate: float) -> None:
    bucket = TokenBucket(rate=rate, burst=0.0)
    assert all(bucket.allow(0.0) for _ in range(1000))


def test_push_all_says_what_it_took_coalesced_and_dropped() -> None:
    from accord.domain.flow import push_all

    queue = SendQueue(capacity=2)
    a1, chat, a2, b1, chat2 = (
        position("A", 1),
        other("c1"),
        position("A", 2),
        position("B"),
        other("c2"),
    )
    pushed = push_all(queue, [a1, chat, a2, b1, chat2])
    # a1 and chat fill it; a2 replaces a1; B has nothing to replace; c2 finds no room
    assert (pushed.taken, pushed.coalesced, pushed.dropped) == (3, 1, 2)
    assert queue.drain() == [a2, chat]
