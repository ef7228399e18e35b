"""Missions edited on one node are re-read by the organisation's other nodes (issue 17).

Nodes sharing one PostgreSQL database share its mission tables, but each node's Mission API
keeps the missions in memory (``MissionBook``). After every mission stored here, the node
publishes a notice on ``accord.<org>.missions`` (the guid); a node that hears one re-reads the
missions from the store. Notices are coalesced: many changes heard during one re-read cause one
more. Subscribers' notifications need nothing here: the book's ``t-x-m-*`` events go through
the hub, whose bus publishes them like any event, so a subscriber on another node gets them.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from nats.aio.msg import Msg

from accord.cluster.subjects import token
from accord.domain.views import Sample
from accord.store.contract import StoreError

log = logging.getLogger("accord.cluster")

MAX_PENDING = 10_000  # notices waiting to be published; beyond, dropped and counted


def missions_subject(org: str) -> str:
    return f"accord.{token(org)}.missions"


class MissionSync:
    """Publishes this node's mission changes and re-reads the missions on others'."""

    def __init__(
        self, connection: Any, reload: Callable[[], Awaitable[None]], org: str, node: str
    ) -> None:
        """``reload``: re-read the missions (``MissionBook.reload``); ``stored`` is the book's
        ``on_stored`` hook."""
        self._nc = connection
        self._reload = reload
        self._subject = missions_subject(org)
        self._node = node
        self._out: deque[str] = deque()
        self._stale = False
        self._wake = asyncio.Event()
        self.published = 0
        self.heard = 0
        self.degraded = 0  # notices not published, re-reads that failed

    def stored(self, guid: str) -> None:
        """The book's hook: a mission was stored here."""
        if len(self._out) >= MAX_PENDING:
            self.degraded += 1
            return
        self._out.append(guid)
        self._wake.set()

    async def run(self) -> None:
        """Run by the owner: subscribes, then publishes and re-reads until cancelled."""
        sub = await self._nc.subscribe(self._subject, cb=self._on_notice)
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self._out:
                    guid = self._out.popleft()
                    try:
                        await self._nc.publish(
                            self._subject, guid.encode(), headers={"Accord-Node": self._node}
                        )
                        self.published += 1
                    except Exception as exc:  # NATS down: counted; the others stay stale
                        self.degraded += 1
                        log.warning("cluster: mission notice not published: %s", exc)
                if self._stale:
                    self._stale = False
                    try:
                        await self._reload()
                    except StoreError as exc:
                        self.degraded += 1
                        self._stale = True
                        log.warning("cluster: missions not re-read: %s", exc)
                        await asyncio.sleep(1.0)
                        self._wake.set()
        finally:
            try:
                await sub.unsubscribe()
            except Exception as exc:  # the connection is closing
                log.debug("cluster: mission notices not unsubscribed: %s", exc)

    async def _on_notice(self, msg: Msg) -> None:
        if (msg.headers or {}).get("Accord-Node") == self._node:
            return
        self.heard += 1
        self._stale = True
        self._wake.set()

    def samples(self) -> list[Sample]:
        """For /metrics: mission notices sent and heard, and those NATS or the store cost."""
        values = (
            ("cluster_mission_notices_published_total", "mission changes told", self.published),
            ("cluster_mission_notices_heard_total", "other nodes' changes heard", self.heard),
            ("cluster_mission_notices_degraded_total", "not told, or not re-read", self.degraded),
        )
        return [Sample(n, "counter", h, float(v)) for n, h, v in values]
