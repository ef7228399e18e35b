"""The web map's live feed: one WebSocket per browser tab, a client of the hub.

A web session is a party with its user's groups, attached to the hub like a streaming
session, so routing and isolation are the hub's (a user sees what that user's ATAK would).
What the hub hands it waits in its :class:`~accord.api.web_batches.WebSink` and is written as
JSON batches ``{"now": ms, "items": [feature, ...]}`` by one writer task, at most one per
``flush_interval_s`` (a burst waits and coalesces rather than costing a message per hub turn;
sessions of the same groups share one body per tick, :mod:`accord.api.web_batches`); a browser
that does not read for ``blocked_timeout_s`` is closed, as a stream client is, and one that
reads slowly waits on a bounded queue (a uid's newer position replaces its queued one, the
rest is dropped and counted).

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
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from accord.api.web_batches import FeedSettings, WebSink
from accord.api.web_fence import fence_event, fence_message
from accord.domain.flow import TokenBucket
from accord.domain.geochat import (
    WEB_SA_INTERVAL_S,
    ChatRefused,
    Sender,
    to_chat,
    to_web_sa,
)
from accord.domain.groups import Membership
from accord.domain.ports import Exchange

log = logging.getLogger("accord.web")
MAX_CLIENT_MESSAGE_BYTES = 4096  # a chat message and its envelope; more is dropped
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
            reason, sink.closed = sink.closed, sink.closed or "ended"  # no more ticks for it
            if reason == NOT_READING:
                _abort(websocket)  # its buffer will never drain: a graceful close would wait
            elif websocket.application_state is not WebSocketState.DISCONNECTED:
                with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect):
                    await websocket.close(code=1000, reason=reason or "bye")

    async def _write(self, websocket: WebSocket, sink: WebSink) -> None:
        settings = self.settings
        while True:
            await sink.ready.wait()
            sink.ready.clear()
            if sink.closed is not None:
                return
            messages, sink.outbox = sink.outbox, ()
            sink.writing = True
            for body in messages:
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
            sink.writing = False
            if sink.waiting:  # what came while this was written waits for the next tick
                settings.ticker.due(sink)

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
