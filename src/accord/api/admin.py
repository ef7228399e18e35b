"""The admin API: who is connected, what the server carries, and disconnecting a client.

Served on the HTTPS API port (8443) beside the Marti API, and on 8446 to the web app.
Administrators only: on 8443 the caller's client certificate must be valid (issued by
Accord's CA, not revoked) and its CN listed in ``admin_users`` (default ``admin``); on 8446
the caller is the user of the web session cookie, who must be listed there. At start the
server keeps a certificate for the first of them in ``<data_dir>/pki/admin.pem`` (mode
0600), which ``accord status`` uses. No certificate or session (or a revoked certificate on a
live connection): 401; someone else: 403. A state-changing request must pass the port's CSRF
rule (``AdminState.refusal``): admin_guard's on 8443, the web session's on 8446.

    GET    /api/admin/clients        every connected streaming client
    DELETE /api/admin/clients/{id}   close that client's session (it may reconnect)
    GET    /api/admin/status         version, uptime, listeners, counters, history, drone feeds
    GET    /api/admin/cluster        with [cluster] or serve --workers: every node, its
                                     sessions, the NATS servers, the latest-SA stream
    GET    /api/admin/drone-feeds    the running MAVLink feeds with their counters
    POST   /api/admin/drone-feeds    start one (a [[drone_feeds]] table as JSON), ad hoc: not
                                     written to the configuration, gone at the next start
    DELETE /api/admin/drone-feeds/{name}  stop one (a configured one comes back at restart)
    users, groups                    admin_users.py
    certificates, packages, QR       admin_certs.py
    partners, ledger, data packages  admin_partners.py
    GET    /api/admin/openapi.json   this API as OpenAPI 3.1
    GET    /api/admin/docs           the same, as a page
    GET    /metrics                  Prometheus text (also on metrics_port, without sign-in)
"""

from __future__ import annotations

import datetime as dt
import html
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from accord import __version__
from accord.api import metrics
from accord.api.admin_certs import cert_routes
from accord.api.admin_guard import BadRequest, Handler, csrf_refusal, error
from accord.api.admin_partners import StoreAdmin, partner_routes
from accord.api.admin_users import IdentityAdmin, user_routes
from accord.api.openapi_admin import FULL_SPEC as SPEC
from accord.domain.metrics import Counters, Tally
from accord.domain.views import (
    DroneFeedError,
    DroneFeeds,
    DroneFeedView,
    ListenerView,
    Probes,
    Sessions,
    SessionView,
)
from accord.store.contract import Backend, HistoryStore, StoreError

log = logging.getLogger("accord.admin")

# The CN of the valid client certificate behind a request, or None when there is none (or it
# has been revoked since the connection was made).
AdminCaller = Callable[[Request], str | None]


class StoreStatus(Backend, HistoryStore, Protocol):
    """What the status shows of the store: its backend and the history's size."""


@dataclass(frozen=True)
class AdminState:
    sessions: Sessions
    counters: Counters
    probes: Probes
    ports: Mapping[str, int]  # live: listeners started later appear in it
    bind: str
    store: StoreStatus | None
    admins: frozenset[str]
    caller: AdminCaller
    started_s: float  # wall clock
    clock: Callable[[], float]  # wall clock, seconds
    drones: DroneFeeds | None = None  # None: this server cannot run drone feeds
    identity: IdentityAdmin | None = None  # users, certificates, packages, QR (admin_users)
    stores: StoreAdmin | None = None  # partners' ledgers and data packages (admin_partners)
    # Why a state-changing request is refused as possibly cross-site (None: it passes).
    refusal: Callable[[Request], str | None] = csrf_refusal
    # Every node's report, the NATS servers, the SA stream (None: not in a cluster).
    cluster: Callable[[], Awaitable[dict[str, Any]]] | None = None


def _iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    value = dt.datetime.fromtimestamp(seconds, tz=dt.UTC)
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _drops(tally: Tally) -> dict[str, int]:
    return {
        "malformed": tally.malformed,
        "rate_limited": tally.rate_limited,
        "queue_full": tally.queue_dropped,
    }


def client_json(view: SessionView) -> dict[str, Any]:
    return {
        "id": view.key,
        "uid": view.uid,
        "callsign": view.callsign,
        "user": view.user,
        "groups": {
            "in": sorted(view.membership.inbound),
            "out": sorted(view.membership.outbound),
        },
        "address": view.address,
        "listener": view.listener,
        "wire_format": view.wire_format,
        "device": {
            "device": view.device.device,
            "platform": view.device.platform,
            "os": view.device.os,
            "version": view.device.version,
        },
        "connected_at": _iso(view.connected_s),
        "last_event_at": _iso(view.last_event_s),
        "events_in": view.tally.events_in,
        "events_out": view.tally.events_out,
        "drops": _drops(view.tally),
        "coalesced": view.tally.queue_coalesced,
        "queued_events": view.queued_events,
        "write_buffer_bytes": view.write_buffer_bytes,
    }


