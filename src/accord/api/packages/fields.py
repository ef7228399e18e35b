"""What a package request may carry, read and checked: query parameters (TAK Server matches
most of them without regard to case), metadata values, groups, and the content URL. Anything
unacceptable raises :class:`Refused`, which the routes answer as ``{"error": ...}``."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from accord.domain.groups import Membership
from accord.store.blobs import is_hash
from accord.store.records import Package

MAX_NAME_CHARS = 255
MAX_FIELD_CHARS = 256
DEFAULT_MIMETYPE = "application/x-zip-compressed"  # commo's, and missionupload's default
RAW_MIMETYPE = "application/octet-stream"
MISSION_PACKAGE_KEYWORD = "missionpackage"

MIMETYPE = re.compile(r"[A-Za-z0-9][\w.+\-]*/[\w.+\-]+")
TOKEN = re.compile(r"[\w.\-]{1,64}")  # tool values: "public", "private", plugin names
HOST = re.compile(r"[A-Za-z0-9.\-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\]")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class Refused(Exception):
    """A request this API will not serve; becomes ``{"error": message}`` with ``status``."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


def refusal(exc: Refused) -> Response:
    return JSONResponse({"error": exc.message}, status_code=exc.status, headers=exc.headers)


def values(request: Request, *names: str) -> list[str]:
    wanted = {n.lower() for n in names}
    return [v for k, v in request.query_params.multi_items() if k.lower() in wanted]


def one(request: Request, *names: str) -> str | None:
    found = values(request, *names)
    return found[0] if found else None


def hash_value(text: str, what: str = "hash") -> str:
    value = text.strip().lower()
    if not is_hash(value):
        raise Refused(400, f"{what} must be a sha256: 64 hexadecimal digits")
    return value


def required_hash(request: Request, *names: str) -> str:
    text = one(request, *names)
    if text is None:
        raise Refused(400, f"the {names[0]} parameter is required")
    return hash_value(text)


def whole_number(request: Request, name: str) -> int | None:
    text = one(request, name)
    if text is None or text == "":
        return None
    if not text.isdigit() or not text.isascii():
        raise Refused(400, f"{name} must be a whole number of bytes (0 or more), not {text!r}")
    return int(text)


def short_text(value: str | None, what: str, limit: int = MAX_FIELD_CHARS) -> str:
    """``value`` if it is short and has no control characters ("" when absent)."""
    if value is None:
        return ""
    if len(value) > limit or CONTROL.search(value):
        raise Refused(400, f"{what} must be at most {limit} characters with no control characters")
    return value


def display_name(raw: str) -> str:
    """A file name to show and to offer for download: no directories, no control characters."""
    name = CONTROL.sub("", raw.replace("\\", "/").rsplit("/", 1)[-1]).strip()
    if name in ("", ".", ".."):
        raise Refused(400, f"filename {raw!r} names no file")
    return name[:MAX_NAME_CHARS]


def mimetype(value: str | None, default: str) -> str:
    if value is None or value == "":
        return default
    value = value.strip()
    if len(value) > 127 or not MIMETYPE.fullmatch(value):
        raise Refused(400, f"mimetype {value!r} is not a MIME type such as {DEFAULT_MIMETYPE}")
    return value


def tool(value: str | None) -> str:
    if value is None or value == "":
        return "public"
    if not TOKEN.fullmatch(value):
        raise Refused(400, "tool must be a word such as public or private (letters, digits, ._-)")
    return value


def keywords(given: Iterable[str], default: tuple[str, ...]) -> tuple[str, ...]:
    """Keywords from repeated parameters and comma-separated lists, each once, in order."""
    found: list[str] = []
    for value in given:
        for word in value.split(","):
            word = short_text(word.strip(), "a keyword", 64)
            if word and word not in found:
                found.append(word)
    return tuple(found) if found else default


def coordinate(request: Request, name: str, bound: float) -> float | None:
    text = one(request, name)
    if text is None or text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        raise Refused(400, f"{name} must be a number of degrees, not {text!r}") from None
    if not -bound <= value <= bound:
        raise Refused(400, f"{name} must be between -{bound:g} and {bound:g}")
    return value


def groups_for(request: Request, caller: Membership) -> tuple[str, ...]:
    """The groups a new package goes to: the caller's IN groups, or those it names of them."""
    named = {g.strip() for v in values(request, "groups") for g in v.split(",") if g.strip()}
    if named:
        foreign = named - caller.inbound
        if foreign:
            raise Refused(403, f"you may not share into group(s) {', '.join(sorted(foreign))}")
        return tuple(sorted(named))
    if not caller.inbound:
        raise Refused(403, "your certificate sends into no group: nobody could see the package")
    return tuple(sorted(caller.inbound))


def time_ms(request: Request, *names: str) -> int | None:
    text = one(request, *names)
    if text is None or text == "":
        return None
    try:
        moment = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise Refused(
            400, f"{names[0]} must be an ISO 8601 time such as 2026-01-31T12:00:00Z"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp() * 1000)


def visible(package: Package, caller: Membership) -> bool:
    return not caller.outbound.isdisjoint(package.groups)


def content_url(request: Request, hostname: str, hash: str) -> str:
    """``<scheme>://<host>:<port>/Marti/sync/content?hash=`` as the caller reached us, 8444
    written as 8443 (TAK Server's MissionPackageQueryServlet.getBaseUrl)."""
    host, _, port_text = request.headers.get("host", "").rpartition(":")
    if not host or "]" in port_text:  # no port given ("example.org", "[::1]")
        host, port_text = request.headers.get("host", ""), ""
    if not HOST.fullmatch(host):
        host = hostname
    server = request.scope.get("server") or ("", 0)
    port = int(port_text) if port_text.isdigit() and 0 < int(port_text) < 65536 else server[1]
    if port == 8444:
        port = 8443
    return f"{request.url.scheme}://{host}:{port}/Marti/sync/content?hash={hash}"
