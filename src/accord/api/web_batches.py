"""What waits for the web map's browsers, and the tick that turns it into WebSocket messages.

The hub hands every session of one group class the same list of items in a turn (the class's
shared selection; :meth:`accord.server.hub.Hub._flush`). A :class:`WebSink` keeps those lists
as they are, a reference per turn, and one :class:`Ticker` for all web sessions turns them into
message bodies at most once per ``flush_interval_s``: sessions that were handed the same lists
since the last tick (the same groups, nothing of their own meanwhile) get the same body,
coalesced and encoded once, so a web session's own work per tick is one WebSocket frame, as a
stream session's is one write per turn. A session handed something of its own (a direct chat,
its replay on joining, a turn it sent in, whose selection leaves out its own event) gets its own
body, built from exactly what the hub gave it, so isolation and order are the hub's.

A session whose browser is still reading the last messages at a tick, or that was handed more
than its bound, folds what it holds into its own :class:`FeatureQueue`, bounded, where a uid's
newer position replaces its queued one and the rest is dropped and counted, as for a slow
stream client; it gets its own body when it is ready again.
"""

from __future__ import annotations

import asyncio
import math
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from accord.cot.model import CotEvent
from accord.cot.outgoing import Outgoing
from accord.domain.flow import Push, Pushed, push_all
from accord.domain.metrics import Counters
from accord.domain.picture import feature_json

# One WebSocket message per interval at most: what arrives meanwhile waits (a uid's newer
# position replacing its older one), so a busy picture costs a few messages a second, not one
# per hub turn. A quiet picture's first event goes at once.
WEB_FLUSH_INTERVAL_S = 0.25
MAX_BATCH_ITEMS = 2000  # features per WebSocket message; a longer drain is split
FEATURE_CACHE_SIZE = 16_384  # encoded features kept, shared by every web session


@dataclass(slots=True)
class WebStats:
    """What web sessions did, beside the hub's counters (shown at ``/metrics``)."""

    sessions: int = 0
    malformed: int = 0  # browser messages dropped: too long, not JSON, unknown op
    chat_sent: int = 0
    chat_refused: int = 0
    fences_sent: int = 0
    fences_refused: int = 0  # drawn fences dropped: bad name, trigger or vertices
    batches: int = 0  # WebSocket messages written
    bodies: int = 0  # message bodies built (one serves every session handed the same items)
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


@dataclass
class FeedSettings:
    queue_items: int
    blocked_timeout_s: float
    wall_ms: Callable[[], int]
    counters: Counters
    stats: WebStats = field(default_factory=WebStats)
    cache: FeatureCache = field(default_factory=FeatureCache)
    flush_interval_s: float = WEB_FLUSH_INTERVAL_S
    ticker: Ticker = field(init=False)

    def __post_init__(self) -> None:
        self.ticker = Ticker(self)


class WebSink:
    """The hub's side of one web session (:class:`accord.domain.ports.Sink`)."""

    wire_format = None  # the hub need not frame for it: it sends features

    def __init__(self, settings: FeedSettings) -> None:
        self.settings = settings
        self.inbox: list[list[Outgoing]] = []  # the hub's lists since the last tick, as given
        self.inbox_items = 0
        self.queue = FeatureQueue(settings.queue_items)  # its own, when it cannot share
        self.outbox: tuple[str, ...] = ()  # message bodies for the writer
        self.writing = False  # the writer is sending the last outbox
        self.ready = asyncio.Event()
        self.closed: str | None = None
        self.dropped = 0
        self.coalesced = 0

    def send(self, items: list[Outgoing], data: bytes | None = None) -> int:
        if self.closed is not None:
            return 0
        if self.inbox_items + len(items) > self.settings.queue_items:
            taken = self._fold([*self.inbox, items]).taken
        else:
            self.inbox.append(items)
            self.inbox_items += len(items)
            taken = len(items)
        self.settings.ticker.due(self)
        return taken

    def fold(self) -> None:
        """Move what the hub handed it into its own queue (it will not share this tick)."""
        if self.inbox:
            self._fold(self.inbox)

    def _fold(self, lists: list[list[Outgoing]]) -> Pushed:
        self.inbox, self.inbox_items = [], 0
        pushed = push_all(self.queue, (item for items in lists for item in items))
        self.count(pushed.coalesced, pushed.dropped)
        return pushed

    def count(self, coalesced: int, dropped: int) -> None:
        counters = self.settings.counters
        counters.queue_dropped += dropped
        self.dropped += dropped
        counters.queue_coalesced += coalesced
        self.coalesced += coalesced

    @property
    def waiting(self) -> bool:
        """Something is held for the browser: handed by the hub or folded into its queue."""
        return bool(self.inbox) or len(self.queue) > 0

    def deliver(self, messages: tuple[str, ...]) -> None:
        self.outbox = messages
        self.ready.set()

    def close(self, reason: str, *, abort: bool = False) -> None:
        self.closed = self.closed or reason
        self.ready.set()


