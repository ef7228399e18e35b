"""One streaming client: socket bytes <-> :class:`StreamConnection` <-> hub.

A thin adapter: read, feed, drain events into the hub, write what the hub hands back. The only
state it keeps is the flow-control state of its socket.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import cast

from accord.cot.connection import Closed, Limits, NeedData, StreamConnection
from accord.cot.errors import MalformedEvent
from accord.cot.model import CotEvent, WireFormat
from accord.cot.outgoing import Outgoing
from accord.domain.contacts import Party
from accord.domain.flow import DropLog, SendQueue, TokenBucket, push_all
from accord.domain.groups import Membership
from accord.domain.metrics import Tally
from accord.identity.peer import CertIdentity, PeerRefused
from accord.server.census import Census
from accord.server.hub import Hub
from accord.server.signin import Authenticate

log = logging.getLogger("accord.session")
# Each session logs its first few malformed events; the rest are only counted, so that a
# flood of garbage cannot flood the log. The disconnect line gives the session's total.
MALFORMED_LOGGED = 5
# Events handled per read before the session yields the event loop (reading paused until its
# next turn): one client's burst must not hold up every other session, timer and partner link
# for the whole socket buffer (~300 events, ~50 ms, before this limit).
EVENTS_PER_TURN = 128
# Input over the rate limit is logged at the first drop, then at most this often with the count.
RATE_LIMIT_LOG_INTERVAL_S = 60.0


@dataclass(frozen=True, slots=True)
class SessionSettings:
    """Per-listener settings a session needs (from :class:`accord.config.Config`)."""

    transport: str  # "tcp" or "tls", for logs
    negotiate: bool
    limits: Limits
    send_queue_events: int
    blocked_timeout_s: float
    write_buffer_bytes: int
    input_rate: float
    input_burst: float
    # Plain TCP configured to require <auth> (§8.2): nothing is routed until it checks out.
    authenticate: Authenticate | None = None
    sign_in_timeout_s: float = 15.0


# Who is on the other end of a transport: its groups, and its certificate (None: plain TCP).
Identify = Callable[[asyncio.BaseTransport], tuple[Membership, CertIdentity | None]]


class StreamSession(asyncio.Protocol):
    def __init__(
        self, hub: Hub, settings: SessionSettings, identify: Identify, census: Census
    ) -> None:
        self.hub = hub
        self.settings = settings
        self._identify = identify
        self._census = census
        # What the admin API shows; the tally is bumped per event, the rest set once.
        self.tally = Tally()
        self.user = ""  # certificate CN, or the <auth> user name
        self.connected_s = 0.0
        self.last_event_s = 0.0
        self.identity: CertIdentity | None = None
        self.conn = StreamConnection(limits=settings.limits)
        self.party: Party | None = None
        self.transport: asyncio.Transport | None = None
        self._queue = SendQueue(settings.send_queue_events)  # used only while blocked
        self._paused = False
        self._blocked_timer: asyncio.TimerHandle | None = None
        self._bucket = TokenBucket(settings.input_rate, settings.input_burst)
        self._rate_log = DropLog(RATE_LIMIT_LOG_INTERVAL_S)
        self._close_reason = ""
        self._malformed = 0
        self._label = ""
        self._signing_in: asyncio.Task[None] | None = None
        self._more: asyncio.Handle | None = None  # the rest of a read, handled next turn
        self._waiting = False  # counted in hub.signing_in (waiting for <auth>)

    # -- asyncio.Protocol --------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without inheriting from it.
        self.transport = transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        label = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        transport.set_write_buffer_limits(high=self.settings.write_buffer_bytes)
        try:
            membership, self.identity = self._identify(transport)
        except PeerRefused as exc:
            self.hub.counters.tls_handshake_failed += 1
            logging.getLogger("accord.listen").warning("TLS peer refused peer=%s: %s", label, exc)
            transport.abort()
            return
        self._label = label
        if self.settings.authenticate is not None:
            # The party is made once <auth> checks out (_sign_in); a silent client is cut.
            # Until then it counts against max_connections like any session.
            self.hub.signing_in += 1
            self._waiting = True
            loop = asyncio.get_running_loop()
            self._blocked_timer = loop.call_later(
                self.settings.sign_in_timeout_s, self._sign_in_too_slow
            )
            return
        self._start(membership)

    def _start(self, membership: Membership) -> None:
        self._not_waiting()
        label = self._label
        self.party = self.hub.new_party(membership, label)
        if self.identity is not None:
            self.user = self.identity.cn
        elif self.conn.auth is not None:
            self.user = self.conn.auth.username
        self.party.principal = self.user
        self.hub.counters.sessions_opened += 1
        self.connected_s = time.time()
        log.info(
            "connect peer=%s transport=%s cert=%s groups=%s",
            label,
            self.settings.transport,
            self.identity.cn if self.identity else "-",
            ",".join(sorted(membership.inbound | membership.outbound)),
        )
        if self.settings.negotiate:
            self.conn.offer_protocol(str(uuid.uuid4()), time.time())
        self._write_protocol_bytes()
        self.hub.attach(self.party, self)
        self._census.enter(self)

    def data_received(self, data: bytes) -> None:
        self.conn.receive_data(data, time.time())
        if self.party is None:
            self._sign_in()
        else:
            self._drain()

    def eof_received(self) -> bool:
        self.conn.receive_data(b"", time.time())
        if self.party is not None:
            self._drain()
        return False  # close our side too

    # -- <auth> sign-in (plain TCP, when required) ----------------------------------------------
    def _sign_in(self) -> None:
        """Read the first document; it must carry <auth>. Later bytes wait in the connection."""
        authenticate = self.settings.authenticate
        if authenticate is None or self._signing_in is not None:
            return
        try:
            first = self.conn.next_event()
        except MalformedEvent as exc:
            self._refuse(f"first document is not <auth> and an event: {exc}")
            return
        if isinstance(first, NeedData):
            return
        if isinstance(first, Closed) or self.conn.auth is None:
            self._refuse("sign-in required: send <auth><cot username password/></auth> first")
            return
        auth = self.conn.auth
        peer = self._label.rsplit(":", 1)[0]
        coro = authenticate(peer, auth.username, auth.password)
        # The session owns this task: cancelled when the connection goes, and a check that
        # fails (not refuses) is logged and ends the session instead of leaving it waiting.
        self._signing_in = asyncio.get_running_loop().create_task(self._signed_in(coro, first))
        self._signing_in.add_done_callback(self._sign_in_ended)

    def _sign_in_ended(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or task.exception() is None:
            return
        log.error("sign-in check failed peer=%s", self._label, exc_info=task.exception())
        if self.transport is not None and not self.transport.is_closing():
            self._refuse("the server could not check the sign-in (see its log)")

    async def _signed_in(self, check: Awaitable[Membership | str], first: CotEvent) -> None:
        result = await check
        if self.transport is None or self.transport.is_closing():
            return
        if isinstance(result, str):
            self._refuse(result)
            return
        if self._blocked_timer is not None:
            self._blocked_timer.cancel()
            self._blocked_timer = None
        self._start(result)
        assert self.party is not None
        if self._bucket.allow(asyncio.get_running_loop().time()):
            self.tally.events_in += 1
            self.last_event_s = time.time()
            self.hub.submit(self.party, first)
        else:
            self._rate_limited(asyncio.get_running_loop().time())
        self._drain()

    def _sign_in_too_slow(self) -> None:
        if self.party is None:
            self._refuse(f"no sign-in within {self.settings.sign_in_timeout_s:g} s")

    def _refuse(self, reason: str) -> None:
        self.hub.counters.auth_failed += 1
        user = self.conn.auth.username if self.conn.auth else "-"
        log.warning("sign-in refused peer=%s user=%r: %s", self._label, user[:64], reason)
        self.close(reason, abort=True)

    def _not_waiting(self) -> None:
        if self._waiting:
            self._waiting = False
            self.hub.signing_in -= 1

    def connection_lost(self, exc: Exception | None) -> None:
        self._not_waiting()
        if self._blocked_timer is not None:
            self._blocked_timer.cancel()
        if self._signing_in is not None:
            self._signing_in.cancel()
        party = self.party
        if party is None:
            return
        self.party = None
        self.hub.counters.sessions_closed += 1
        self._census.leave(self, party)
        reason = self._close_reason or (f"error: {exc}" if exc else "closed")
        log.info(
            "disconnect peer=%s uid=%s callsign=%s reason=%s malformed=%d rate_limited=%d",
            party.label,
            party.uid or "-",
            party.callsign or "-",
            reason,
            self._malformed,
            self._rate_log.total,
        )
        self.hub.detach(party)

    def pause_writing(self) -> None:
        self._paused = True
        loop = asyncio.get_running_loop()
        self._blocked_timer = loop.call_later(self.settings.blocked_timeout_s, self._too_slow)

    def resume_writing(self) -> None:
        self._paused = False
        if self._blocked_timer is not None:
            self._blocked_timer.cancel()
            self._blocked_timer = None
        items = self._queue.drain()
        if items and self.transport is not None and not self.transport.is_closing():
            # Counted when they were queued.
            self.transport.write(self._frames(items))
        if self.party is not None and not self._paused:
            self.hub.writable(self.party)  # go on with the SAs it is behind on, if any

    # -- input ---------------------------------------------------------------------------------
    def _drain(self) -> None:
        party, counters, tally = self.party, self.hub.counters, self.tally
        if party is None or self._more is not None:
            return
        loop = asyncio.get_running_loop()
        loop_now = loop.time()
        now = time.time()  # one read of the socket: one time for all its events
        for _ in range(EVENTS_PER_TURN):
            try:
                event = self.conn.next_event(now)
            except MalformedEvent as exc:
                counters.malformed += 1
                tally.malformed += 1
                self._census.malformed(self.settings.transport, exc.reason)
                self._malformed += 1
                if self._malformed <= MALFORMED_LOGGED:
                    log.warning("dropped malformed event from %s: %s", party.label, exc)
                continue
            finally:
                self._write_protocol_bytes()
            if isinstance(event, NeedData):
                return
            if isinstance(event, Closed):
                if not event.clean:
                    counters.framing_lost += 1
                    log.warning("closing %s: %s", party.label, event.reason)
                self.close(event.reason)
                return
            if not self._bucket.allow(loop_now):
                self._rate_limited(loop_now)
                continue
            tally.events_in += 1
            self.last_event_s = now
            if self.hub.submit(party, event):
                log.info(
                    "identified peer=%s uid=%s callsign=%s",
                    party.label,
                    party.uid,
                    party.callsign,
                )
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.pause_reading()
            self._more = loop.call_soon(self._drain_more)

    def _rate_limited(self, loop_now: float) -> None:
        self.hub.counters.rate_limited += 1
        self.tally.rate_limited += 1
        count = self._rate_log.dropped(loop_now)
        if count:
            log.warning(
                "input over the rate limit from peer=%s user=%s uid=%s: dropped %d event%s%s"
                " (limit %g/s, bursts of %g; %d dropped since connect)",
                self._label,
                self.user or "-",
                (self.party.uid if self.party else "") or "-",
                count,
                "" if count == 1 else "s",
                " (limiting starts)" if count == self._rate_log.total else " since the last report",
                self.settings.input_rate,
                self.settings.input_burst,
                self._rate_log.total,
            )

    def _drain_more(self) -> None:
        self._more = None
        self._drain()
        transport = self.transport
        if self._more is None and transport is not None and not transport.is_closing():
            transport.resume_reading()

    def _write_protocol_bytes(self) -> None:
        data = self.conn.data_to_send()
        if data and self.transport is not None:
            # Before anything batched: after a switch, the answer must precede protobuf.
            self.transport.write(data)

    # -- output --------------------------------------------------------------------------------
    @property
    def wire_format(self) -> WireFormat:
        return self.conn.wire_format

    @property
    def blocked(self) -> bool:
        """The socket is full: the client is not reading what it is sent."""
        return self._paused

    @property
    def queued_events(self) -> int:
        return len(self._queue)

    def send(self, items: list[Outgoing], data: bytes | None = None) -> int:
        """Write this turn's events for this client in one call; queue them while blocked.

        Returns how many were taken (written, queued or coalesced); the rest were dropped.
        """
        transport = self.transport
        if transport is None or transport.is_closing():
            return 0
        if not self._paused:
            transport.write(self._frames(items) if data is None else data)
            self.tally.events_out += len(items)
            return len(items)
        counters, tally = self.hub.counters, self.tally
        pushed = push_all(self._queue, items)
        counters.queue_dropped += pushed.dropped
        tally.queue_dropped += pushed.dropped
        counters.queue_coalesced += pushed.coalesced
        tally.queue_coalesced += pushed.coalesced
        tally.events_out += pushed.taken
        return pushed.taken

    def _frames(self, items: list[Outgoing]) -> bytes:
        fmt = self.conn.wire_format
        return b"".join([item.frame(fmt) for item in items])

    def _too_slow(self) -> None:
        self.hub.counters.blocked_closed += 1
        # abort: its buffer will never drain, so a graceful close would wait forever.
        self.close(f"not reading for {self.settings.blocked_timeout_s:g} s", abort=True)

    def close(self, reason: str, *, abort: bool = False) -> None:
        self._close_reason = self._close_reason or reason
        if self.transport is None:
            return
        if abort:
            self.transport.abort()
        elif not self.transport.is_closing():
            self.transport.close()
