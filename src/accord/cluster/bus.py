"""The bus adapter: the hub's events to NATS and NATS's to the hub (issue 17).

Locally routed events are published once per event, on the subjects of the groups the sender
sends into (see ``subjects``), as received. The node subscribes to the groups its sessions hear
and hands each bus event to the hub through a relay party of the sender's groups, which the
hub routes like a partner link's events (its SAs are kept for newcomers). Events from the bus
are never published again (loop-free): their sender is a relay party. When the node gains a
group, it reads that group's latest SAs from the last-per-subject stream.

NATS trouble while running is counted (``degraded``) and logged, never raised into the hub.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import nats
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import StorageType, StreamConfig
from nats.js.errors import (
    BadRequestError,
    KeyWrongLastSequenceError,
    NoStreamResponseError,
    NotFoundError,
    ServiceUnavailableError,
)

from accord.cluster.presence import Regrouped
from accord.cluster.shared import SharedState
from accord.cluster.state import CLUSTER_KEY, Member, decode_member, encode_member, join_refusal
from accord.cluster.subjects import (
    BusHeaderError,
    Interest,
    Route,
    Seen,
    decode_headers,
    encode_headers,
    event_subject,
    sa_filter,
    sa_stream,
    sa_subject,
    subjects_for,
    token,
)
from accord.cluster.sync import Hub, PresenceSync, bucket_name, open_bucket, still_wanted
from accord.cot.errors import CotError
from accord.cot.model import CotEvent, WireFormat
from accord.cot.outgoing import Outgoing
from accord.cot.proto import decode_proto
from accord.cot.xml import decode_xml, encode_xml
from accord.domain.contacts import Party
from accord.domain.groups import Membership
from accord.domain.views import Sample

log = logging.getLogger("accord.cluster")
_T = TypeVar("_T")

CONNECT_TIMEOUT_S = 3.0
DRAIN_TIMEOUT_S = 2.0  # at close: what is in flight gets this long (nats-py's default is 30 s)
STREAM_READY_TIMEOUT_S = 20.0  # a just-started NATS cluster electing its JetStream leaders
STREAM_RETRY_S = 0.25
INTEREST_CHECK_S = 0.05  # how often the groups the node's sessions hear are looked at
MAX_PENDING_EVENTS = 50_000  # waiting to be published; beyond, dropped and counted
SA_MAX_AGE_S = 24 * 3600.0  # latest SAs older than this leave the stream
MAX_RELAY_PARTIES = 4096  # distinct sender group sets seen from the bus


class BusError(RuntimeError):
    """NATS cannot be reached at start, or the latest-SA stream cannot be made."""


async def _any_reachable(urls: list[str]) -> bool:
    for url in urls:
        parsed = urlsplit(url if "://" in url else f"nats://{url}")
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(parsed.hostname or "127.0.0.1", parsed.port or 4222),
                CONNECT_TIMEOUT_S,
            )
        except (OSError, TimeoutError, ValueError):
            continue
        writer.close()
        return True
    return False


async def _when_ready(op: Callable[[], Awaitable[_T]]) -> _T:
    """``op`` once JetStream answers: a bucket just made (or a cluster just started) has no
    leader for a moment, and says so with timeouts and "no response" errors."""
    deadline = asyncio.get_running_loop().time() + STREAM_READY_TIMEOUT_S
    while True:
        try:
            return await op()
        except (
            NatsTimeoutError,
            NoRespondersError,
            NoStreamResponseError,
            ServiceUnavailableError,
        ):
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(STREAM_RETRY_S)


class _RelaySink:
    """What a relay party is attached with: it only sends (receives=False); closing it (the
    server stopping) detaches the party, so the hub empties."""

    wire_format: WireFormat | None = None

    def __init__(self, leave: Callable[[], None]) -> None:
        self._leave = leave

    def send(self, items: list[Outgoing], data: bytes | None = None) -> int:
        return 0

    def close(self, reason: str, *, abort: bool = False) -> None:
        self._leave()


class Bus:
    """One node's connection to the organisation's subjects."""

    def __init__(
        self,
        exchange: Hub,
        heard: Callable[[], Iterable[str]],
        *,
        node: str,
        org: str,
        sa_replicas: int = 1,
        wall_ms: Callable[[], int],
        max_depth: int = 32,
        member: Member | None = None,
    ) -> None:
        self._exchange = exchange
        self._wall_ms = wall_ms
        self._member = member  # what this node must share with the cluster to join it
        self.state_kv: Any = None  # the organisation's state bucket (users, certificates)
        self.shared: SharedState | None = None  # set by the owner once the state is taken
        self._heard = heard
        self.node = node
        self.org = org
        self._replicas = sa_replicas
        self._max_depth = max_depth
        self._stream = sa_stream(org)
        self._boot = uuid.uuid4().hex[:12]
        self._next_id = 0
        self._nc: Any = None
        self._js: Any = None
        self._interest = Interest()
        self._subs: dict[str, tuple[Subscription, Subscription]] = {}
        self._relays: dict[frozenset[str], Party] = {}
        self._relay_keys: set[int] = set()
        self._seen = Seen()
        self._closing = False
        self._pending: deque[tuple[str, bytes, dict[str, str]]] = deque()
        self._purges: deque[str] = deque()  # latest-SA subjects to empty (a regroup)
        self._wake = asyncio.Event()
        # Counters (reported by ``view``).
        self.published = 0
        self.received = 0
        self.duplicates = 0
        self.dropped = 0  # bus messages refused: bad headers or an undecodable payload
        self.degraded = 0  # events not published, NATS errors and disconnects, while running
        self.caught_up = 0  # latest SAs read from the stream when a group was gained
        self.regroups = 0  # SAs of contacts regrouped on other nodes forgotten under old groups
        self.presence: PresenceSync | None = None  # made by ``connect``
        # Who a local sender is to the separation monitor (``Route.source``: a drone feed,
        # a partner link), set by the coordination; None: every sender is a client.
        self.source_of: Callable[[Party], str] | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    async def connect(self, urls: Iterable[str]) -> None:
        servers = list(urls)
        # nats-py retries a first connection forever when reconnects are unlimited (what a
        # running node wants): whether any server answers is found out first.
        if not await _any_reachable(servers):
            raise BusError(
                f"cannot reach NATS at {', '.join(servers)}; "
                "start the NATS servers or fix [cluster] urls"
            )
        try:
            self._nc = await asyncio.wait_for(self._open(servers), CONNECT_TIMEOUT_S * 2)
        except Exception as exc:  # nats-py raises several kinds for "not reachable"
            raise BusError(
                f"cannot reach NATS at {', '.join(servers)} ({type(exc).__name__}: {exc}); "
                "start the NATS servers or fix [cluster] urls"
            ) from None
        self._js = self._nc.jetstream()
        config = StreamConfig(
            name=self._stream,
            subjects=[f"accord.{token(self.org)}.sa.>"],
            max_msgs_per_subject=1,
            max_age=SA_MAX_AGE_S,
            storage=StorageType.FILE,
            num_replicas=self._replicas,
        )
        # A NATS cluster that has just started answers JetStream requests only once it has
        # elected its leaders: timeouts are retried for a while.
        deadline = asyncio.get_running_loop().time() + STREAM_READY_TIMEOUT_S
        while True:
            try:
                try:
                    await self._js.add_stream(config)
                except BadRequestError:
                    await self._js.update_stream(config)
                break
            except (NatsTimeoutError, ServiceUnavailableError) as exc:
                if asyncio.get_running_loop().time() < deadline:
                    await asyncio.sleep(STREAM_RETRY_S)
                    continue
                error: Exception = exc
            except Exception as exc:
                error = exc
            await self._nc.close()
            raise BusError(f"cannot make the latest-SA stream {self._stream}: {error}") from None
        if self._member is not None:
            await self._join(self._member)
        self.presence = PresenceSync(
            self._exchange,
            self.relay,
            self.regrouped,
            self.local_regroup,
            node=self.node,
            wall_ms=self._wall_ms,
            max_depth=self._max_depth,
        )
        presence = self.presence
        try:
            await _when_ready(lambda: presence.open(self._js, self.org, self._replicas))
        except Exception as exc:
            self._closing = True
            await self._nc.close()
            raise BusError(f"cannot open the presence bucket of {self.org}: {exc}") from None
        log.info("cluster: node %s of %s on NATS %s", self.node, self.org, ", ".join(servers))

    async def _join(self, member: Member) -> None:
        """Refuse to join a cluster of another schema version or CA (one line, BusError)."""

        async def record() -> tuple[Any, str | None]:
            kv = await open_bucket(self._js, bucket_name("STATE", self.org), self._replicas)
            try:
                await kv.create(CLUSTER_KEY, encode_member(member))
                return kv, None  # the first node: the cluster is what it is
            except KeyWrongLastSequenceError:
                entry = await kv.get(CLUSTER_KEY)
                return kv, join_refusal(member, decode_member(entry.value or b""), self.org)

        try:
            kv, refusal = await _when_ready(record)
        except Exception as exc:
            self._closing = True
            await self._nc.close()
            raise BusError(f"cannot read the cluster record of {self.org}: {exc}") from None
        if refusal is not None:
            self._closing = True
            await self._nc.close()
            raise BusError(refusal)
        self.state_kv = kv

    async def _open(self, servers: list[str]) -> Any:
        return await nats.connect(
            servers=servers,
            name=f"accord {self.node}",
            no_echo=True,
            connect_timeout=CONNECT_TIMEOUT_S,
            allow_reconnect=True,
            max_reconnect_attempts=-1,
            drain_timeout=DRAIN_TIMEOUT_S,
            error_cb=self._on_error,
            disconnected_cb=self._on_disconnected,
            reconnected_cb=self._on_reconnected,
        )

    async def close(self) -> None:
        """After the owner stopped ``publish_loop`` and ``interest_loop``."""
        self._closing = True
        if self.presence is not None:
            await self.presence.close()
        if self._nc is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(DRAIN_TIMEOUT_S * 2):
                    await self._nc.drain()
            with contextlib.suppress(Exception):
                await self._nc.close()
            self._nc = None

    # -- out: the hub's hook ---------------------------------------------------------------------
    def routed(
        self, sender: Party, event: CotEvent, is_sa: bool, was: frozenset[str] = frozenset()
    ) -> None:
        """The hub routed ``event`` from a local ``sender``: publish it once (per group).
        ``was``: a regrouped session's SA again, with the groups it sent into before."""
        if sender.key in self._relay_keys or not sender.membership.inbound:
            return  # from the bus itself (loop-free), or heard by nobody
        if len(self._pending) >= MAX_PENDING_EVENTS:
            self.degraded += 1
            return
        if event.raw and event.raw_format is not None:
            payload, fmt = event.raw, event.raw_format
        else:
            payload, fmt = encode_xml(event), WireFormat.XML
        self._next_id += 1
        groups = sender.membership.inbound
        source = "" if self.source_of is None else self.source_of(sender)
        headers = encode_headers(
            Route(self.node, f"{self._boot}.{self._next_id}", fmt, groups, was, source)
        )
        for group in groups:
            subject = (
                sa_subject(self.org, group, event.uid) if is_sa else event_subject(self.org, group)
            )
            self._pending.append((subject, payload, headers))
        self._wake.set()

    async def publish_loop(self) -> None:
        """Run by the owner: writes what ``routed`` queued, in order."""
        while True:
            still_wanted()
            await self._wake.wait()
            self._wake.clear()
            while self._purges:
                subject = self._purges.popleft()
                try:
                    await self._js.purge_stream(self._stream, subject=subject)
                except Exception as exc:
                    self.degraded += 1
                    log.debug("cluster: %s not purged: %s", subject, exc)
            while self._pending:
                subject, payload, headers = self._pending.popleft()
                try:
                    await self._nc.publish(subject, payload, headers=headers)
                    self.published += 1
                except Exception as exc:
                    self.degraded += 1
                    log.debug("cluster: not published on %s: %s", subject, exc)

    # -- in: subscriptions by interest -----------------------------------------------------------
    async def interest_loop(self) -> None:
        """Run by the owner: subscribes to the groups the node's sessions hear."""
        while True:
            still_wanted()
            try:
                await self._update_interest()
            except Exception as exc:  # NATS down: counted, tried again next round
                self.degraded += 1
                # What is subscribed is what counts as heard, so the rest is gained again.
                self._interest.groups = frozenset(self._subs)
                log.warning("cluster: interest not updated: %s", exc)
            await asyncio.sleep(INTEREST_CHECK_S)

    async def _update_interest(self) -> None:
        change = self._interest.update(self._heard())
        for group in change.lost:
            subs = self._subs.pop(group, None)
            if subs is not None:
                for sub in subs:
                    await sub.unsubscribe()
        for group in change.gained:
            live, sas = subjects_for(self.org, group)
            self._subs[group] = (
                await self._nc.subscribe(live, cb=self._on_message),
                await self._nc.subscribe(sas, cb=self._on_message),
            )
        if change.gained:
            await self._nc.flush()  # subscribed before reading the stream: nothing missed
            for group in change.gained:
                await self._catch_up(group)

    async def _catch_up(self, group: str) -> None:
        """The latest SA of each uid of ``group`` from the last-per-subject stream."""
        try:
            info = await self._js.stream_info(
                self._stream, subjects_filter=sa_filter(self.org, group)
            )
        except NotFoundError:
            return
        for subject in info.state.subjects or {}:
            try:
                msg = await self._js.get_last_msg(self._stream, subject)
            except NotFoundError:
                continue  # aged out or replaced meanwhile
            if self._deliver(msg.headers, msg.data or b"", live=False):
                self.caught_up += 1

    async def _on_message(self, msg: Msg) -> None:
        self._deliver(msg.headers, msg.data)

    def _deliver(
        self, headers: dict[str, str] | None, payload: bytes, *, live: bool = True
    ) -> bool:
        """Hand one bus message to the hub. A regrouped session's SA heard live goes only to
        the sessions that could not hear it before (as ``Hub.regroup``); read from the stream
        (``live`` False: a group just gained), it is any latest SA."""
        try:
            route = decode_headers(headers)
            if route.node == self.node:
                return False
            if not self._seen.first(f"{route.node}.{route.event_id}"):
                self.duplicates += 1
                return False
            if route.wire_format is WireFormat.XML:
                event = decode_xml(payload, max_depth=self._max_depth)
            else:
                event = decode_proto(payload, max_depth=self._max_depth)
        except (BusHeaderError, CotError, ValueError) as exc:
            self.dropped += 1
            log.debug("cluster: bus message dropped: %s", exc)
            return False
        self.received += 1
        if route.was and live:
            self._exchange.relay_regroup(self._relay(route.groups), event, route.was)
        else:
            self._exchange.submit(self._relay(route.groups), event)
        return True

    def relay(self, groups: frozenset[str]) -> Party:
        """The party the bus hands the hub events of senders in ``groups`` with."""
        return self._relay(groups)

    def regrouped(self, event: Regrouped) -> None:
        """A contact's groups changed on its node: newcomers here are not shown its SA under
        the groups it left (its node re-publishes it under the new ones, ``local_regroup``)."""
        if not event.old.inbound or event.new.inbound == event.old.inbound:
            return
        relay = self.relay(event.old.inbound)
        if self._exchange.forget_relayed(relay, event.uid, event.new.inbound):
            self.regroups += 1

    def local_regroup(self, party: Party, old: Membership) -> None:
        """A session of this node changed groups (what ``Hub.regroup`` did here, the others do
        with this): its latest SA leaves the stream under the groups it no longer sends into,
        and is published again under its new ones, so the sessions of other nodes that hear
        it now (and did not) get it, and their newcomers get it from the stream. Only what it
        hears changed (OUT groups): nothing to do here, the interest follows by itself."""
        if old.inbound == party.membership.inbound:
            return
        for group in old.inbound - party.membership.inbound:
            self._purges.append(sa_subject(self.org, group, party.uid))
        sa = party.last_sa
        if sa is not None and sa.stale > self._wall_ms():
            self.routed(party, sa, True, was=old.inbound)
        self._wake.set()

    def _relay(self, groups: frozenset[str]) -> Party:
        party = self._relays.get(groups)
        if party is None:
            if len(self._relays) >= MAX_RELAY_PARTIES:
                self._leave(next(iter(self._relays)))
            party = self._exchange.new_party(
                Membership(groups, frozenset()),
                f"cluster ({','.join(sorted(groups))})",
                receives=False,
                relays=True,
            )
            self._exchange.attach(party, _RelaySink(lambda: self._leave(groups)))
            self._relays[groups] = party
            self._relay_keys.add(party.key)
        return party

    def relayed(self, party: Party) -> bool:
        """Whether ``party`` is one of the bus's relay parties (its events came from NATS)."""
        return party.key in self._relay_keys

    def _leave(self, groups: frozenset[str]) -> None:
        party = self._relays.pop(groups, None)
        if party is not None:
            self._exchange.detach(party)

    # -- NATS callbacks: counted, never raised -------------------------------------------------
    async def _on_error(self, exc: Exception) -> None:
        self.degraded += 1
        log.warning("cluster: NATS error: %s", exc)

    async def _on_disconnected(self) -> None:
        if self._closing:
            return
        self.degraded += 1
        log.warning("cluster: disconnected from NATS; reconnecting")

    async def _on_reconnected(self) -> None:
        log.info("cluster: reconnected to NATS")

    @property
    def connection(self) -> Any:
        """The node's NATS connection (``nats.aio.client.Client``), for the cluster's other
        parts (status, the partner-link lease, mission notices); None before ``connect`` and
        after ``close``."""
        return self._nc

    @property
    def connected_to(self) -> str:
        """``host:port`` of the NATS server this node is connected to; empty when not."""
        url = None if self._nc is None else self._nc.connected_url
        return "" if url is None else str(url.netloc)

    def samples(self) -> list[Sample]:
        """For /metrics: what crossed the bus, and what NATS trouble cost (``degraded``)."""
        values: tuple[tuple[str, str, int], ...] = (
            ("cluster_published_total", "messages published on the bus", self.published),
            ("cluster_received_total", "bus events handed to the hub", self.received),
            ("cluster_duplicates_total", "copies of multi-group events dropped", self.duplicates),
            ("cluster_dropped_total", "bus messages refused (headers, payload)", self.dropped),
            ("cluster_degraded_total", "not published, NATS errors, disconnects", self.degraded),
            ("cluster_caught_up_total", "latest SAs read from the stream", self.caught_up),
            ("cluster_regroups_total", "SAs forgotten under groups left elsewhere", self.regroups),
        )
        p = self.presence
        if p is not None:
            values += (
                ("cluster_departures_total", "t-x-d-d for contacts of other nodes", p.departures),
                ("cluster_dead_nodes_total", "nodes found dead (no heartbeat)", p.dead_nodes),
                ("cluster_presence_bad_total", "presence entries refused", p.bad),
                ("cluster_presence_errors_total", "presence writes that failed", p.errors),
                ("cluster_presence_rewatches_total", "presence watches made again", p.rewatches),
            )
        st = self.shared
        if st is not None:
            values += (
                ("cluster_state_pushed_total", "user/cert records written to the bus", st.pushed),
                ("cluster_state_applied_total", "other nodes' records applied here", st.applied),
                ("cluster_state_bad_total", "user/cert records refused", st.bad),
                ("cluster_state_errors_total", "user/cert sharing that failed", st.errors),
                ("cluster_state_rewatches_total", "state watches made again", st.rewatches),
            )
        return [Sample(n, "counter", h, float(v)) for n, h, v in values]

    def view(self) -> dict[str, int | str]:
        return {
            "node": self.node,
            "groups": len(self._interest.groups),
            "published": self.published,
            "received": self.received,
            "duplicates": self.duplicates,
            "dropped": self.dropped,
            "degraded": self.degraded,
            "caught_up": self.caught_up,
            # Presence: the nodes heard lately (this one included), and the other nodes'
            # contacts; shared state: records of other nodes applied here.
            "nodes": ",".join(self.presence.table.alive()) if self.presence else "",
            "remote_contacts": len(self.presence.table.remote()) if self.presence else 0,
            "state_applied": self.shared.applied if self.shared else 0,
        }

    # -- for the leaf catch-up (cluster/leaf.py) -------------------------------------------------
    @property
    def nats(self) -> Any:
        """The NATS connection (None before ``connect`` and after ``close``)."""
        return self._nc

    def deliver_stored(self, headers: dict[str, str] | None, payload: bytes) -> bool:
        """A message read from a stream, handed to the hub as a live one would be (dropped if
        this node published it or delivered it already)."""
        return self._deliver(headers, payload)
