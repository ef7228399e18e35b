"""What the counters add up to: a listener's totals, what was lost, a snapshot for /metrics."""

from __future__ import annotations

import dataclasses

from accord.domain.metrics import Counters, Tally


def test_tallies_add_up_field_by_field() -> None:
    total = Tally()
    for fields in ({"events_in": 3, "malformed": 1}, {"events_in": 2, "queue_dropped": 4}):
        total.add(Tally(**fields, events_out=1, rate_limited=2, queue_coalesced=5))
    assert dataclasses.astuple(total) == (5, 2, 1, 4, 4, 10)


def test_what_is_dropped_is_refused_or_lost_to_a_full_queue_not_coalesced() -> None:
    tally = Tally(events_in=9, malformed=1, rate_limited=2, queue_dropped=3, queue_coalesced=7)
    assert tally.dropped == 6


def test_a_snapshot_is_every_counter_by_name_and_does_not_follow_later_counts() -> None:
    counters = Counters()
    counters.sessions_opened += 2
    snapshot = counters.snapshot()
    counters.sessions_opened += 1
    assert snapshot["sessions_opened"] == 2
    assert set(snapshot) == {f.name for f in dataclasses.fields(Counters)}
