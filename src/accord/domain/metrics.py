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
    archived: int = 0  # events written to the history
    archive_dropped: int = 0  # not archived: the history queue was full (store too slow)
    archive_failed: int = 0  # not archived: the store refused the batch

    def snapshot(self) -> dict[str, int]:
        return asdict(self)