def drone_feed_json(view: DroneFeedView) -> dict[str, Any]:
    return {
        "name": view.name,
        "kind": view.kind,
        "where": view.where,
        "adhoc": view.adhoc,
        "port": view.port,
        "vehicles": view.vehicles,
        "vehicles_live": view.vehicles_live,
        "counters": dict(view.counters),
    }


def _listener_json(view: ListenerView | None, name: str, port: int) -> dict[str, Any]:
    tally = view.tally if view is not None else Tally()
    return {
        "name": name,
        "port": port,
        "sessions": view.sessions if view is not None else 0,
        "events_in": tally.events_in,
        "events_out": tally.events_out,
        "drops": _drops(tally),
        "coalesced": tally.queue_coalesced,
        "malformed": dict(view.malformed) if view is not None else {},
        "queued_events": view.queued_events if view is not None else 0,
        "max_queued_events": view.max_queued_events if view is not None else 0,
        "write_buffer_bytes": view.write_buffer_bytes if view is not None else 0,
    }


async def _store_json(store: StoreStatus | None) -> dict[str, Any] | None:
    if store is None:
        return None
    try:
        stats = await store.history_stats()
    except StoreError as exc:
        return {"backend": store.name, "error": str(exc)}
    return {
        "backend": store.name,
        "history_events": stats.events,
        "oldest": _iso(stats.oldest_ms / 1000) if stats.oldest_ms is not None else None,
        "newest": _iso(stats.newest_ms / 1000) if stats.newest_ms is not None else None,
    }


