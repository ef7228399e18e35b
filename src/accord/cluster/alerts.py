"""The organisation's alerts in a cluster: computed on one node, acknowledged on all (issue 17).

Separation and geofence alerts are computed by one node only, the holder of the ``alerts``
lease (:mod:`accord.cluster.lease`); its alert events are routed like any event, so every node
delivers them to its own clients, and each client gets each one once.

:class:`AlertsFeed` (run on the holder while it holds the lease) hands the coordination every
event the organisation routes on other nodes, whatever group it is in: a subscription to every
group's subjects, and, on taking over, the latest SA of every uid from the last-per-subject
stream (the tracks a conflict already ongoing is judged on). The sender's groups and whether it
is a drone feed or a partner link come from the bus headers (``Route.source``). Copies of a
multi-group event are dropped by its id, as the bus does.

:class:`SharedAcks`: acknowledgements by alert uid in a JetStream KV bucket; every node watches
it, so an acknowledgement made through one node's API is shown by every node's. The holder
deletes an alert's acknowledgement when it cancels the alert.

Bad messages and records are dropped and counted; NATS trouble is counted and retried.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Any, Literal

from nats.aio.msg import Msg
from nats.js.api import DeliverPolicy

from accord.cluster.subjects import (
    PREFIX,
    BusHeaderError,
    Seen,
    decode_headers,
    kv_token,
    kv_untoken,
    sa_stream,
    token,
)
from accord.cluster.sync import (
    KV_DELETES,
    bucket_name,
    open_bucket,
    still_wanted,
    watch_entries,
)
from accord.cot.errors import CotError
from accord.cot.model import CotEvent, WireFormat
from accord.cot.proto import decode_proto
from accord.cot.xml import decode_xml
from accord.domain.alert_acks import Ack, AckBook
from accord.domain.views import Sample

log = logging.getLogger("accord.cluster")

ALERTS_LEASE = "alerts"  # the lease key of the node that computes the alerts
CATCH_UP_WAIT_S = 2.0  # a latest SA not delivered within this ends the catch-up
ACK_RETRY_S = 1.0
UNSUBSCRIBE_TIMEOUT_S = 1.0

Kind = Literal["gauge", "counter"]
# (the event, the sender's groups, its Route.source label)
Take = Callable[[CotEvent, frozenset[str], str], None]


class AlertsFeed:
    """Every group's events to the coordination of the alerts lease holder."""

    def __init__(
        self,
        connection: Any,
        *,
        org: str,
        node: str,
        take: Take,
        wall_ms: Callable[[], int],
        max_depth: int = 32,
        wants: Callable[[str], bool] | None = None,
    ) -> None:
        """``wants(type)``: whether the coordination takes events of that CoT type at all;
        an XML event of another type is skipped before it is decoded."""
        self._nc = connection
        self._wants = wants
        self._org = org
        self.node = node
        self._take = take
        self._wall_ms = wall_ms
        self._max_depth = max_depth
        self._seen = Seen()
        self.lease: Any = None  # the alerts lease's keeper, for /metrics (set by the owner)
        self.received = 0
        self.caught_up = 0
        self.skipped = 0  # not decoded: a type the coordination does not take
        self.catch_up_failed = 0
        self.dropped = 0

    async def run(self) -> None:
        """Run by the owner while this node holds the lease (cancelled when it loses it)."""
        org = token(self._org)
        subs = [
            await self._nc.subscribe(f"{PREFIX}.{org}.ev.>", cb=self._live),
            await self._nc.subscribe(f"{PREFIX}.{org}.sa.>", cb=self._live),
        ]
        try:
            try:
                await self._nc.flush()  # subscribed before the stream is read: nothing missed
                await self._catch_up(f"{PREFIX}.{org}.sa.>")
            except Exception as exc:  # NATS trouble: the live events go on; counted
                self.catch_up_failed += 1
                log.warning("cluster: alerts feed could not read the latest SAs: %s", exc)
            while True:
                still_wanted()
                await asyncio.sleep(3600)
        finally:
            for sub in subs:
                await _unsubscribe(sub)

    async def _catch_up(self, subjects: str) -> None:
        """The latest SA of every uid of every group (this node's own included: while it stood
        by, its coordination took none of them)."""
        js = self._nc.jetstream()
        stream = sa_stream(self._org)
        info = await js.stream_info(stream)
        if not info.state.messages:
            return
        sub = await js.subscribe(
            subjects,
            stream=stream,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
        )
        try:
            while True:
                try:
                    msg = await sub.next_msg(timeout=CATCH_UP_WAIT_S)
                except TimeoutError:
                    return
                if self._handle(msg.headers, msg.data or b"", stored=True):
                    self.caught_up += 1
                if not msg.metadata.num_pending:
                    return
        finally:
            await _unsubscribe(sub)

    async def _live(self, msg: Msg) -> None:
        self._handle(msg.headers, msg.data or b"", stored=False)

    def _handle(self, headers: dict[str, str] | None, payload: bytes, *, stored: bool) -> bool:
        try:
            route = decode_headers(headers)
            if route.node == self.node and not stored:
                return False  # this node's own events reach the coordination by the hub tap
            if not self._seen.first(f"{route.node}.{route.event_id}"):
                return False  # another group's copy
            if route.wire_format is WireFormat.XML:
                kind = xml_type(payload)
                if kind is not None and self._wants is not None and not self._wants(kind):
                    self.skipped += 1
                    return False
                event = decode_xml(payload, max_depth=self._max_depth)
            else:
                event = decode_proto(payload, max_depth=self._max_depth)
        except (BusHeaderError, CotError, ValueError) as exc:
            self.dropped += 1
            log.debug("cluster: alerts feed message dropped: %s", exc)
            return False
        if stored and event.stale <= self._wall_ms():
            return False  # an old SA: no track any more
        self.received += 1
        self._take(event, route.groups, route.source)
        return True

    def samples(self) -> list[Sample]:
        """For /metrics: whether this node computes the alerts, and what it was fed."""
        values: list[tuple[str, Kind, str, float]] = [
            ("cluster_alerts_fed_total", "counter", "events of other nodes fed to the alerts",
             self.received),
            ("cluster_alerts_caught_up_total", "counter", "latest SAs read on taking over",
             self.caught_up),
            ("cluster_alerts_dropped_total", "counter", "feed messages refused (bad input)",
             self.dropped),
            ("cluster_alerts_skipped_total", "counter", "feed events of no use, not decoded",
             self.skipped),
            ("cluster_alerts_catch_up_failed_total", "counter", "takeovers without the latest SAs",
             self.catch_up_failed),
        ]  # fmt: skip
        core = None if self.lease is None else self.lease.core
        if core is not None:
            values += [
                ("cluster_alerts_computing", "gauge", "1 while this node computes the alerts",
                 float(core.holding)),
                ("cluster_alerts_lease_gained_total", "counter", "times it took the alerts lease",
                 core.gained),
                ("cluster_alerts_lease_lost_total", "counter", "times it stopped holding it",
                 core.lost),
            ]  # fmt: skip
        return [Sample(n, k, h, float(v)) for n, k, h, v in values]


