"""The partner-link lease's pure core: times and answers in, decisions out (no NATS)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.cluster.lease import Acquire, Change, LeaseCore, Renew, lease_bucket


def test_a_standby_acquires_then_renews_on_its_revision() -> None:
    core = LeaseCore(ttl_s=5, renew_s=1, margin_s=1.5, retry_s=0.25)
    assert core.due(0.0) == Acquire()
    assert core.granted(0.0, 7, "a 1") is Change.GAINED
    assert core.holding
    assert core.due(0.5) is None  # not yet due
    assert core.due(1.0) == Renew(7)
    assert core.granted(1.0, 8, "a 1") is None  # still held: nothing to do
    assert core.due(2.0) == Renew(8)
    assert core.gained == 1


def test_a_holder_that_cannot_renew_stops_before_its_write_can_expire() -> None:
    core = LeaseCore(ttl_s=5, renew_s=1, margin_s=1.5, retry_s=0.25)
    core.granted(10.0, 1, "a 1")
    for t in (11.0, 11.25, 12.0, 13.0):
        assert core.failed(t) is None  # NATS unreachable: kept while it cannot have expired
    assert core.check(13.49) is None
    assert core.check(13.5) is Change.LOST  # 10 + 5 - 1.5: before the server drops it at 15
    assert not core.holding
    assert core.check(14.0) is None  # once
    assert core.due(14.0) == Acquire()
    assert (core.lost, core.failures) == (1, 4)


def test_a_holder_s_request_never_waits_past_its_lease() -> None:
    core = LeaseCore(ttl_s=5, renew_s=1, margin_s=1.5, retry_s=0.25)
    assert core.timeout_s(0.0) == 1.0  # a standby's: the default
    core.granted(10.0, 1, "a 1")
    assert core.timeout_s(11.0) == 1.0
    assert core.timeout_s(13.0) == pytest.approx(0.5)  # 13.5 is when the links must stop
    assert core.timeout_s(13.5) == 0.01


def test_refused_means_another_node_holds_it() -> None:
    core = LeaseCore()
    assert core.refused(0.0, "b 2") is None  # a standby stays one
    assert core.holder == "b 2"
    assert core.due(0.1) is None
    assert core.due(core.retry_s) == Acquire()
    core.granted(1.0, 3, "a 1")
    assert core.refused(1.5, "b 2") is Change.LOST  # our compare-and-set lost: stop now


def test_giving_it_back_stops_the_links_once() -> None:
    core = LeaseCore()
    core.granted(0.0, 1, "a 1")
    assert core.released(0.5) is Change.LOST
    assert core.wait_s(0.6) == pytest.approx(core.retry_s - 0.1)  # then tried for again
    assert core.released(0.6) is None


def test_a_node_that_could_not_start_its_links_lets_others_try_first() -> None:
    core = LeaseCore(ttl_s=5, renew_s=1, margin_s=1.5, retry_s=0.25)
    core.granted(0.0, 1, "a 1")
    assert core.released(0.1, hold_off_s=5.0) is Change.LOST
    assert core.due(5.0) is None
    assert core.due(5.1) == Acquire()


def test_settings_that_could_not_be_safe_are_refused() -> None:
    with pytest.raises(ValueError, match="renew_s"):
        LeaseCore(ttl_s=2, renew_s=1, margin_s=1)
    with pytest.raises(ValueError, match="margin_s > 0"):
        LeaseCore(ttl_s=5, renew_s=1, margin_s=0)


def test_bucket_names_are_safe_stream_names() -> None:
    assert lease_bucket("acme") == "ACCORD_LEASES_acme"
    assert "." not in lease_bucket("a.b c")


@dataclass
class Entry:
    holder: str
    revision: int
    written_at: float  # server time


class Bucket:
    """A key-value bucket with a TTL, as the NATS servers keep it (one key)."""

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self.entry: Entry | None = None
        self.revision = 0

    def _live(self, now: float) -> Entry | None:
        if self.entry is not None and now >= self.entry.written_at + self.ttl_s:
            self.entry = None
        return self.entry

    def write(self, now: float, who: str, last: int | None) -> int | None:
        """Create (``last`` None) or compare-and-set; the revision, or None when refused."""
        live = self._live(now)
        if (last is None and live is not None) or (
            last is not None and (live is None or live.revision != last)
        ):
            return None
        self.revision += 1
        self.entry = Entry(who, self.revision, now)
        return self.revision


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 2),  # which node
            st.integers(0, 400),  # from step
            st.integers(1, 200),  # for steps
            st.booleans(),  # dies (never back) or is cut off (back afterwards)
        ),
        max_size=6,
    ),
    st.floats(0.0, 0.2),  # one-way latency to the servers, seconds
)
def test_never_two_holders_whatever_fails(
    faults: list[tuple[int, int, int, bool]], latency: float
) -> None:
    """Three nodes, some cut off or killed at random: at no time do two act as holders, and
    when the holder is gone another takes over within ttl + retry (+ latency)."""
    step = 0.05
    bucket = Bucket(5.0)
    cores = [LeaseCore(ttl_s=5.0, renew_s=1.0, margin_s=1.5, retry_s=0.25) for _ in range(3)]
    names = ["a", "b", "c"]
    dead_from = [10**9] * 3
    cut: list[set[int]] = [set(), set(), set()]
    for node, start, length, dies in faults:
        if dies:
            dead_from[node] = min(dead_from[node], start)
        else:
            cut[node] |= set(range(start, start + length))
    last_holder_seen = 0.0
    for i in range(600):
        now = i * step
        for n, core in enumerate(cores):
            if i >= dead_from[n]:
                core.holding = False  # a dead process runs no links
                continue
            core.check(now)
            request = core.due(now)
            if request is None:
                continue
            if i in cut[n]:
                core.failed(now)
                continue
            last = request.revision if isinstance(request, Renew) else None
            revision = bucket.write(now + latency, names[n], last)
            if revision is None:
                core.refused(now, "other")
            else:
                core.granted(now, revision, names[n])
        holders = [n for n, c in enumerate(cores) if c.holding]
        assert len(holders) <= 1, f"two holders at {now:.2f} s: {holders}"
        alive_reachable = [n for n in range(3) if i < dead_from[n] and i not in cut[n]]
        if holders:
            last_holder_seen = now
        elif alive_reachable and all(
            i - k not in cut[n] for n in alive_reachable for k in range(1, 10)
        ):
            # Someone could hold it: the gap since the last holder is within the bound.
            assert now - last_holder_seen <= 5.0 + 0.25 + latency + 2 * step
