"""``/Marti/ExportMissionKML``: the history of a time window as KML or KMZ (TAK Server's
MissionKMLServlet; node-tak's ``export``).

Parameters, in the query or a form body (GET or POST): ``startTime``, ``endTime`` (ISO 8601;
default the 24 hours before ``endTime``, which defaults to now), ``interval`` (hours before
``endTime``, instead of ``startTime``), ``uid`` (one sender), ``groups`` (repeatable: only
events shared in these; a caller may name only its own OUT groups, an administrator any),
``format`` (``kml``, the default, or ``kmz``). ``multiTrackThreshold``, ``extendedData`` and
``optimizeExport`` are accepted and have no effect: every event is one time-stamped Placemark.
Chat and file-transfer events are left out, as TAK Server does. At most
:data:`MAX_EXPORT_EVENTS` events are exported, oldest first.
"""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from accord.api.marti import AdminCheck, Caller, authorised
from accord.domain.groups import Membership
from accord.store.contract import HistoryStore, StoreError
from accord.store.export import MEDIA_TYPES, WRITERS
from accord.store.records import MAX_PAGE, HistoryQuery, StoredEvent

MAX_EXPORT_EVENTS = 10 * MAX_PAGE
EXPORT_PAGE_ROWS = MAX_PAGE
MAX_EXPORT_PAGES = 10  # history pages read per export, whatever they hold after filtering
MAX_FORM_BYTES = 64 * 1024
DEFAULT_WINDOW_S = 24 * 3600
LEFT_OUT_TYPES = frozenset({"b-t-f", "b-f-t-r", "b-f-t-a"})  # chat and file transfers
KMZ_MEDIA_TYPE = "application/vnd.google-earth.kmz"


Params = dict[str, list[str]]  # every value of each parameter, query then form


class ExportError(ValueError):
    """A parameter the export cannot use; the message says which and why."""


def _time_ms(text: str | None, name: str) -> int | None:
    if text is None or not text.strip():
        return None
    try:
        moment = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ExportError(f"{name} must be an ISO 8601 time such as 2026-01-31T12:00:00Z") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp() * 1000)


def first(params: Params, name: str) -> str | None:
    found = params.get(name)
    return found[0] if found else None


def window(params: Params, now_ms: int) -> tuple[int, int]:
    """(since, until) in ms from ``startTime``/``endTime``/``interval``."""
    until = _time_ms(first(params, "endTime"), "endTime") or now_ms
    since = _time_ms(first(params, "startTime"), "startTime")
    interval = first(params, "interval")
    if interval is not None and interval.strip():
        try:
            hours = float(interval)
        except ValueError:
            raise ExportError("interval must be a number of hours") from None
        if not 0 < hours <= 24 * 366:
            raise ExportError("interval must be more than 0 and at most a year of hours")
        since = until - int(hours * 3600 * 1000)
    if since is None:
        since = until - DEFAULT_WINDOW_S * 1000
    if since >= until:
        raise ExportError("startTime must be before endTime")
    return since, until


def kml_export_routes(
    store: HistoryStore, caller: Caller, is_admin: AdminCheck, now_ms: Callable[[], int]
) -> list[BaseRoute]:
    async def params_of(request: Request) -> Params:
        items = list(request.query_params.multi_items())
        if request.method == "POST":
            declared = request.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > MAX_FORM_BYTES:
                raise ExportError(f"the form is limited to {MAX_FORM_BYTES} bytes")
            kind = request.headers.get("content-type", "")
            if kind.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
                form = await request.form(max_files=0, max_fields=100)
                items += [(k, v) for k, v in form.multi_items() if isinstance(v, str)]
        params: Params = {}
        for key, value in items:
            params.setdefault(key, []).append(value)
        return params

    async def export(request: Request, who: Membership) -> Response:
        try:
            params = await params_of(request)
            since, until = window(params, now_ms())
            fmt = (first(params, "format") or "kml").lower()
            if fmt not in ("kml", "kmz"):
                raise ExportError(f"format={fmt!r}: use kml or kmz")
        except ExportError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        asked = {g.strip() for v in params.get("groups", []) for g in v.split(",") if g.strip()}
        foreign = asked - who.outbound
        if foreign and is_admin(request) is None:
            return JSONResponse(
                {"error": f"requested group {sorted(foreign)[0]} is not accessible to you"},
                status_code=403,
            )
        query = HistoryQuery(
            uid=first(params, "uid") or None,
            since_ms=since,
            until_ms=until,
            visible_to=frozenset(asked) if asked else who.outbound,
            limit=EXPORT_PAGE_ROWS,
        )
        events: list[StoredEvent] = []
        try:
            for _ in range(MAX_EXPORT_PAGES):  # a history of chat alone is not scanned to the end
                if len(events) >= MAX_EXPORT_EVENTS:
                    break
                page = await store.history(query)
                events += [e for e in page.events if e.type not in LEFT_OUT_TYPES]
                if page.next is None:
                    break
                query = HistoryQuery(
                    uid=query.uid, since_ms=since, until_ms=until, visible_to=query.visible_to,
                    after=page.next, limit=EXPORT_PAGE_ROWS,
                )  # fmt: skip
        except StoreError as exc:
            return JSONResponse({"error": f"history is unavailable: {exc}"}, status_code=503)
        kml = "".join(WRITERS["kml"].render(events[:MAX_EXPORT_EVENTS])).encode("utf-8")
        stamp = dt.datetime.fromtimestamp(since / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        headers = {"content-disposition": f"filename={stamp[:-4]}Z.{fmt}"}
        if fmt == "kml":
            return Response(kml, media_type=MEDIA_TYPES["kml"], headers=headers)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("doc.kml", kml)
        return Response(buffer.getvalue(), media_type=KMZ_MEDIA_TYPE, headers=headers)

    return [Route("/Marti/ExportMissionKML", authorised(caller, export), methods=["GET", "POST"])]
