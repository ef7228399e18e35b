"""Acknowledgements of alerts: who acknowledged which alert uid, and when (issue 17).

An operator acknowledges an alert on the web map (its entry greys and its highlight stops).
The server keeps the acknowledgement by alert uid, so every browser of the server, and in a
cluster every browser of every node, shows it acknowledged; the alert's cancel forgets it (a
later conflict of the same pair is a new alert to acknowledge).

:class:`AckBook` is pure: acknowledgements in (from the API, or from the cluster's bucket as
bytes), what to show and what to write out. Bad input (an unusable uid, a record that is not
the documented JSON) is refused and counted, never raised.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass

MAX_UID_CHARS = 256
MAX_BY_CHARS = 128
MAX_ACKS = 10_000  # beyond, the oldest are forgotten (alerts stale within a minute anyway)


@dataclass(frozen=True, slots=True)
class Ack:
    uid: str  # the alert's uid
    by: str  # who acknowledged it (certificate CN or user name)
    at_ms: int

    def encode(self) -> bytes:
        return json.dumps({"uid": self.uid, "by": self.by, "at": self.at_ms}).encode()

    def view(self) -> dict[str, str | int]:
        return {"uid": self.uid, "by": self.by, "at": self.at_ms}


def uid_problem(uid: object) -> str | None:
    """Why ``uid`` cannot be an alert's uid, or None."""
    if not isinstance(uid, str) or not uid:
        return "no uid"
    if len(uid) > MAX_UID_CHARS:
        return "uid too long"
    if not uid.isprintable() or uid != uid.strip():
        return "uid not printable"
    return None


def decode_ack(data: bytes) -> Ack | None:
    """The record :meth:`Ack.encode` wrote, or None when it is not one."""
    try:
        table = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(table, dict):
        return None
    uid, by, at = table.get("uid"), table.get("by"), table.get("at")
    if uid_problem(uid) is not None or not isinstance(by, str) or len(by) > MAX_BY_CHARS:
        return None
    if not isinstance(at, int) or isinstance(at, bool) or at < 0:
        return None
    assert isinstance(uid, str)
    return Ack(uid, by, at)


class AckBook:
    """The acknowledgements this server shows, by alert uid."""

    def __init__(self, limit: int = MAX_ACKS) -> None:
        self.acks: dict[str, Ack] = {}
        self._limit = limit
        self.refused: Counter[str] = Counter()  # bad input, by reason

    def acknowledge(self, uid: object, by: str, now_ms: int) -> Ack | str:
        """An operator acknowledged ``uid``: the record to keep (and share), or why not. An
        alert acknowledged already keeps its first acknowledgement."""
        problem = uid_problem(uid)
        if problem is not None:
            self.refused[problem] += 1
            return problem
        assert isinstance(uid, str)
        known = self.acks.get(uid)
        if known is not None:
            return known
        ack = Ack(uid, by[:MAX_BY_CHARS], now_ms)
        self._put(ack)
        return ack

    def apply(self, uid: str, data: bytes | None) -> bool:
        """A record from the shared bucket (None: deleted); True when what is shown changed."""
        if data is None:
            return self.acks.pop(uid, None) is not None
        ack = decode_ack(data)
        if ack is None or ack.uid != uid:
            self.refused["bad record"] += 1
            return False
        if self.acks.get(uid) == ack:
            return False
        self._put(ack)
        return True

    def clear(self, uid: str) -> bool:
        """The alert was cancelled: its acknowledgement goes with it."""
        return self.acks.pop(uid, None) is not None

    def cleared(self, uid: str) -> None:
        """As :meth:`clear` (the coordination's ``cancelled`` hook)."""
        self.clear(uid)

    def views(self) -> list[dict[str, str | int]]:
        return [a.view() for a in self.acks.values()]

    def _put(self, ack: Ack) -> None:
        self.acks.pop(ack.uid, None)
        self.acks[ack.uid] = ack
        while len(self.acks) > self._limit:
            del self.acks[next(iter(self.acks))]
