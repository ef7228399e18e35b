"""History over HTTP: Accord's query API and TAK Server's per-uid CoT endpoints.

- ``GET /api/history`` — filters ``uid``, ``type`` (prefix), ``since``, ``until``, ``bbox``
  (south,west,north,east), ``limit`` (≤ 1000), ``cursor``; ``format`` json (default), geojson,
  kml or cot. One page per call; the next page's cursor is in the JSON body (``next``) and,
  for every format, in the ``X-Accord-Next-Cursor`` header.
- ``GET /Marti/api/cot/xml/{uid}`` — the latest event of a uid (live, else the stored one);
  404 with an empty body when there is none the caller may see.
- ``GET /Marti/api/cot/xml/{uid}/all?secago=N`` — that uid's history as ``<events>``.

A caller sees only events its groups could have received (sender's IN ∩ caller's OUT).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from accord.api.marti import XML_DECLARATION, Caller, authorised
from accord.cot.connection import frame
from accord.cot.errors import MalformedEvent
from accord.cot.model import WireFormat
from accord.cot.xml import without_marti
from accord.domain.groups import Membership
from accord.domain.ports import Directory
from accord.store.contract import HistoryStore, StoreError
from accord.store.export import MEDIA_TYPES, WRITERS, summary
from accord.store.query import QueryError, parse_history_query
from accord.store.records import MAX_PAGE, HistoryQuery, to_event

NEXT_HEADER = "X-Accord-Next-Cursor"


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def history_routes(
    store: HistoryStore, directory: Directory, caller: Caller, now_ms: Callable[[], int]
) -> list[BaseRoute]:
    async def history(request: Request, who: Membership) -> Response:
        params = dict(request.query_params)
        fmt = params.get("format", "json")
        if fmt not in MEDIA_TYPES:
            return _error(400, f"format={fmt!r}; use one of {', '.join(MEDIA_TYPES)}")
        try:
            query = parse_history_query(params, now_ms(), who.outbound)
            page = await store.history(query)
        except QueryError as exc:
            return _error(400, str(exc))
        except StoreError as exc:
            return _error(503, f"history is unavailable: {exc}")
        headers = {NEXT_HEADER: page.next.encode()} if page.next else {}
        if fmt == "json":
            body = {
                "events": [summary(e) for e in page.events],
                "next": page.next.encode() if page.next else None,
            }
            return JSONResponse(body, headers=headers)
        return StreamingResponse(
            _encoded(WRITERS[fmt].render(page.events)), media_type=MEDIA_TYPES[fmt], headers=headers
        )

    async def latest(request: Request, who: Membership) -> Response:
        uid = request.path_params["uid"]
        live = directory.latest(uid)
        owner = next((c for c in directory.contacts() if c.uid == uid), None)
        if live is not None and (owner is None or owner.membership.reaches(who)):
            body = frame(without_marti(live), WireFormat.XML)  # as forwarded: no <marti>
            return Response(XML_DECLARATION + body, media_type="application/xml")
        try:
            stored = await store.latest(uid)
        except StoreError as exc:
            return _error(503, f"history is unavailable: {exc}")
        if stored is not None and not who.outbound.isdisjoint(stored.groups):
            try:
                event = to_event(stored)
            except MalformedEvent:
                pass
            else:
                body = frame(without_marti(event), WireFormat.XML)
                return Response(XML_DECLARATION + body, media_type="application/xml")
        # TAK Server answers an unknown uid with 404 and an empty body: clients read an empty
        # body as "not found" and try to parse anything else as CoT.
        return Response(status_code=404)

    async def uid_history(request: Request, who: Membership) -> Response:
        uid = request.path_params["uid"]
        secago = request.query_params.get("secago", "")
        if secago and not secago.isdigit():
            return _error(400, f"secago={secago!r} is not a whole number of seconds")
        since = now_ms() - int(secago) * 1000 if secago else None
        events = []
        query = HistoryQuery(uid=uid, since_ms=since, visible_to=who.outbound, limit=MAX_PAGE)
        try:
            # TAK Server answers with everything at once; pages keep each read bounded.
            while True:
                page = await store.history(query)
                events += page.events
                if page.next is None or len(events) >= 10 * MAX_PAGE:
                    break
                query = HistoryQuery(
                    uid=uid, since_ms=since, visible_to=who.outbound, after=page.next,
                    limit=MAX_PAGE,
                )  # fmt: skip
        except StoreError as exc:
            return _error(503, f"history is unavailable: {exc}")
        return StreamingResponse(
            _encoded(WRITERS["cot"].render(events)), media_type="application/xml"
        )

    return [
        Route("/api/history", authorised(caller, history), methods=["GET"]),
        Route("/Marti/api/cot/xml/{uid}", authorised(caller, latest), methods=["GET"]),
        Route("/Marti/api/cot/xml/{uid}/all", authorised(caller, uid_history), methods=["GET"]),
    ]


def _encoded(chunks: Iterator[str]) -> Iterator[bytes]:
    for chunk in chunks:
        yield chunk.encode("utf-8")
