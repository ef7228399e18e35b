"""The live sessions as TAK Server's subscriptions, and the small per-device endpoints.

- ``GET /Marti/api/subscriptions/all?sortBy=CALLSIGN|UID&direction=ASCENDING|DESCENDING
  &page=&limit=``: every streaming session whose traffic reaches the caller (an administrator
  sees all), as ``SubscriptionInfo`` (every member present; what Accord does not track is
  ``""`` or null, as TAK Server sends for a client that never reported it).
- ``GET /Marti/api/device/profile/connection?clientUid=&syncSecago=``: the profiles a device
  gets on connect; Accord has none to hand out, so 204 (TAK Server's answer when none apply).
- ``GET /Marti/api/iconset/all/uid``: the icon set uids the server holds; none (Accord keeps
  no icon sets), as the empty list.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from accord.api.marti import AdminCheck, Caller, authorised, card_of, envelope, group_rows
from accord.domain.groups import Membership
from accord.domain.ports import Directory
from accord.domain.views import Sessions, SessionView

SUBSCRIPTION_TYPE = "com.bbn.marti.remote.SubscriptionInfo"
SORT_KEYS = ("CALLSIGN", "UID")
DIRECTIONS = ("ASCENDING", "DESCENDING")
HANDLER_TYPE = "StreamingProtocol"  # TAK Server's handler for a streaming (TCP/TLS) client


def _bad(message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=400)


def subscription_json(view: SessionView, team: str, role: str, now_ms: int) -> dict[str, Any]:
    host, _, port = view.address.rpartition(":")
    last_ms = int(view.last_event_s * 1000) if view.last_event_s is not None else 0
    return {
        "dn": f"CN={view.user}" if view.listener == "tls" and view.user else None,
        "callsign": view.callsign,
        "clientUid": view.uid,
        "lastReportMilliseconds": last_ms,
        "takClient": view.device.platform,
        "takVersion": view.device.version,
        "username": view.user,
        "groups": group_rows(view.membership),
        "role": role,
        "team": team,
        "ipAddress": host.strip("[]"),
        "port": port,
        "pendingWrites": view.queued_events,
        "numProcessed": view.tally.events_in,
        "protocol": view.listener,
        "xpath": None,
        "subscriptionUid": f"{view.listener}:{view.key}",
        "appFramerate": "",
        "battery": "",
        "batteryStatus": "",
        "batteryTemp": "",
        "deviceDataRx": "",
        "deviceDataTx": "",
        "heapCurrentSize": "",
        "heapFreeSize": "",
        "heapMaxSize": "",
        "deviceIPAddress": "",
        "storageAvailable": "",
        "storageTotal": "",
        "incognito": False,
        "handlerType": HANDLER_TYPE,
        "lastReportDiffMilliseconds": max(0, now_ms - last_ms) if last_ms else 0,
    }


def _whole(request: Request, name: str) -> int | None:
    text = request.query_params.get(name, "-1").strip()
    try:
        return int(text)
    except ValueError:
        return None


def subscription_routes(
    sessions: Sessions,
    directory: Directory,
    caller: Caller,
    is_admin: AdminCheck,
    now_ms: Callable[[], int],
) -> list[BaseRoute]:
    async def every(request: Request, who: Membership) -> Response:
        sort_by = request.query_params.get("sortBy", "CALLSIGN").upper()
        direction = request.query_params.get("direction", "ASCENDING").upper()
        page, limit = _whole(request, "page"), _whole(request, "limit")
        if sort_by not in SORT_KEYS:
            return _bad(f"sortBy={sort_by!r}: use {' or '.join(SORT_KEYS)}")
        if direction not in DIRECTIONS:
            return _bad(f"direction={direction!r}: use {' or '.join(DIRECTIONS)}")
        if page is None or limit is None:
            return _bad("page and limit must be whole numbers (-1: everything)")
        everyone = is_admin(request) is not None
        views = [v for v in sessions.sessions() if everyone or v.membership.reaches(who)]
        views.sort(
            key=lambda v: (v.callsign.lower(), v.uid) if sort_by == "CALLSIGN" else (v.uid,),
            reverse=direction == "DESCENDING",
        )
        if page >= 0 and limit > 0:
            views = views[page * limit : (page + 1) * limit]
        cards = {c.uid: card_of(c) for c in directory.contacts()}
        now = now_ms()
        rows = []
        for v in views:
            card = cards.get(v.uid) if v.uid else None
            rows.append(
                subscription_json(v, card.team if card else "", card.role if card else "", now)
            )
        return JSONResponse(envelope(SUBSCRIPTION_TYPE, rows))

    async def connection_profile(request: Request, who: Membership) -> Response:
        if not request.query_params.get("clientUid"):
            return _bad("clientUid is required")
        return Response(status_code=204)

    async def iconsets(request: Request, who: Membership) -> Response:
        return JSONResponse(envelope("java.lang.String", []))

    return [
        Route("/Marti/api/subscriptions/all", authorised(caller, every), methods=["GET"]),
        Route(
            "/Marti/api/device/profile/connection",
            authorised(caller, connection_profile),
            methods=["GET"],
        ),
        Route("/Marti/api/iconset/all/uid", authorised(caller, iconsets), methods=["GET"]),
    ]
