"""Where an event goes: broadcast, directed (``marti/dest``), GeoChat, or nowhere (control).

``route`` is a pure function of the event, its sender and the roster. Every recipient must be
reachable by group (§5.1) and is never the sender itself.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from accord.cot.model import EMPTY_DETAIL, CotEvent, Detail, Point
from accord.cot.negotiation import NEGOTIATION_TYPES
from accord.cot.xml import detail_from_xml, escape_attr, parse_fragment, without_marti
from accord.domain.contacts import Party, Roster

PING_TYPE = "t-x-c-t"
PONG_TYPE = "t-x-c-t-r"
DELETE_TYPE = "t-x-d-d"
CHAT_TYPE = "b-t-f"
ALL_CHAT_ROOMS = "All Chat Rooms"
ALL_STREAMING = "All Streaming"  # marti dest callsign meaning "everyone"
PONG_STALE_MS = 20_000
DELETE_STALE_MS = 20_000

# Control types a TAK server consumes and never forwards (reference tak-protocol §1.7).
CONTROL_TYPES = frozenset(
    {
        PONG_TYPE,
        "t-b",
        "t-b-a",
        "t-b-c",
        "t-b-q",
        "t-x-c-f",
        "t-x-c-m",
        "t-x-c-i-e",
        "t-x-c-i-d",
        "t-x-g-c",  # a server's notice to a client; never relayed
    }
    | NEGOTIATION_TYPES
)


class Kind(enum.Enum):
    PING = "ping"
    CONTROL = "control"
    DIRECTED = "directed"
    CHAT = "chat"
    BROADCAST = "broadcast"


@dataclass(frozen=True, slots=True)
class Route:
    """The decision for one event: what to send (maybe rewritten), to whom, what to answer.

    ``recipients`` is ``None`` for a broadcast: everyone the sender reaches, except itself.
    It is left unlisted because the hub delivers broadcasts per group class, not per party:
    listing a thousand parties for every SA would cost more than delivering it.
    """

    kind: Kind
    event: CotEvent
    recipients: tuple[Party, ...] | None = ()
    reply: CotEvent | None = None

    def audience(self, sender: Party, roster: Roster) -> tuple[Party, ...]:
        """The recipients, with a broadcast spelled out."""
        if self.recipients is None:
            return reachable(sender, roster)
        return self.recipients


def classify(event: CotEvent) -> Kind:
    if event.type == PING_TYPE:
        return Kind.PING
    if event.type in CONTROL_TYPES:
        return Kind.CONTROL
    if event.detail.dests:
        return Kind.DIRECTED
    if event.type == CHAT_TYPE:
        return Kind.CHAT
    return Kind.BROADCAST


def route(event: CotEvent, sender: Party, roster: Roster, now_ms: int) -> Route:
    kind = classify(event)
    if kind is Kind.PING:
        return Route(kind, event, reply=pong(now_ms))
    if kind is Kind.CONTROL:
        return Route(kind, event)
    if kind is Kind.DIRECTED:
        return _directed(event, sender, roster)
    if kind is Kind.CHAT:
        chat = event.detail.chat
        if chat is None or chat.chatroom == ALL_CHAT_ROOMS or not chat.members:
            # No member list: ATAK's "All Chat Rooms" or a client that names no one.
            return Route(kind, event, None)
        return Route(kind, event, _targets(sender, roster, uids=chat.members))
    return Route(kind, event, None)


def reachable(sender: Party, roster: Roster) -> tuple[Party, ...]:
    """Every receiving party that may hear ``sender``, except the sender itself."""
    m = sender.membership
    return tuple(p for p in roster.receivers() if p is not sender and m.reaches(p.membership))


def _directed(event: CotEvent, sender: Party, roster: Roster) -> Route:
    stripped = without_marti(event)
    callsigns = [d.value for d in event.detail.dests if d.kind == "callsign"]
    if ALL_STREAMING in callsigns:
        return Route(Kind.DIRECTED, stripped, None)
    groups = {d.value for d in event.detail.dests if d.kind == "group"}
    if groups:
        # A group dest narrows delivery to that group, and only a member may use it (§5.1).
        allowed = groups & sender.membership.inbound
        recipients = tuple(
            p
            for p in roster.receivers()
            if p is not sender and not allowed.isdisjoint(p.membership.outbound)
        )
    else:
        recipients = ()
    uids = [d.value for d in event.detail.dests if d.kind == "uid"]
    named = _targets(sender, roster, uids=uids, callsigns=callsigns)
    merged = tuple(dict.fromkeys(recipients + named))
    return Route(Kind.DIRECTED, stripped, merged)


def with_subscribers(decision: Route, sender: Party, roster: Roster, uids: Sequence[str]) -> Route:
    """``decision`` also delivered to the clients ``uids`` (the subscribers of the missions a
    ``<dest mission>`` names) that the sender may reach."""
    if not uids or decision.recipients is None:
        return decision
    extra = _targets(sender, roster, uids=uids)
    merged = tuple(dict.fromkeys(decision.recipients + extra))
    return Route(decision.kind, decision.event, merged, decision.reply)


def _targets(
    sender: Party, roster: Roster, *, uids: Sequence[str] = (), callsigns: Sequence[str] = ()
) -> tuple[Party, ...]:
    found: dict[int, Party] = {}
    for uid in uids:
        party = roster.by_uid(uid)
        if party is not None:
            found[party.key] = party
    for callsign in callsigns:
        party = roster.by_callsign(callsign)
        if party is not None:
            found[party.key] = party
    m = sender.membership
    return tuple(
        p for p in found.values() if p is not sender and p.receives and m.reaches(p.membership)
    )


def notice(
    uid: str, kind: str, now_ms: int, stale_ms: int, detail: Detail = EMPTY_DETAIL
) -> CotEvent:
    """A server-made control event: how ``h-g-i-g-o``, point 0,0 with unknown errors."""
    return CotEvent(
        uid=uid,
        type=kind,
        how="h-g-i-g-o",
        time=now_ms,
        start=now_ms,
        stale=now_ms + stale_ms,
        point=Point(),
        detail=detail,
    )


def pong(now_ms: int) -> CotEvent:
    """The TAK Server's answer to a ping: uid ``takPong``, stale +20 s, no detail (§1.7)."""
    return notice("takPong", PONG_TYPE, now_ms, PONG_STALE_MS)


