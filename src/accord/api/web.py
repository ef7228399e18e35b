"""The operator's web app over HTTP: the page, its assets, the basemap, sign-in and the feed.

Served under ``/web/`` on both HTTPS ports. On 8443 the browser is its client certificate
(required at the handshake); on 8446 a user signs in with a password and gets a session
cookie (``HttpOnly; Secure; SameSite=Strict``) holding a token of the server's token service
for the web-session audience, so an API token is not a session and a session is not an API
token. Every state-changing request (sign-in, sign-out, the admin API's; chat goes over the
WebSocket, whose handshake is checked the same way) must come from the app's own origin
(``Origin`` header), and all but sign-in also carry the CSRF token the page was given
(:func:`session_refusal`). The cookie's path is ``/`` because an administrator's session is
also the caller of the admin API (``/api/admin/*``) on 8446; nothing else on that port reads
it (the Marti API there takes bearer tokens only).

Routes (``WebAccess`` says who a request is):

- ``GET /web/`` — the map (or the sign-in page); ``/web/static/...`` — the app's files;
- ``POST /web/signin`` (form ``username``, ``password``), ``POST /web/signout``;
- ``GET /web/config.json`` — who is signed in, the CSRF token, the basemap sources;
- ``GET /web/basemap/{name}`` — PMTiles files with HTTP range requests;
  ``GET /web/tiles/{z}/{x}/{y}`` — tiles of an operator's MBTiles file;
- ``GET /web/history?since&until&bbox`` — the features the user could have seen;
- ``WS /web/feed`` — :mod:`accord.api.web_feed`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from starlette.requests import HTTPConnection, Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from accord.api.web_feed import WebFeed, WebUser
from accord.cot.errors import MalformedEvent
from accord.domain.picture import to_feature
from accord.store.contract import HistoryStore, StoreError
from accord.store.query import QueryError, parse_history_query
from accord.store.records import to_event

SESSION_COOKIE = "accord_web"
SESSION_COOKIE_PATH = "/"  # the web app (/web) and, for administrators, /api/admin
CSRF_HEADER = "x-accord-csrf"
SESSION_LIFETIME_S = 12 * 3600  # a shift; then sign in again
WEB_DIR = Path(str(resources.files("accord") / "web"))
BUILTIN_BASEMAP = "world.pmtiles"
HISTORY_EVENTS = 1000  # one page of history per request (the history API's maximum)
# Security headers of every page: no framing (clickjacking), scripts only from here.
PAGE_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; img-src 'self' data: blob: https: http:; "
        "style-src 'self' 'unsafe-inline'; worker-src 'self' blob:; "
        "connect-src 'self' wss: ws: https: http:; script-src 'self'; frame-ancestors 'none'"
    ),
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",  # no-referrer would make form posts say Origin: null
    "x-content-type-options": "nosniff",
    "cache-control": "no-store",
}


@dataclass(frozen=True)
class WebAccess:
    """How a port knows its browser: ``user`` from the request (its certificate or its
    session cookie); with ``sign_in`` (8446) a password makes a session token."""

    user: Callable[[HTTPConnection], Awaitable[WebUser | None]]
    # (peer, name, password) -> None when right, else why not (the sign-in's throttled check)
    sign_in: Callable[[str, str, str], Awaitable[str | None]] | None = None
    issue_session: Callable[[str], str] | None = None


@dataclass(frozen=True)
class Basemaps:
    """The map's sources: the built-in world file, an operator's PMTiles or MBTiles for
    detail, or an XYZ URL template (``https://host/{z}/{x}/{y}.png``)."""

    world: Path
    detail: Path | None = None
    xyz_url: str = ""


def csrf_token(cookie: str) -> str:
    """The CSRF token of a session: bound to its cookie, which a foreign page cannot read."""
    return hashlib.sha256(b"accord-csrf:" + cookie.encode()).hexdigest()[:32]


def same_origin(connection: HTTPConnection) -> bool:
    """The request comes from a page of this server (``Origin`` is this host, over https)."""
    origin = connection.headers.get("origin")
    host = connection.headers.get("host")
    if not origin or not host:
        return False
    return hmac.compare_digest(origin.lower(), f"https://{host}".lower())


def session_refusal(request: Request) -> str | None:
    """Why a state-changing request of a web session is refused, or None: it must come from
    this server's own page (``Origin``) with the session's CSRF token (``X-Accord-CSRF``),
    the rule sign-out follows; the admin API on 8446 uses it for every POST, PUT, DELETE."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return None
    if not same_origin(request):
        return "cross-site request refused: Origin is not this server's page"
    cookie = request.cookies.get(SESSION_COOKIE, "")
    given = request.headers.get(CSRF_HEADER, "")
    if not cookie or not hmac.compare_digest(given, csrf_token(cookie)):
        return "missing or wrong CSRF token (X-Accord-CSRF, from /web/config.json)"
    return None


def _page(name: str) -> Response:
    return FileResponse(WEB_DIR / name, media_type="text/html", headers=PAGE_HEADERS)


def web_routes(
    access: WebAccess,
    feed: WebFeed,
    basemaps: Basemaps,
    store: HistoryStore | None,
    now_ms: Callable[[], int],
) -> list[BaseRoute]:
    async def index(request: Request) -> Response:
        user = await access.user(request)
        if user is not None:
            return _page("index.html")
        if access.sign_in is None:
            return Response("a client certificate is needed here", status_code=403)
        return _page("signin.html")

    async def to_index(request: Request) -> Response:
        return RedirectResponse("/web/", status_code=307)

    async def sign_in(request: Request) -> Response:
        if access.sign_in is None or access.issue_session is None:
            return Response("sign in with a client certificate here", status_code=404)
        if not same_origin(request):
            return Response("cross-site request refused", status_code=403)
        form = await request.form()
        name, password = form.get("username"), form.get("password")
        if not isinstance(name, str) or not isinstance(password, str):
            return RedirectResponse("/web/?error=missing", status_code=303)
        peer = request.client.host if request.client else "-"
        refused = await access.sign_in(peer, name, password)
        if refused is not None:
            return RedirectResponse("/web/?error=refused", status_code=303)
        response = RedirectResponse("/web/", status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            access.issue_session(name),
            max_age=SESSION_LIFETIME_S,
            path=SESSION_COOKIE_PATH,
            secure=True,
            httponly=True,
            samesite="strict",
        )
        return response

    async def sign_out(request: Request) -> Response:
        refusal = session_refusal(request)
        if refusal is not None:
            return Response(refusal, status_code=403)
        response = JSONResponse({"signed_out": True})
        response.delete_cookie(SESSION_COOKIE, path=SESSION_COOKIE_PATH, secure=True, httponly=True)
        return response

    async def config(request: Request) -> Response:
        user = await access.user(request)
        if user is None:
            return JSONResponse({"error": "sign in first"}, status_code=401)
        cookie = request.cookies.get(SESSION_COOKIE, "")
        detail = None
        if basemaps.detail is not None:
            kind = "mbtiles" if basemaps.detail.suffix == ".mbtiles" else "pmtiles"
            detail = {"kind": kind, "url": "/web/basemap/detail.pmtiles"}
            if kind == "mbtiles":
                detail["url"] = "/web/tiles/{z}/{x}/{y}"
                detail["format"] = _mbtiles_format(basemaps.detail)
        return JSONResponse(
            {
                "user": user.name,
                "groups": sorted(user.membership.inbound | user.membership.outbound),
                "csrf": csrf_token(cookie) if cookie else "",
                "sign_out": access.sign_in is not None,
                "world": f"/web/basemap/{BUILTIN_BASEMAP}",
                "world_present": basemaps.world.exists(),
                "detail": detail,
                "xyz_url": basemaps.xyz_url,
            },
            headers={"cache-control": "no-store"},
        )

    async def basemap(request: Request) -> Response:
        if await access.user(request) is None:
            return Response(status_code=401)
        name = request.path_params["name"]
        if name == BUILTIN_BASEMAP:
            path = basemaps.world
        elif name == "detail.pmtiles" and basemaps.detail is not None:
            path = basemaps.detail
        else:
            return Response(status_code=404)
        if not path.exists():
            return Response("basemap not installed: run scripts/bootstrap", status_code=404)
        # FileResponse answers Range requests (206) itself: PMTiles reads by range.
        return FileResponse(path, media_type="application/octet-stream")

    async def tiles(request: Request) -> Response:
        if await access.user(request) is None:
            return Response(status_code=401)
        if basemaps.detail is None or basemaps.detail.suffix != ".mbtiles":
            return Response(status_code=404)
        try:
            z, x, y = (int(request.path_params[k]) for k in ("z", "x", "y"))
        except ValueError:
            return Response(status_code=400)
        data = await asyncio.to_thread(_mbtiles_tile, basemaps.detail, z, x, y)
        if data is None:
            return Response(status_code=204)
        headers = {"content-encoding": "gzip"} if data[:2] == b"\x1f\x8b" else {}
        return Response(data, media_type="application/octet-stream", headers=headers)

    async def history(request: Request) -> Response:
        user = await access.user(request)
        if user is None:
            return JSONResponse({"error": "sign in first"}, status_code=401)
        if store is None:
            return JSONResponse({"error": "no history store"}, status_code=503)
        params = {k: v for k, v in request.query_params.items() if k in ("since", "until", "bbox")}
        params["limit"] = str(HISTORY_EVENTS)
        try:
            query = parse_history_query(params, now_ms(), user.membership.outbound)
            page = await store.history(query)
        except QueryError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        except StoreError as exc:
            return JSONResponse({"error": f"history is unavailable: {exc}"}, status_code=503)
        features = []
        for stored in page.events:
            try:
                features.append(to_feature(to_event(stored), now_ms()))
            except MalformedEvent:
                continue
        return JSONResponse({"items": features, "more": page.next is not None})

    return [
        Route("/web", to_index, methods=["GET"]),
        Route("/web/", index, methods=["GET"]),
        Route("/web/signin", sign_in, methods=["POST"]),
        Route("/web/signout", sign_out, methods=["POST"]),
        Route("/web/config.json", config, methods=["GET"]),
        Route("/web/basemap/{name}", basemap, methods=["GET", "HEAD"]),
        Route("/web/tiles/{z}/{x}/{y}", tiles, methods=["GET"]),
        Route("/web/history", history, methods=["GET"]),
        WebSocketRoute("/web/feed", feed.serve),
        Mount("/web/static", StaticFiles(directory=WEB_DIR, check_dir=False), name="web"),
    ]


def _mbtiles_tile(path: Path, z: int, x: int, y: int) -> bytes | None:
    """One tile of an MBTiles file (rows are TMS: y counted from the south)."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        row = db.execute(
            "SELECT tile_data FROM tiles WHERE zoom_level=? AND tile_column=? AND tile_row=?",
            (z, x, (1 << z) - 1 - y),
        ).fetchone()
    return bytes(row[0]) if row else None


def _mbtiles_format(path: Path) -> str:
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            row = db.execute("SELECT value FROM metadata WHERE name='format'").fetchone()
    except sqlite3.Error:
        return "png"
    return str(row[0]) if row else "png"
