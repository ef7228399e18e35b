"""``accord drone replay``: a telemetry log sent to a UDP drone feed at ``--speed``, with
progress: the log time reached, the vehicles heard so far and the rate. On a terminal it is
one line that rewrites itself a few times a second; into a file or a pipe, a line every
``LOG_INTERVAL_S``; and a summary at the end either way.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TextIO

from accord.bridges.tlog import Record
from accord.bridges.uas import VEHICLE_TYPES

TTY_INTERVAL_S = 0.2
LOG_INTERVAL_S = 5.0
_V1, _V2 = 0xFE, 0xFD
_HEARTBEAT = 0


def heartbeat_vehicle(frame: bytes) -> int | None:
    """The system id of a vehicle's HEARTBEAT frame (not a ground station's, gimbal's…)."""
    if len(frame) < 8:
        return None
    if frame[0] == _V1:
        sysid, msgid, payload = frame[3], frame[5], frame[6 : 6 + frame[1]]
    elif frame[0] == _V2 and len(frame) >= 12:
        sysid, msgid = frame[5], int.from_bytes(frame[7:10], "little")
        payload = frame[10 : 10 + frame[1]]
    else:
        return None
    if msgid != _HEARTBEAT:
        return None
    mav_type = payload[4] if len(payload) > 4 else 0  # MAVLink 2 trims trailing zeros
    return sysid if mav_type in VEHICLE_TYPES else None


def _clock(seconds: float) -> str:
    minutes, s = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{s:02d}" if hours else f"{minutes}:{s:02d}"


@dataclass
class Progress:
    """What a replay has done so far, as one line."""

    records: int
    duration_s: float  # log time from the first record to the last
    sent: int = 0
    log_s: float = 0.0
    vehicles: set[int] = field(default_factory=set)

    def add(self, record: Record, log_s: float) -> None:
        self.sent += 1
        self.log_s = log_s
        sysid = heartbeat_vehicle(record.frame)
        if sysid is not None:
            self.vehicles.add(sysid)

    def line(self, elapsed_s: float) -> str:
        rate = self.sent / elapsed_s if elapsed_s > 0 else 0.0
        done = self.log_s / self.duration_s if self.duration_s > 0 else self.sent / self.records
        share = 100 * done if self.records else 100.0
        return (
            f"{_clock(self.log_s)} / {_clock(self.duration_s)} of the log ({share:.0f} %), "
            f"{len(self.vehicles)} vehicle{'' if len(self.vehicles) == 1 else 's'}, "
            f"{self.sent:,} messages, {rate:,.0f} msg/s"
        )


def replay(
    records: Sequence[Record],
    sock: socket.socket,
    to: tuple[str, int],
    speed: float,
    out: TextIO,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Progress:
    """Send each record when its turn comes at ``speed``, reporting progress to ``out``."""
    tty = out.isatty()
    interval = TTY_INTERVAL_S if tty else LOG_INTERVAL_S
    first = records[0].time_us
    progress = Progress(len(records), (records[-1].time_us - first) / 1e6)
    start = clock()
    shown = start
    for record in records:
        log_s = (record.time_us - first) / 1e6
        delay = start + log_s / speed - clock()
        if delay > 0:
            sleep(delay)
        sock.sendto(record.frame, to)
        progress.add(record, log_s)
        now = clock()
        if now - shown >= interval:
            shown = now
            if tty:
                out.write("\r\x1b[K" + progress.line(now - start))
            else:
                out.write(progress.line(now - start) + "\n")
            out.flush()
    final = progress.line(clock() - start)
    out.write(("\r\x1b[K" if tty else "") + final + "\n")
    out.flush()
    return progress
