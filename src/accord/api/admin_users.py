"""The admin API's users and groups: the store ``accord user`` edits, over HTTPS.

    GET    /api/admin/users                    every user, its groups and live sessions
    POST   /api/admin/users                    add one: {name, password, groups, in, out}
    PUT    /api/admin/users/{name}/groups      regroup: {groups, in, out}
    PUT    /api/admin/users/{name}/password    {password}
    DELETE /api/admin/users/{name}             remove (its certificates stay until revoked)
    GET    /api/admin/groups                   every group: members and live sessions

A change is written to ``users.json`` as ``accord user`` writes it, so the running server's
identity watcher moves the user's live sessions within ``revocation_check_s``, exactly as
after the command. Password hashing (argon2) runs off the event loop.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from accord.api.admin_guard import BadRequest, Guard, json_object, string, strings
from accord.domain.groups import Membership
from accord.domain.views import Sessions
from accord.identity.ca import PkiPaths
from accord.identity.package import Endpoint
from accord.identity.users import User, UserError, UserStore, membership_of

log = logging.getLogger("accord.admin")


@dataclass
class IdentityAdmin:
    """What the users, certificates and packages routes work on (the composition root fills
    it in from the configuration)."""

    users: UserStore  # this API's own instance (one per thread of use)
    pki: PkiPaths
    endpoint: Callable[[str | None], Endpoint]  # where devices dial: the host given, or default
    revoked: Callable[[], None]  # told after a revocation (the HTTPS API's view of it)
    now: Callable[[], dt.datetime]  # wall clock, aware UTC
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # Told after a user is added, regrouped, given a password or removed: the identity watcher
    # applies it to the listeners at once, not at its next round (a device connecting in
    # between would get its certificate's OU groups, not its user's).
    changed: Callable[[], None] = lambda: None

    def now_ms(self) -> int:
        return int(self.now().timestamp() * 1000)

    async def run(self, change: Callable[[], Any]) -> Any:
        """A change to the user store, one at a time, off the loop (argon2 takes a while)."""
        async with self.lock:
            try:
                return await asyncio.to_thread(change)
            except UserError as exc:
                text = str(exc)
                status = 404 if "no user named" in text else 409 if "already" in text else 400
                raise BadRequest(status, text) from None


def membership_json(m: Membership) -> dict[str, list[str]]:
    return {"in": sorted(m.inbound), "out": sorted(m.outbound)}


def _iso_ms(ms: int) -> str | None:
    if not ms:
        return None
    value = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def user_json(user: User, sessions: int) -> dict[str, Any]:
    return {
        "name": user.name,
        "groups": membership_json(user.membership),
        "disabled": user.disabled,
        "created_at": _iso_ms(user.created_ms),
        "updated_at": _iso_ms(user.updated_ms),
        "sessions": sessions,
    }


def _membership(body: dict[str, Any]) -> Membership:
    try:
        return membership_of(
            strings(body, "groups"), inbound=strings(body, "in"), outbound=strings(body, "out")
        )
    except UserError as exc:
        raise BadRequest(400, str(exc)) from None


def groups_json(users: tuple[User, ...], sessions: Sessions) -> list[dict[str, Any]]:
    """Every group a user or a live session is in, with who is in it each way."""
    table: dict[str, dict[str, Any]] = {}

    def row(name: str) -> dict[str, Any]:
        return table.setdefault(
            name, {"name": name, "members": {"in": [], "out": []}, "sessions": {"in": 0, "out": 0}}
        )

    for user in users:
        for group in user.membership.inbound:
            row(group)["members"]["in"].append(user.name)
        for group in user.membership.outbound:
            row(group)["members"]["out"].append(user.name)
    for view in sessions.sessions():
        for group in view.membership.inbound:
            row(group)["sessions"]["in"] += 1
        for group in view.membership.outbound:
            row(group)["sessions"]["out"] += 1
    return [table[name] for name in sorted(table)]


def user_routes(admin: IdentityAdmin | None, sessions: Sessions, only: Guard) -> list[BaseRoute]:
    def settings() -> IdentityAdmin:
        if admin is None:
            raise BadRequest(404, "user administration is not available on this server")
        return admin

    def live() -> dict[str, int]:
        count: dict[str, int] = {}
        for view in sessions.sessions():
            if view.user:
                count[view.user] = count.get(view.user, 0) + 1
        return count

    async def list_users(request: Request, caller: str) -> Response:
        users = await settings().run(settings().users.list)
        online = live()
        return JSONResponse({"users": [user_json(u, online.get(u.name, 0)) for u in users]})

    async def add_user(request: Request, caller: str) -> Response:
        s = settings()
        body = await json_object(request)
        name, password = string(body, "name"), string(body, "password")
        membership = _membership(body)
        user = await s.run(lambda: s.users.add(name, password, membership, now_ms=s.now_ms()))
        s.changed()
        log.info("%s added user %s", caller, name)
        return JSONResponse(user_json(user, live().get(name, 0)), status_code=201)

    async def regroup(request: Request, caller: str) -> Response:
        s = settings()
        name = request.path_params["name"]
        membership = _membership(await json_object(request))
        user = await s.run(lambda: s.users.set_groups(name, membership, now_ms=s.now_ms()))
        s.changed()
        log.info("%s regrouped user %s", caller, name)
        return JSONResponse(user_json(user, live().get(name, 0)))

    async def password(request: Request, caller: str) -> Response:
        s = settings()
        name = request.path_params["name"]
        given = string(await json_object(request), "password")
        user = await s.run(lambda: s.users.set_password(name, given, now_ms=s.now_ms()))
        s.changed()
        log.info("%s set the password of user %s", caller, name)
        return JSONResponse(user_json(user, live().get(name, 0)))

    async def remove(request: Request, caller: str) -> Response:
        s = settings()
        name = request.path_params["name"]
        await s.run(lambda: s.users.remove(name))
        s.changed()
        log.info("%s removed user %s", caller, name)
        return JSONResponse({"removed": name})

    async def groups(request: Request, caller: str) -> Response:
        users = await settings().run(settings().users.list)
        return JSONResponse({"groups": groups_json(users, sessions)})

    return [
        Route("/api/admin/users", only(list_users), methods=["GET"]),
        Route("/api/admin/users", only(add_user), methods=["POST"]),
        Route("/api/admin/users/{name}/groups", only(regroup), methods=["PUT"]),
        Route("/api/admin/users/{name}/password", only(password), methods=["PUT"]),
        Route("/api/admin/users/{name}", only(remove), methods=["DELETE"]),
        Route("/api/admin/groups", only(groups), methods=["GET"]),
    ]
