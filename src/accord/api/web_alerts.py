"""The web map's acknowledgements of alerts: one server's (or one cluster's) for every browser.

- ``GET /web/alerts/acks`` — ``{"acks": [{"uid", "by", "at"}, ...]}``: the alerts
  acknowledged (``at``: ms since the epoch), by whoever acknowledged them first;
- ``POST /web/alerts/acks`` with ``{"uid": "<alert uid>"}`` — acknowledge it as the
  browser's user: ``{"ack": {...}}`` (the first acknowledgement, if it was acknowledged
  already); 400 for a body or uid that cannot be one.

Both need the browser's user (401 without). The POST is a state change: on the password port
it follows the web app's CSRF rule (``session_refusal``), on the certificate port it must come
from the app's own page (``Origin``). In a cluster the acknowledgement is shared with every
node (``accord.cluster.alerts.SharedAcks``) and the alert's cancel forgets it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from accord.api.web import WebAccess, same_origin, session_refusal
from accord.domain.alert_acks import Ack

MAX_BODY_BYTES = 4096


class AlertAcks(Protocol):
    def acknowledge(self, uid: object, by: str, now_ms: int) -> Ack | str: ...

    def views(self) -> list[dict[str, str | int]]: ...


def alert_routes(
    access: WebAccess, acks: Callable[[], AlertAcks | None], now_ms: Callable[[], int]
) -> list[BaseRoute]:
    async def listed(request: Request) -> Response:
        if await access.user(request) is None:
            return JSONResponse({"error": "sign in first"}, status_code=401)
        book = acks()
        return JSONResponse(
            {"acks": [] if book is None else book.views()}, headers={"cache-control": "no-store"}
        )

    async def acknowledge(request: Request) -> Response:
        user = await access.user(request)
        if user is None:
            return JSONResponse({"error": "sign in first"}, status_code=401)
        if access.sign_in is not None:
            refusal = session_refusal(request)
        else:
            refusal = None if same_origin(request) else "cross-site request refused"
        if refusal is not None:
            return JSONResponse({"error": refusal}, status_code=403)
        book = acks()
        if book is None:
            return JSONResponse({"error": "no alerts on this server"}, status_code=404)
        body = await request.body()
        try:
            table = json.loads(body) if len(body) <= MAX_BODY_BYTES else None
        except (ValueError, UnicodeDecodeError):
            table = None
        if not isinstance(table, dict):
            return JSONResponse({"error": 'the body must be {"uid": "<alert uid>"}'}, 400)
        ack = book.acknowledge(table.get("uid"), user.name, now_ms())
        if isinstance(ack, str):
            return JSONResponse({"error": ack}, status_code=400)
        return JSONResponse({"ack": ack.view()})

    return [
        Route("/web/alerts/acks", listed, methods=["GET"]),
        Route("/web/alerts/acks", acknowledge, methods=["POST"]),
    ]
