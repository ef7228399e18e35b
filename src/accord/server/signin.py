"""``<auth>`` on plain-TCP streams: the password check an adapter can await."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from accord.domain.groups import Membership
from accord.identity.signin import Refusal, SignIn
from accord.identity.users import UserStoreError

log = logging.getLogger("accord.signin")

# (peer address, user name, password) -> the user's groups, or why the client is refused.
Authenticate = Callable[[str, str, str], Awaitable[Membership | str]]


def password_check(signin: SignIn, default: Membership) -> Authenticate:
    """An :data:`Authenticate` over ``signin``; a user without groups gets ``default``."""
    lock = asyncio.Lock()  # the user store is not thread-safe: one check at a time

    async def authenticate(peer: str, name: str, password: str) -> Membership | str:
        async with lock:
            try:
                result = await asyncio.to_thread(
                    signin.check, peer, name, password, time.monotonic()
                )
            except UserStoreError as exc:
                log.error("sign-in impossible: %s", exc)
                return "the user store cannot be read"
        if isinstance(result, Refusal):
            return result.value
        membership = result.membership
        return membership if membership.inbound or membership.outbound else default

    return authenticate
