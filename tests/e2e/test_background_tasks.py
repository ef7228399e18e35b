"""A background task that dies in a running server: restarted, or the server stops and says why."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from accord.app import ServerFailed, run
from accord.app.tasks import Policy
from tests.conftest import ServerFactory
from tests.e2e.conftest import free_port
from tests.waiting import wait_until


async def _doomed() -> None:
    raise RuntimeError("the disk is gone")


async def test_a_task_whose_death_stops_the_server_closes_every_session_and_says_why(
    make_server: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    server = await make_server()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port("tcp"))
    await wait_until(lambda: server.running.hub.session_count >= 1, what="the session attached")
    serving = asyncio.create_task(run(server.running, server.config))
    server.running.tasks.start("doomed", _doomed, Policy.STOP)
    with pytest.raises(ServerFailed, match="'doomed' failed: RuntimeError: the disk is gone"):
        await asyncio.wait_for(serving, 10)
    async with asyncio.timeout(5):
        assert await reader.read() == b""  # the session was closed, not left hanging
    writer.close()
    assert server.running.hub.session_count == 0
    assert "background task 'doomed' failed" in caplog.text
    assert "Traceback" in caplog.text  # the cause, with where it came from


async def test_a_restarted_task_in_a_running_server_is_counted_in_metrics(
    make_server: ServerFactory,
) -> None:
    server = await make_server(metrics_port=free_port())
    runs: list[int] = []

    async def flaky() -> None:
        runs.append(1)
        if len(runs) == 1:
            raise RuntimeError("once")
        await asyncio.Event().wait()

    server.running.tasks.restart_delay_s = 0.0
    server.running.tasks.start("flaky", flaky, Policy.RESTART)
    await wait_until(lambda: len(runs) >= 2, what="the task restarted")
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port("metrics"))
    writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    body = (await asyncio.wait_for(reader.read(), 5)).decode()
    writer.close()
    assert 'accord_background_task_restarts_total{task="flaky"} 1' in body
    assert not server.running.stopping.is_set()


DRIVER = textwrap.dedent(
    """
    import sys
    import accord.app
    from accord.app.tasks import Policy
    from accord.cli import main

    started = accord.app.start

    async def doomed():
        raise RuntimeError("the disk is gone")

    async def start(config, **kw):
        running = await started(config, **kw)
        running.tasks.start("doomed", doomed, Policy.STOP)
        return running

    accord.app.start = start
    sys.exit(main(sys.argv[1:]))
    """
)


def test_serve_exits_non_zero_with_one_clear_line_when_such_a_task_dies(tmp_path: Path) -> None:
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    result = subprocess.run(
        [sys.executable, str(driver), "serve", "--data-dir", str(tmp_path / "data"),
         "--tcp-port", str(free_port()), "--tls-port", "0", "--udp-port", "0",
         "--enroll-port", "0", "--https-port", "0", "--drone-port", "0"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last == (
        "accord: error: background task 'doomed' failed: RuntimeError: the disk is gone; "
        "the server stops (the log above has the traceback)"
    )
