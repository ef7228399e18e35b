"""The Mission API's content routes: contents (files by hash, items by uid), logs, keywords
and invitations. Every edit is written with its changes before it is answered and announced
(``t-x-m-c`` for contents, ``t-x-m-c-l`` for logs, ``t-x-m-c-k`` for keywords, ``t-x-m-i`` to
an invitee)."""

from __future__ import annotations

import dataclasses
import json
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from accord.api.marti import Caller, envelope
from accord.api.missions import BASE, Principal, guarded, twins
from accord.api.missions_book import Access, MissionBook, client_uid_of
from accord.domain.groups import Membership
from accord.domain.ports import Directory
from accord.missions import model, shape
from accord.missions.model import Invitation, Item, LogEntry, MissionError, Resource, Role
from accord.store.contract import PackageStore

MAX_BODY_BYTES = 256 * 1024  # a contents or log body; a log's content is bounded further
MAX_UIDS_PER_REQUEST = 1000


async def json_body(request: Request) -> Any:
    data = b""
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_BODY_BYTES:
            raise MissionError(f"body larger than {MAX_BODY_BYTES} bytes", 413)
    try:
        return json.loads(data or b"null")
    except (ValueError, UnicodeDecodeError):
        raise MissionError("the body is not JSON") from None


def _strings(value: Any, what: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise MissionError(f"{what} must be a list of strings")
    return value


def content_routes(
    book: MissionBook,
    packages: PackageStore,
    directory: Directory,
    caller: Caller,
    principal: Principal,
) -> list[BaseRoute]:
    def item_of(uid: str, creator: str, now: int) -> Item:
        model.check_uid(uid)
        event = directory.latest(uid)
        if event is None:
            return Item(uid, creator, now)
        callsign = event.detail.contact.callsign if event.detail.contact else ""
        return Item(uid, creator, now, event.type, callsign, event.point.lat, event.point.lon)

    async def add_contents(request: Request, who: Membership, a: Access) -> Response:
        a.need_write()
        a.need_own_content()
        body = await json_body(request)
        if not isinstance(body, dict):
            raise MissionError('send {"hashes": [...], "uids": [...]}')
        hashes = [model.check_hash(h) for h in _strings(body.get("hashes"), "hashes")]
        uids = _strings(body.get("uids"), "uids")
        if len(uids) + len(hashes) > MAX_UIDS_PER_REQUEST:
            raise MissionError(f"at most {MAX_UIDS_PER_REQUEST} hashes and uids at once", 413)
        now, creator = book.now_ms(), a.client_uid or client_uid_of(request)
        resources = []
        for h in hashes:
            package = await packages.package(h)
            if package is None or who.outbound.isdisjoint(package.groups):
                raise MissionError(f"no file {h}: upload it first (POST /Marti/sync/upload)", 404)
            resources.append(
                Resource(
                    h,
                    package.name,
                    package.size,
                    package.mimetype,
                    creator,
                    package.submitter,
                    now,
                    tuple(package.keywords),
                )
            )
        items = [item_of(u, creator, now) for u in uids]
        async with book.lock:
            mission = await book.find(who, guid=a.mission.guid)
            mission, c1 = model.add_resources(mission, resources, now)
            mission, c2 = model.add_items(mission, items, now)
            mission = await book.update(mission, c1 + c2)
        return JSONResponse(envelope("Mission", [shape.mission_json(mission)]))

    async def remove_contents(request: Request, who: Membership, a: Access) -> Response:
        a.need_write()
        a.need_own_content()
        q = request.query_params
        async with book.lock:
            mission = await book.find(who, guid=a.mission.guid)
            mission, changes = model.remove_content(
                mission, a.client_uid, book.now_ms(), uid=q.get("uid", ""), hash=q.get("hash", "")
            )
            mission = await book.update(mission, changes)
        return JSONResponse(envelope("Mission", [shape.mission_json(mission)]))

    async def log_of_mission(request: Request, who: Membership, a: Access) -> Response:
        entries = [shape.log_json(e, a.mission.name) for e in a.mission.logs.values()]
        return JSONResponse(envelope(shape.LOG_TYPE, entries))

    async def log_write(request: Request, who: Membership) -> Response:
        body = await json_body(request)
        if not isinstance(body, dict) or not isinstance(body.get("content"), str):
            raise MissionError('send {"content": ..., "missionNames": [...], "creatorUid": ...}')
        names = _strings(body.get("missionNames"), "missionNames")
        if len(names) != 1:
            raise MissionError("name exactly one mission in missionNames")
        mission = await book.find(who, name=names[0])
        a = book.access(request, mission, principal(request))
        a.need_write()
        now = book.now_ms()
        try:
            dtg = shape.parse_iso_ms(body["dtg"]) if body.get("dtg") else now
        except (ValueError, TypeError):
            raise MissionError("dtg: an ISO 8601 time") from None
        creator = str(body.get("creatorUid") or a.client_uid)
        entry_id = (
            str(body.get("id") or uuid.uuid4()) if request.method == "PUT" else str(uuid.uuid4())
        )
        async with book.lock:
            mission = await book.find(who, guid=mission.guid)
            old = mission.logs.get(entry_id)
            if request.method == "PUT" and old is None:
                raise MissionError(f"no log entry {entry_id[:64]!r}", 404)
            entry = LogEntry(
                entry_id,
                body["content"],
                creator,
                dtg,
                old.created_ms if old else now,
                now,
                tuple(_strings(body.get("contentHashes"), "contentHashes")),
                model.check_keywords(_strings(body.get("keywords"), "keywords")),
                str(body.get("entryUid") or ""),
            )
            mission = await book.update(model.put_log(mission, entry))
        book.tell_subscribers(mission, "t-x-m-c-l", creator, "")
        return JSONResponse(
            envelope(shape.LOG_TYPE, shape.log_json(entry, mission.name)),
            status_code=201 if request.method == "POST" else 200,
        )

    async def log_entry(request: Request, who: Membership) -> Response:
        entry_id = request.path_params["id"]
        for mission in await book.visible(who):
            if entry_id in mission.logs:
                a = book.access(request, mission, principal(request))
                if request.method == "DELETE":
                    a.need_write()
                    async with book.lock:
                        current = await book.find(who, guid=mission.guid)
                        current = await book.update(model.delete_log(current, entry_id))
                    book.tell_subscribers(current, "t-x-m-c-l", a.client_uid, "")
                    return Response(status_code=200)
                body = shape.log_json(mission.logs[entry_id], mission.name)
                return JSONResponse(envelope(shape.LOG_TYPE, [body]))
        raise MissionError(f"no log entry {entry_id[:64]!r}", 404)

    async def keywords(request: Request, who: Membership, a: Access) -> Response:
        a.need_write()
        a.need_own_content()
        words: list[str] = []
        if request.method == "PUT":
            words = _strings(await json_body(request), "the body (keywords)")
        async with book.lock:
            mission = await book.find(who, guid=a.mission.guid)
            new = dataclasses.replace(
                mission, keywords=model.check_keywords(words), edited_ms=book.now_ms()
            )
            mission = await book.update(new)
        book.tell_subscribers(mission, "t-x-m-c-k", a.client_uid, "")
        return JSONResponse(envelope("Mission", [shape.mission_json(mission)]))

    async def invite(request: Request, who: Membership, a: Access) -> Response:
        a.need_owner()
        kind, invitee = request.path_params["type"], request.path_params["invitee"]
        async with book.lock:
            mission = await book.find(who, guid=a.mission.guid)
            if request.method == "DELETE":
                mission = await book.update(model.uninvite(mission, kind, invitee))
                return Response(status_code=200)
            role = Role.parse(request.query_params.get("role", mission.default_role.value))
            inv = Invitation(kind, invitee, role, a.client_uid, book.now_ms())
            mission = await book.update(model.invite(mission, inv))
        if kind == "clientUid":
            token = book.token(mission, invitee)
            book.tell(
                mission, [invitee], "t-x-m-i", "INVITE", a.client_uid, shape.role_xml(role), token
            )
        return Response(status_code=200)

    def invitation_json(inv: Invitation, name: str) -> dict[str, Any]:
        return {
            "missionName": name,
            "invitee": inv.invitee,
            "type": inv.kind,
            "creatorUid": inv.creator_uid,
            "createTime": shape.iso_ms(inv.created_ms),
            "role": shape.role_json(inv.role),
        }

    async def invitations(request: Request, who: Membership) -> Response:
        client = client_uid_of(request)
        names = [
            m.name
            for m in await book.visible(who)
            if any(i.kind == "clientUid" and i.invitee == client for i in m.invitations)
        ]
        return JSONResponse(envelope("MissionInvitation", names))

    async def mission_invitations(request: Request, who: Membership, a: Access) -> Response:
        body = [invitation_json(i, a.mission.name) for i in a.mission.invitations]
        return JSONResponse(envelope("MissionInvitation", body))

    routes: list[BaseRoute] = [
        Route(f"{BASE}/logs/entries", guarded(caller, log_write), methods=["POST", "PUT"]),
        Route(f"{BASE}/logs/entries/{{id}}", guarded(caller, log_entry), methods=["GET", "DELETE"]),
        Route(f"{BASE}/invitations", guarded(caller, invitations), methods=["GET"]),
    ]
    routes += twins(book, caller, principal, "/contents", add_contents, ["PUT"])
    routes += twins(book, caller, principal, "/contents", remove_contents, ["DELETE"])
    routes += twins(book, caller, principal, "/log", log_of_mission, ["GET"])
    routes += twins(book, caller, principal, "/keywords", keywords, ["PUT", "DELETE"])
    routes += twins(book, caller, principal, "/invite/{type}/{invitee}", invite, ["PUT", "DELETE"])
    routes += twins(book, caller, principal, "/invitations", mission_invitations, ["GET"])
    return routes
