"""Who is connected to which node: the presence table's pure core (issue 17).

Each node keeps, in a JetStream KV bucket of the organisation, one key per identified session
(``c.<node>.<uid>``: its callsign, user, groups, and the SA it identified with) and one
heartbeat key (``n.<node>``). Every node watches the bucket and feeds what it sees here; the
table answers with what a single server would do:

- a contact that leaves (its key deleted) and is connected on no other node: a
  :class:`Departed` (the node sends its own sessions the ``t-x-d-d``, as on one server);
- a contact whose groups changed on its node: a :class:`Regrouped` (the other nodes re-sync);
- a node whose heartbeat has not been seen for ``dead_after_ms``: :class:`NodeDead`, and a
  :class:`Departed` for each of its contacts connected nowhere else.

Heartbeats are judged by when this node received them (its own clock), so clocks of different
hosts never need to agree. No I/O here: the adapter is ``accord.cluster.sync``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from accord.cluster.subjects import BusHeaderError, kv_token, kv_untoken
from accord.cot.model import CotEvent
from accord.cot.xml import detail_from_xml, escape_attr
from accord.domain.groups import Membership
from accord.domain.routing import DELETE_STALE_MS, DELETE_TYPE, notice

HEARTBEAT_S = 1.0  # how often a node says it is alive
DEAD_AFTER_MS = 15_000  # a node not heard for this long is dead (a NATS failover takes ~10 s)
MAX_SA_BYTES = 8192  # the SA kept with a contact (for contact lists); longer ones are left out


class PresenceError(ValueError):
    """A presence key or value that is not of the documented shape."""


@dataclass(frozen=True, slots=True)
class Contact:
    """One identified session of one node, as the presence bucket holds it."""

    node: str
    uid: str
    callsign: str
    membership: Membership
    user: str = ""
    sa_type: str = "a-f-G"
    sa: bytes = b""  # the XML of its latest SA when the key was written (b"" if too long)

    @property
    def key(self) -> str:
        return contact_key(self.node, self.uid)


def contact_key(node: str, uid: str) -> str:
    return f"c.{kv_token(node)}.{kv_token(uid)}"


def node_key(node: str) -> str:
    return f"n.{kv_token(node)}"


def node_prefix(node: str) -> str:
    """Every contact key of ``node`` (a KV filter)."""
    return f"c.{kv_token(node)}.>"


@dataclass(frozen=True, slots=True)
class Key:
    """A presence key: a node's heartbeat (``uid`` empty) or one contact of a node."""

    node: str
    uid: str = ""


def parse_key(key: str) -> Key:
    """What a presence key names; :class:`PresenceError` for anything else."""
    parts = key.split(".")
    try:
        if len(parts) == 2 and parts[0] == "n":
            return Key(kv_untoken(parts[1]))
        if len(parts) == 3 and parts[0] == "c":
            return Key(kv_untoken(parts[1]), kv_untoken(parts[2]))
    except BusHeaderError as exc:
        raise PresenceError(str(exc)) from None
    raise PresenceError(f"not a presence key: {key!r}")


def encode_contact(contact: Contact) -> bytes:
    m = contact.membership
    sa = contact.sa if len(contact.sa) <= MAX_SA_BYTES else b""
    return json.dumps(
        {
            "uid": contact.uid,
            "callsign": contact.callsign,
            "user": contact.user,
            "in": sorted(m.inbound),
            "out": sorted(m.outbound),
            "type": contact.sa_type,
            "sa": sa.decode("utf-8", "replace"),
        },
        separators=(",", ":"),
    ).encode()


