"""The errors the wire protocol raises; nothing else may escape a decoder or splitter."""

from __future__ import annotations

import enum


class CotError(Exception):
    """Base of every error the wire protocol raises about a peer's bytes."""


class Malformation(enum.StrEnum):
    """Why an event was refused, as a short fixed label (metrics count by it; the exception's
    message gives the detail, which is free text and unbounded)."""

    TOO_LARGE = "too_large"  # over max_event_bytes
    NOT_WELL_FORMED = "not_well_formed"  # XML syntax error, empty document
    FORBIDDEN_XML = "forbidden_xml"  # DOCTYPE/ENTITY declarations
    TOO_DEEP = "too_deep"  # <detail> nests deeper than max_depth
    NOT_PROTOBUF = "not_protobuf"  # the payload is not a TakMessage
    UNKNOWN_FORMAT = "unknown_format"  # a datagram that is neither XML nor mesh v1
    INVALID_EVENT = "invalid_event"  # parses, but is no valid CoT event (attributes, point...)


class MalformedEvent(CotError):
    """One event is bad: skip it, count it, keep the stream."""

    def __init__(self, message: str, reason: Malformation = Malformation.INVALID_EVENT) -> None:
        super().__init__(message)
        self.reason = reason


class FramingError(CotError):
    """The frame boundaries are lost: the stream cannot continue and must be closed."""
