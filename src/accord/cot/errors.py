"""The errors the wire protocol raises; nothing else may escape a decoder or splitter."""


class CotError(Exception):
    """Base of every error the wire protocol raises about a peer's bytes."""


class MalformedEvent(CotError):
    """One event is bad: skip it, count it, keep the stream."""


class FramingError(CotError):
    """The frame boundaries are lost: the stream cannot continue and must be closed."""
