"""The TAK Mission API (Data Sync), mission-level routes: list, get, create, delete, subscribe,
subscriptions, roles, changes and ``cot``, under ``/Marti/api/missions/{name}`` and the guid
twin ``/Marti/api/missions/guid/{guid}``; contents, logs, keywords and invitations are in
:mod:`accord.api.missions_content`. Shapes are the official server's (:mod:`accord.missions.shape`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from accord.api.marti import XML_DECLARATION, Caller, authorised, envelope
from accord.api.missions_book import Access, MissionBook, client_uid_of, new_guid, new_salt
from accord.cot.connection import frame
from accord.cot.errors import MalformedEvent
from accord.cot.model import WireFormat
from accord.cot.xml import without_marti
from accord.domain.groups import Membership
from accord.domain.ports import Directory
from accord.identity.token import TokenError
from accord.missions import model, shape
from accord.missions.model import MissionError, Role
from accord.store.contract import HistoryStore, StoreError
from accord.store.records import to_event

log = logging.getLogger("accord.missions")

BASE = "/Marti/api/missions"
MissionHandler = Callable[[Request, Membership, Access], Awaitable[Response]]
Handler = Callable[[Request, Membership], Awaitable[Response]]


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def guarded(caller: Caller, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Signed in (401), and every refusal a clear 4xx (a failed database a 503)."""

    async def run(request: Request, who: Membership) -> Response:
        try:
            return await handler(request, who)
        except MissionError as exc:
            return error(exc.status, str(exc))
        except TokenError as exc:
            return error(400, str(exc))
        except StoreError as exc:
            log.error("mission store failed: %s", exc)
            return error(503, f"the database failed: {exc}")

    return authorised(caller, run)


Principal = Callable[[Request], str | None]


def twins(
    book: MissionBook,
    caller: Caller,
    principal: Principal,
    suffix: str,
    handler: MissionHandler,
    methods: list[str],
) -> list[Route]:
    """The route by name and its guid twin; the mission is found (404 when the caller may not
    see it) and the caller's access resolved before ``handler`` runs."""

    async def resolved(request: Request, who: Membership) -> Response:
        p = request.path_params
        mission = await book.find(who, name=p.get("name", ""), guid=p.get("guid", ""))
        return await handler(request, who, book.access(request, mission, principal(request)))

    endpoint = guarded(caller, resolved)
    return [
        Route(f"{BASE}/guid/{{guid}}{suffix}", endpoint, methods=methods),
        Route(f"{BASE}/{{name}}{suffix}", endpoint, methods=methods),
    ]


def _flag(request: Request, key: str, default: bool = False) -> bool:
    value = request.query_params.get(key)
    return default if value is None else value.lower() in ("true", "1", "yes")


def time_window(request: Request, now_ms: int) -> tuple[int | None, int | None]:
    """``secago`` (seconds back from now) or ``start``/``end`` (ISO 8601) as a window in ms."""
    q = request.query_params
    try:
        if q.get("secago"):
            return now_ms - int(float(q["secago"]) * 1000), None
        start = shape.parse_iso_ms(q["start"]) if q.get("start") else None
        end = shape.parse_iso_ms(q["end"]) if q.get("end") else None
    except ValueError:
        raise MissionError("bad secago/start/end: seconds, or ISO 8601 times") from None
    return start, end


