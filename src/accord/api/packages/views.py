"""A package as TAK clients read it: the Metadata JSON of TAK Server's servlets and the
Resource JSON of its /api/ variant (reference §4.8)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from accord.store.records import Package

NO_EXPIRATION = "-1"  # TAK Server's Metadata EXPIRATION when a package never expires


def iso(ms: int) -> str:
    # TAK Server's COT_DATE_FORMAT; ATAK parses yyyy-MM-dd'T'HH:mm:ss.SSS'Z'.
    moment = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def primary_key(hash: str) -> int:
    """A stable non-negative int for TAK Server's ``PrimaryKey``, which ATAK requires (the hash
    is our key; 28 bits of it)."""
    return int(hash[:7], 16)


def metadata(package: Package) -> dict[str, Any]:
    """TAK Server's Metadata JSON: scalar values as strings, Keywords and Groups as lists."""
    out: dict[str, Any] = {
        "UID": package.hash,
        "Name": package.name,
        "Hash": package.hash,
        "PrimaryKey": str(primary_key(package.hash)),
        "SubmissionDateTime": iso(package.submitted_ms),
        "SubmissionUser": package.submitter,
        "CreatorUid": package.creator_uid,
        "Keywords": list(package.keywords),
        "MIMEType": package.mimetype,
        "Size": str(package.size),
        "Tool": package.tool,
        "Groups": list(package.groups),
        "DownloadPath": package.name,
    }
    if package.lat is not None and package.lon is not None:
        out["Latitude"], out["Longitude"] = str(package.lat), str(package.lon)
    # Always present (node-tak's type requires it); TAK Server writes -1 for "never".
    expires = package.expiration_ms
    out["EXPIRATION"] = str(expires // 1000) if expires is not None else NO_EXPIRATION
    return out


def resource(package: Package) -> dict[str, Any]:
    """TAK Server's ``Resource`` (the /api/sync/search variant): typed values, camelCase."""
    out: dict[str, Any] = {
        "filename": package.name,
        "keywords": list(package.keywords),
        "mimeType": package.mimetype,
        "name": package.name,
        "submissionTime": iso(package.submitted_ms),
        "submitter": package.submitter,
        "uid": package.hash,
        "hash": package.hash,
        "size": package.size,
        "creatorUid": package.creator_uid,
        "tool": package.tool,
        "groups": list(package.groups),
    }
    if package.lat is not None and package.lon is not None:
        out["latitude"], out["longitude"] = package.lat, package.lon
    if package.expiration_ms is not None:
        out["expiration"] = package.expiration_ms // 1000
    return out
