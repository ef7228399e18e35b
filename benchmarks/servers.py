"""Start and stop the servers under test (Accord, taky 0.10) on free loopback ports.

Every server runs in its own session (process group) with its own temp data dir, so that
stopping it kills whatever it forked and no state leaks from one measurement to the next.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
TAKY_VENV = HERE / ".venv-taky"
LISTEN_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
CERT_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class TlsFiles:
    ca: str
    cert: str
    key: str


@dataclass
class Server:
    """A running server: what the loadgen needs to reach it, and how to stop it."""

    name: str
    proc: subprocess.Popen[bytes]
    workdir: Path
    tcp_port: int | None = None
    tls_port: int | None = None
    https_port: int | None = None
    tls: TlsFiles | None = None
    log_path: Path | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_tail(self, n: int = 20) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])


class ServerError(RuntimeError):
    pass


def free_port() -> int:
    """A port the kernel just handed out on 127.0.0.1 (closed again: tiny race, fine here)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def raise_nofile_limit(target: int = 65536) -> None:
    """Let servers started from here hold many sockets (children inherit the limit)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):  # raising the hard limit needs root
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(target, soft), max(target, hard)))
        return
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _spawn(cmd: list[str], cwd: Path, log_path: Path) -> subprocess.Popen[bytes]:
    log = open(log_path, "ab")  # noqa: SIM115 - the child owns it; closed when we return
    try:
        return subprocess.Popen(
            cmd,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: stop() kills the whole tree
        )
    finally:
        log.close()


def _wait_listening(server: Server, ports: list[int]) -> None:
    deadline = time.monotonic() + LISTEN_TIMEOUT_S
    pending = list(ports)
    while pending:
        if server.proc.poll() is not None:
            raise ServerError(
                f"{server.name} exited with {server.proc.returncode}:\n{server.log_tail()}"
            )
        if time.monotonic() > deadline:
            raise ServerError(f"{server.name} not listening on {pending} after {LISTEN_TIMEOUT_S}s")
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex(("127.0.0.1", pending[0])) == 0:
                pending.pop(0)
                continue
        time.sleep(0.1)


def stop(server: Server) -> None:
    """SIGTERM the server's process group, SIGKILL it if it lingers, remove its data dir."""
    proc = server.proc
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(STOP_TIMEOUT_S)
    # Children that outlived the leader are still in its group.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    shutil.rmtree(server.workdir, ignore_errors=True)


@contextlib.contextmanager
def running(start: Server) -> Iterator[Server]:
    try:
        yield start
    finally:
        stop(start)


# ---------------------------------------------------------------------------------------
# taky 0.10


def taky_available() -> bool:
    return (TAKY_VENV / "bin" / "taky").exists()


def ensure_taky() -> None:
    if not taky_available():
        subprocess.run(["bash", str(HERE / "setup_taky.sh")], check=True, timeout=600)


class TakyCerts:
    """One CA + server cert + client cert for all TLS runs of taky (made once: RSA keygen is slow).

    `takyctl setup DIR` writes DIR/taky.conf and DIR/ssl/{ca,server}.{crt,key}; `takyctl
    build_client --dump_pem` writes NAME-<uuid>.{crt,key} into its working directory.
    """

    def __init__(self, root: Path) -> None:
        self.site = root / "site"
        client_dir = root / "client"
        client_dir.mkdir(parents=True)
        ctl = str(TAKY_VENV / "bin" / "takyctl")
        subprocess.run(
            [ctl, "setup", "--public-ip", "127.0.0.1", "--host", "localhost",
             "--bind-ip", "127.0.0.1", str(self.site)],
            check=True, timeout=CERT_TIMEOUT_S, capture_output=True,
        )  # fmt: skip
        subprocess.run(
            [ctl, "-c", str(self.site / "taky.conf"), "build_client", "--dump_pem", "bench"],
            check=True, timeout=CERT_TIMEOUT_S, cwd=client_dir, capture_output=True,
        )  # fmt: skip
        crt = next(client_dir.glob("bench-*.crt"))
        self.files = TlsFiles(
            ca=str(self.site / "ssl" / "ca.crt"), cert=str(crt), key=str(crt.with_suffix(".key"))
        )


