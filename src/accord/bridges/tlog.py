"""Telemetry logs (``.tlog``): each record is an 8-byte big-endian microsecond timestamp and one
MAVLink frame, as QGroundControl and MAVProxy write them.

The frame length is read from its header (MAVLink 1: 0xFE, MAVLink 2: 0xFD, signed frames 13
bytes longer), so a reader needs no parser; a record that does not start with a magic byte is
skipped byte by byte until one does (a log cut while writing, or a mangled copy).

Real logs carry messages that this dialect defines differently: an autopilot of another
generation, or another dialect, uses the same message id for another message (the dronekit
flight log sends message 142 with a 5-byte payload once a second; today's 142 is
RESOURCE_REQUEST, 243 bytes). Its checksum, seeded with our CRC_EXTRA for that id, fails, and a
parser reports a bad frame, although the frame is intact. :func:`foreign_definition` tells
them apart: the checksum of an intact frame holds for some other CRC_EXTRA, that of a frame
damaged on the way holds for one of the 256 only by chance (1 in 256).
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


def _x25(data: bytes | bytearray, crc: int = 0xFFFF) -> int:
    """MAVLink's checksum: CRC-16/MCRF4XX (X.25 polynomial, reflected, no final xor)."""
    for byte in data:
        tmp = (byte ^ crc) & 0xFF
        tmp = (tmp ^ (tmp << 4)) & 0xFF
        crc = ((crc >> 8) ^ (tmp << 8) ^ (tmp << 3) ^ (tmp >> 4)) & 0xFFFF
    return crc


def foreign_definition(frame: bytes | bytearray) -> bool:
    """True when ``frame`` is a whole MAVLink frame whose checksum holds for some CRC_EXTRA:
    intact, but of a message this dialect defines differently (see the module docstring)."""
    length = frame_length(frame, 0)
    if length is None or len(frame) < length:
        return False
    header = 6 if frame[0] == _V1 else 10
    end = header + frame[1]
    (received,) = struct.unpack_from("<H", frame, end)
    partial = _x25(frame[1:end])
    return any(_x25(bytes((extra,)), partial) == received for extra in range(256))


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
