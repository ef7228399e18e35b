"""``/Marti/vcm``: the video feeds clients can open (reference tak-protocol §4.12).

``GET`` lists the feeds the caller's groups may see as ``<videoConnections>``; ``POST`` the same
XML adds or replaces feeds (shared into the caller's IN groups), or with
``?action=setActive&id=…&active=true|false`` switches one on or off; ``DELETE ?id=…`` removes
one the caller can see.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from urllib.parse import urlsplit

from lxml import etree
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from accord.api.marti import XML_DECLARATION, Caller, authorised
from accord.cot.errors import MalformedEvent
from accord.cot.xml import parse_fragment
from accord.domain.groups import Membership
from accord.store.contract import StoreError, VideoStore
from accord.store.records import VideoFeed

MAX_VCM_BYTES = 256 * 1024
# The feed elements of VideoConnections.xsd other than the ones a VideoFeed holds itself.
FEED_FIELDS = (
    "roverPort",
    "rtspReliable",
    "ignoreEmbeddedKLV",
    "buffer",
    "timeout",
    "source",
    "latitude",
    "longitude",
    "fov",
    "heading",
    "range",
    "preferredMacAddress",
    "type",
)
PROTOCOLS = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "rtp", "srt", "tcp", "raw")


class FeedError(ValueError):
    """A posted feed is not one a client could open; the message says why."""


def feed_xml(feed: VideoFeed) -> etree._Element:
    parts = urlsplit(feed.url)
    el = etree.Element("feed")
    for name, value in (
        ("id", feed.uid),
        ("uuid", feed.uid),
        ("active", "true" if feed.active else "false"),
        ("alias", feed.alias),
        ("address", parts.hostname or ""),
        ("port", str(parts.port) if parts.port else ""),
        ("path", parts.path + (f"?{parts.query}" if parts.query else "")),
        ("protocol", parts.scheme),
    ):
        etree.SubElement(el, name).text = value
    for name in FEED_FIELDS:
        if name in feed.fields:
            etree.SubElement(el, name).text = feed.fields[name]
    return el


def feeds_from_xml(
    body: bytes, groups: tuple[str, ...], new_uid: Callable[[], str]
) -> list[VideoFeed]:
    """Read posted ``<videoConnections>`` (or one ``<feed>``); raise :class:`FeedError`."""
    try:
        root = parse_fragment(body)
    except MalformedEvent as exc:
        raise FeedError(f"not well-formed XML: {exc}") from None
    feeds = [root] if root.tag == "feed" else root.findall("feed")
    if root.tag not in ("feed", "videoConnections") or not feeds:
        raise FeedError("expected <videoConnections> with <feed> elements")
    out = []
    for el in feeds:
        text = {child.tag: (child.text or "").strip() for child in el if isinstance(child.tag, str)}
        protocol = text.get("protocol", "").lower()
        address = text.get("address", "")
        if protocol not in PROTOCOLS:
            raise FeedError(f"protocol {protocol!r}: use one of {', '.join(PROTOCOLS)}")
        if not address or any(c in address for c in "/?#@ "):
            raise FeedError(f"address {address!r} is not a host name or IP address")
        port = text.get("port", "")
        if port and not (port.isdigit() and 0 < int(port) < 65536):
            raise FeedError(f"port {port!r} is not a port number")
        path = text.get("path", "")
        if path and not path.startswith("/"):
            path = "/" + path
        url = f"{protocol}://{address}{':' + port if port else ''}{path}"
        out.append(
            VideoFeed(
                uid=text.get("uuid") or text.get("id") or new_uid(),
                alias=text.get("alias") or address,
                url=url,
                groups=groups,
                fields={k: text[k] for k in FEED_FIELDS if text.get(k)},
                active=text.get("active", "true").lower() != "false",
            )
        )
    return out


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def video_routes(store: VideoStore, caller: Caller) -> list[BaseRoute]:
    async def listing(who: Membership) -> Response:
        root = etree.Element("videoConnections")
        for feed in await store.videos(who.outbound):
            root.append(feed_xml(feed))
        return Response(XML_DECLARATION + etree.tostring(root), media_type="application/xml")

    async def visible(uid: str, who: Membership) -> VideoFeed | None:
        return next((f for f in await store.videos(who.outbound) if f.uid == uid), None)

    async def vcm(request: Request, who: Membership) -> Response:
        try:
            if request.method == "GET":
                return await listing(who)
            if request.method == "DELETE":
                uid = request.query_params.get("id", "")
                if not uid or await visible(uid, who) is None:
                    return _error(404, f"no video feed {uid!r}")
                await store.delete_video(uid)
                return Response(status_code=200)
            if request.query_params.get("action") == "setActive":
                uid = request.query_params.get("id", "")
                active = request.query_params.get("active", "").lower()
                if active not in ("true", "false"):
                    return _error(400, "active must be true or false")
                feed = await visible(uid, who)
                if feed is None:
                    return _error(404, f"no video feed {uid!r}")
                await store.put_video(
                    VideoFeed(
                        feed.uid, feed.alias, feed.url, feed.groups, feed.fields, active == "true"
                    )
                )
                return Response(status_code=200)
            body = bytearray()
            async for chunk in request.stream():
                body += chunk
                if len(body) > MAX_VCM_BYTES:
                    return _error(413, f"video feed lists are limited to {MAX_VCM_BYTES} bytes")
            groups = tuple(sorted(who.inbound))
            feeds = feeds_from_xml(bytes(body), groups, lambda: str(uuid.uuid4()))
            for feed in feeds:
                existing = next((f for f in await store.videos(None) if f.uid == feed.uid), None)
                if existing is not None and await visible(feed.uid, who) is None:
                    return _error(403, f"video feed {feed.uid!r} belongs to other groups")
            for feed in feeds:
                await store.put_video(feed)
            return await listing(who)
        except FeedError as exc:
            return _error(400, str(exc))
        except StoreError as exc:
            return _error(503, f"video feeds are unavailable: {exc}")

    return [Route("/Marti/vcm", authorised(caller, vcm), methods=["GET", "POST", "DELETE"])]
