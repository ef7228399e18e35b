"""``accord serve --workers N``: N worker processes on shared ports, one embedded NATS.

The supervisor (this module's adapter, run by ``accord.cli.workers``) starts a ``nats-server``
with JetStream (unless ``[cluster]`` names NATS servers already), then N workers, each a
``python -m accord.cli.workers`` given its part on stdin; a worker says it is ready with one
line on stdout. Ctrl-C or SIGTERM stops every worker (SIGTERM, then SIGKILL after a grace)
and the NATS server. A worker that dies is started again, unless it died too often lately
(:class:`RestartPolicy`): then everything stops with one line saying which and why.

The pure parts: :class:`RestartPolicy` (deaths and the time in, a decision out) and
:func:`exit_line`. Workers run in their own session (Ctrl-C in a terminal reaches only the
supervisor, which then stops them in order) and die with it (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from accord.cluster.natsd import NatsProcess, NatsServerError, specs

log = logging.getLogger("accord.workers")

READY_PREFIX = b"accord-worker-ready "
READY_TIMEOUT_S = 90.0  # a worker's start (store, TLS context, NATS stream) on a busy host
STOP_GRACE_S = 10.0  # after SIGTERM, before SIGKILL
RESTART_WINDOW_S = 60.0
MAX_RESTARTS = 5  # deaths of one worker within the window before the whole stops
NATS_START_ATTEMPTS = 3
LEFTOVER_STOP_S = 5.0  # free ports are picked, then bound by nats-server: one may be taken


def exit_line(index: int, pid: int, code: int) -> str:
    """How a worker's end is told: ``worker 1 (pid 4242) was killed by SIGKILL``."""
    if code < 0:
        try:
            how = f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            how = f"was killed by signal {-code}"
    else:
        how = f"exited with code {code}"
    return f"worker {index} (pid {pid}) {how}"


@dataclass
class RestartPolicy:
    """Whether a worker that died is started again: yes, unless it died ``limit`` times
    within ``window_s`` (then it would only keep dying, and the whole stops)."""

    window_s: float = RESTART_WINDOW_S
    limit: int = MAX_RESTARTS
    _deaths: dict[int, deque[float]] = field(default_factory=dict)

    def died(self, index: int, now: float) -> bool:
        """Record a death of worker ``index`` at ``now``; True: start it again."""
        deaths = self._deaths.setdefault(index, deque())
        deaths.append(now)
        while deaths and deaths[0] < now - self.window_s:
            deaths.popleft()
        return len(deaths) < self.limit

    def recent(self, index: int) -> int:
        return len(self._deaths.get(index, ()))


def reserve(bind: str, kind: socket.SocketKind) -> socket.socket:
    """A socket bound to a port the kernel picks, with ``SO_REUSEPORT`` (not listening: it
    takes no connection), so that every worker can bind that same port."""
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    sock = socket.socket(family, kind)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((bind, 0))
    return sock


PID_FILE = "nats.pid"


