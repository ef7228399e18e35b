"""Shared fixtures: a real Accord on loopback ports the OS picks, with real certificates."""

from __future__ import annotations

import dataclasses
import datetime as dt
import faulthandler
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from pathlib import Path
from typing import Any

import pytest
import uvloop

from accord.app import Running, start
from accord.config import Config
from accord.identity.ca import PkiPaths
from accord.identity.pki import issue_client

TEARDOWN_TIMEOUT_S = 60.0  # a teardown (servers closed, the event loop closed) past this hangs


def _terminal_fd(config: pytest.Config) -> int:
    """The run's real stderr: while pytest captures output, fd 2 is its temporary file, and a
    dump written there would vanish with a process that exits."""
    capman = config.pluginmanager.getplugin("capturemanager")
    capturing = getattr(capman, "_global_capturing", None)
    saved = getattr(getattr(capturing, "err", None), "targetfd_save", None)
    return saved if isinstance(saved, int) else 2


def pytest_configure(config: pytest.Config) -> None:
    # scripts/test ends a run past its bound with SIGTERM: print every thread's stack first.
    fd = _terminal_fd(config)
    faulthandler.enable(file=fd, all_threads=True)
    if hasattr(signal, "SIGTERM"):
        faulthandler.register(signal.SIGTERM, file=fd, all_threads=True, chain=True)


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None]:
    """Bound every teardown. pytest-timeout and faulthandler_timeout are both disarmed once the
    test has failed, and a failed test is the one most likely to leave something open that
    holds the event loop's close: dump every stack and end the run (exit status 1) instead."""
    faulthandler.dump_traceback_later(TEARDOWN_TIMEOUT_S, exit=True, file=_terminal_fd(item.config))
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


def pytest_asyncio_loop_factories(config: Any, item: Any) -> dict[str, Callable[[], Any]]:
    # Test on the loop Accord ships with.
    return {"uvloop": uvloop.new_event_loop}


@dataclasses.dataclass
class Server:
    """A running Accord and what a test needs to reach it."""

    running: Running
    config: Config
    pki: PkiPaths
    certs_dir: Path

    @property
    def counters(self) -> Any:
        return self.running.counters

    def port(self, name: str) -> int:
        return self.running.ports[name]

    def client_cert(self, name: str, group: str | None = None) -> tuple[Path, Path]:
        """Issue a client certificate from this server's CA."""
        files = issue_client(self.pki, name, self.certs_dir, dt.datetime.now(dt.UTC), ou=group)
        return files.cert, files.key


ServerFactory = Callable[..., Awaitable[Server]]


@pytest.fixture
async def make_server(tmp_path: Path) -> AsyncIterator[ServerFactory]:
    """Start Accord with config overrides; every server is closed at teardown."""
    started: list[Server] = []

    async def factory(**overrides: Any) -> Server:
        data_dir = tmp_path / f"server{len(started)}"
        overrides.setdefault("drone_port", 0)  # the default MAVLink feed only where a test asks
        config = Config(data_dir=data_dir, bind="127.0.0.1", **overrides)
        running = await start(config, any_port=True)
        server = Server(running, config, PkiPaths(data_dir / "pki"), tmp_path / "certs")
        started.append(server)
        return server

    yield factory
    from tests.e2e.clients import OPEN_CLIENTS

    while OPEN_CLIENTS:
        await OPEN_CLIENTS.pop().close()
    for server in started:
        await server.running.close(grace_s=2.0)


@pytest.fixture
async def server(make_server: ServerFactory) -> Server:
    return await make_server()
