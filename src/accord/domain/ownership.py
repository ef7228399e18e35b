"""Who may speak under a uid (issue 13 §3): a session's own uid is not anyone's to take.

A session's *own* uid is the uid of the first event it sends with a ``<contact>`` that has an
``endpoint`` (how ATAK, WinTAK and iTAK announce themselves). That uid belongs to the session
while it lives, and to its signed-in user afterwards. An event under it from anyone else is a
*conflict*: the hub drops and counts it, and it never replaces the latest SA.

Who "anyone else" is:

- a signed-in session (certificate or ``<auth>``) is its user: the same user on another
  session (a reconnect, a second device sharing the uid) takes the uid back at once;
- an anonymous session (plain TCP without ``<auth>``) is its peer host: a client reconnecting
  from the same address takes its uid back, another address may not use it while it lives,
  and nobody owns it once that session is gone (there is no user to keep it for);
- input that is not a session of its own (UDP/mesh, a partner link's relayed contacts, a
  bridge) is refused only what a signed-in user holds: a mesh datagram under an anonymous
  session's uid is often that same device announcing itself on both paths.

Markers, routes, alerts and a gateway's tracks of other things are never own uids (they are not
the first contact a session announces), so they are not checked. Pure: no clock, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

# Uids kept for users who have gone: the oldest are forgotten beyond this many, so that a
# client announcing fresh uids on every connection cannot grow memory without bound.
MAX_REMEMBERED_UIDS = 100_000


@dataclass(frozen=True, slots=True)
class Speaker:
    """Who sends an event, as far as ownership goes."""

    user: str  # signed-in principal; "" when anonymous
    host: str  # peer address without the port ("" for input that has no session)
    session: bool  # a stream session of its own (it can claim a uid)

    def describe(self) -> str:
        if self.user:
            return f"user {self.user!r}"
        return f"anonymous {self.host}" if self.session else f"input {self.host or '-'}"


@dataclass(frozen=True, slots=True)
class Conflict:
    """An event refused: ``holder`` owns the uid, ``speaker`` is not it."""

    uid: str
    holder: Speaker
    speaker: Speaker


@dataclass(slots=True)
class _Claim:
    holder: Speaker
    key: int  # the party key of the live session holding it; 0 once the session has gone


class UidOwners:
    """The own uids of live sessions and of users who have gone."""

    __slots__ = ("_claims", "limit")

    def __init__(self, limit: int = MAX_REMEMBERED_UIDS) -> None:
        self.limit = limit
        self._claims: dict[str, _Claim] = {}

    def __len__(self) -> int:
        return len(self._claims)

    def holder(self, uid: str) -> Speaker | None:
        claim = self._claims.get(uid)
        return claim.holder if claim is not None else None

    def check(self, uid: str, speaker: Speaker) -> Conflict | None:
        """None when ``speaker`` may send under ``uid``; the conflict otherwise."""
        claim = self._claims.get(uid)
        if claim is None or _same(claim.holder, speaker):
            return None
        if not speaker.session and not claim.holder.user:
            return None  # mesh/relayed input next to an anonymous session: not refused
        return Conflict(uid, claim.holder, speaker)

    def claim(self, uid: str, key: int, speaker: Speaker) -> None:
        """The session ``key`` announced ``uid`` as its own (after :meth:`check` allowed it)."""
        self._claims.pop(uid, None)  # newest last: the oldest gone user is forgotten first
        self._claims[uid] = _Claim(speaker, key)
        if len(self._claims) > self.limit:
            for old, claim in self._claims.items():
                if claim.key == 0:
                    del self._claims[old]
                    break

    def release(self, uid: str, key: int) -> None:
        """The session ``key`` left: its user keeps the uid; an anonymous one frees it."""
        claim = self._claims.get(uid)
        if claim is None or claim.key != key:
            return  # taken back by a newer session of the same owner meanwhile
        if claim.holder.user:
            claim.key = 0
        else:
            del self._claims[uid]


def _same(holder: Speaker, speaker: Speaker) -> bool:
    if holder.user or speaker.user:
        return holder.user == speaker.user
    return speaker.session and holder.host == speaker.host
