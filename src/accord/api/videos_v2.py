"""TAK Server's Video API v2 (``/Marti/api/video``), the JSON beside ``/Marti/vcm``.

A *connection* (``VideoConnection``) groups one or more *feeds* (``Feed``); node-tak and
CloudTAK read and write these shapes:

    GET    /Marti/api/video[?protocol=rtsp]  {"videoConnections": [connection, ...]}
    POST   /Marti/api/video                  {"videoConnections": [connection input, ...]}
    GET    /Marti/api/video/{uuid}           one connection
    PUT    /Marti/api/video/{uuid}           replace it (its feeds with it)
    DELETE /Marti/api/video/{uuid}           remove it

Each feed is kept as one :class:`VideoFeed` of the store, so the feeds ``/Marti/vcm`` lists
are the same ones (a feed posted there is a connection of one feed here). A feed remembers
its connection in its fields (``connection``, ``connectionAlias``); it is shared into the
poster's IN groups and seen by callers whose OUT groups meet them, as on ``/Marti/vcm``.

The drones' ``<__video>`` streams (a drone feed with ``video_url``) are listed too, one
connection per vehicle, while the feed runs; they cannot be changed here (409): change the
drone feed instead.
"""

from __future__ import annotations

import dataclasses
import json
import uuid as uuids
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from accord.api.marti import Caller, authorised
from accord.api.video import MAX_VCM_BYTES, PROTOCOLS, FeedError
from accord.domain.groups import Membership
from accord.store.contract import StoreError, VideoStore
from accord.store.records import VideoFeed

CONNECTION = "connection"  # the fields a feed keeps its connection in
CONNECTION_ALIAS = "connectionAlias"
MAX_FEEDS = 64  # in one connection
MAX_TEXT_CHARS = 1024  # any one value

# Feed members kept verbatim as the /Marti/vcm field of the same meaning (JSON name: field).
STRING_FIELDS = {
    "macAddress": "preferredMacAddress",
    "roverPort": "roverPort",
    "ignoreEmbeddedKLV": "ignoreEmbeddedKLV",
    "networkTimeout": "timeout",
    "bufferTime": "buffer",
    "rtspReliable": "rtspReliable",
}
NULLABLE_FIELDS = {
    "source": "source",
    "latitude": "latitude",
    "longitude": "longitude",
    "fov": "fov",
    "heading": "heading",
    "range": "range",
    "thumbnail": "thumbnail",
    "classification": "classification",
}
NUMBER_FIELDS = ("order", "width", "height", "bitrate")

# A drone's stream, while its feed runs: (groups, vehicle uid, callsign, url).
LiveVideo = tuple[tuple[str, ...], str, str, str]


def feed_json(feed: VideoFeed) -> dict[str, Any]:
    """node-tak's ``Feed``: every member present, the unknown ones ``""`` or null."""
    out: dict[str, Any] = {
        "uuid": feed.uid,
        "active": feed.active,
        "alias": feed.alias,
        "url": feed.url,
    }
    for name, key in STRING_FIELDS.items():
        out[name] = feed.fields.get(key, "")
    for name, key in NULLABLE_FIELDS.items():
        out[name] = feed.fields.get(key) or None
    for name in NUMBER_FIELDS:
        text = feed.fields.get(name, "")
        out[name] = int(text) if text.lstrip("-").isdigit() else None
    return out


def connection_json(uid: str, alias: str, feeds: list[VideoFeed]) -> dict[str, Any]:
    return {
        "uuid": uid,
        "active": any(f.active for f in feeds),
        "alias": alias,
        "thumbnail": None,
        "classification": None,
        "feeds": [feed_json(f) for f in feeds],
    }


def connections(feeds: list[VideoFeed]) -> dict[str, tuple[str, list[VideoFeed]]]:
    """Feeds by connection uuid, each with the connection's alias, in first-seen order."""
    out: dict[str, tuple[str, list[VideoFeed]]] = {}
    for feed in feeds:
        uid = feed.fields.get(CONNECTION, feed.uid)
        alias = feed.fields.get(CONNECTION_ALIAS, feed.alias)
        out.setdefault(uid, (alias, []))[1].append(feed)
    return out


def _text(value: Any, what: str, *, required: bool = False) -> str:
    if value is None and not required:
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise FeedError(f"{what} must be text")
    text = str(value).strip()
    if required and not text:
        raise FeedError(f"{what} is required")
    if len(text) > MAX_TEXT_CHARS or any(ord(c) < 32 for c in text):
        raise FeedError(f"{what} must be one line of at most {MAX_TEXT_CHARS} characters")
    return text


