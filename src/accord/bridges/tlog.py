"""Telemetry logs (``.tlog``): each record is an 8-byte big-endian microsecond timestamp and one
MAVLink frame, as QGroundControl and MAVProxy write them.

The frame length is read from its header (MAVLink 1: 0xFE, MAVLink 2: 0xFD, signed frames 13
bytes longer), so a reader needs no parser; a record that does not start with a magic byte is
skipped byte by byte until one does (a log cut while writing, or a mangled copy).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

_V1, _V2 = 0xFE, 0xFD
_SIGNED = 0x01
_SIGNATURE_BYTES = 13
_STAMP = struct.Struct(">Q")


@dataclass(frozen=True, slots=True)
class Record:
    time_us: int
    frame: bytes


def frame_length(data: bytes | bytearray, at: int) -> int | None:
    """Length of the MAVLink frame starting at ``at``, or None without a magic byte there."""
    if at + 3 > len(data):
        return None
    magic, payload = data[at], data[at + 1]
    if magic == _V1:
        return 6 + payload + 2
    if magic == _V2:
        signed = data[at + 2] & _SIGNED
        return 10 + payload + 2 + (_SIGNATURE_BYTES if signed else 0)
    return None


def decode_tlog(data: bytes) -> Iterator[Record]:
    """The records of a whole log; a torn last record is left out."""
    at, end = 0, len(data)
    while at + 8 < end:
        length = frame_length(data, at + 8)
        if length is None:
            at += 1  # resynchronise on the next plausible record
            continue
        if at + 8 + length > end:
            return
        (stamp,) = _STAMP.unpack_from(data, at)
        yield Record(stamp, bytes(data[at + 8 : at + 8 + length]))
        at += 8 + length


def encode_record(time_us: int, frame: bytes) -> bytes:
    return _STAMP.pack(time_us) + frame
