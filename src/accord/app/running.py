"""What a started server is (:class:`Running`) and how start-up fails (:class:`StartupError`)."""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn

from accord.domain.metrics import Counters
from accord.domain.partners import Partner
from accord.domain.ports import (
    Probes,
)
from accord.federation.gate import PolicyGate, PolicyLoadError, load_policies
from accord.federation.journal import LedgerJournal
from accord.federation.transport import Federation
from accord.feeds import mavlink as feeds
from accord.identity.signin import SignIn
from accord.identity.token import TokenService
from accord.server.archive import Archiver
from accord.server.census import Census
from accord.server.hub import Hub
from accord.server.listeners import TlsListener
from accord.store.contract import Store

log = logging.getLogger("accord")


class StartupError(Exception):
    """Accord cannot start; the message names the problem and the fix."""


@dataclass
class Running:
    """A started server: its hub, counters and the ports it actually bound."""

    hub: Hub
    counters: Counters
    store: Store | None = None
    archiver: Archiver | None = None
    ports: dict[str, int] = field(default_factory=dict)
    servers: list[asyncio.Server] = field(default_factory=list)
    tls_listeners: list[TlsListener] = field(default_factory=list)
    transports: list[asyncio.BaseTransport] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    http: list[tuple[uvicorn.Server, socket.socket]] = field(default_factory=list)
    federation: Federation | None = None
    gate: PolicyGate | None = None  # the partners' release policies
    partners: tuple[Partner, ...] = ()  # as configured at start
    ledger: LedgerJournal | None = None  # the sharing ledger
    ledger_task: asyncio.Task[None] | None = None
    census: Census = field(default_factory=Census)  # the sessions, for the admin API
    probes: Probes = field(default_factory=Probes)  # optional reporters to /metrics
    started_s: float = field(default_factory=time.time)
    feeds: dict[str, feeds.Feed] = field(default_factory=dict)  # drone feeds by name
    tokens: TokenService | None = None  # signs every token the server issues (app.http)
    signin: SignIn | None = None  # the password check of every port, one set of limits

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
        """Stop accepting, close every session (flushing what it can), release the ports."""
        for feed in self.feeds.values():
            feed.close()
        for task in self.tasks:
            task.cancel()
        for server in self.servers:
            server.close()
        for listener in self.tls_listeners:
            await listener.close()
        for transport in self.transports:
            transport.close()
        for http, sock in self.http:
            await http.shutdown(sockets=[sock])
        if self.federation is not None:
            await self.federation.close()
            self.federation = None
        if self.gate is not None:
            self.gate.close()
        if self.ledger is not None and self.ledger_task is not None:
            self.ledger.stop()
            try:
                async with asyncio.timeout(grace_s):
                    await self.ledger_task
            except TimeoutError:
                self.ledger_task.cancel()
                log.error(
                    "%d ledger entries were not stored in %g s: the ledger ends before them",
                    self.ledger.queued,
                    grace_s,
                )
            self.ledger_task = None
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
        if self.archiver is not None:
            try:
                async with asyncio.timeout(grace_s):
                    await self.archiver.flush()
            except TimeoutError:
                log.warning("%d events were not archived in %g s", self.archiver.queued, grace_s)
        if self.store is not None:
            await self.store.close()
            self.store = None


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