def departure(party: Party, uid: str, now_ms: int) -> CotEvent | None:
    """The ``t-x-d-d`` telling the others that ``party`` left, naming its last SA (§1.7)."""
    if not party.uid:
        return None
    link_type = party.last_sa.type if party.last_sa is not None else "a-f-G"
    detail = detail_from_xml(
        f'<link uid="{escape_attr(party.uid)}" type="{escape_attr(link_type)}" relation="p-p"/>'
    )
    return notice(uid, DELETE_TYPE, now_ms, DELETE_STALE_MS, detail)


def deleted(event: CotEvent) -> tuple[str, str] | None:
    """The uid and type a ``t-x-d-d`` deletes (its ``link@uid``/``@type``, §1.7), else None.

    Parsed on demand: deletes are rare next to SAs, so routing does not pay for it on decode."""
    if event.type != DELETE_TYPE or "<link" not in event.detail.xml:
        return None
    link = parse_fragment(f"<detail>{event.detail.xml}</detail>").find("link")
    if link is None or not link.get("uid"):
        return None
    return link.get("uid", ""), link.get("type", "")


GROUPS_CHANGED_TYPE = "t-x-g-c"


def groups_changed(uid: str, now_ms: int) -> CotEvent:
    """The TAK Server's "your groups changed" notice (§1.7), sent to the client it concerns."""
    return notice(uid, GROUPS_CHANGED_TYPE, now_ms, PONG_STALE_MS)