def mission_routes(
    book: MissionBook,
    directory: Directory,
    history: HistoryStore,
    caller: Caller,
    principal: Principal,
) -> list[BaseRoute]:
    """The mission-level routes (the guid twins and fixed paths before ``{name}``)."""

    async def list_missions(request: Request, who: Membership) -> Response:
        tool = request.query_params.get("tool")
        found = [m for m in await book.visible(who) if tool is None or m.tool == tool]
        return JSONResponse(envelope("Mission", [shape.mission_json(m) for m in found]))

    async def get(request: Request, who: Membership, a: Access) -> Response:
        changes = None
        if _flag(request, "changes") or any(
            request.query_params.get(k) for k in ("secago", "start", "end")
        ):
            start, end = time_window(request, book.now_ms())
            changes = model.changes_between(await book.changes(a.mission), start, end)
        body = shape.mission_json(a.mission, changes=changes, logs=_flag(request, "logs"))
        return JSONResponse(envelope("Mission", [body]))

    async def create(request: Request, who: Membership) -> Response:
        name = request.path_params["name"]
        q = request.query_params
        creator = client_uid_of(request)
        groups = frozenset(q.getlist("group")) or who.inbound  # none named: all of the caller's
        if not groups <= who.inbound:
            foreign = ", ".join(sorted(groups - who.inbound))
            raise MissionError(
                f"you are not in group(s) {foreign}: create the mission in yours", 403
            )
        async with book.lock:
            try:
                existing = await book.find(who, name=name)
            except MissionError:
                existing = None
            if existing is not None:
                if q.getlist("group") and groups != existing.groups:
                    raise MissionError(f"mission {name!r} exists with other groups", 403)
                return JSONResponse(envelope("Mission", [shape.mission_json(existing)]))
            password = q.get("password", "")
            mission, change = model.create(
                name,
                new_guid(),
                groups,
                creator,
                book.now_ms(),
                username=principal(request) or "",
                description=q.get("description", ""),
                tool=q.get("tool", "public"),
                chat_room=q.get("chatRoom", ""),
                default_role=Role.parse(q["defaultRole"])
                if q.get("defaultRole")
                else Role.SUBSCRIBER,
                invite_only=_flag(request, "inviteOnly"),
                password=model.hash_password(password, new_salt()) if password else "",
            )
            token = book.token(mission, creator)
            if not await book.create(mission, change):
                # the name is taken by a mission the caller may not see: say no more than that
                raise MissionError(f"the mission name {name!r} is taken", 409)
        body = shape.mission_json(mission, token=token)
        return JSONResponse(envelope("Mission", [body]), status_code=201)

    async def delete(request: Request, who: Membership, a: Access) -> Response:
        a.need_owner()
        async with book.lock:
            await book.delete(a.mission, a.client_uid)
        return JSONResponse(envelope("Mission", [shape.mission_json(a.mission)]))

    async def subscribe(request: Request, who: Membership, a: Access) -> Response:
        client = client_uid_of(request) or a.client_uid
        if not client:
            raise MissionError("say who subscribes: uid=<the client's uid>")
        async with book.lock:
            mission = await book.find(who, guid=a.mission.guid)
            user = principal(request) or ""
            mission = await book.update(model.subscribe(mission, client, user, book.now_ms()))
        sub = mission.subscriptions[client]
        body = shape.subscription_json(sub, book.token(mission, client), mission)
        if any(request.query_params.get(k) for k in ("secago", "start", "end")):
            start, end = time_window(request, book.now_ms())
            missed = model.changes_between(await book.changes(mission), start, end)
            body["mission"] = shape.mission_json(mission, changes=missed, logs=True)
        return JSONResponse(envelope(shape.SUBSCRIPTION_TYPE, body), status_code=201)

    async def unsubscribe(request: Request, who: Membership, a: Access) -> Response:
        client = client_uid_of(request) or a.client_uid
        async with book.lock:
            mission = await book.find(who, guid=a.mission.guid)
            only = _flag(request, "disconnectOnly", default=True)
            await book.update(model.unsubscribe(mission, client, disconnect_only=only))
        return Response(status_code=200)

    async def subscription(request: Request, who: Membership, a: Access) -> Response:
        sub = a.mission.subscriptions.get(client_uid_of(request) or a.client_uid)
        if sub is None or not sub.live:
            raise MissionError(f"not subscribed to {a.mission.name!r}", 404)
        body = shape.subscription_json(sub, book.token(a.mission, sub.client_uid))
        return JSONResponse(envelope(shape.SUBSCRIPTION_TYPE, body))

    async def subscriptions(request: Request, who: Membership, a: Access) -> Response:
        live = [s.client_uid for s in a.mission.subscriptions.values() if s.live]
        return JSONResponse(envelope("MissionSubscription", live))

    async def roles(request: Request, who: Membership, a: Access) -> Response:
        body = [
            {
                "clientUid": s.client_uid,
                "username": s.username,
                "createTime": shape.iso_tenths(s.created_ms),
                "role": shape.role_json(s.role),
            }
            for s in a.mission.subscriptions.values()
            if s.live
        ]
        return JSONResponse(envelope("MissionSubscription", body))

    async def get_role(request: Request, who: Membership, a: Access) -> Response:
        return JSONResponse(envelope("MissionRole", shape.role_json(a.role)))

    async def set_role(request: Request, who: Membership, a: Access) -> Response:
        a.need_owner()
        q = request.query_params
        target = q.get("clientUid", "")
        role = Role.parse(q.get("role", ""))
        async with book.lock:
            mission = await book.find(who, guid=a.mission.guid)
            mission = await book.update(model.set_role(mission, target, role))
        book.tell(mission, [target], "t-x-m-r", "INVITE", a.client_uid, shape.role_xml(role))
        return Response(status_code=200)

    async def changes(request: Request, who: Membership, a: Access) -> Response:
        start, end = time_window(request, book.now_ms())
        found = model.changes_between(await book.changes(a.mission), start, end)
        body = [shape.change_json(c, a.mission) for c in found]
        return JSONResponse(envelope("MissionChange", body))

    async def cot(request: Request, who: Membership, a: Access) -> Response:
        parts = [XML_DECLARATION, b"<events>"]
        for uid in a.mission.items:
            event = directory.latest(uid)
            if event is None:
                stored = await history.latest(uid)  # not an SA, or its sender is gone
                if stored is not None and not who.outbound.isdisjoint(stored.groups):
                    try:
                        event = to_event(stored)
                    except MalformedEvent:
                        continue
            if event is not None:
                parts.append(frame(without_marti(event), WireFormat.XML))
        parts.append(b"</events>")
        return Response(b"".join(parts), media_type="application/xml")

    async def token(request: Request, who: Membership, a: Access) -> Response:
        return Response(book.token(a.mission, a.client_uid), media_type="text/plain")

    async def create_or_get(request: Request, who: Membership) -> Response:
        return await create(request, who)

    routes: list[BaseRoute] = [Route(BASE, guarded(caller, list_missions), methods=["GET"])]
    routes += twins(book, caller, principal, "/subscription", subscribe, ["PUT", "POST"])
    routes += twins(book, caller, principal, "/subscription", unsubscribe, ["DELETE"])
    routes += twins(book, caller, principal, "/subscription", subscription, ["GET"])
    routes += twins(book, caller, principal, "/subscriptions", subscriptions, ["GET"])
    routes += twins(book, caller, principal, "/subscriptions/roles", roles, ["GET"])
    routes += twins(book, caller, principal, "/role", get_role, ["GET"])
    routes += twins(book, caller, principal, "/role", set_role, ["PUT"])
    routes += twins(book, caller, principal, "/changes", changes, ["GET"])
    routes += twins(book, caller, principal, "/cot", cot, ["GET"])
    routes += twins(book, caller, principal, "/token", token, ["GET"])
    routes += twins(book, caller, principal, "", get, ["GET"])
    routes += twins(book, caller, principal, "", delete, ["DELETE"])
    routes.append(
        Route(f"{BASE}/{{name}}", guarded(caller, create_or_get), methods=["PUT", "POST"])
    )
    return routes
