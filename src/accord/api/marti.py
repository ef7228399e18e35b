"""The Marti API stock clients call on every connect (reference tak-protocol §4.1-4.3, §4.13).

HTTPS with client certificates (8443). Every answer is limited to what the caller's groups may
see. This module serves version, version/config, clientEndPoints, contacts/all, groups/all and
groups/active; the history (``cot/xml/{uid}`` among it), data package and video routes come
from :mod:`accord.api.history`, :mod:`accord.api.packages` and :mod:`accord.api.video`.
"""

from __future__ import annotations

import datetime as dt
import inspect
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from accord import __version__
from accord.cot.xml import parse_fragment
from accord.domain.groups import Membership
from accord.domain.ports import ContactView, Directory

XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
API_VERSION = "3"  # TAK Server's Constants.API_VERSION; ATAK adds `tool` params from 2 on

# Who is calling: the groups of the client certificate (HTTPS) or of the signed-in user (plain
# HTTP, basic auth) behind a request, or None when there is none. It may have to wait (a
# password check), so it may return an awaitable.
Caller = Callable[[Request], Membership | Awaitable[Membership | None] | None]
SIGN_IN_REQUIRED = (
    "sign in: a client certificate (HTTPS) or a user name and password (HTTP basic auth)"
)


@dataclass(frozen=True)
class MartiState:
    directory: Directory
    caller: Caller
    hostname: str
    # Who signed the request (certificate CN), to check a client changes only its own session.
    principal: Callable[[Request], str | None] = lambda request: None


def _bad(reason: str) -> JSONResponse:
    return JSONResponse({"error": reason}, status_code=400)


def envelope(kind: str, data: Any) -> dict[str, Any]:
    """TAK Server's API response envelope (``ApiResponse``), null members left out."""
    return {"version": API_VERSION, "type": kind, "data": data, "nodeId": "accord"}


