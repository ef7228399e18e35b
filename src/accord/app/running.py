"""What a started server is (:class:`Running`), how start-up fails (:class:`StartupError`) and
how a running server fails (:class:`ServerFailed`)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import errno
import json
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from accord.api.missions_book import MissionBook
from accord.api.missions_sharing import MissionSharing
from accord.api.web_batches import FeedSettings
from accord.app.tasks import Supervisor
from accord.config import Config
from accord.domain.metrics import Counters
from accord.domain.partners import Partner
from accord.domain.views import Probes
from accord.federation.gate import PolicyGate, PolicyLoadError, load_policies
from accord.federation.journal import LedgerJournal
from accord.federation.transport import Federation
from accord.feeds import mavlink as feeds
from accord.identity.signin import SignIn
from accord.identity.token import TokenService
from accord.policy import Policy
from accord.server.census import Census
from accord.server.coordination import Coordination
from accord.server.history import HistoryWriter
from accord.server.hub import Hub
from accord.store.contract import Store

log = logging.getLogger("accord")


class StartupError(Exception):
    """Accord cannot start; the message names the problem and the fix."""


class ServerFailed(Exception):
    """A background task whose death stops the server died; the message says which and why."""


@dataclass(frozen=True, slots=True)
class WorkerRole:
    """What one process of ``accord serve --workers N`` is (see accord.cluster.workers).

    Every worker binds the streaming ports (TCP, TLS, UDP) with ``SO_REUSEPORT``; only the
    primary (index 0) serves the ports whose state is still per process (HTTPS, HTTP,
    enrollment, metrics, federation, drone feeds, multicast): its configuration has the others
    turned off. The supervisor made the CA, the keys and the database before any worker."""

    index: int
    count: int
    nats_monitor_port: int = 0  # the embedded NATS server's monitoring port (0: not embedded)

    @property
    def primary(self) -> bool:
        return self.index == 0


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
    partners: tuple[Partner, ...] = ()  # in force: as configured at start, in a cluster its own
    ledger: LedgerJournal | None = None  # the sharing ledger
    census: Census = field(default_factory=Census)  # the sessions, for the admin API
    mission_sharing: MissionSharing | None = None  # missions shared with partners
    missions: MissionBook | None = None  # the Mission API's state, one for HTTPS and HTTP
    probes: Probes = field(default_factory=Probes)  # optional reporters to /metrics
    started_s: float = field(default_factory=time.time)
    feeds: dict[str, feeds.Feed] = field(default_factory=dict)  # drone feeds by name
    tokens: TokenService | None = None  # signs every token the server issues (app.http)
    signin: SignIn | None = None  # the password check of every port, one set of limits
    cluster: Any = None  # the NATS bus (accord.cluster.bus.Bus) with a [cluster]; else None
    # Set when this server's admin API changed a user: the identity watcher runs a round now.
    identity_changed: asyncio.Event = field(default_factory=asyncio.Event)
    cluster_status: Any = None  # its status node (accord.cluster.status.StatusNode), or None
    lease: Any = None  # the partner-link lease (accord.cluster.lease.LeaseKeeper) in a cluster
    started: asyncio.Event = field(default_factory=asyncio.Event)  # set once start() is done
    cluster_leaf: Any = None  # a base's catch-up (accord.cluster.leaf.LeafLink); else None
    record: Path | None = None  # <data_dir>/running.json, removed at close
    coordination: Coordination | None = None  # separation alerts (issue 14)
    # Acknowledgements of alerts by uid (accord.domain.alert_acks.AckBook; in a cluster
    # accord.cluster.alerts.SharedAcks), for the web app; and the alerts lease in a cluster.
    alert_acks: Any = None
    alerts_lease: Any = None
    web_feed: FeedSettings | None = None  # shared by the web app's sessions on both ports
    # In a cluster: the organisation's partners and policies (app.cluster_partners), and what
    # brings the partner links up again with the partners now in force (app.partners).
    shared_partners: Any = None
    relink: Callable[[], Awaitable[None]] | None = None
    lease_relink: Callable[[], Awaitable[None]] | None = None  # the lease holder's part of it

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
        changed = self.put_policies(policies)
        if not changed:
            return True, "release policies reloaded: none changed"
        return True, f"release policies reloaded: {', '.join(changed)} now in force"

    def put_policies(self, policies: Mapping[str, Policy]) -> list[str]:
        """Put the changed ones of ``policies`` in force (the gate's, if it runs here); what
        changed, as ``name (version)``."""
        gate = self.gate
        if gate is None:
            return []
        changed = []
        for name, policy in policies.items():
            current = gate.policies.get(name)
            if current is None or current.version != policy.version:
                gate.set_policy(name, policy)
                changed.append(f"{name} ({policy.version})")
        return changed

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


# -- where a running server listens: <data_dir>/running.json ------------------------------------
RECORD_FILE = "running.json"


@dataclass(frozen=True, slots=True)
class Listening:
    """What a running server wrote into its data directory: who it is and where it listens,
    so that the commands on the same data directory reach it and nothing else."""

    pid: int
    bind: str
    ports: Mapping[str, int]  # bound listeners by name (tcp, tls, https, enroll, drone:NAME…)
    started_at: str
    server_names: tuple[str, ...]
    federation_name: str
    federation_port: int  # configured (bound only once a partner is configured)
    federation_files_port: int


def dial_host(bind: str) -> str:
    """The address a command on this host dials to reach a server bound to ``bind``: that
    address, or loopback for a wildcard one (as a URL host: IPv6 in brackets)."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(bind, bind)
    return f"[{host}]" if ":" in host else host


def record_path(data_dir: Path) -> Path:
    return data_dir / RECORD_FILE


def write_record(config: Config, ports: Mapping[str, int], pid: int, started_s: float) -> Path:
    """Write ``running.json`` atomically (a reader never sees half of it); its path."""
    path = record_path(config.data_dir)
    doc = {
        "pid": pid,
        "bind": config.bind,
        "ports": dict(ports),
        "started_at": dt.datetime.fromtimestamp(started_s, dt.UTC).isoformat(timespec="seconds"),
        "server_names": list(config.server_names),
        "federation_name": config.federation_name or config.server_names[0],
        "federation_port": ports.get("federation", config.federation_port),
        "federation_files_port": ports.get("federation_files", config.federation_files_port),
    }
    partial = path.with_name(f".{RECORD_FILE}.{pid}")
    partial.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    os.replace(partial, path)
    return path


def remove_record(path: Path) -> None:
    """Remove ``running.json`` if it is still this process's (a second server started on the
    same directory may have replaced it)."""
    found = read_record(path.parent, alive=lambda pid: True)
    if found is not None and found.pid == os.getpid():
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def read_record(data_dir: Path, alive: Callable[[int], bool] = _pid_alive) -> Listening | None:
    """The running server of ``data_dir``, or None: no record, an unreadable one, or one left
    by a process that is gone (killed without a clean exit)."""
    try:
        doc = json.loads(record_path(data_dir).read_text(encoding="utf-8"))
        found = Listening(
            pid=int(doc["pid"]),
            bind=str(doc["bind"]),
            ports={str(k): int(v) for k, v in doc["ports"].items()},
            started_at=str(doc["started_at"]),
            server_names=tuple(str(n) for n in doc["server_names"]),
            federation_name=str(doc["federation_name"]),
            federation_port=int(doc["federation_port"]),
            federation_files_port=int(doc["federation_files_port"]),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return found if alive(found.pid) else None


def check_ports(config: Config, federation: bool) -> None:
    """Bind-test every enabled listener's port before anything is made on disk (a busy port
    must not leave a fresh CA behind); :class:`StartupError` names the port and the flag.
    The default drone feed is left out: a busy 14550 only turns it off."""
    tcp = [
        ("tcp_port", "--tcp-port", config.bind),
        ("tls_port", "--tls-port", config.bind),
        ("https_port", "--https-port", config.bind),
        ("enroll_port", "--enroll-port", config.bind),
        ("http_port", "--http-port", config.bind),
        ("metrics_port", "--metrics-port", "127.0.0.1"),
    ]
    if federation:
        tcp += [
            ("federation_port", "--federation-port", config.bind),
            ("federation_files_port", "--federation-files-port", config.bind),
        ]
    checks = [(key, flag, bind, socket.SOCK_STREAM) for key, flag, bind in tcp]
    checks.append(("udp_port", "--udp-port", config.bind, socket.SOCK_DGRAM))
    for key, flag, bind, kind in checks:
        port = getattr(config, key)
        if not port:
            continue
        family = socket.AF_INET6 if ":" in bind else socket.AF_INET
        with socket.socket(family, kind) as probe:
            if kind == socket.SOCK_STREAM:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as listeners do
            try:
                probe.bind((bind, port))
            except OSError as exc:
                raise listen_error(exc, bind, port, flag) from None