class Ticker:
    """The web sessions' clock: at most one tick per ``flush_interval_s``, armed when a sink
    is handed something, that gives each waiting sink its next messages."""

    def __init__(self, settings: FeedSettings) -> None:
        self.settings = settings
        self._waiting: dict[WebSink, None] = {}  # in the order they were handed something
        self._armed: asyncio.Handle | asyncio.TimerHandle | None = None
        self._last = -math.inf

    def due(self, sink: WebSink) -> None:
        self._waiting[sink] = None
        if self._armed is None:
            loop = asyncio.get_running_loop()
            delay = self._last + self.settings.flush_interval_s - loop.time()
            if delay > 0:
                self._armed = loop.call_later(delay, self.tick)
            else:
                self._armed = loop.call_soon(self.tick)

    def tick(self) -> None:
        """Give every waiting sink whose writer is free its messages; one body is built per
        distinct sequence of the hub's lists, and shared by the sinks handed that sequence."""
        if self._armed is not None:
            self._armed.cancel()
            self._armed = None
        self._last = asyncio.get_running_loop().time()
        waiting, self._waiting = self._waiting, {}
        now_ms = self.settings.wall_ms()
        shared: dict[tuple[int, ...], tuple[tuple[str, ...], int, int, list[list[Outgoing]]]] = {}
        for sink in waiting:
            if sink.closed is not None:
                continue
            if sink.writing or sink.outbox:
                sink.fold()  # the browser is still on the last tick's: it waits, coalescing
                continue
            if len(sink.queue):
                sink.fold()
                sink.deliver(self.messages(sink.queue.drain(), now_ms))
                continue
            if not sink.inbox:
                continue
            key = tuple(map(id, sink.inbox))
            hit = shared.get(key)
            if hit is None:
                queue = FeatureQueue(sink.settings.queue_items)
                pushed = push_all(queue, (item for items in sink.inbox for item in items))
                hit = (self.messages(queue.drain(), now_ms), pushed.coalesced, pushed.dropped, [])
                hit[3].extend(sink.inbox)  # its lists stay alive while their ids are keys
                shared[key] = hit
            sink.inbox, sink.inbox_items = [], 0
            sink.count(hit[1], hit[2])
            sink.deliver(hit[0])

    def messages(self, items: list[Outgoing], now_ms: int) -> tuple[str, ...]:
        """``{"now": ms, "items": [feature, ...]}`` bodies, at most MAX_BATCH_ITEMS each."""
        text = self.settings.cache.text
        self.settings.stats.bodies += 1
        return tuple(
            f'{{"now":{now_ms},"items":[{",".join(text(i.event, now_ms) for i in chunk)}]}}'
            for chunk in _chunks(items)
        )


def _chunks(items: list[Outgoing]) -> Iterable[list[Outgoing]]:
    for start in range(0, len(items), MAX_BATCH_ITEMS):
        yield items[start : start + MAX_BATCH_ITEMS]
