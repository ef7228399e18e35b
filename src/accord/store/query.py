"""History queries from text (HTTP parameters, command-line options), with clear refusals."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping

from accord.store.records import DEFAULT_PAGE, BBox, Cursor, HistoryQuery

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd])$")
_UNITS_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


class QueryError(ValueError):
    """A parameter is malformed; the message names it and the accepted forms."""


def parse_time(name: str, text: str, now_ms: int) -> int:
    """ISO 8601 (``2026-11-29T10:00:00Z``; no zone = UTC), epoch milliseconds, or an age
    such as ``90s``, ``15m``, ``2h``, ``7d`` (that long before now)."""
    text = text.strip()
    relative = _RELATIVE.match(text)
    if relative:
        return now_ms - int(float(relative.group(1)) * _UNITS_MS[relative.group(2)])
    if text.isdigit():
        return int(text)
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise QueryError(
            f"{name}={text!r} is not a time: use ISO 8601 (2026-11-29T10:00:00Z), epoch "
            "milliseconds, or an age like 15m, 2h, 7d"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp() * 1000)


def parse_bbox(text: str) -> BBox:
    """``south,west,north,east`` in decimal degrees."""
    parts = text.split(",")
    try:
        if len(parts) != 4:
            raise ValueError("four numbers")
        south, west, north, east = (float(p) for p in parts)
        return BBox(south, west, north, east)
    except ValueError as exc:
        raise QueryError(f"bbox={text!r} is not south,west,north,east in degrees ({exc})") from None


def parse_history_query(
    params: Mapping[str, str], now_ms: int, visible_to: frozenset[str] | None
) -> HistoryQuery:
    """Parameters ``uid``, ``type`` (prefix), ``since``, ``until``, ``bbox``, ``limit``,
    ``cursor``; unknown ones are refused so a typo does not silently widen a query."""
    known = {"uid", "type", "since", "until", "bbox", "limit", "cursor", "format"}
    unknown = sorted(set(params) - known)
    if unknown:
        raise QueryError(f"unknown parameter(s) {unknown}; known: {sorted(known)}")
    since = parse_time("since", params["since"], now_ms) if params.get("since") else None
    until = parse_time("until", params["until"], now_ms) if params.get("until") else None
    if since is not None and until is not None and until <= since:
        raise QueryError("until must be after since")
    limit_text = params.get("limit", str(DEFAULT_PAGE))
    if not limit_text.isdigit():
        raise QueryError(f"limit={limit_text!r} is not a whole number")
    try:
        return HistoryQuery(
            uid=params.get("uid") or None,
            type_prefix=params.get("type") or None,
            since_ms=since,
            until_ms=until,
            bbox=parse_bbox(params["bbox"]) if params.get("bbox") else None,
            visible_to=visible_to,
            after=Cursor.decode(params["cursor"]) if params.get("cursor") else None,
            limit=int(limit_text),
        )
    except ValueError as exc:
        raise QueryError(str(exc)) from None
