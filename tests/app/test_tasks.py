"""The app's background tasks: a death is logged, then restarted or it stops the server."""

from __future__ import annotations

import asyncio
import logging

import pytest

from accord.app.tasks import Policy, Restarts, Supervisor
from tests.waiting import wait_until


def test_restarts_allow_a_few_deaths_per_window_then_refuse() -> None:
    restarts = Restarts(limit=2, window_s=10.0)
    assert restarts.allow(0.0)
    assert restarts.allow(1.0)
    assert not restarts.allow(2.0)  # a third death within 10 s
    assert restarts.allow(11.5)  # the first two are out of the window again


async def test_a_restart_task_that_raises_is_logged_and_runs_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runs: list[int] = []
    forever = asyncio.Event()

    async def flaky() -> None:
        runs.append(len(runs))
        if len(runs) == 1:
            raise RuntimeError("first run breaks")
        await forever.wait()

    failures: list[str] = []
    async with Supervisor(failures.append, restart_delay_s=0.0) as tasks:
        tasks.start("flaky", flaky, Policy.RESTART)
        await wait_until(lambda: len(runs) == 2)
        assert tasks.restarted == {"flaky": 1}
        assert [s.value for s in tasks.samples()] == [1.0]
    assert failures == []
    assert tasks.failure is None
    assert "background task 'flaky' failed" in caplog.text
    assert "RuntimeError: first run breaks" in caplog.text  # the traceback is in the log


async def test_a_task_that_keeps_dying_stops_the_server_after_its_restarts() -> None:
    async def broken() -> None:
        raise ValueError("always")

    failures: list[str] = []
    async with Supervisor(
        failures.append, restart_delay_s=0.0, restarts=lambda: Restarts(limit=3)
    ) as tasks:
        tasks.start("broken", broken, Policy.RESTART)
        await wait_until(lambda: failures)
    assert tasks.restarted == {"broken": 3}
    assert failures == [tasks.failure]
    assert "'broken' failed (after 3 restarts): ValueError: always" in failures[0]


async def test_a_stop_task_that_raises_stops_the_server_with_one_line_and_cancels_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    doomed = asyncio.Event()
    cancelled = asyncio.Event()

    async def bystander() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    async def writer() -> None:
        await doomed.wait()
        raise OSError("disk on fire")

    failures: list[str] = []
    with caplog.at_level(logging.ERROR, logger="accord.tasks"):
        async with Supervisor(failures.append) as tasks:
            tasks.start("bystander", bystander, Policy.RESTART)
            tasks.start("ledger writer", writer, Policy.STOP)
            doomed.set()
            await wait_until(cancelled.is_set)
    assert failures == [
        "background task 'ledger writer' failed: OSError: disk on fire; the server stops "
        "(the log above has the traceback)"
    ]
    assert tasks.restarted == {}
    assert sum(1 for r in caplog.records if r.getMessage() == failures[0]) == 1


async def test_leaving_cancels_what_runs_and_a_task_that_returns_is_no_failure() -> None:
    started = asyncio.Event()
    ended: list[str] = []

    async def done() -> None:
        ended.append("done")

    async def waits() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            ended.append("cancelled")
            raise

    async with Supervisor() as tasks:
        tasks.start("done", done, Policy.STOP)
        tasks.start("waits", waits, Policy.STOP)
        await started.wait()
    assert sorted(ended) == ["cancelled", "done"]
    assert tasks.failure is None
    with pytest.raises(RuntimeError, match="not running"):
        tasks.start("late", done, Policy.STOP)


async def test_stop_cancels_one_task_and_waits_for_it() -> None:
    async def waits() -> None:
        await asyncio.Event().wait()

    async with Supervisor() as tasks:
        one = tasks.start("one", waits, Policy.RESTART)
        other = tasks.start("other", waits, Policy.RESTART)
        await tasks.stop(one)
        assert one.cancelled()
        assert not other.done()


def test_a_failure_reported_from_elsewhere_stops_the_server_once() -> None:
    lines: list[str] = []
    supervisor = Supervisor(on_failure=lines.append)
    supervisor.report("federation: federation writers failed: RuntimeError('x')")
    supervisor.report("a later failure")  # the first one is the one kept
    assert supervisor.failure == "federation: federation writers failed: RuntimeError('x')"
    assert lines == [supervisor.failure]
