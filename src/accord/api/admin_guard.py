"""What every admin request passes before its handler: who the caller is, and, for a request
that changes something, that a browser did not send it on another site's behalf (CSRF).

A browser that holds an administrator's client certificate (or, with the web app, its session
cookie) presents it to any page that makes it send a request here, so a state-changing request
that came from a browser must show it came from this server's own pages:

* an ``Origin`` header, when present, must be this server's origin, and ``Sec-Fetch-Site``,
  when present, must be ``same-origin`` (or ``none``: typed by the user);
* and a browser's request (one with ``Origin``, ``Sec-Fetch-Site`` or a cookie) must carry the
  ``X-Accord-CSRF`` header, which another site's form cannot set and its script cannot send
  here without a CORS preflight (which this server never grants).

Programs (``accord status``, ``accord drone``, curl) send none of those headers and pass.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

CSRF_HEADER = "x-accord-csrf"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_BODY_BYTES = 64 * 1024  # an admin request's JSON body

Handler = Callable[[Request, str], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]
Guard = Callable[[Handler], Endpoint]


class BadRequest(Exception):
    """The request cannot be served as sent; ``status`` and the message say why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def csrf_refusal(request: Request) -> str | None:
    """Why a state-changing request is refused as possibly cross-site, or None."""
    if request.method in SAFE_METHODS:
        return None
    headers = request.headers
    origin = headers.get("origin")
    own = f"{request.url.scheme}://{headers.get('host', '')}"
    if origin is not None and origin != own:
        return f"cross-site request refused: Origin {origin} is not {own}"
    site = headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return f"cross-site request refused (Sec-Fetch-Site: {site})"
    from_browser = origin is not None or site is not None or "cookie" in headers
    if from_browser and not headers.get(CSRF_HEADER):
        return "a browser's request must carry the X-Accord-CSRF header (the admin pages send it)"
    return None


async def json_object(request: Request) -> dict[str, Any]:
    """The body as one JSON object, or :class:`BadRequest`."""
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise BadRequest(413, f"the body is over {MAX_BODY_BYTES} bytes")
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(400, f"the body is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise BadRequest(400, "the body must be one JSON object")
    return value


def strings(body: dict[str, Any], key: str) -> list[str]:
    """``body[key]`` as a list of strings (absent: empty), or :class:`BadRequest`."""
    value = body.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadRequest(400, f"{key!r} must be a list of strings")
    return value


def string(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str):
        raise BadRequest(400, f"{key!r} is required, as a string")
    return value