def xml_type(payload: bytes) -> str | None:
    """The ``type`` attribute of an XML event's root element, read without parsing; None when
    it is not plainly there (the event is then decoded, and judged, in full)."""
    start = payload.find(b"<event")
    end = payload.find(b">", start)
    if start < 0 or end < 0:
        return None
    head = payload[start:end]
    for quote in (b'"', b"'"):
        at = head.find(b" type=" + quote)
        if at >= 0:
            at += 7
            stop = head.find(quote, at)
            if stop < 0:
                return None
            try:
                return head[at:stop].decode("ascii")
            except UnicodeDecodeError:
                return None
    return None


async def _unsubscribe(sub: Any) -> None:
    """Bounded: with NATS gone, a lost lease must not wait on it."""
    try:
        async with asyncio.timeout(UNSUBSCRIBE_TIMEOUT_S):
            await sub.unsubscribe()
    except Exception as exc:  # NATS gone: the subscription went with it
        log.debug("cluster: alerts feed not unsubscribed: %s", exc)


class SharedAcks:
    """The organisation's acknowledgements of alerts (the API's ``AlertAcks``), shared."""

    def __init__(self, js: Any, org: str, replicas: int = 1) -> None:
        self._js = js
        self._bucket = bucket_name("ACKS", org)
        self._replicas = replicas
        self.book = AckBook()
        self._kv: Any = None
        self._writes: deque[tuple[str, bytes | None]] = deque()
        self._wake = asyncio.Event()
        self.written = 0
        self.applied = 0
        self.errors = 0
        self.rewatches = 0

    async def _ready(self) -> Any:
        """The bucket, opened (made if need be) by whichever loop needs it first; a failure
        raises into the loop, which its owner restarts."""
        if self._kv is None:
            self._kv = await open_bucket(self._js, self._bucket, self._replicas)
        return self._kv

    # -- the API's side ------------------------------------------------------------------------
    def acknowledge(self, uid: object, by: str, now_ms: int) -> Ack | str:
        known = self.book.acks.get(uid) if isinstance(uid, str) else None
        ack = self.book.acknowledge(uid, by, now_ms)
        if isinstance(ack, Ack) and known is None:
            self._queue(ack.uid, ack.encode())
        return ack

    def views(self) -> list[dict[str, str | int]]:
        return self.book.views()

    def cleared(self, uid: str) -> None:
        """The alert was cancelled (by this node: it computes the alerts)."""
        if self.book.clear(uid):
            self._queue(uid, None)

    def _queue(self, uid: str, data: bytes | None) -> None:
        self._writes.append((uid, data))
        self._wake.set()

    # -- the bucket ----------------------------------------------------------------------------
    async def write_loop(self) -> None:
        """Run by the owner: writes what the API and the cancels queued, in order."""
        while True:
            still_wanted()
            await self._wake.wait()
            self._wake.clear()
            while self._writes:
                uid, data = self._writes[0]
                try:
                    kv = await self._ready()
                    if data is None:
                        await kv.delete(kv_token(uid))
                    else:
                        await kv.put(kv_token(uid), data)
                    self.written += 1
                    self._writes.popleft()
                except Exception as exc:  # NATS down: counted, tried again
                    self.errors += 1
                    log.debug("cluster: acknowledgement of %s not written: %s", uid, exc)
                    await asyncio.sleep(ACK_RETRY_S)

    async def watch_loop(self) -> None:
        """What every node acknowledged (and the cancels deleted), into this node's book."""

        def watched(entry: Any) -> None:
            if entry is None:
                return
            try:
                uid = kv_untoken(entry.key)
            except BusHeaderError:
                self.book.refused["bad key"] += 1
                return
            value = None if entry.operation in KV_DELETES else (entry.value or b"")
            if self.book.apply(uid, value):
                self.applied += 1

        while True:  # NATS trouble is counted and waited out, never raised to the owner
            still_wanted()
            try:
                await watch_entries(await self._ready(), watched, self._rewatch)
            except Exception as exc:
                self.errors += 1
                log.debug("cluster: acknowledgements not watched: %s", exc)
                await asyncio.sleep(ACK_RETRY_S)

    def _rewatch(self) -> None:
        self.rewatches += 1

    def samples(self) -> list[Sample]:
        values: tuple[tuple[str, Kind, str, int], ...] = (
            ("alert_acks_shown", "gauge", "alerts shown acknowledged", len(self.book.acks)),
            ("alert_acks_written_total", "counter", "acknowledgements written", self.written),
            ("alert_acks_applied_total", "counter", "other nodes' applied here", self.applied),
            ("alert_acks_errors_total", "counter", "writes that failed", self.errors),
            ("alert_acks_rewatches_total", "counter", "watches made again", self.rewatches),
        )
        out = [Sample(n, k, h, float(v)) for n, k, h, v in values]
        why = "acknowledgements refused (bad input), by reason"
        for reason, count in sorted(self.book.refused.items()):
            labels = (("reason", reason),)
            out.append(Sample("alert_acks_refused_total", "counter", why, count, labels))
        return out
