"""Shared missions with partner servers: the adapter around :mod:`accord.missions.federation`.

Told by the :class:`~accord.api.missions_book.MissionBook` of every stored change of a mission
(items, files, logs), it decides each for each partner by that partner's policy and sends what
is released through the partner's link (:class:`MissionLink`; the composition passes
:class:`accord.federation.link.Link`) as an ``accordMission`` frame (numbered, kept in the
outbox, journalled in the sharing ledger: a link outage is caught up on reconnect). What a
partner sends is applied, one change at a time under the book's lock, to the partner's mirror
(created on the first change, in the groups the link delivers to) or, for a log written on the
partner's mirror of one of our missions, to our mission when our policy for that partner
accepts logs for it. Applying goes through the book, so that the mirror's subscribers get
their ``t-x-m-c`` notices.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

from accord.api.missions_book import MissionBook, new_guid
from accord.domain.partners import Partner
from accord.domain.views import Sample
from accord.missions.federation import (
    LogRemoved,
    Send,
    Shared,
    SharedError,
    Withheld,
    accept_log,
    apply,
    decode_shared,
    encode_shared,
    outbound,
)
from accord.missions.model import Change, ChangeType, LogEntry, Mission, MissionError
from accord.policy import Policy, PolicyState
from accord.store.contract import StoreError

log = logging.getLogger("accord.federation")

INBOX_CHANGES = 10_000  # received changes waiting to be applied; more are dropped and counted


class MissionLink(Protocol):
    """A partner link as this needs it (:class:`accord.federation.link.Link`)."""

    partner: Partner

    def send_mission(self, change: bytes, rule: str, policy: str) -> bool: ...


class MissionFiles(Protocol):
    """Where mission files' content crosses (:class:`accord.federation.file_shares.FileShares`)."""

    def offer(self, partner: Partner, digest: str) -> str: ...

    def fetch(
        self, partner: Partner, url: str, digest: str, name: str, groups: tuple[str, ...]
    ) -> None: ...


