"""The partner-link lease: the organisation's partner links run on exactly one node (issue 17).

A lease is one key in a JetStream key-value bucket whose entries expire ``ttl_s`` after they
were last written. A node takes it by creating the key (which fails while another node holds
it), keeps it by rewriting it every ``renew_s`` on the revision it last wrote (compare and
set), and gives it back by deleting it. When the holder dies (``kill -9``) it stops renewing,
the key expires, and a standby node creates it on its next try.

Safety: the holder counts its lease from the moment it *sent* its last successful write, and
stops its links ``margin_s`` before that write can expire on the server; the server counts the
same TTL from when it *received* the write, which is later. So a holder that cannot renew (NATS
unreachable, the process stalled) has stopped its links before any other node can take the
lease. Bound: a standby takes over at most ``ttl_s + retry_s`` after the holder's last renewal
(then the links start and dial the partners).

:class:`LeaseCore` is pure (times and answers in, decisions out); :class:`LeaseKeeper` is the
asyncio adapter that talks to the bucket and runs the owner's callbacks in order.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from accord.cluster.subjects import token
from accord.domain.views import Sample

log = logging.getLogger("accord.cluster")

LEASE_TTL_S = 5.0  # an unrenewed lease expires on the NATS servers after this
RENEW_S = 1.0  # how often the holder rewrites it
MARGIN_S = 1.5  # the holder stops this long before its last write can expire
RETRY_S = 0.25  # how often a standby tries to take it, and a failed renewal is tried again
REQUEST_TIMEOUT_S = 1.0  # a lease request unanswered for this long has failed
FEDERATION_LEASE = "federation"  # the key of the partner links' lease


def lease_bucket(org: str) -> str:
    """The key-value bucket of an organisation's leases (bucket names allow no ``.``)."""
    return f"ACCORD_LEASES_{token(org).replace('~', '_')}"


class Change(Enum):
    """What the owner must do."""

    GAINED = "gained"  # start the links
    LOST = "lost"  # stop the links now


@dataclass(frozen=True, slots=True)
class Acquire:
    """Create the key (it must not exist)."""


@dataclass(frozen=True, slots=True)
class Renew:
    """Rewrite the key on ``revision`` (the holder's last write)."""

    revision: int


Request = Acquire | Renew


class LeaseCore:
    """One node's view of one lease. Times are monotonic seconds of this node."""

    def __init__(
        self,
        *,
        ttl_s: float = LEASE_TTL_S,
        renew_s: float = RENEW_S,
        margin_s: float = MARGIN_S,
        retry_s: float = RETRY_S,
    ) -> None:
        if not 0 < renew_s < ttl_s - margin_s or margin_s <= 0 or retry_s <= 0:
            raise ValueError("a lease needs 0 < renew_s < ttl_s - margin_s, margin_s > 0")
        self.ttl_s = ttl_s
        self.renew_s = renew_s
        self.margin_s = margin_s
        self.retry_s = retry_s
        self.holding = False
        self.revision = 0
        self.holder = ""  # who holds it, as last read ("" = nobody known)
        self._valid_until = 0.0  # while holding: when the links must be stopped
        self._next_at = 0.0  # when the next request is due
        # Counters.
        self.gained = 0
        self.lost = 0
        self.failures = 0  # requests that got no answer (NATS down, timeouts)

    def due(self, now: float) -> Request | None:
        """The request to send now, or None if none is due yet."""
        if now < self._next_at:
            return None
        return Renew(self.revision) if self.holding else Acquire()

    def wait_s(self, now: float) -> float:
        """Seconds until :meth:`due` or :meth:`check` may have something to do."""
        until = self._next_at - now
        if self.holding:
            until = min(until, self._valid_until - now)
        return max(0.0, until)

    def timeout_s(self, now: float) -> float:
        """How long a request sent now may wait for its answer: a holder's never outlasts its
        lease (so :meth:`check` stops the links on time even while NATS does not answer)."""
        if not self.holding:
            return REQUEST_TIMEOUT_S
        return max(0.01, min(REQUEST_TIMEOUT_S, self._valid_until - now))

    def granted(self, asked_at: float, revision: int, me: str) -> Change | None:
        """The request sent at ``asked_at`` was written as ``revision``."""
        self.revision = revision
        self.holder = me
        self._valid_until = asked_at + self.ttl_s - self.margin_s
        self._next_at = asked_at + self.renew_s
        if self.holding:
            return None
        if self._valid_until <= asked_at:  # cannot happen with valid settings; never start late
            return None
        self.holding = True
        self.gained += 1
        return Change.GAINED

    def refused(self, now: float, holder: str) -> Change | None:
        """Another node holds the lease (our create or compare-and-set failed)."""
        self.holder = holder
        self._next_at = now + self.retry_s
        return self._lose()

    def failed(self, now: float) -> Change | None:
        """No answer: tried again soon; the lease is kept only until it may have expired."""
        self.failures += 1
        self._next_at = now + self.retry_s
        return self.check(now)

    def check(self, now: float) -> Change | None:
        """LOST once a holder's last write may be about to expire unrenewed."""
        if self.holding and now >= self._valid_until:
            return self._lose()
        return None

    def released(self, now: float, hold_off_s: float = 0.0) -> Change | None:
        """We gave the lease back (deleted the key); not tried for again before
        ``hold_off_s`` (a node that could not start its links lets the others try first)."""
        self.holder = ""
        self._next_at = now + max(self.retry_s, hold_off_s)
        return self._lose()

    def _lose(self) -> Change | None:
        if not self.holding:
            return None
        self.holding = False
        self.revision = 0
        self.lost += 1
        return Change.LOST


