"""Flow control, written once: the bounded send queue and the input rate limit.

Both are pure: the adapters call them and count what they return.
"""

from __future__ import annotations

import enum
import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from accord.cot.outgoing import Outgoing


class Push(enum.Enum):
    QUEUED = "queued"
    COALESCED = "coalesced"  # replaced an older position report of the same uid
    DROPPED = "dropped"  # queue full and nothing to replace


class Pushable(Protocol):
    """A bounded queue of events waiting for a client (:class:`SendQueue`, the web feed's)."""

    def push(self, item: Outgoing) -> Push: ...


@dataclass(slots=True)
class Pushed:
    """What :func:`push_all` did with a turn's events: taken (queued or coalesced), of
    which coalesced, and dropped."""

    taken: int = 0
    coalesced: int = 0
    dropped: int = 0


def push_all(queue: Pushable, items: Iterable[Outgoing]) -> Pushed:
    """Queue a turn's events for a client that is not writing now; the caller counts."""
    pushed = Pushed()
    for item in items:
        result = queue.push(item)
        if result is Push.DROPPED:
            pushed.dropped += 1
        else:
            pushed.taken += 1
            if result is Push.COALESCED:
                pushed.coalesced += 1
    return pushed


class SendQueue:
    """A session's bounded queue of events waiting for the socket.

    While there is room, everything is kept in order. When full, a position report replaces
    the queued report of the same uid (a newer position makes the older one worthless); any
    other event is dropped. The caller counts both.
    """

    __slots__ = ("_items", "_keys", "_latest_position", "capacity")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: dict[int, Outgoing] = {}
        self._latest_position: dict[str, int] = {}
        self._keys = itertools.count()

    def __len__(self) -> int:
        return len(self._items)

    def push(self, item: Outgoing) -> Push:
        position = item.is_position
        if len(self._items) >= self.capacity:
            key = self._latest_position.get(item.event.uid) if position else None
            if key is None:
                return Push.DROPPED
            self._items[key] = item
            return Push.COALESCED
        key = next(self._keys)
        self._items[key] = item
        if position:
            self._latest_position[item.event.uid] = key
        return Push.QUEUED

    def drain(self) -> list[Outgoing]:
        items = list(self._items.values())
        self._items.clear()
        self._latest_position.clear()
        return items


class TokenBucket:
    """Input rate limit: ``rate`` events per second, bursts of up to ``burst``."""

    __slots__ = ("_stamp", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._stamp: float | None = None

    def allow(self, now: float) -> bool:
        """Take one token if there is one; ``now`` is any monotonic clock in seconds."""
        if self.rate <= 0:
            return True  # unlimited
        if self._stamp is not None:
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class DropLog:
    """When a session says it is dropping input: at the first drop, then at most once per
    ``interval_s`` with the count since the last line (a flood must not flood the log)."""

    __slots__ = ("_next", "_pending", "interval_s", "total")

    def __init__(self, interval_s: float = 60.0) -> None:
        self.interval_s = interval_s
        self.total = 0
        self._pending = 0
        self._next: float | None = None

    def dropped(self, now: float) -> int:
        """Count one drop at ``now`` (seconds); how many to log now, 0 to stay quiet."""
        self.total += 1
        self._pending += 1
        if self._next is not None and now < self._next:
            return 0
        count, self._pending = self._pending, 0
        self._next = now + self.interval_s
        return count