def leftover_nats(root: Path) -> int | None:
    """The pid of an embedded ``nats-server`` a previous supervisor of this data directory left
    running (it was killed with SIGKILL: its workers die with it, NATS does not), or None."""
    try:
        pid = int((root / PID_FILE).read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    args = cmdline.split(b"\0")
    ours = any(a.endswith(b"nats-server") for a in args) and str(root).encode() in cmdline
    return pid if ours else None


async def embedded_nats(root: Path) -> NatsProcess:
    """A one-server ``nats-server -js`` on loopback, its store under ``root``; one left by a
    killed supervisor is stopped first (it holds the store)."""
    pid = leftover_nats(root)
    if pid is not None:
        log.warning("stopping the NATS server (pid %d) a previous `serve --workers` left", pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        for _ in range(int(LEFTOVER_STOP_S / 0.05)):
            if leftover_nats(root) is None:
                break
            await asyncio.sleep(0.05)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    for attempt in range(NATS_START_ATTEMPTS):
        nats = NatsProcess(specs(["accord"], root)[0], [])
        try:
            await nats.start()
        except NatsServerError:
            await nats.stop(kill=True)
            if attempt == NATS_START_ATTEMPTS - 1:
                raise
            continue
        (root / PID_FILE).write_text(f"{nats.pid}\n")
        return nats
    raise AssertionError("unreachable")


@dataclass
class WorkerState:
    index: int
    pid: int = 0
    starts: int = 0
    ready: dict[str, object] = field(default_factory=dict)  # what its ready line said
    proc: asyncio.subprocess.Process | None = None


class Workers:
    """Runs ``count`` workers until ``stopping`` is set or one keeps dying.

    ``command`` is the argv of a worker; ``payload(index)`` what it reads on stdin. The
    supervisor's one line of failure (or None) is :attr:`failure` once :meth:`run` returns."""

    def __init__(
        self,
        command: Sequence[str],
        payload: Callable[[int], bytes],
        count: int,
        *,
        policy: RestartPolicy | None = None,
        on_ready: Callable[[WorkerState], Awaitable[None]] | None = None,
    ) -> None:
        self._command = list(command)
        self._payload = payload
        self.states = [WorkerState(i) for i in range(count)]
        self._policy = policy or RestartPolicy()
        self._on_ready = on_ready
        self.stopping = asyncio.Event()
        self.failure: str | None = None
        self.restarts = 0

    async def run(self, started: Callable[[], Awaitable[None]] | None = None) -> None:
        """Start every worker (all ready, or the whole fails), call ``started``, then keep
        them running until ``stopping``; every worker is stopped before this returns."""
        try:
            async with asyncio.TaskGroup() as group:
                first = [group.create_task(self._start(s)) for s in self.states]
                ok = all(await asyncio.gather(*first))
                if not ok:
                    self.stopping.set()
                    return
                if started is not None:
                    await started()
                for state in self.states:
                    group.create_task(self._keep(state))
                await self.stopping.wait()
                await self._stop_all()  # the keepers see ``stopping`` and end
        finally:
            await self._stop_all()

    async def _start(self, state: WorkerState) -> bool:
        """Start one worker and wait for its ready line; False (and ``failure``) if it ended
        first or said nothing in time."""
        proc = await asyncio.create_subprocess_exec(
            *self._command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        state.proc, state.pid = proc, proc.pid
        state.starts += 1
        assert proc.stdin is not None
        assert proc.stdout is not None
        proc.stdin.write(self._payload(state.index))
        with contextlib.suppress(ConnectionError):
            await proc.stdin.drain()
        proc.stdin.close()
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), READY_TIMEOUT_S)
        except TimeoutError:
            line = b""
        if not line.startswith(READY_PREFIX):
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
            code = await proc.wait()
            if not self.stopping.is_set():
                self.failure = (
                    f"{exit_line(state.index, state.pid, code)} before it was ready "
                    "(its error is above): stopping all workers"
                )
            return False
        try:
            said = json.loads(line[len(READY_PREFIX) :])
        except ValueError:
            said = {}
        state.ready = said if isinstance(said, dict) else {}
        log.info("worker %d ready (pid %d)", state.index, state.pid)
        if self._on_ready is not None:
            await self._on_ready(state)
        return True

    async def _keep(self, state: WorkerState) -> None:
        loop = asyncio.get_running_loop()
        while True:
            proc = state.proc
            assert proc is not None
            code = await proc.wait()
            if self.stopping.is_set():
                return
            line = exit_line(state.index, state.pid, code)
            if not self._policy.died(state.index, loop.time()):
                self.failure = (
                    f"{line}, {self._policy.recent(state.index)} times in "
                    f"{self._policy.window_s:g} s: stopping all workers"
                )
                self.stopping.set()
                return
            log.error("%s; starting it again", line)
            self.restarts += 1
            if not await self._start(state):
                self.stopping.set()
                return

    async def _stop_all(self) -> None:
        live = [s.proc for s in self.states if s.proc is not None and s.proc.returncode is None]
        for proc in live:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        if not live:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(p.wait() for p in live)), STOP_GRACE_S)
        for proc in live:
            if proc.returncode is None:
                log.warning("worker pid %d did not stop in %g s: killed", proc.pid, STOP_GRACE_S)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
