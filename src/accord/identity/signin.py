"""Password sign-in, shared by the enrollment API, ``/oauth/token``, HTTP basic auth and
``<auth>`` on streaming connections.

One place decides: the throttles and the user store's constant-time verify. The server keeps
one :class:`SignIn` for all its ports, so the limits hold across them. The check is blocking
(argon2 costs tens of milliseconds on purpose): adapters run it in a worker thread; a lock
keeps the checks (and the store, which is not thread-safe) one at a time.

Wrong passwords are limited so that guessing is slow but nobody can lock a user out:

* **by source address, with back-off**: five wrong passwords from one address are free; then
  the address waits a minute, and each further wrong password doubles the wait (up to
  15 minutes). A correct password clears the address's wrong passwords *for that name*
  only, so signing in to one's own account does not buy guesses at another's. A guesser on
  one address gets a few dozen tries a day.
* **by user name, far more loosely**: 50 wrong passwords for one name within 10 minutes, from
  any number of addresses, make the name wait, but not from an address that signed in as that
  user before. Someone who knows a name and has a few addresses cannot lock its owner out
  (issue 13 §4: five wrong passwords used to block the name for everyone for a minute).
"""

from __future__ import annotations

import enum
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from accord.identity.users import User, UserStore

ADDRESS_FAILURES_FREE = 5
ADDRESS_BACKOFF_S = 60.0  # the first wait, doubled by each further wrong password
ADDRESS_BACKOFF_MAX_S = 900.0
ADDRESS_FORGET_S = 3600.0  # an address quiet this long starts afresh
NAME_FAILURES_ALLOWED = 50
NAME_WINDOW_S = 600.0
MAX_KEYS = 10_000  # addresses, names and known (name, address) pairs kept, each; oldest go
MAX_NAME_KEY_CHARS = 256  # longer than any user name can be; what the name limit keys on
MAX_NAMES_PER_ADDRESS = 64  # names an address's failures are kept by; older ones stay counted


class Refusal(enum.Enum):
    WRONG = "wrong user name or password"
    THROTTLED = "too many wrong passwords; wait and try again"


@dataclass(slots=True)
class _Strikes:
    failures: int = 0
    last_s: float = 0.0
    until_s: float = 0.0
    by_name: dict[str, int] = field(default_factory=dict)  # which names the failures were for


def _bounded_put(table: OrderedDict[str, _Strikes], key: str, value: _Strikes) -> None:
    table[key] = value
    table.move_to_end(key)
    while len(table) > MAX_KEYS:
        table.popitem(last=False)


class AddressThrottle:
    """Back-off per source address; ``now`` is any monotonic clock in seconds."""

    def __init__(
        self,
        free: int = ADDRESS_FAILURES_FREE,
        first_wait_s: float = ADDRESS_BACKOFF_S,
        max_wait_s: float = ADDRESS_BACKOFF_MAX_S,
        forget_s: float = ADDRESS_FORGET_S,
    ) -> None:
        self.free, self.first_wait_s, self.max_wait_s = free, first_wait_s, max_wait_s
        self.forget_s = forget_s
        self._strikes: OrderedDict[str, _Strikes] = OrderedDict()

    def wait_s(self, address: str, now: float) -> float:
        """How long ``address`` must still wait before its password is checked (0: none)."""
        strikes = self._strikes.get(address)
        if strikes is None:
            return 0.0
        if now - strikes.last_s >= max(self.forget_s, strikes.until_s - strikes.last_s):
            del self._strikes[address]
            return 0.0
        return max(0.0, strikes.until_s - now)

    def failed(self, address: str, now: float, name: str = "") -> None:
        strikes = self._strikes.get(address) or _Strikes()
        strikes.failures += 1
        strikes.last_s = now
        strikes.by_name[name] = strikes.by_name.pop(name, 0) + 1
        while len(strikes.by_name) > MAX_NAMES_PER_ADDRESS:
            del strikes.by_name[next(iter(strikes.by_name))]  # stays in the total for good
        over = strikes.failures - self.free
        if over >= 0:
            strikes.until_s = now + min(self.max_wait_s, self.first_wait_s * 2.0 ** min(over, 32))
        _bounded_put(self._strikes, address, strikes)

    def succeeded(self, address: str, name: str = "") -> None:
        """``name`` signed in from ``address``: forget the wrong passwords given for it there
        (a typo by the owner), not those for other names (guesses at someone else's)."""
        strikes = self._strikes.get(address)
        if strikes is None:
            return
        strikes.failures -= strikes.by_name.pop(name, 0)
        if strikes.failures <= 0:
            del self._strikes[address]


class NameThrottle:
    """A loose limit per user name over a sliding window, which addresses that signed in as
    the user before are exempt from."""

    def __init__(
        self, allowed: int = NAME_FAILURES_ALLOWED, window_s: float = NAME_WINDOW_S
    ) -> None:
        self.allowed, self.window_s = allowed, window_s
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._known: OrderedDict[tuple[str, str], None] = OrderedDict()

    def refused(self, name: str, address: str, now: float) -> bool:
        if (name, address) in self._known:
            return False
        recent = self._failures.get(name)
        if recent is None:
            return False
        while recent and now - recent[0] >= self.window_s:
            recent.popleft()
        if not recent:
            del self._failures[name]
            return False
        return len(recent) >= self.allowed

    def failed(self, name: str, now: float) -> None:
        recent = self._failures.get(name)
        if recent is None:
            recent = self._failures[name] = deque(maxlen=self.allowed)
        recent.append(now)
        self._failures.move_to_end(name)
        while len(self._failures) > MAX_KEYS:
            self._failures.popitem(last=False)

    def succeeded(self, name: str, address: str) -> None:
        self._known[(name, address)] = None
        self._known.move_to_end((name, address))
        while len(self._known) > MAX_KEYS:
            self._known.popitem(last=False)


@dataclass
class SignIn:
    users: UserStore
    addresses: AddressThrottle = field(default_factory=AddressThrottle)
    names: NameThrottle = field(default_factory=NameThrottle)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def check(self, peer: str, name: str, password: str, now: float) -> User | Refusal:
        """The user, or why not. ``peer`` is the source address; ``now`` is any monotonic
        clock in seconds. A throttled attempt is refused before the password is looked at.

        May raise :class:`accord.identity.users.UserStoreError` when the store is unreadable.
        """
        with self._lock:
            return self._check(peer, name, password, now)

    def user(self, name: str) -> User | None:
        """The user ``name`` as the store has it now (blocking: the store may be re-read)."""
        with self._lock:
            return self.users.get(name)

    def _check(self, peer: str, name: str, password: str, now: float) -> User | Refusal:
        key = name[:MAX_NAME_KEY_CHARS]
        if self.addresses.wait_s(peer, now) > 0 or self.names.refused(key, peer, now):
            return Refusal.THROTTLED
        user = self.users.verify(name, password)
        if user is None:
            self.addresses.failed(peer, now, key)
            self.names.failed(key, now)
            return Refusal.WRONG
        self.addresses.succeeded(peer, key)
        self.names.succeeded(key, peer)
        return user

    def wait_s(self, peer: str, now: float) -> float:
        """How long ``peer`` must wait (for a ``Retry-After``); at least a second when the
        refusal is the name's."""
        return max(1.0, self.addresses.wait_s(peer, now))