def admin_only(state: AdminState, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Answer 401 without a valid certificate or session, 403 when its name is not in
    ``admin_users`` or when the request fails the port's CSRF rule (``state.refusal``)."""

    async def endpoint(request: Request) -> Response:
        cn = state.caller(request)
        if cn is None:
            return JSONResponse(
                {"error": "a valid client certificate (8443) or web session (8446) is required"},
                status_code=401,
            )
        if cn not in state.admins:
            return JSONResponse(
                {"error": f"{cn!r} is not an administrator (admin_users in the configuration)"},
                status_code=403,
            )
        refusal = state.refusal(request)
        if refusal is not None:
            return error(403, refusal)
        try:
            return await handler(request, cn)
        except BadRequest as exc:
            return error(exc.status, str(exc))

    return endpoint


def routes(state: AdminState) -> list[BaseRoute]:
    """The admin routes, to mount on the HTTPS API app."""
    scrape = metrics.registry(state.sessions, state.counters, state.probes)

    async def clients(request: Request, admin: str) -> Response:
        views = sorted(state.sessions.sessions(), key=lambda v: v.key)
        return JSONResponse({"clients": [client_json(v) for v in views]})

    async def disconnect(request: Request, admin: str) -> Response:
        key = request.path_params["id"]
        if not state.sessions.disconnect(key, f"disconnected by administrator {admin}"):
            return JSONResponse({"error": f"no client with id {key}"}, status_code=404)
        return JSONResponse({"disconnected": key})

    async def status(request: Request, admin: str) -> Response:
        return JSONResponse(await status_json(state))

    async def cluster(request: Request, admin: str) -> Response:
        if state.cluster is None:
            return JSONResponse(
                {
                    "error": "this server is not in a cluster: no [cluster] urls, "
                    "and not started with serve --workers N"
                },
                status_code=404,
            )
        try:
            return JSONResponse(await state.cluster())
        except Exception as exc:  # NATS down: said, never a 500 with a trace
            log.warning("cluster status failed: %s", exc)
            return JSONResponse({"error": f"cluster status unavailable: {exc}"}, status_code=503)

    async def openapi(request: Request, admin: str) -> Response:
        return JSONResponse(SPEC)

    async def docs(request: Request, admin: str) -> Response:
        return HTMLResponse(docs_page(SPEC))

    async def scraped(request: Request, admin: str) -> Response:
        return metrics.exposition(scrape, request)

    async def drone_feeds(request: Request, admin: str) -> Response:
        views = state.drones.views() if state.drones is not None else []
        return JSONResponse({"feeds": [drone_feed_json(v) for v in views]})

    async def add_drone_feed(request: Request, admin: str) -> Response:
        if state.drones is None:
            return JSONResponse({"error": "drone feeds are not available"}, status_code=404)
        try:
            table = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError) as exc:
            return JSONResponse({"error": f"the body is not JSON: {exc}"}, status_code=400)
        if not isinstance(table, dict):
            return JSONResponse(
                {"error": "the body must be one JSON object: a [[drone_feeds]] table"},
                status_code=400,
            )
        try:
            view = await state.drones.add(table)
        except DroneFeedError as exc:
            return JSONResponse({"error": str(exc)}, status_code=409 if exc.name_taken else 400)
        log.info("%s added drone feed %s (%s %s)", admin, view.name, view.kind, view.where)
        return JSONResponse(drone_feed_json(view), status_code=201)

    async def remove_drone_feed(request: Request, admin: str) -> Response:
        name = request.path_params["name"]
        if state.drones is None or not state.drones.remove(name):
            return JSONResponse({"error": f"no drone feed named {name!r}"}, status_code=404)
        log.info("%s removed drone feed %s", admin, name)
        return JSONResponse({"removed": name})

    def only(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        return admin_only(state, handler)

    return [
        Route("/api/admin/clients", only(clients), methods=["GET"]),
        Route("/api/admin/clients/{id:int}", only(disconnect), methods=["DELETE"]),
        Route("/api/admin/status", only(status), methods=["GET"]),
        Route("/api/admin/cluster", only(cluster), methods=["GET"]),
        Route("/api/admin/drone-feeds", only(drone_feeds), methods=["GET"]),
        Route("/api/admin/drone-feeds", only(add_drone_feed), methods=["POST"]),
        Route("/api/admin/drone-feeds/{name}", only(remove_drone_feed), methods=["DELETE"]),
        Route("/api/admin/openapi.json", only(openapi), methods=["GET"]),
        Route("/api/admin/docs", only(docs), methods=["GET"]),
        Route("/metrics", only(scraped), methods=["GET"]),
        *user_routes(state.identity, state.sessions, only),
        *cert_routes(state.identity, only),
        *partner_routes(state.stores, state.probes, only),
    ]


async def status_json(state: AdminState) -> dict[str, Any]:
    now = state.clock()
    views = {v.name: v for v in state.sessions.listeners()}
    ports = dict(state.ports)
    listeners = [
        _listener_json(views.get(name), name, port) for name, port in ports.items() if name in views
    ]
    backlog = state.probes.history.backlog() if state.probes.history is not None else None
    return {
        "server": "Accord",
        "version": __version__,
        "started_at": _iso(state.started_s),
        "uptime_s": round(now - state.started_s, 3),
        "bind": state.bind,
        "ports": ports,
        "sessions": sum(v.sessions for v in views.values()),
        "listeners": listeners,
        "queues": {
            "queued_events": sum(v.queued_events for v in views.values()),
            "max_queued_events": max((v.max_queued_events for v in views.values()), default=0),
            "write_buffer_bytes": sum(v.write_buffer_bytes for v in views.values()),
        },
        "counters": state.counters.snapshot(),
        "store": await _store_json(state.store),
        "history_backlog": {
            "queued_events": backlog.queued_events if backlog else 0,
            "lag_s": backlog.lag_s if backlog else 0.0,
        },
        "federation": [
            {
                "partner": v.partner,
                "direction": v.direction,
                "state": v.state,
                "since": _iso(v.since_s),
                "last_error": v.last_error,
                "events_in": v.events_in,
                "events_out": v.events_out,
                "withheld": v.withheld,
                "dropped": v.dropped,
                "messages_out": v.messages_out,
                "extensions": list(v.extensions),
                "policy": (
                    state.probes.release.decisions(v.partner)
                    if state.probes.release is not None
                    else {}
                ),
            }
            for v in (state.probes.links.links() if state.probes.links is not None else [])
        ],
        "drone_feeds": [
            drone_feed_json(v) for v in (state.drones.views() if state.drones is not None else [])
        ],
        "coordination": _coordination_json(state.probes),
    }


def _coordination_json(probes: Probes) -> dict[str, float]:
    """Separation, geofence and intent numbers: ``name`` or ``name{label=value}``."""
    if probes.coordination is None:
        return {}
    out: dict[str, float] = {}
    for sample in probes.coordination.samples():
        labels = ",".join(f"{k}={v}" for k, v in sample.labels)
        out[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return out


def docs_page(spec: Mapping[str, Any]) -> str:
    """The OpenAPI document as a plain page (no scripts: nothing is fetched from elsewhere)."""
    rows = []
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            codes = ", ".join(f"{code} {r['description']}" for code, r in op["responses"].items())
            rows.append(
                f"<tr><td><code>{method.upper()}</code></td><td><code>{html.escape(path)}</code>"
                f"</td><td>{html.escape(op['summary'])}<br><small>{html.escape(codes)}</small>"
                "</td></tr>"
            )
    title = html.escape(spec["info"]["title"])
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title></head><body>"
        f"<h1>{title}</h1><p>{html.escape(spec['info']['description'])}</p>"
        "<p><a href='/api/admin/openapi.json'>openapi.json</a></p>"
        f"<table border='1' cellpadding='4'>{''.join(rows)}</table></body></html>"
    )


def metrics_app(sessions: Sessions, counters: Counters, probes: Probes) -> Starlette:
    """``/metrics`` alone, without sign-in: for the plain-HTTP loopback ``metrics_port``."""
    scrape: CollectorRegistry = metrics.registry(sessions, counters, probes)

    async def scraped(request: Request) -> Response:
        return metrics.exposition(scrape, request)

    return Starlette(routes=[Route("/metrics", scraped, methods=["GET"])])
