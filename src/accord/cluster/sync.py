"""The presence adapter: this node's sessions into the presence bucket, every node's out of it.

The pure table is ``accord.cluster.presence``; this feeds it from a JetStream KV watch and acts
on what it answers: a ``t-x-d-d`` to this node's sessions for a contact that left its node (or
whose node died), the other nodes' contacts for the contact lists (``Hub.remote_contacts``),
and a re-sync when a contact's groups changed on its node (see ``Bus.regrouped``).

What this node writes is reconciled, not queued: ``_wanted`` is what the bucket should hold of
this node (from the hub's hook), ``_written`` what it was last told, ``_dirty`` the keys that
may differ; a write that fails (NATS down) is tried again on the next heartbeat, so the bucket
catches up after an outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from typing import Any, Protocol

from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import BadRequestError, NotFoundError

from accord.cluster.presence import (
    HEARTBEAT_S,
    Contact,
    Departed,
    Event,
    NodeDead,
    PresenceError,
    PresenceTable,
    Regrouped,
    contact_key,
    decode_contact,
    departure_of,
    encode_contact,
    node_key,
    node_prefix,
    parse_key,
)
from accord.cluster.subjects import kv_token, token
from accord.cot.errors import CotError
from accord.cot.model import CotEvent, WireFormat
from accord.cot.xml import decode_xml, encode_xml
from accord.domain.contacts import Party, Roster
from accord.domain.groups import Membership
from accord.domain.ports import ContactView, Exchange

log = logging.getLogger("accord.cluster")

KV_DELETES = ("DEL", "PURGE")
CLOSE_TIMEOUT_S = 2.0
WATCH_CHECK_S = 2.0  # a KV watch silent this long is compared with its bucket


def bucket_name(kind: str, org: str) -> str:
    """A KV bucket of the organisation (bucket names allow letters, digits, ``_``, ``-``)."""
    return f"ACCORD_{kind}_{token(org).replace('~', '_')}"


async def open_bucket(js: Any, name: str, replicas: int, history: int = 1) -> Any:
    """The bucket ``name``, made if it does not exist yet."""
    try:
        return await js.key_value(name)
    except (NotFoundError, BadRequestError):
        pass
    config = KeyValueConfig(
        bucket=name, history=history, replicas=replicas, storage=StorageType.FILE
    )
    try:
        return await js.create_key_value(config)
    except BadRequestError:  # another node made it meanwhile
        return await js.key_value(name)


async def keys_of(kv: Any, pattern: str) -> list[str]:
    """The live keys of ``kv`` matching the subject ``pattern`` (nats-py's ``keys`` filters
    by substring, and raises when there are none)."""
    watcher = await kv.watch(pattern, ignore_deletes=True, meta_only=True)
    found = []
    try:
        async for entry in watcher:
            if entry is None:
                break
            found.append(entry.key)
    finally:
        await stop_watch(watcher)
    return found


async def watch_entries(
    kv: Any, handle: Callable[[Any], None], restarted: Callable[[], None]
) -> None:
    """Hand every entry of ``kv`` to ``handle``: its current values, then ``None``, then each
    change; forever. A watch rides on a consumer that a NATS server's death can take with it,
    and nats-py notices only after missed heartbeats (10 s or more): a watch that has been
    silent for ``WATCH_CHECK_S`` while the bucket moved past what it delivered is made again
    (its current values again, then ``None``), and ``restarted`` is told."""
    while True:
        still_wanted()
        watcher = await kv.watchall()
        delivered = 0
        try:
            while True:
                still_wanted()
                try:
                    # Not ``watcher.updates(timeout)``: its ``wait_for`` can swallow a
                    # cancellation on Python 3.11 (gh-86296), and a stop would never end.
                    async with asyncio.timeout(WATCH_CHECK_S):
                        entry = await anext(watcher)
                except StopAsyncIteration:
                    break
                except TimeoutError:
                    try:
                        status = await kv.status()
                    except Exception:  # NATS down: nothing to compare with yet
                        continue
                    if int(status.stream_info.state.last_seq) > delivered:
                        break  # the bucket moved on without us
                    continue
                if entry is not None:
                    delivered = max(delivered, int(entry.revision or 0))
                handle(entry)
        finally:
            await stop_watch(watcher)
        restarted()


def still_wanted() -> None:
    """Raise CancelledError if this task was cancelled and the cancellation got lost: nats-py
    awaits with ``asyncio.wait_for``, which on Python 3.11 can swallow one (gh-86296), and a
    loop that runs on after its stop holds up the shutdown for ever."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def stop_watch(watcher: Any) -> None:
    """Stop a KV watch, bounded: with NATS gone, unsubscribing must not hold up a shutdown."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(CLOSE_TIMEOUT_S):
            await watcher.stop()


class Hub(Exchange, Protocol):
    """What the bus and presence need of the server's hub."""

    roster: Roster

    def forget_relayed(
        self, sender: Party, uid: str, unless: frozenset[str] = frozenset()
    ) -> bool: ...

    def relay_regroup(self, sender: Party, event: CotEvent, was: frozenset[str]) -> None: ...

    def latest(self, uid: str) -> CotEvent | None: ...