def _url(text: str) -> str:
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise FeedError(f"url {text!r} is not a URL") from None
    if parts.scheme.lower() not in PROTOCOLS:
        raise FeedError(f"url {text!r}: the protocol must be one of {', '.join(PROTOCOLS)}")
    if not parts.hostname:
        raise FeedError(f"url {text!r} names no host")
    if port is not None and port == 0:
        raise FeedError(f"url {text!r}: port 0 is not a port")
    return text


def feeds_from_json(
    body: Any, uid: str | None, groups: tuple[str, ...], new_uid: Callable[[], str]
) -> tuple[str, list[VideoFeed]]:
    """One connection input as the store's feeds; raise :class:`FeedError` naming the fault."""
    if not isinstance(body, dict):
        raise FeedError("a video connection must be a JSON object")
    conn_uid = uid or _text(body.get("uuid"), "uuid") or new_uid()
    alias = _text(body.get("alias"), "alias", required=True)
    active = body.get("active", True)
    if not isinstance(active, bool):
        raise FeedError("active must be true or false")
    raw_feeds = body.get("feeds")
    if not isinstance(raw_feeds, list) or not raw_feeds:
        raise FeedError("feeds must be a list of at least one feed")
    if len(raw_feeds) > MAX_FEEDS:
        raise FeedError(f"a connection has at most {MAX_FEEDS} feeds")
    out: list[VideoFeed] = []
    for index, raw in enumerate(raw_feeds):
        where = f"feeds[{index}]"
        if not isinstance(raw, dict):
            raise FeedError(f"{where} must be a JSON object")
        feed_active = raw.get("active", True)
        if not isinstance(feed_active, bool):
            raise FeedError(f"{where}.active must be true or false")
        url = _url(_text(raw.get("url"), f"{where}.url", required=True))
        kept = {CONNECTION: conn_uid, CONNECTION_ALIAS: alias}
        for name, key in {**STRING_FIELDS, **NULLABLE_FIELDS}.items():
            value = _text(raw.get(name), f"{where}.{name}")
            if value:
                kept[key] = value
        for name in NUMBER_FIELDS:
            number = raw.get(name)
            if number is None:
                continue
            if isinstance(number, bool) or not isinstance(number, int):
                raise FeedError(f"{where}.{name} must be a whole number or null")
            kept[name] = str(number)
        out.append(
            VideoFeed(
                uid=_text(raw.get("uuid"), f"{where}.uuid") or new_uid(),
                alias=_text(raw.get("alias"), f"{where}.alias") or alias,
                url=url,
                groups=groups,
                fields=kept,
                active=feed_active and active,
            )
        )
    if len({f.uid for f in out}) != len(out):
        raise FeedError("two feeds of the connection have the same uuid")
    return conn_uid, out


