"""What a started server is (:class:`Running`), how start-up fails (:class:`StartupError`) and
how a running server fails (:class:`ServerFailed`)."""

from __future__ import annotations

import asyncio
import errno
import logging
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path

from accord.api.web_feed import FeedSettings
from accord.app.tasks import Supervisor
from accord.domain.metrics import Counters
from accord.domain.partners import Partner
from accord.domain.views import Probes
from accord.federation.gate import PolicyGate, PolicyLoadError, load_policies
from accord.federation.journal import LedgerJournal
from accord.federation.transport import Federation
from accord.feeds import mavlink as feeds
from accord.identity.signin import SignIn
from accord.identity.token import TokenService
from accord.server.census import Census
from accord.server.history import HistoryWriter
from accord.server.hub import Hub
from accord.store.contract import Store

log = logging.getLogger("accord")


class StartupError(Exception):
    """Accord cannot start; the message names the problem and the fix."""


class ServerFailed(Exception):
    """A background task whose death stops the server died; the message says which and why."""


@dataclass
class Running:
    """A started server: its hub, counters and the ports it actually bound.

    Every part registers how it stops in :attr:`stack` as it starts, so :meth:`close` undoes
    them in the reverse order: listeners and links first, then the sessions, the background
    tasks (history and ledger writers flushed), the store last.
    """

    hub: Hub
    counters: Counters
    store: Store | None = None
    history_writer: HistoryWriter | None = None
    ports: dict[str, int] = field(default_factory=dict)
    servers: list[asyncio.Server] = field(default_factory=list)  # TCP, for wait_closed
    stack: AsyncExitStack = field(default_factory=AsyncExitStack)
    tasks: Supervisor = field(default_factory=Supervisor)  # entered by `start`
    stopping: asyncio.Event = field(default_factory=asyncio.Event)  # a task stopped the server
    grace_s: float = 5.0  # how long each step of close() waits (set by close)
    federation: Federation | None = None
    gate: PolicyGate | None = None  # the partners' release policies
    partners: tuple[Partner, ...] = ()  # as configured at start
    ledger: LedgerJournal | None = None  # the sharing ledger
    census: Census = field(default_factory=Census)  # the sessions, for the admin API
    probes: Probes = field(default_factory=Probes)  # optional reporters to /metrics
    started_s: float = field(default_factory=time.time)
    feeds: dict[str, feeds.Feed] = field(default_factory=dict)  # drone feeds by name
    tokens: TokenService | None = None  # signs every token the server issues (app.http)
    signin: SignIn | None = None  # the password check of every port, one set of limits
    web_feed: FeedSettings | None = None  # shared by the web app's sessions on both ports

    async def enter_tasks(self) -> None:
        """Start the task group the background tasks run in; a failure stops the server."""
        self.tasks.on_failure = lambda _line: self.stopping.set()
        await self.stack.enter_async_context(self.tasks)
        self.probes.sources.append(self.tasks)

    @property
    def failure(self) -> str | None:
        """Why a background task stopped the server, in one line; None while none did."""
        return self.tasks.failure

    def reload_policies(self) -> tuple[bool, str]:
        """Read every partner's policy file again and put the changed ones in force (SIGHUP).
        Returns (ok, what happened) for the log; a bad file leaves every policy as it was."""
        gate = self.gate
        if gate is None or not self.partners:
            return True, "no release policies to reload"
        try:
            policies = load_policies(self.partners, Path())
        except PolicyLoadError as exc:
            return False, f"release policies not reloaded, those in force stay: {exc}"
        changed = []
        for name, policy in policies.items():
            current = gate.policies.get(name)
            if current is None or current.version != policy.version:
                gate.set_policy(name, policy)
                changed.append(f"{name} ({policy.version})")
        if not changed:
            return True, "release policies reloaded: none changed"
        return True, f"release policies reloaded: {', '.join(changed)} now in force"

    async def close(self, grace_s: float = 5.0) -> None:
        """Stop everything started, in the reverse order (see the class); again is a no-op."""
        self.grace_s = grace_s
        await self.stack.aclose()

    async def close_sessions(self) -> None:
        """Close every session (flushing what it can), then let the TCP listeners go."""
        grace_s = self.grace_s
        self.hub.close_all("server shutting down", abort=False)
        try:
            async with asyncio.timeout(grace_s):
                await self.hub.wait_empty()
        except TimeoutError:
            log.warning("%d sessions did not close in %g s", self.hub.session_count, grace_s)
            self.hub.close_all("server shutting down", abort=True)
        for server in self.servers:
            try:
                async with asyncio.timeout(grace_s):
                    await server.wait_closed()
            except TimeoutError:
                log.warning("listener did not close in %g s", grace_s)


def wall_ms() -> int:
    return int(time.time() * 1000)


def listen_error(exc: OSError, bind: str, port: int, flag: str) -> StartupError:
    """Translate a bind failure into what the operator should do about it."""
    if exc.errno == errno.EADDRINUSE:
        return StartupError(
            f"port {port} on {bind} is already in use: stop the other program or pick another "
            f"port with {flag}"
        )
    if exc.errno == errno.EACCES:
        return StartupError(
            f"port {port} needs privileges Accord does not have: pick a port above 1023 with {flag}"
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return StartupError(f"address {bind} is not on this machine: fix --bind")
    return StartupError(f"cannot listen on {bind}:{port}: {exc.strerror or exc}")