class PresenceSync:
    """One node's side of the presence bucket."""

    def __init__(
        self,
        hub: Hub,
        relay: Callable[[frozenset[str]], Party],
        regrouped: Callable[[Regrouped], None],
        local_regroup: Callable[[Party, Membership], None],
        *,
        node: str,
        wall_ms: Callable[[], int],
        max_depth: int = 32,
    ) -> None:
        self._wall_ms = wall_ms
        self._hub = hub
        self._relay = relay
        self._regrouped = regrouped
        self._local_regroup = local_regroup
        self._groups: dict[str, Membership] = {}  # this node's contacts' groups, by uid
        self.node = node
        self._max_depth = max_depth
        self.table = PresenceTable(node)
        self._kv: Any = None
        self._wanted: dict[str, bytes] = {}
        self._written: dict[str, bytes] = {}
        self._dirty: set[str] = set()  # keys whose wanted and written may differ
        self._purge: set[str] = set()  # keys of dead nodes, to delete
        self._wake = asyncio.Event()
        self._closed = False
        self._healthy = True  # the last heartbeat was written
        self._initial = True  # the watch is reading the current values
        self._listed: set[tuple[str, str]] = set()  # contacts those values hold
        self.rewatches = 0  # watches made again (their consumer was lost)
        self._sa_cache: dict[str, tuple[bytes, CotEvent | None]] = {}
        # Counters (in the bus's samples).
        self.departures = 0  # t-x-d-d sent to this node's sessions for contacts of other nodes
        self.dead_nodes = 0
        self.bad = 0  # presence entries not of the documented shape
        self.errors = 0  # writes or reads of the bucket that failed (tried again)

    async def open(self, js: Any, org: str, replicas: int) -> None:
        self._kv = await open_bucket(js, bucket_name("PRESENCE", org), replicas)
        # A restart of this node: what its previous run left is gone (its sessions are).
        for key in await self._keys(node_prefix(self.node)):
            await self._kv.delete(key)
        await self._kv.put(node_key(self.node), str(self._wall_ms()).encode())

    async def _keys(self, pattern: str) -> list[str]:
        return await keys_of(self._kv, pattern)

    # -- the hub's hook ------------------------------------------------------------------------
    def changed(self, party: Party, present: bool) -> bool:
        """An identified session of this node joined, changed, or left; for a leave, True
        when the uid is connected on another node (it moved: no departure is due)."""
        if self._closed or not party.uid or party.relays or not party.receives:
            return False
        key = contact_key(self.node, party.uid)
        if not present:
            self._wanted.pop(key, None)
            self._dirty.add(key)
            self._groups.pop(party.uid, None)
            self._wake.set()
            return any(node != self.node for node in self.table.where(party.uid))
        old = self._groups.get(party.uid)
        self._groups[party.uid] = party.membership
        if old is not None and old != party.membership:
            self._local_regroup(party, old)
        sa = party.last_sa
        self._dirty.add(key)
        self._wanted[key] = encode_contact(
            Contact(
                self.node,
                party.uid,
                party.callsign,
                party.membership,
                party.principal,
                sa.type if sa is not None else "a-f-G",
                b""
                if sa is None
                else sa.raw
                if sa.raw and sa.raw_format is WireFormat.XML
                else encode_xml(sa),
            )
        )
        self._wake.set()
        return False

    # -- loops (run by the owner) ----------------------------------------------------------------
    async def write_loop(self) -> None:
        while True:
            still_wanted()
            await self._wake.wait()
            self._wake.clear()
            await self._reconcile()

    async def _reconcile(self) -> None:
        """Write what changed (``_dirty``); what fails stays dirty, for the next round."""
        for key in list(self._dirty):
            value = self._wanted.get(key)
            if self._written.get(key) != value and not await self._write(key, value):
                return
            self._dirty.discard(key)
        alive = self.table.alive()
        for key in list(self._purge):
            with contextlib.suppress(PresenceError):
                if parse_key(key).node in alive:  # it came back: its keys are its own again
                    self._purge.discard(key)
                    continue
            if await self._write(key, None):
                self._purge.discard(key)

    async def _write(self, key: str, value: bytes | None) -> bool:
        try:
            if value is None:
                await self._kv.delete(key)
            else:
                await self._kv.put(key, value)
        except Exception as exc:  # NATS down: tried again at the next heartbeat
            self.errors += 1
            log.debug("cluster: presence %s not written: %s", key, exc)
            return False
        if value is None:
            self._written.pop(key, None)
        else:
            self._written[key] = value
        return True

    async def beat_loop(self) -> None:
        """Say this node is alive; find nodes that are not; catch up writes that failed."""
        while True:
            still_wanted()
            await asyncio.sleep(HEARTBEAT_S)
            now = self._wall_ms()
            try:
                await self._kv.put(node_key(self.node), str(now).encode())
                ok = True
            except Exception as exc:
                self.errors += 1
                ok = False
                log.debug("cluster: heartbeat not written: %s", exc)
            if ok and not self._healthy:
                # Back from an outage: the others' beats were missed, not stopped; and they
                # may have taken this node for dead and deleted its keys: all are written again.
                self.table.grace(now)
                self._dirty.update(self._wanted, self._written)
                self._written = dict.fromkeys(self._written, b"")  # unsure: written again
            self._healthy = ok
            if ok:  # cut off from NATS, this node cannot tell who else is alive
                self._act(self.table.tick(now))
            await self._reconcile()

    async def watch_loop(self) -> None:
        """Every node's presence as the bucket says. Each (re)start of the watch is a fresh
        look: contacts held here that it no longer lists have left."""
        await watch_entries(self._kv, self._watched, self._rewatch)

    def _rewatch(self) -> None:
        self.rewatches += 1
        self._initial = True
        self._listed.clear()

    def _watched(self, entry: Any) -> None:
        if entry is None:  # the current values are all in
            if self._initial:
                self._initial = False
                for contact in self.table.remote():
                    if (contact.node, contact.uid) not in self._listed:
                        self._act(self.table.delete(contact.node, contact.uid))
                self._listed.clear()
            return
        if self._initial and entry.operation not in KV_DELETES:
            with contextlib.suppress(PresenceError):
                parsed = parse_key(entry.key)
                if parsed.uid:
                    self._listed.add((parsed.node, parsed.uid))
        self._entry(entry.key, entry.value, entry.operation)

    def _entry(self, key: str, value: bytes | None, operation: str | None) -> None:
        try:
            parsed = parse_key(key)
            now = self._wall_ms()
            if not parsed.uid:
                if operation in KV_DELETES:
                    self._act(self.table.gone(parsed.node))
                else:
                    self.table.beat(parsed.node, now)
                return
            node, uid = parsed.node, parsed.uid
            if operation in KV_DELETES:
                self._sa_cache.pop(key, None)
                if node == self.node and key in self._wanted:
                    # Another node took this one for dead: the session is here, say so again.
                    self._written.pop(key, None)
                    self._dirty.add(key)
                    self._wake.set()
                self._act(self.table.delete(node, uid))
            else:
                self._act(self.table.put(decode_contact(node, value or b""), now))
        except PresenceError as exc:
            self.bad += 1
            log.debug("cluster: presence entry %s dropped: %s", key, exc)

    def _act(self, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, Departed):
                self._depart(event)
            elif isinstance(event, Regrouped):
                self._regrouped(event)
            elif isinstance(event, NodeDead):
                self.dead_nodes += 1
                log.warning(
                    "cluster: node %s stopped (no heartbeat); %d of its contacts left",
                    event.node,
                    len(event.uids),
                )
                # Deleted by whichever survivor gets there first (a delete is idempotent).
                self._purge.update(contact_key(event.node, uid) for uid in event.uids)
                self._purge.add(node_key(event.node))
                self._wake.set()

    def _depart(self, event: Departed) -> None:
        if self._hub.roster.by_uid(event.uid) is not None or not event.membership.inbound:
            return  # connected here now (it moved to this node), or heard by nobody
        relay = self._relay(event.membership.inbound)
        notice = departure_of(event.uid, event.sa_type, str(uuid.uuid4()), self._wall_ms())
        self._hub.submit(relay, notice)
        self.departures += 1

    # -- read by the contact lists -----------------------------------------------------------
    def remote_contacts(self) -> list[ContactView]:
        out = []
        for contact in self.table.remote():
            if self._hub.roster.by_uid(contact.uid) is not None:
                continue
            out.append(
                ContactView(
                    contact.uid,
                    contact.callsign,
                    contact.membership,
                    self._sa_of(contact),
                    user=contact.user,
                )
            )
        return out

    def _sa_of(self, contact: Contact) -> CotEvent | None:
        cached = self._sa_cache.get(contact.key)
        if cached is None or cached[0] is not contact.sa:
            event = None
            if contact.sa:
                try:
                    event = decode_xml(contact.sa, max_depth=self._max_depth)
                except (CotError, ValueError):
                    self.bad += 1
            cached = self._sa_cache[contact.key] = (contact.sa, event)
        latest = self._hub.latest(contact.uid)  # fresher, when this node hears it live
        return latest if latest is not None else cached[1]

    async def close(self) -> None:
        """A clean leave: this node's contacts and heartbeat go, so the others see them depart
        (at once; if NATS does not answer in ``CLOSE_TIMEOUT_S``, the others find the node
        dead by its heartbeat instead)."""
        self._closed = True
        if self._kv is None:
            return
        mine = f"c.{kv_token(self.node)}."
        keys = [k for k in self._written if k.startswith(mine)] + [node_key(self.node)]
        with contextlib.suppress(Exception):
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                for key in keys:
                    await self._kv.delete(key)
