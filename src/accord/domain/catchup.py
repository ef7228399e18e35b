"""The latest SA of every uid in update order, for sessions that are behind (issue 13 §1).

A session behind on SAs (a newcomer, or one whose socket is full) needs only the latest SA of
each uid it may hear, not every SA sent meanwhile. Instead of queueing frames per session, the
hub keeps one :class:`SaLog` and each behind session a *cursor*: the sequence number up to which
it has everything. Catching up is reading the log from the cursor, a slice per loop turn, so a
session's pending work is bounded by the number of uids, not by the number of events, and costs
no memory per session beyond its cursor.

Pure: the caller passes the filter (groups, staleness) and counts what it does.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable
from dataclasses import dataclass

from accord.cot.outgoing import Outgoing
from accord.domain.groups import Membership


@dataclass(frozen=True, slots=True)
class LogEntry:
    seq: int
    item: Outgoing
    sender: Membership  # the groups it was sent with (who may hear it)


class SaLog:
    """uid -> its latest SA, with a sequence number per update; readable from any cursor."""

    __slots__ = ("_by_sender", "_counter", "_latest", "_order", "head")

    def __init__(self) -> None:
        self._latest: dict[str, LogEntry] = {}
        # The same entries by the groups they were sent with: a newcomer that may hear only
        # its own group's few finds them without reading everyone's.
        self._by_sender: dict[Membership, dict[str, LogEntry]] = {}
        # (seq, uid) in seq order; superseded pairs are skipped on read and compacted away.
        self._order: list[tuple[int, str]] = []
        self._counter = itertools.count(1)
        self.head = 0  # the newest seq handed out; 0: nothing yet

    def __len__(self) -> int:
        return len(self._latest)

    def get(self, uid: str) -> LogEntry | None:
        return self._latest.get(uid)

    def put(self, uid: str, item: Outgoing, sender: Membership) -> int:
        """``item`` is now the latest SA of ``uid``; returns its sequence number."""
        seq = self.head = next(self._counter)
        old = self._latest.get(uid)
        if old is not None and old.sender != sender:
            self._unfile(uid, old)
        entry = self._latest[uid] = LogEntry(seq, item, sender)
        self._by_sender.setdefault(sender, {})[uid] = entry
        self._order.append((seq, uid))
        if len(self._order) > 2 * len(self._latest) + 1024:
            self._compact()
        return seq

    def remove(self, uid: str) -> None:
        old = self._latest.pop(uid, None)
        if old is not None:
            self._unfile(uid, old)

    def prune(self, keep: Callable[[LogEntry], bool]) -> None:
        """Forget the entries ``keep`` refuses (SAs nobody holds any more)."""
        for uid in [u for u, e in self._latest.items() if not keep(e)]:
            self.remove(uid)
        self._by_sender = {m: dict(entries) for m, entries in self._by_sender.items()}
        self._compact()

    def audible(self, hears: Callable[[Membership], bool]) -> int:
        """How many entries were sent by groups that ``hears`` accepts (an upper bound of
        what a newcomer is due: stale ones are still counted)."""
        return sum(len(entries) for m, entries in self._by_sender.items() if hears(m))

    def latest_from(self, hears: Callable[[Membership], bool]) -> list[LogEntry]:
        """Every entry sent by groups that ``hears`` accepts, in no particular order."""
        out: list[LogEntry] = []
        for m, entries in self._by_sender.items():
            if hears(m):
                out.extend(entries.values())
        return out

    def _unfile(self, uid: str, entry: LogEntry) -> None:
        entries = self._by_sender.get(entry.sender)
        if entries is not None:
            entries.pop(uid, None)
            if not entries:
                del self._by_sender[entry.sender]

    def since(
        self,
        cursor: int,
        want: Callable[[LogEntry], bool],
        *,
        items: int,
        scan: int,
        upto: int | None = None,
    ) -> tuple[list[Outgoing], int, int]:
        """The latest SAs updated after ``cursor`` (and not after ``upto``, by default the head)
        that ``want`` accepts, oldest first.

        Reads at most ``scan`` entries and returns at most ``items``: ``(items, cursor, read)``
        where the new cursor is where to go on from (``upto`` once caught up) and ``read`` how
        many entries were looked at (the caller's time budget)."""
        order, latest = self._order, self._latest
        upto = self.head if upto is None else upto
        start = bisect.bisect_right(order, (cursor, "\U0010ffff"))
        end = bisect.bisect_right(order, (upto, "\U0010ffff"), lo=start)
        out: list[Outgoing] = []
        stop = min(end, start + scan)
        i = start
        while i < stop and len(out) < items:
            seq, uid = order[i]
            i += 1
            entry = latest.get(uid)
            if entry is not None and entry.seq == seq and want(entry):
                out.append(entry.item)
        new_cursor = order[i - 1][0] if i > start else cursor
        if i >= end:
            new_cursor = max(new_cursor, upto)
        return out, new_cursor, i - start

    def _compact(self) -> None:
        self._order = sorted((e.seq, uid) for uid, e in self._latest.items())
