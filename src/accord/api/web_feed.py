"""The web map's live feed: one WebSocket per browser tab, a client of the hub.

A web session is a party with its user's groups, attached to the hub like a streaming
session, so routing and isolation are the hub's (a user sees what that user's ATAK would).
What the hub hands it waits in a bounded :class:`FeatureQueue`, as for a slow stream client
(a uid's newer position replaces its queued one, the rest is dropped and counted), and is
written as JSON batches ``{"now": ms, "items": [feature, ...]}`` by one writer task, at most
one per ``flush_interval_s`` (a burst waits and coalesces rather than costing a message per
hub turn); a
browser that does not read for ``blocked_timeout_s`` is closed, as a stream client is.

From the browser: JSON messages ``{"op": "chat", "text", "to_uid"?, "to_callsign"?}`` and
``{"op": "fence", "name", "trigger", "points"}`` (a geofence drawn on the map,
:mod:`accord.api.web_fence`); a
message that is too long, not JSON or not one of these is dropped and counted (never closes
the session), and chat is rate limited like a stream's input.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import secrets
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from accord.api.web_fence import fence_event, fence_message
from accord.cot.model import CotEvent
from accord.cot.outgoing import Outgoing
from accord.domain.flow import Push, TokenBucket, push_all
from accord.domain.geochat import (
    WEB_SA_INTERVAL_S,
    ChatRefused,
    Sender,
    to_chat,
    to_web_sa,
)
from accord.domain.groups import Membership
from accord.domain.metrics import Counters
from accord.domain.picture import feature_json
from accord.domain.ports import Exchange

log = logging.getLogger("accord.web")
MAX_CLIENT_MESSAGE_BYTES = 4096  # a chat message and its envelope; more is dropped
# One WebSocket message per interval at most: what arrives meanwhile waits in the queue (a
# uid's newer position replacing its older one), so a busy picture costs a few messages a
# second, not one per hub turn. A quiet picture's first event goes at once.
WEB_FLUSH_INTERVAL_S = 0.25
MAX_BATCH_ITEMS = 2000  # features per WebSocket message; a longer drain is split
FEATURE_CACHE_SIZE = 16_384  # encoded features kept, shared by every web session
CHAT_RATE_PER_S = 2.0
CHAT_BURST = 10.0
NOT_READING = "not reading"


def _abort(websocket: WebSocket) -> None:
    """Drop the connection at once. uvicorn's ASGI ``send`` is a method of its protocol, which
    holds the transport; a server without one (not uvicorn) just closes when the app returns."""
    transport = getattr(getattr(websocket._send, "__self__", None), "transport", None)
    abort = getattr(transport, "abort", None)
    if callable(abort):
        abort()


@dataclass(frozen=True, slots=True)
class WebUser:
    """Who a browser is: the user (certificate CN or password user) and its groups."""

    name: str
    membership: Membership


@dataclass(slots=True)
class WebStats:
    """What web sessions did, beside the hub's counters (shown at ``/metrics``)."""

    sessions: int = 0
    malformed: int = 0  # browser messages dropped: too long, not JSON, unknown op
    chat_sent: int = 0
    chat_refused: int = 0
    fences_sent: int = 0
    fences_refused: int = 0  # drawn fences dropped: bad name, trigger or vertices
    batches: int = 0
    blocked_closed: int = 0


class FeatureCache:
    """Each event's feature JSON, encoded once for all web sessions (the events are kept
    with their text so an id is never reused while cached)."""

    def __init__(self, size: int = FEATURE_CACHE_SIZE) -> None:
        self.size = size
        self._items: OrderedDict[int, tuple[CotEvent, str]] = OrderedDict()

    def text(self, event: CotEvent, now_ms: int) -> str:
        key = id(event)
        hit = self._items.get(key)
        if hit is not None and hit[0] is event:
            return hit[1]
        text = feature_json(event, now_ms)
        self._items[key] = (event, text)
        if len(self._items) > self.size:
            self._items.popitem(last=False)
        return text


@dataclass
class FeedSettings:
    queue_items: int
    blocked_timeout_s: float
    wall_ms: Callable[[], int]
    counters: Counters
    stats: WebStats = field(default_factory=WebStats)
    cache: FeatureCache = field(default_factory=FeatureCache)
    flush_interval_s: float = WEB_FLUSH_INTERVAL_S


