"""Who is connected: parties, their uid/callsign bindings, their latest SA.

A party is anything that sends events into the hub: a stream session, or a UDP source. A
party's uid and callsign are bound from the first event that carries ``contact@endpoint``
(the TAK Server's rule) and follow later callsign changes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from accord.cot.model import CotEvent
from accord.domain.groups import Membership
from accord.domain.ownership import Conflict, Speaker, UidOwners


@dataclass(eq=False, slots=True)
class Party:
    """One sender/receiver known to the hub. ``key`` is unique for the process lifetime."""

    key: int
    membership: Membership
    label: str  # peer address, for logs
    receives: bool = True  # False for UDP sources: nothing can be sent back
    relays: bool = False  # forwards others' events (a federation link): never bound to a uid
    uid: str = ""
    callsign: str = ""
    principal: str = ""  # who signed in: certificate CN or TCP user name ("" = anonymous)
    last_sa: CotEvent | None = field(default=None, repr=False)
    _speaker: Speaker | None = field(default=None, repr=False)

    @property
    def speaker(self) -> Speaker:
        """Who this party is for uid ownership (its principal is set before it sends)."""
        speaker = self._speaker
        if speaker is None or speaker.user != self.principal:
            session = self.receives and not self.relays
            host = self.label.rsplit(":", 1)[0] if session else self.label
            speaker = self._speaker = Speaker(self.principal, host, session)
        return speaker


# UDP senders cannot be disconnected, so their SAs are kept until stale, and at most this many
# (a flood of spoofed datagrams with fresh uids must not grow memory without bound).
MAX_MESH_CONTACTS = 10_000


class Roster:
    """The parties and their indexes by uid and callsign."""

    def __init__(self) -> None:
        self._parties: dict[int, Party] = {}
        self._by_uid: dict[str, Party] = {}
        self._by_callsign: dict[str, Party] = {}
        # Self-reports of UDP (mesh) senders and of partners' contacts: uid -> (membership,
        # SA, whether a partner link relayed it). They have no session, so they are kept until
        # their own stale time, or a partner's departure notice (see ``forget``).
        self._mesh_sa: dict[str, tuple[Membership, CotEvent, bool]] = {}
        self.owners = UidOwners()  # own uids of sessions and of users gone (issue 13 §3)

    def __len__(self) -> int:
        return len(self._parties)

    def __iter__(self) -> Iterator[Party]:
        return iter(self._parties.values())

    def receivers(self) -> Iterator[Party]:
        return (p for p in self._parties.values() if p.receives)

    def compact(self) -> None:
        """Rebuild the indexes: a dict keeps the size of its peak until it is rebuilt."""
        self._parties = dict(self._parties)
        self._by_uid = dict(self._by_uid)
        self._by_callsign = dict(self._by_callsign)
        self._mesh_sa = dict(self._mesh_sa)

    def join(self, party: Party) -> None:
        self._parties[party.key] = party

    def leave(self, party: Party) -> None:
        self._parties.pop(party.key, None)
        if party.uid:
            self.owners.release(party.uid, party.key)
        if party.uid and self._by_uid.get(party.uid) is party:
            del self._by_uid[party.uid]
        if party.callsign and self._by_callsign.get(party.callsign) is party:
            del self._by_callsign[party.callsign]

    def by_uid(self, uid: str) -> Party | None:
        return self._by_uid.get(uid)

    def by_callsign(self, callsign: str) -> Party | None:
        return self._by_callsign.get(callsign)

    def conflict(self, party: Party, event: CotEvent) -> Conflict | None:
        """Whether ``party`` may not send ``event``: its uid is someone else's own uid."""
        if not self.owners or event.uid == party.uid:
            return None
        return self.owners.check(event.uid, party.speaker)

    def knows_sa(self, event: CotEvent) -> bool:
        """Whether ``event`` is still some party's latest SA (connected or UDP)."""
        party = self._by_uid.get(event.uid)
        if party is not None and party.last_sa is event:
            return True
        mesh = self._mesh_sa.get(event.uid)
        return mesh is not None and mesh[1] is event

    def observe(self, party: Party, event: CotEvent) -> bool:
        """Learn from an event a party sent; True when its uid or callsign changed."""
        contact = event.detail.contact
        if contact is None or not contact.endpoint or not contact.callsign:
            return False
        if not party.receives or party.relays:
            self._keep(event, party.membership, relayed=party.relays)
            return False
        if party.uid and event.uid != party.uid:
            return False  # a marker or another object this client relays, not itself
        changed = False
        if not party.uid:
            party.uid = event.uid
            self._by_uid[event.uid] = party
            self.owners.claim(event.uid, party.key, party.speaker)
            self._mesh_sa.pop(event.uid, None)  # a restored report of itself is superseded
            changed = True
        if contact.callsign != party.callsign:
            if party.callsign and self._by_callsign.get(party.callsign) is party:
                del self._by_callsign[party.callsign]
            party.callsign = contact.callsign
            self._by_callsign[contact.callsign] = party
            changed = True
        party.last_sa = event
        return changed

    def restore(self, sender: Membership, event: CotEvent) -> None:
        """Hold an SA remembered from before a restart until its owner reports again or it goes
        stale: newcomers get it like a UDP sender's (the sender is not connected either)."""
        if event.uid not in self._by_uid:
            self._keep(event, sender, relayed=False)

    def _keep(self, event: CotEvent, membership: Membership, *, relayed: bool) -> None:
        """Hold a sessionless SA; re-inserted so the dict stays in arrival order (newest last),
        the oldest going first when full."""
        self._mesh_sa.pop(event.uid, None)
        self._mesh_sa[event.uid] = (membership, event, relayed)
        if len(self._mesh_sa) > MAX_MESH_CONTACTS:
            del self._mesh_sa[next(iter(self._mesh_sa))]

    def forget(self, party: Party, uid: str) -> bool:
        """A partner link says the contact ``uid`` left: newcomers are not shown its SA any more.

        Only a relaying party may say so, and only of an SA a partner link brought: a local
        client's delete names objects, not contacts, and a UDP datagram anyone can forge. A
        partner could hide another partner's contact this way, but no more than its delete
        already does on every client that receives it. True when an SA was forgotten."""
        held = self._mesh_sa.get(uid)
        if not party.relays or held is None or not held[2]:
            return False
        del self._mesh_sa[uid]
        return True

    def latest_sa(self, newcomer: Party, now_ms: int) -> list[CotEvent]:
        """The latest non-stale SA of every party the newcomer may hear, for its first sync.

        One per uid: a client that reconnected before its old socket died has two sessions
        for a while, and only its newest report counts.
        """
        latest: dict[str, CotEvent] = {}

        def offer(event: CotEvent) -> None:
            known = latest.get(event.uid)
            if known is None or event.time >= known.time:
                latest[event.uid] = event

        for p in self._parties.values():
            if (
                p is not newcomer
                and p.last_sa is not None
                and p.last_sa.stale > now_ms
                and p.membership.reaches(newcomer.membership)
            ):
                offer(p.last_sa)
        for uid, (membership, event, _) in list(self._mesh_sa.items()):
            if event.stale <= now_ms:
                del self._mesh_sa[uid]
            elif membership.reaches(newcomer.membership):
                offer(event)
        return list(latest.values())