def start_taky(tls_certs: TakyCerts | None = None) -> Server:
    """taky's CoT router alone (no DPS), either plain TCP or TLS-with-client-certs.

    taky serves one of the two per process (port 8087 TCP *or* 8089 TLS); the TLS variant's
    plain "monitor" port stays off because mon_ip is unset.
    """
    workdir = Path(tempfile.mkdtemp(prefix="bench-taky-"))
    port = free_port()
    ssl_section = "enabled = false\n"
    if tls_certs is not None:
        ssl_dir = tls_certs.site / "ssl"
        ssl_section = (
            "enabled = true\nclient_cert_required = true\n"
            f"ca = {ssl_dir / 'ca.crt'}\ncert = {ssl_dir / 'server.crt'}\n"
            f"key = {ssl_dir / 'server.key'}\ncert_db = {ssl_dir / 'cert-db.txt'}\n"
        )
    # root_dir holds the management socket; persistence stays in memory (no redis).
    (workdir / "taky.conf").write_text(
        "[taky]\nbind_ip = 127.0.0.1\nroot_dir = .\nhostname = localhost\n"
        f"[cot_server]\nport = {port}\n[ssl]\n{ssl_section}"
    )
    log_path = workdir / "taky.log"
    cmd = [str(TAKY_VENV / "bin" / "taky"), "-c", str(workdir / "taky.conf"), "-l", "warning"]
    server = Server("taky", _spawn(cmd, workdir, log_path), workdir, log_path=log_path)
    if tls_certs is None:
        server.tcp_port = port
    else:
        server.tls_port = port
        server.tls = tls_certs.files
    try:
        _wait_listening(server, [port])
    except BaseException:
        stop(server)
        raise
    return server


# ---------------------------------------------------------------------------------------
# Accord


def accord_command(override: str | None = None) -> list[str] | None:
    """How to invoke Accord's CLI: --accord-cmd, the project venv, PATH, or `python -m`."""
    if override:
        return override.split()
    venv_cli = REPO / ".venv" / "bin" / "accord"
    if venv_cli.exists():
        return [str(venv_cli)]
    if found := shutil.which("accord"):
        return [found]
    probe = subprocess.run(
        [sys.executable, "-c", "import accord.cli"], capture_output=True, timeout=60
    )
    if probe.returncode == 0:
        return [sys.executable, "-m", "accord"]
    return None


def start_accord(
    cmd: list[str],
    *,
    client_certs: bool = True,
    config: str = "",
    https: bool = False,
    serve_args: tuple[str, ...] = (),
) -> Server:
    """`accord serve` on fresh TCP and TLS ports with a fresh data dir; UDP off. ``config``:
    TOML text for a config file (e.g. ``archive = false``); ``https``: the HTTPS API on a
    fresh port too (``Server.https_port``; the admin certificate is in the data dir);
    ``serve_args``: more options of ``accord serve`` (e.g. ``--workers 2``)."""
    workdir = Path(tempfile.mkdtemp(prefix="bench-accord-"))
    data_dir = workdir / "data"
    tcp_port, tls_port = free_port(), free_port()
    https_port = free_port() if https else 0
    log_path = workdir / "accord.log"
    serve = [
        *cmd, "serve", "--data-dir", str(data_dir), "--bind", "127.0.0.1",
        "--tcp-port", str(tcp_port), "--tls-port", str(tls_port), "--udp-port", "0",
        "--https-port", str(https_port), "--enroll-port", "0", *serve_args,
    ]  # fmt: skip
    if config:
        (workdir / "accord.toml").write_text(config)
        serve += ["--config", str(workdir / "accord.toml")]
    server = Server("accord", _spawn(serve, workdir, log_path), workdir, log_path=log_path)
    server.tcp_port, server.tls_port = tcp_port, tls_port
    server.https_port = https_port or None
    try:
        _wait_listening(server, [tcp_port, tls_port, *([https_port] if https else [])])
        if client_certs:
            out = workdir / "client"
            subprocess.run(
                [*cmd, "cert", "client", "bench", "--data-dir", str(data_dir), "--out", str(out)],
                check=True, timeout=CERT_TIMEOUT_S, capture_output=True,
            )  # fmt: skip
            server.tls = TlsFiles(
                ca=str(data_dir / "pki" / "ca.pem"),
                cert=str(out / "bench.pem"),
                key=str(out / "bench.key"),
            )
    except BaseException:
        stop(server)
        raise
    return server
