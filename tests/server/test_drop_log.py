"""The rate-limit log: at the first drop, then at most once per interval with the count."""

from __future__ import annotations

from accord.domain.flow import DropLog


def test_first_drop_is_reported_then_counts_at_most_once_per_interval() -> None:
    drops = DropLog(60.0)
    assert drops.dropped(100.0) == 1
    assert [drops.dropped(100.0 + i) for i in range(1, 59)] == [0] * 58
    assert drops.dropped(160.0) == 59  # the ones since the last line, this one included
    assert drops.dropped(161.0) == 0
    assert drops.dropped(500.0) == 2
    assert drops.total == 62