def decode_contact(node: str, data: bytes) -> Contact:
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PresenceError(f"contact of {node}: not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise PresenceError(f"contact of {node}: not a JSON object")
    text = {k: doc.get(k, "") for k in ("uid", "callsign", "user", "type", "sa")}
    groups = {k: doc.get(k, []) for k in ("in", "out")}
    if not all(isinstance(v, str) for v in text.values()) or not text["uid"]:
        raise PresenceError(f"contact of {node}: uid, callsign, user, type, sa must be strings")
    if not all(isinstance(v, list) and all(isinstance(g, str) for g in v) for v in groups.values()):
        raise PresenceError(f"contact of {node}: in and out must be lists of group names")
    return Contact(
        node,
        str(text["uid"]),
        str(text["callsign"]),
        Membership(frozenset(groups["in"]), frozenset(groups["out"])),
        str(text["user"]),
        str(text["type"]) or "a-f-G",
        str(text["sa"]).encode(),
    )


def departure_of(uid: str, sa_type: str, notice_uid: str, now_ms: int) -> CotEvent:
    """The ``t-x-d-d`` a single server sends when ``uid`` leaves (see routing.departure)."""
    detail = detail_from_xml(
        f'<link uid="{escape_attr(uid)}" type="{escape_attr(sa_type)}" relation="p-p"/>'
    )
    return notice(notice_uid, DELETE_TYPE, now_ms, DELETE_STALE_MS, detail)


@dataclass(frozen=True, slots=True)
class Departed:
    """``uid`` is connected on no node any more: tell this node's sessions that heard it."""

    uid: str
    membership: Membership  # the groups it had (who heard it)
    sa_type: str


@dataclass(frozen=True, slots=True)
class Regrouped:
    """``uid``'s groups changed on its node ``node``."""

    node: str
    uid: str
    old: Membership
    new: Membership


@dataclass(frozen=True, slots=True)
class NodeDead:
    """``node`` stopped beating: its keys are stale (any node may delete them)."""

    node: str
    uids: tuple[str, ...]


Event = Departed | Regrouped | NodeDead


@dataclass
class PresenceTable:
    """Every node's contacts as the bucket says, and which nodes are alive."""

    me: str
    dead_after_ms: int = DEAD_AFTER_MS
    _contacts: dict[str, dict[str, Contact]] = field(default_factory=dict)  # node -> uid -> c
    _beats: dict[str, int] = field(default_factory=dict)  # node -> when last heard (our clock)
    _dead: set[str] = field(default_factory=set)

    def put(self, contact: Contact, now_ms: int) -> list[Event]:
        """A contact key was written (joined, renamed or regrouped)."""
        node = self._contacts.setdefault(contact.node, {})
        old = node.get(contact.uid)
        node[contact.uid] = contact
        self._heard(contact.node, now_ms)
        if old is not None and old.membership != contact.membership and contact.node != self.me:
            return [Regrouped(contact.node, contact.uid, old.membership, contact.membership)]
        return []

    def delete(self, node: str, uid: str) -> list[Event]:
        """A contact key was deleted (the session left): a departure unless it is elsewhere."""
        held = self._contacts.get(node, {}).pop(uid, None)
        if held is None or node == self.me or self.where(uid):
            return []
        return [Departed(uid, held.membership, held.sa_type)]

    def beat(self, node: str, now_ms: int) -> None:
        self._heard(node, now_ms)

    def _heard(self, node: str, now_ms: int) -> None:
        self._beats[node] = now_ms
        self._dead.discard(node)

    def gone(self, node: str) -> list[Event]:
        """``node`` left cleanly (its heartbeat key deleted): whatever it still held departs."""
        self._beats.pop(node, None)
        return self._drop(node, dead=False)

    def grace(self, now_ms: int) -> None:
        """This node was cut off until ``now_ms``: the beats it missed do not make the others
        dead; each is given ``dead_after_ms`` from now."""
        for node in self._beats:
            if node not in self._dead:
                self._beats[node] = now_ms

    def tick(self, now_ms: int) -> list[Event]:
        """Nodes not heard for ``dead_after_ms`` are dead; their contacts depart."""
        events: list[Event] = []
        for node, at in list(self._beats.items()):
            if node != self.me and node not in self._dead and now_ms - at > self.dead_after_ms:
                self._dead.add(node)
                events += self._drop(node, dead=True)
        return events

    def _drop(self, node: str, *, dead: bool) -> list[Event]:
        held = self._contacts.pop(node, {})
        if node == self.me:
            return []
        events: list[Event] = [NodeDead(node, tuple(held))] if dead else []
        for uid, contact in held.items():
            if not self.where(uid):
                events.append(Departed(uid, contact.membership, contact.sa_type))
        return events

    def where(self, uid: str) -> list[str]:
        """The nodes ``uid`` is connected to now."""
        return [node for node, held in self._contacts.items() if uid in held]

    def alive(self) -> list[str]:
        return sorted(n for n in self._beats if n not in self._dead)

    def remote(self) -> list[Contact]:
        """The contacts of every other node, one per uid."""
        out: dict[str, Contact] = {}
        for node, held in self._contacts.items():
            if node != self.me and node not in self._dead:
                for uid, contact in held.items():
                    out.setdefault(uid, contact)
        return list(out.values())

    def mine(self) -> dict[str, Contact]:
        return dict(self._contacts.get(self.me, {}))