class MissionSharing:
    def __init__(
        self,
        book: MissionBook,
        policies: Mapping[str, Policy],  # by partner name (the gate's: reloads are seen)
        links: Callable[[str], Iterable[MissionLink]],  # a partner's links, preferred first
        partners: Iterable[Partner],
        *,
        key: bytes | None = None,
        wall_ms: Callable[[], int],
        files: MissionFiles | None = None,  # None: a file's entry crosses, not its content
    ) -> None:
        self._files = files
        self._book = book
        self._policies = policies
        self._links = links
        self._partners = {p.name: p for p in partners}
        self._key = key
        self._wall_ms = wall_ms
        self._states: dict[str, PolicyState] = {}
        self._inbox: deque[tuple[Partner, Shared]] = deque()
        self._woken = asyncio.Event()
        self.released: Counter[tuple[str, str]] = Counter()  # (partner, rule) -> changes
        self.withheld: Counter[tuple[str, str]] = Counter()  # (partner, rule) -> changes
        self.received = self.applied = self.duplicates = self.refused = self.bad = 0
        self.unsent = 0  # released but no link could take it (dropped, counted)

    # -- our changes, towards the partners ---------------------------------------------------
    def changed(
        self,
        mission: Mission,
        changes: Iterable[tuple[int, Change]],
        logs: Iterable[LogEntry | LogRemoved],
        source: str = "",
    ) -> None:
        """Stored changes of ``mission`` (number, change) and log entries written, edited or
        removed;
        ``source``: the partner they came from (never sent back there)."""
        offered: list[tuple[int, Change | LogEntry | LogRemoved]] = [
            *changes,
            *((0, e) for e in logs),
        ]
        if not offered:
            return
        now = self._wall_ms()
        for name in self._partners:
            if name == source:
                continue
            policy = self._policies.get(name)
            if policy is None:
                continue  # no written policy: no mission is shared (share_all covers events)
            state = self._states.setdefault(name, PolicyState())
            for number, change in offered:
                decision = outbound(policy, mission, name, change, number, now, state, self._key)
                if isinstance(decision, Withheld):
                    self.withheld[(name, decision.rule)] += 1
                elif isinstance(decision, Send):
                    self._send(name, decision, policy.version)

    def _send(self, partner: str, decision: Send, version: str) -> None:
        shared = decision.shared
        if shared.resource is not None and shared.kind == "file-add" and self._files is not None:
            url = self._files.offer(self._partners[partner], shared.resource.hash)
            shared = dataclasses.replace(shared, url=url)
        frame = encode_shared(shared)
        for link in self._links(partner):
            if link.send_mission(frame, decision.rule, version):
                self.released[(partner, decision.rule)] += 1
                return
        self.unsent += 1
        log.warning("partner %s: mission change %s not sent", partner, decision.shared.id)

    # -- the partners' changes, towards us ----------------------------------------------------
    def receive(self, partner: Partner, data: bytes) -> None:
        """An ``accordMission`` frame from ``partner`` (on the link's hot path: queued)."""
        self.received += 1
        try:
            shared = decode_shared(data)
        except SharedError as exc:
            self.bad += 1
            log.warning("partner %s sent a bad mission change: %s", partner.name, exc)
            return
        if len(self._inbox) >= INBOX_CHANGES:
            self.bad += 1
            log.warning(
                "partner %s: mission change %s dropped (inbox full)", partner.name, shared.id
            )
            return
        self._inbox.append((partner, shared))
        self._woken.set()

    async def run(self) -> None:
        """Apply what partners sent (a background task)."""
        while True:
            await self._woken.wait()
            self._woken.clear()
            while self._inbox:
                partner, shared = self._inbox.popleft()
                try:
                    await self._apply(partner, shared)
                except (MissionError, StoreError) as exc:
                    self.refused += 1
                    log.warning(
                        "partner %s: mission change %s not applied: %s",
                        partner.name,
                        shared.id,
                        exc,
                    )

    async def _apply(self, partner: Partner, shared: Shared) -> None:
        book = self._book
        now = self._wall_ms()
        async with book.lock:
            missions = await book.all_missions()
            ours = missions.get(shared.mission_guid)
            if ours is not None and not ours.origin:
                policy = self._policies.get(partner.name)
                got = (
                    accept_log(policy, ours, partner.name, shared)
                    if policy is not None
                    else "no policy for the partner"
                )
                if isinstance(got, str):
                    self.refused += 1
                    log.info("partner %s: %s", partner.name, got)
                elif got is ours:
                    self.duplicates += 1
                else:
                    got = await book.update(got, federated_from=partner.name)
                    book.tell_subscribers(got, "t-x-m-c-l", shared.creator_uid, "")
                    self.applied += 1
                return
            mirror = next(
                (
                    m
                    for m in missions.values()
                    if m.origin == partner.name and m.origin_guid == shared.mission_guid
                ),
                None,
            )
            groups = frozenset(partner.groups_in)
            done = apply(mirror, partner.name, shared, guid=new_guid(), groups=groups, now_ms=now)
            if done is None:
                self.duplicates += 1
                return
            mission = done.mission
            if done.deleted:
                await book.delete(mission, shared.creator_uid, federated_from=partner.name)
                self.applied += 1
                return
            if done.created:
                created = Mission(
                    mission.name,
                    mission.guid,
                    mission.groups,
                    "",
                    now,
                    origin=mission.origin,
                    origin_guid=mission.origin_guid,
                )
                if not await book.create(created, Change(ChangeType.CREATE_MISSION, now, "")):
                    raise MissionError(f"mission name {mission.name!r} is taken here", 409)
                stored = missions[mission.guid]  # numbered its create change
                mission = dataclasses.replace(mission, change_count=stored.change_count)
            mission = await book.update(mission, done.changes, federated_from=partner.name)
            if shared.kind in ("log", "log-remove"):  # its subscribers hear of it, as of ours
                book.tell_subscribers(mission, "t-x-m-c-l", shared.creator_uid, "")
            self.applied += 1
        res = shared.resource
        if res is not None and shared.kind == "file-add" and shared.url and self._files:
            self._files.fetch(partner, shared.url, res.hash, res.name, tuple(sorted(groups)))

    # -- reporting -------------------------------------------------------------------------
    def samples(self) -> list[Sample]:
        out = [
            Sample(
                "federation_mission_changes_total",
                "counter",
                "mission changes released to or withheld from partners",
                float(n),
                (("partner", p), ("rule", r), ("outcome", outcome)),
            )
            for outcome, counts in (("release", self.released), ("withhold", self.withheld))
            for (p, r), n in counts.items()
        ]
        for name, value, text in (
            ("received", self.received, "mission changes received from partners"),
            ("applied", self.applied, "mission changes applied here"),
            ("duplicate", self.duplicates, "mission changes received again (not applied)"),
            ("refused", self.refused, "mission changes refused by our policy or the mission"),
            ("bad", self.bad, "mission changes that did not decode or found no room"),
        ):
            out.append(
                Sample(
                    "federation_mission_received_total",
                    "counter",
                    text,
                    float(value),
                    (("outcome", name),),
                )
            )
        return out