def _time(ms: int) -> str:
    # ClientEndpoint.lastEventTime: yyyy-MM-dd'T'HH:mm:ss.S'Z' (ATAK parses it; one bad entry
    # fails the whole list, §4.3).
    value = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{(ms % 1000) // 100}Z"


def _detail_attrs(contact: ContactView, tag: str) -> Mapping[str, str]:
    if contact.last_sa is None or not contact.last_sa.detail.xml:
        return {}
    root = parse_fragment(f"<detail>{contact.last_sa.detail.xml}</detail>")
    found = root.find(tag)
    return {str(k): str(v) for k, v in found.attrib.items()} if found is not None else {}


def visible_contacts(contacts: list[ContactView], caller: Membership) -> list[ContactView]:
    """What the caller may see: clients whose traffic reaches it (§4.3: the caller's OUT)."""
    return [c for c in contacts if c.membership.reaches(caller)]


@dataclass(frozen=True, slots=True)
class Card:
    """What every contact listing says about a client, read once from its latest SA."""

    team: str
    role: str
    takv: str
    groups: list[str]


def card_of(c: ContactView) -> Card:
    group, takv = _detail_attrs(c, "__group"), _detail_attrs(c, "takv")
    return Card(
        group.get("name", ""),
        group.get("role", ""),
        " ".join(v for v in takv.values() if v),
        sorted(c.membership.inbound | c.membership.outbound),
    )


Handler = Callable[[Request, Membership], Awaitable[Response]]


def authorised(caller_of: Caller, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Resolve the caller's groups (certificate or basic auth), or answer 401."""

    async def endpoint(request: Request) -> Response:
        caller = caller_of(request)
        if inspect.isawaitable(caller):
            caller = await caller
        if caller is None:
            return JSONResponse(
                {"error": SIGN_IN_REQUIRED},
                status_code=401,
                headers={"WWW-Authenticate": 'Basic realm="Accord"'},
            )
        return await handler(request, caller)

    return endpoint


# The administrator behind a request (the CN of a valid client certificate listed in
# ``admin_users``), or None; always None where callers are not certificates (plain HTTP).
AdminCheck = Callable[[Request], str | None]


def nobody(request: Request) -> str | None:
    return None


def admin_only(
    caller_of: Caller, is_admin: AdminCheck, handler: Handler
) -> Callable[[Request], Awaitable[Response]]:
    """Signed in (else 401, as :func:`authorised`) and an administrator (else 403)."""

    async def only_admins(request: Request, caller: Membership) -> Response:
        if not is_admin(request):
            return JSONResponse(
                {"error": "administrators only: sign in with a certificate listed in admin_users"},
                status_code=403,
            )
        return await handler(request, caller)

    return authorised(caller_of, only_admins)


def group_rows(membership: Membership) -> list[dict[str, Any]]:
    """TAK Server's ``Group`` JSON, one per group and direction (``bitpos`` ATAK requires)."""
    return [
        {
            "name": name,
            "direction": direction,
            "created": "1970-01-01",
            "type": "SYSTEM",
            "bitpos": index,
            "active": True,
            "description": "",
        }
        for index, name in enumerate(sorted(membership.inbound | membership.outbound))
        for direction, members in (("IN", membership.inbound), ("OUT", membership.outbound))
        if name in members
    ]


def build_app(state: MartiState, extra: Sequence[BaseRoute] = ()) -> Starlette:
    """The Marti API; ``extra`` are the routes of the other API modules (packages, history…)."""

    def signed_in(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        return authorised(state.caller, handler)

    async def version(request: Request) -> Response:
        return PlainTextResponse(f"Accord {__version__}")

    async def version_config(request: Request) -> Response:
        data = {"version": __version__, "api": API_VERSION, "hostname": state.hostname}
        return JSONResponse(envelope("ServerConfig", data))

    async def client_endpoints(request: Request, caller: Membership) -> Response:
        rows = []
        for c in visible_contacts(state.directory.contacts(), caller):
            card = card_of(c)
            rows.append(
                {
                    "callsign": c.callsign,
                    "uid": c.uid,
                    "username": c.user,
                    "team": card.team,
                    "role": card.role,
                    "lastEventTime": _time(c.last_sa.time if c.last_sa else 0),
                    "lastStatus": "Connected" if c.connected else "Disconnected",
                    "groups": card.groups,
                }
            )
        return JSONResponse(envelope("com.bbn.marti.remote.ClientEndpoint", rows))

    async def contacts_all(request: Request, caller: Membership) -> Response:
        rows = []
        for c in visible_contacts(state.directory.contacts(), caller):
            card = card_of(c)
            rows.append(
                {
                    "uid": c.uid,
                    "callsign": c.callsign,
                    "team": card.team,
                    "role": card.role,
                    "takv": card.takv,
                    "notes": "",
                    "filterGroups": card.groups,
                }
            )
        return JSONResponse(rows)  # a bare list, no envelope (ContactsApi)

    async def groups_all(request: Request, caller: Membership) -> Response:
        return JSONResponse(envelope("com.bbn.marti.remote.groups.Group", group_rows(caller)))

    async def groups_active(request: Request, caller: Membership) -> Response:
        # ATAK switching channels on and off: a bare JSON list of group objects, each with a
        # name, a direction and an active flag (§4.13, §5.3). Groups not listed stay as they are.
        uid = request.query_params.get("clientUid", "")
        if not uid:
            return _bad("clientUid is required")
        try:
            groups = json.loads(await request.body())
        except ValueError:
            return _bad("the body must be a JSON list of groups")
        off: set[tuple[str, str]] = set()
        if not isinstance(groups, list):
            return _bad("the body must be a JSON list of groups")
        for group in groups:
            if not isinstance(group, dict) or not isinstance(group.get("name"), str):
                return _bad("every group needs a name")
            direction = group.get("direction", "")
            if direction not in ("IN", "OUT", ""):
                return _bad(f"direction {direction!r}: use IN or OUT")
            active = group.get("active", True)
            if not isinstance(active, bool):
                return _bad("active must be true or false")
            if not active:
                off |= {(group["name"], d) for d in ((direction,) if direction else ("IN", "OUT"))}
        wanted = Membership(
            frozenset(g for g in caller.inbound if (g, "IN") not in off),
            frozenset(g for g in caller.outbound if (g, "OUT") not in off),
        )
        principal = state.principal(request) or ""
        if not state.directory.activate(uid, principal, wanted):
            return JSONResponse({"error": f"no session of yours has uid {uid!r}"}, status_code=404)
        return JSONResponse(envelope("com.bbn.marti.remote.groups.Group", []))

    return Starlette(
        routes=[
            Route("/Marti/api/version", version, methods=["GET"]),
            Route("/Marti/api/version/config", version_config, methods=["GET"]),
            Route("/Marti/api/clientEndPoints", signed_in(client_endpoints), methods=["GET"]),
            Route("/Marti/api/contacts/all", signed_in(contacts_all), methods=["GET"]),
            Route("/Marti/api/groups/all", signed_in(groups_all), methods=["GET"]),
            Route("/Marti/api/groups/active", signed_in(groups_active), methods=["PUT"]),
            *extra,
        ]
    )
