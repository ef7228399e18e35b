"""Counters for everything that is accepted, delivered, refused or dropped."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(slots=True)
class Counters:
    sessions_opened: int = 0
    sessions_closed: int = 0
    connections_refused: int = 0  # over max_connections
    tls_handshake_failed: int = 0
    events_in: int = 0
    events_delivered: int = 0  # one per recipient
    malformed: int = 0  # bad event skipped, stream kept
    framing_lost: int = 0  # stream closed: framing could not be recovered
    rate_limited: int = 0  # input over the per-session rate
    queue_dropped: int = 0  # send queue full
    queue_coalesced: int = 0  # older position replaced in a full queue
    blocked_closed: int = 0  # session closed for not reading
    pings: int = 0
    control_consumed: int = 0
    udp_in: int = 0
    udp_malformed: int = 0
    auth_failed: int = 0  # plain-TCP <auth> missing or wrong
    enrolled: int = 0  # client certificates signed through the enrollment API
    enroll_refused: int = 0  # bad CSR
    enroll_auth_failed: int = 0  # wrong user name or password
    enroll_throttled: int = 0  # refused for too many wrong passwords
    http_timed_out: int = 0  # HTTP requests closed for headers or body too slow (408)
    archived: int = 0  # events written to the history
    archive_dropped: int = 0  # not archived: the history queue was full (store too slow)
    archive_failed: int = 0  # not archived: the store refused the batch

    def snapshot(self) -> dict[str, int]:
        return asdict(self)


@dataclass(slots=True)
class Tally:
    """The traffic of one session, or what closed sessions of one listener added up to.

    Bumped on the hot path with plain integer increments; nothing else is done per event. A
    listener's totals are its closed sessions' tallies plus its live ones, summed when read.
    """

    events_in: int = 0  # events routed (after the rate limit)
    events_out: int = 0  # events taken for this client: written or queued
    malformed: int = 0
    rate_limited: int = 0
    queue_dropped: int = 0  # send queue full
    queue_coalesced: int = 0  # an older position report replaced in the full queue

    def add(self, other: Tally) -> None:
        self.events_in += other.events_in
        self.events_out += other.events_out
        self.malformed += other.malformed
        self.rate_limited += other.rate_limited
        self.queue_dropped += other.queue_dropped
        self.queue_coalesced += other.queue_coalesced

    @property
    def dropped(self) -> int:
        """Events lost: refused as malformed or over the rate, or dropped for a full queue."""
        return self.malformed + self.rate_limited + self.queue_dropped
