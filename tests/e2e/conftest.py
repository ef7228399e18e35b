"""Fixtures for end-to-end tests that run ``accord`` as its own process."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

START_TIMEOUT_S = 20.0


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_ports(count: int) -> list[int]:
    """``count`` distinct free TCP ports (held open together, so none is handed out twice)."""
    socks = [socket.socket() for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]
    finally:
        for sock in socks:
            sock.close()


class Served:
    def __init__(
        self, proc: subprocess.Popen[str], tcp: int, log: Path, https: int, enroll: int
    ) -> None:
        self.proc, self.tcp, self.log, self.https, self.enroll = proc, tcp, log, https, enroll

    def text(self) -> str:
        return self.log.read_text()


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Served]]:
    procs: list[subprocess.Popen[str]] = []

    def start(*extra: str, data_dir: Path | None = None) -> Served:
        tcp, tls, https, enroll = free_ports(4)
        log = tmp_path / f"serve{len(procs)}.log"
        with log.open("w") as out:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "accord",
                    "serve",
                    "--data-dir",
                    str(data_dir or tmp_path / "data"),
                    "--tcp-port",
                    str(tcp),
                    "--tls-port",
                    str(tls),
                    "--udp-port",
                    "0",
                    "--enroll-port",
                    str(enroll),
                    "--https-port",
                    str(https),
                    *extra,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
            )
        procs.append(proc)
        deadline = time.monotonic() + START_TIMEOUT_S
        while "listening" not in log.read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"accord did not start:\n{log.read_text()}")
            time.sleep(0.05)
        return Served(proc, tcp, log, https, enroll)

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