class Refusal(Exception):
    """A request refused with ``status`` (403 not the caller's, 409 a drone's stream)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def video_v2_routes(
    store: VideoStore, caller: Caller, live: Callable[[], list[LiveVideo]] = list
) -> list[BaseRoute]:
    def new_uid() -> str:
        return str(uuids.uuid4())

    def drones(who: Membership) -> dict[str, tuple[str, list[VideoFeed]]]:
        out: dict[str, tuple[str, list[VideoFeed]]] = {}
        for groups, vehicle, callsign, url in live():
            if who.outbound.isdisjoint(groups):
                continue
            uid = f"{vehicle}.video"
            out[uid] = (callsign, [VideoFeed(uid, callsign, url, groups, {"source": vehicle})])
        return out

    async def visible(who: Membership) -> dict[str, tuple[str, list[VideoFeed]]]:
        return {**connections(await store.videos(who.outbound)), **drones(who)}

    async def body_of(request: Request) -> Any:
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_VCM_BYTES:
                raise FeedError(f"a video request is limited to {MAX_VCM_BYTES} bytes")
        try:
            return json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise FeedError(f"the body is not JSON: {exc}") from None

    async def check_writable(
        conn_uid: str, feeds: list[VideoFeed], who: Membership
    ) -> list[VideoFeed]:
        """Refuse a drone's stream (409) and what the caller may not change (403): feeds it
        cannot see, and feeds shared with a group it does not send into. Return ``feeds``
        with the groups of the feeds they replace (a change never moves a feed elsewhere)."""
        if conn_uid in drones(who):
            raise Refusal(409, f"{conn_uid} is a drone's stream: change its drone feed instead")
        if not who.inbound:
            raise Refusal(403, "you send into no group, so no one could see a video you share")
        mine = await store.videos(who.outbound)
        everyone = await store.videos(None)
        theirs = {f.uid for f in everyone} - {f.uid for f in mine}
        if conn_uid in set(connections(everyone)) - set(connections(mine)):
            raise Refusal(403, f"video connection {conn_uid!r} belongs to other groups")
        for feed in feeds:
            if feed.uid in theirs:
                raise Refusal(403, f"video feed {feed.uid!r} belongs to other groups")
        old = {f.uid: f for f in connections(mine).get(conn_uid, ("", []))[1]}
        old.update((f.uid, f) for f in mine if f.uid in {n.uid for n in feeds})
        check_groups_within(old.values(), who)
        return [
            dataclasses.replace(f, groups=old[f.uid].groups) if f.uid in old else f for f in feeds
        ]

    def check_groups_within(feeds: Iterable[VideoFeed], who: Membership) -> None:
        for feed in feeds:
            if not set(feed.groups) <= who.inbound:
                raise Refusal(
                    403, f"video feed {feed.uid!r} is shared with groups you do not send into"
                )

    async def replace(conn_uid: str, feeds: list[VideoFeed], who: Membership) -> None:
        old = connections(await store.videos(who.outbound)).get(conn_uid)
        keep = {f.uid for f in feeds}
        for feed in feeds:
            await store.put_video(feed)
        for feed in old[1] if old else []:
            if feed.uid not in keep:
                await store.delete_video(feed.uid)

    async def guarded(request: Request, who: Membership) -> Response:
        try:
            return await handle(request, who)
        except FeedError as exc:
            return _error(400, str(exc))
        except Refusal as exc:
            return _error(exc.status, exc.message)
        except StoreError as exc:
            return _error(503, f"video feeds are unavailable: {exc}")

    async def handle(request: Request, who: Membership) -> Response:
        uid = request.path_params.get("uuid")
        groups = tuple(sorted(who.inbound))
        if uid is None and request.method == "GET":
            protocol = request.query_params.get("protocol", "").lower()
            rows = [
                connection_json(c_uid, alias, feeds)
                for c_uid, (alias, feeds) in (await visible(who)).items()
                if not protocol or any(f.url.lower().startswith(protocol + ":") for f in feeds)
            ]
            return JSONResponse({"videoConnections": rows})
        if uid is None:  # POST
            body = await body_of(request)
            if not isinstance(body, dict) or not isinstance(body.get("videoConnections"), list):
                raise FeedError('the body must be {"videoConnections": [...]}')
            made = [feeds_from_json(c, None, groups, new_uid) for c in body["videoConnections"]]
            made = [(c_uid, await check_writable(c_uid, feeds, who)) for c_uid, feeds in made]
            for conn_uid, feeds in made:
                await replace(conn_uid, feeds, who)
            shown = await visible(who)
            rows = [connection_json(u, *shown[u]) for u, _ in made if u in shown]
            return JSONResponse({"videoConnections": rows})
        found = (await visible(who)).get(uid)
        if request.method == "GET":
            if found is None:
                return _error(404, f"no video connection {uid!r}")
            return JSONResponse(connection_json(uid, *found))
        if uid in drones(who):
            raise Refusal(409, f"{uid} is a drone's stream: change its drone feed instead")
        if request.method == "DELETE":
            if found is None:
                return _error(404, f"no video connection {uid!r}")
            check_groups_within(found[1], who)
            for feed in found[1]:
                await store.delete_video(feed.uid)
            return Response(status_code=200)
        # PUT: replace the connection (created when new, as TAK Server's update does)
        conn_uid, feeds = feeds_from_json(await body_of(request), uid, groups, new_uid)
        feeds = await check_writable(conn_uid, feeds, who)
        await replace(conn_uid, feeds, who)
        # As stored; the caller may not see it back when its IN and OUT groups differ.
        alias = feeds[0].fields[CONNECTION_ALIAS]
        return JSONResponse(connection_json(conn_uid, alias, feeds))

    endpoint = authorised(caller, guarded)
    return [
        Route("/Marti/api/video", endpoint, methods=["GET", "POST"]),
        Route("/Marti/api/video/{uuid}", endpoint, methods=["GET", "PUT", "DELETE"]),
    ]