class FeatureQueue:
    """What waits for one browser: bounded, and a uid's newer position replaces its queued
    one in place (a map wants the latest position, not every one); other items beyond the
    bound are dropped. The caller counts both."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: dict[object, Outgoing] = {}
        self._serial = 0

    def __len__(self) -> int:
        return len(self._items)

    def push(self, item: Outgoing) -> Push:
        key: object
        if item.is_position:
            key = item.event.uid
            if key in self._items:
                self._items[key] = item
                return Push.COALESCED
        else:
            self._serial += 1
            key = self._serial
        if len(self._items) >= self.capacity:
            return Push.DROPPED
        self._items[key] = item
        return Push.QUEUED

    def drain(self) -> list[Outgoing]:
        items = list(self._items.values())
        self._items.clear()
        return items


class WebSink:
    """The hub's side of one web session (:class:`accord.domain.ports.Sink`)."""

    wire_format = None  # the hub need not frame for it: it sends features

    def __init__(self, settings: FeedSettings) -> None:
        self.settings = settings
        self.queue = FeatureQueue(settings.queue_items)
        self.ready = asyncio.Event()
        self.closed: str | None = None
        self.dropped = 0
        self.coalesced = 0

    def send(self, items: list[Outgoing], data: bytes | None = None) -> int:
        if self.closed is not None:
            return 0
        counters = self.settings.counters
        pushed = push_all(self.queue, items)
        counters.queue_dropped += pushed.dropped
        self.dropped += pushed.dropped
        counters.queue_coalesced += pushed.coalesced
        self.coalesced += pushed.coalesced
        self.ready.set()
        return pushed.taken

    def close(self, reason: str, *, abort: bool = False) -> None:
        self.closed = self.closed or reason
        self.ready.set()


def decode_message(text: str) -> dict[str, Any] | None:
    """A browser message, or None when it is not one the feed takes."""
    if len(text.encode()) > MAX_CLIENT_MESSAGE_BYTES:
        return None
    try:
        message = json.loads(text)
    except ValueError:
        return None
    if not isinstance(message, dict) or message.get("op") != "chat":
        return None
    fields = ("text", "to_uid", "to_callsign")
    if not all(isinstance(message.get(k, ""), str) for k in fields):
        return None
    return message


