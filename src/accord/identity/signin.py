"""Password sign-in, shared by the enrollment API and ``<auth>`` on streaming connections.

One place decides: the throttle (five wrong passwords a minute per address and per user, then
refused until the minute has passed) and the user store's constant-time verify. The check is
blocking (argon2 costs tens of milliseconds on purpose): adapters run it in a worker thread,
one at a time (the store is not thread-safe).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from accord.domain.flow import FailureThrottle
from accord.identity.users import User, UserStore

FAILURES_ALLOWED = 5
WINDOW_S = 60.0


class Refusal(enum.Enum):
    WRONG = "wrong user name or password"
    THROTTLED = "too many wrong passwords; wait a minute"


@dataclass
class SignIn:
    users: UserStore
    throttle: FailureThrottle = field(
        default_factory=lambda: FailureThrottle(FAILURES_ALLOWED, WINDOW_S)
    )

    def check(self, peer: str, name: str, password: str, now: float) -> User | Refusal:
        """The user, or why not. ``now`` is any monotonic clock in seconds.

        May raise :class:`accord.identity.users.UserStoreError` when the store is unreadable.
        """
        throttle = self.throttle
        if not (throttle.allowed(peer, now) and throttle.allowed(name, now)):
            return Refusal.THROTTLED
        user = self.users.verify(name, password)
        if user is None:
            throttle.failed(peer, now)
            throttle.failed(name, now)
            return Refusal.WRONG
        throttle.succeeded(peer)
        throttle.succeeded(name)
        return user