class LeaseKeeper:
    """Holds one lease in the organisation's bucket on behalf of this node.

    ``on_change`` is awaited for each GAINED and LOST, in order, by :meth:`run`'s own task, so
    a slow start never delays a renewal; a GAINED whose start fails gives the lease back.
    """

    def __init__(
        self,
        connection: Any,
        *,
        org: str,
        node: str,
        name: str = FEDERATION_LEASE,
        replicas: int = 1,
        on_change: Callable[[Change], Awaitable[None]],
        core: LeaseCore | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._nc = connection
        self._bucket = lease_bucket(org)
        self.name = name
        self.node = node
        self.me = f"{node} {uuid.uuid4().hex[:12]}"  # a restarted node is a new holder
        self._replicas = replicas
        self._on_change = on_change
        self.core = core or LeaseCore()
        self._clock = clock or asyncio.get_running_loop().time
        self._changes: asyncio.Queue[Change] = asyncio.Queue()
        self._kv: Any = None

    async def run(self) -> None:
        """Run by the owner until cancelled: keep (or wait for) the lease; on cancel, give it
        back if held (after stopping the links)."""
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._keeping(), name=f"lease {self.name}")
                group.create_task(self._applying(), name=f"lease {self.name} changes")
        finally:
            await asyncio.shield(self._give_back())

    async def _bucket_ready(self) -> Any:
        from nats.js.api import KeyValueConfig, StorageType

        js = self._nc.jetstream()
        config = KeyValueConfig(
            bucket=self._bucket,
            history=1,
            ttl=self.core.ttl_s,
            storage=StorageType.FILE,
            replicas=self._replicas,
        )
        try:
            return await js.create_key_value(config)
        except Exception as exc:  # made already (by another node, maybe otherwise): use it
            log.debug("cluster: lease bucket %s not created (%s): using it", self._bucket, exc)
            return await js.key_value(self._bucket)

    async def _keeping(self) -> None:
        from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

        core = self.core
        while True:
            now = self._clock()
            self._push(core.check(now))
            request = core.due(now)
            if request is not None:
                try:
                    async with asyncio.timeout(core.timeout_s(now)):
                        if self._kv is None:
                            self._kv = await self._bucket_ready()
                        if isinstance(request, Acquire):
                            revision = await self._kv.create(self.name, self.me.encode())
                        else:
                            revision = await self._kv.update(
                                self.name, self.me.encode(), last=request.revision
                            )
                    self._push(core.granted(now, revision, self.me))
                except KeyWrongLastSequenceError:
                    try:
                        entry = await self._kv.get(self.name)
                        holder = (entry.value or b"").decode(errors="replace")
                    except KeyNotFoundError:
                        holder = ""
                    except Exception:
                        holder = "?"
                    self._push(core.refused(self._clock(), holder))
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # NATS down, timeouts: counted, tried again
                    log.debug("cluster: lease %s request failed: %s", self.name, exc)
                    self._push(core.failed(self._clock()))
            await asyncio.sleep(min(core.wait_s(self._clock()), RETRY_S) or 0.01)

    def _push(self, change: Change | None) -> None:
        if change is not None:
            level = logging.INFO if change is Change.GAINED else logging.WARNING
            log.log(level, "cluster: %s lease %s by node %s", self.name, change.value, self.node)
            self._changes.put_nowait(change)

    async def _applying(self) -> None:
        while True:
            change = await self._changes.get()
            try:
                await self._on_change(change)
            except Exception as exc:
                log.error("cluster: %s lease %s: %s", self.name, change.value, exc)
                if change is Change.GAINED:  # could not start: let another node try first
                    await self._give_back(hold_off_s=self.core.ttl_s)

    async def _give_back(self, hold_off_s: float = 0.0) -> None:
        """Stop the links (if held) and delete the key, so a standby need not wait the TTL."""
        core = self.core
        if not core.holding:
            return
        revision = core.revision
        if core.released(self._clock(), hold_off_s) is Change.LOST:
            try:
                await self._on_change(Change.LOST)
            except Exception as exc:
                log.error("cluster: %s lease lost: %s", self.name, exc)
        try:
            if self._kv is not None:
                await self._kv.delete(self.name, last=revision)
        except Exception as exc:  # someone else's already, or NATS down: it expires anyway
            log.debug("cluster: lease %s not deleted: %s", self.name, exc)

    def samples(self) -> list[Sample]:
        """For /metrics: whether this node runs the links, and how often the lease moved."""
        labels = (("lease", self.name),)
        core = self.core
        return [
            Sample("cluster_lease_holding", "gauge", "1 while this node holds the lease",
                   float(core.holding), labels),
            Sample("cluster_lease_gained_total", "counter", "times this node took the lease",
                   float(core.gained), labels),
            Sample("cluster_lease_lost_total", "counter", "times it stopped holding it",
                   float(core.lost), labels),
            Sample("cluster_lease_failures_total", "counter", "lease requests unanswered",
                   float(core.failures), labels),
        ]  # fmt: skip

    def view(self) -> dict[str, int | str | bool]:
        return {
            "lease": self.name,
            "holding": self.core.holding,
            "holder": self.core.holder.split(" ")[0],
            "gained": self.core.gained,
            "lost": self.core.lost,
            "failures": self.core.failures,
        }
