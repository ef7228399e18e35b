"""The server's background tasks, owned by one :class:`asyncio.TaskGroup`.

Whoever starts a task says what its death means (:class:`Policy`): restarted, or the server
stops. Either way the failure is logged with its traceback; nothing dies unseen. A task that
keeps dying (more than ``MAX_RESTARTS`` times within ``RESTART_WINDOW_S``) is a fault, not a
hiccup, and stops the server too. Cancelling a task is how it is stopped, never a failure.

The group lives in a task of its own: the server is started and closed from different tasks
(a test's fixture, ``serve``), and a task group must be entered and left by the same one.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections import deque
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from accord.domain.views import Sample

log = logging.getLogger("accord.tasks")

MAX_RESTARTS = 5  # deaths within the window that are still restarted
RESTART_WINDOW_S = 60.0
RESTART_DELAY_S = 1.0  # pause before a restart: a task failing at once does not spin


class Policy(enum.Enum):
    RESTART = "restart"  # the owner starts it again (it holds no state a failure corrupts)
    STOP = "stop"  # the server stops: running on without it would be wrong


class Restarts:
    """Whether one more death is still restarted: at most ``limit`` within ``window_s``."""

    def __init__(self, limit: int = MAX_RESTARTS, window_s: float = RESTART_WINDOW_S) -> None:
        self.limit = limit
        self.window_s = window_s
        self._deaths: deque[float] = deque()

    def allow(self, now: float) -> bool:
        while self._deaths and now - self._deaths[0] > self.window_s:
            self._deaths.popleft()
        if len(self._deaths) >= self.limit:
            return False
        self._deaths.append(now)
        return True


class TaskDied(Exception):
    """A background task whose death stops the server; :attr:`line` says which and why."""

    def __init__(self, name: str, cause: BaseException, restarts: int) -> None:
        super().__init__(name, cause)
        self.name = name
        self.cause = cause
        self.restarts = restarts

    @property
    def line(self) -> str:
        again = f" (after {self.restarts} restarts)" if self.restarts else ""
        return (
            f"background task {self.name!r} failed{again}: {type(self.cause).__name__}: "
            f"{self.cause}; the server stops (the log above has the traceback)"
        )


class Supervisor:
    """Start tasks with :meth:`start` between entering and leaving (``async with``).

    ``on_failure`` is called once with :attr:`TaskDied.line` when a task stops the server;
    the other tasks are cancelled then. Leaving cancels what still runs and waits for it.
    """

    def __init__(
        self,
        on_failure: Callable[[str], None] | None = None,
        *,
        restart_delay_s: float = RESTART_DELAY_S,
        restarts: Callable[[], Restarts] = Restarts,
    ) -> None:
        self.on_failure = on_failure
        self.failure: str | None = None
        self.restarted: dict[str, int] = {}
        self.restart_delay_s = restart_delay_s
        self._restarts = restarts
        self._group: asyncio.TaskGroup | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._entered = asyncio.Event()
        self._leaving = asyncio.Event()
        self._owner: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Supervisor:
        self._owner = asyncio.create_task(self._own(), name="accord background tasks")
        await self._entered.wait()
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._tasks:
            task.cancel()
        self._leaving.set()
        if self._owner is not None:
            await self._owner

    async def _own(self) -> None:
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                self._entered.set()
                await self._leaving.wait()
        except* TaskDied as died:
            first = died.exceptions[0]
            assert isinstance(first, TaskDied)
            self.report(first.line)
        finally:
            self._group = None
            self._entered.set()  # an owner cancelled before it entered frees __aenter__

    def report(self, line: str) -> None:
        """A task owned elsewhere (a federation task group) died: stop the server with ``line``
        as if one of ours had (the first failure is the one kept)."""
        if self.failure is None:
            self.failure = line
            log.error("%s", line)
            if self.on_failure is not None:
                self.on_failure(line)

    def start(
        self, name: str, run: Callable[[], Coroutine[Any, Any, None]], policy: Policy
    ) -> asyncio.Task[None]:
        """Run ``run()`` in the group; what happens when it raises is ``policy``."""
        if self._group is None:
            raise RuntimeError(f"cannot start {name!r}: the background tasks are not running")
        task = self._group.create_task(self._supervise(name, run, policy), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    @staticmethod
    async def stop(task: asyncio.Task[None]) -> None:
        """Cancel one task started here and wait until it is gone."""
        task.cancel()
        await asyncio.wait([task])

    async def _supervise(
        self, name: str, run: Callable[[], Coroutine[Any, Any, None]], policy: Policy
    ) -> None:
        loop = asyncio.get_running_loop()
        restarts = self._restarts()
        while True:
            try:
                await run()
                return
            except Exception as exc:
                log.error("background task %r failed", name, exc_info=exc)
                if policy is Policy.STOP or not restarts.allow(loop.time()):
                    raise TaskDied(name, exc, self.restarted.get(name, 0)) from exc
            self.restarted[name] = self.restarted.get(name, 0) + 1
            log.warning("restarting background task %r in %g s", name, self.restart_delay_s)
            await asyncio.sleep(self.restart_delay_s)

    def samples(self) -> Iterable[Sample]:
        for name, count in sorted(self.restarted.items()):
            yield Sample(
                "background_task_restarts_total",
                "counter",
                "background tasks restarted after they failed",
                float(count),
                (("task", name),),
            )