class WebFeed:
    """The WebSocket endpoint: ``identify`` says who the browser is (None: refused)."""

    def __init__(
        self,
        hub: Exchange,
        settings: FeedSettings,
        identify: Callable[[WebSocket], Awaitable[WebUser | None]],
        allowed_origin: Callable[[WebSocket], bool],
    ) -> None:
        self.hub = hub
        self.settings = settings
        self.identify = identify
        self.allowed_origin = allowed_origin

    async def serve(self, websocket: WebSocket) -> None:
        if not self.allowed_origin(websocket):
            # Cross-site WebSocket hijacking: a page elsewhere cannot ride the cookie.
            await websocket.close(code=1008, reason="origin not allowed")
            return
        user = await self.identify(websocket)
        if user is None:
            await websocket.close(code=1008, reason="sign in first")
            return
        await websocket.accept()
        stats = self.settings.stats
        stats.sessions += 1
        sink = WebSink(self.settings)
        peer = websocket.client
        label = f"web:{peer.host}:{peer.port}" if peer else "web"
        party = self.hub.new_party(user.membership, label)
        party.principal = user.name
        sender = Sender(f"WEB-{user.name}-{secrets.token_hex(3)}", f"{user.name} (web)")
        log.info("web session user=%s peer=%s uid=%s", user.name, label, sender.uid)
        # Attached before the hello is sent: a page that has its hello hears everything routed
        # after it (what the hub hands the sink meanwhile waits for the writer, after hello).
        self.hub.attach(party, sink)
        hello = {"op": "hello", "uid": sender.uid, "callsign": sender.callsign}
        try:
            await websocket.send_text(
                json.dumps(
                    {"now": self.settings.wall_ms(), "items": [hello]}, separators=(",", ":")
                )
            )
            self.hub.submit(party, to_web_sa(sender, self.settings.wall_ms()))
            async with asyncio.TaskGroup() as group:
                writer = group.create_task(self._write(websocket, sink))
                reader = group.create_task(self._read(websocket, party, sender))
                beacon = group.create_task(self._beacon(party, sender))
                done = asyncio.Event()
                for task in (writer, reader):
                    task.add_done_callback(lambda _t: done.set())
                await done.wait()
                for task in (writer, reader, beacon):
                    task.cancel()
        except* (WebSocketDisconnect, OSError, RuntimeError) as exc:
            log.info("web session %s ended: %s", label, exc.exceptions[0])
        finally:
            stats.sessions -= 1
            self.hub.detach(party)
            if sink.closed == NOT_READING:
                _abort(websocket)  # its buffer will never drain: a graceful close would wait
            elif websocket.application_state is not WebSocketState.DISCONNECTED:
                with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect):
                    await websocket.close(code=1000, reason=sink.closed or "bye")

    async def _write(self, websocket: WebSocket, sink: WebSink) -> None:
        settings = self.settings
        sent_at = -math.inf
        while True:
            await sink.ready.wait()
            wait_s = sent_at + settings.flush_interval_s - time.monotonic()
            if wait_s > 0:
                await asyncio.sleep(wait_s)  # gather this interval's deltas into one message
            sink.ready.clear()
            if sink.closed is not None:
                return
            sent_at = time.monotonic()
            items = sink.queue.drain()
            for start in range(0, len(items), MAX_BATCH_ITEMS):
                now_ms = settings.wall_ms()
                texts = [
                    settings.cache.text(i.event, now_ms)
                    for i in items[start : start + MAX_BATCH_ITEMS]
                ]
                body = f'{{"now":{now_ms},"items":[{",".join(texts)}]}}'
                try:
                    async with asyncio.timeout(settings.blocked_timeout_s):
                        await websocket.send_text(body)
                except TimeoutError:
                    settings.stats.blocked_closed += 1
                    settings.counters.blocked_closed += 1
                    log.info(
                        "closing web session: not reading for %g s", settings.blocked_timeout_s
                    )
                    sink.close(NOT_READING)
                    return
                settings.stats.batches += 1

    async def _read(self, websocket: WebSocket, party: Any, sender: Sender) -> None:
        stats, bucket = self.settings.stats, TokenBucket(CHAT_RATE_PER_S, CHAT_BURST)
        while True:
            received = await websocket.receive()
            if received["type"] == "websocket.disconnect":
                raise WebSocketDisconnect(received.get("code", 1000))
            text = received.get("text")
            fence = fence_message(text) if isinstance(text, str) else None
            if fence is not None:  # a geofence drawn on the map (accord.api.web_fence)
                self._fence(party, sender, fence, bucket)
                continue
            message = decode_message(text) if isinstance(text, str) else None
            if message is None:
                stats.malformed += 1
                self.settings.counters.malformed += 1
                continue
            if not bucket.allow(time.monotonic()):
                self.settings.counters.rate_limited += 1
                continue
            try:
                event = to_chat(
                    sender,
                    message.get("text", ""),
                    self.settings.wall_ms(),
                    str(uuid.uuid4()),
                    to_uid=message.get("to_uid", ""),
                    to_callsign=message.get("to_callsign", ""),
                )
            except ChatRefused:
                stats.chat_refused += 1
                continue
            stats.chat_sent += 1
            self.hub.submit(party, event)

    def _fence(self, party: Any, sender: Sender, message: dict[str, Any], bucket: Any) -> None:
        if not bucket.allow(time.monotonic()):
            self.settings.counters.rate_limited += 1
            return
        event = fence_event(sender, message, self.settings.wall_ms())
        if isinstance(event, str):
            self.settings.stats.fences_refused += 1
            self.settings.counters.malformed += 1
            log.info("web fence from %s refused: %s", sender.uid, event)
            return
        self.settings.stats.fences_sent += 1
        self.hub.submit(party, event)

    async def _beacon(self, party: Any, sender: Sender) -> None:
        while True:
            await asyncio.sleep(WEB_SA_INTERVAL_S)
            self.hub.submit(party, to_web_sa(sender, self.settings.wall_ms()))
