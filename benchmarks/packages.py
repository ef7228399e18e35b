"""Upload and download one large data package through a running Accord; report throughput and
how much the server's memory grew.

    .venv/bin/python benchmarks/packages.py                 # 100 MB, curl as the client
    .venv/bin/python benchmarks/packages.py --mb 400 --client httpx

The server is a fresh `accord serve` (HTTPS only, temp data dir). The client is curl when it is
installed (C: the client is not what is measured), else httpx streaming from and to disk. The
upload is ATAK's (`/Marti/sync/missionupload?hash=&filename=`, one form part). Memory: the
server's VmRSS before, and its peak (VmHWM, reset between the two transfers through
/proc/PID/clear_refs), plus the peak of VmRSS sampled every 20 ms as a cross-check.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import procstat
import servers
from servers import Server, TlsFiles

BLOCK = 1024 * 1024


def status_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def reset_peak(pid: int) -> bool:
    """Make VmHWM start again from the current RSS (Linux >= 4.0; same user or root)."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


class RssSampler:
    """The highest VmRSS of the server tree seen while running (every 20 ms, in a thread)."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak_kib = pid, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak_kib = max(self.peak_kib, procstat.proc_rss_kib(self.pid))

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def start_accord_https(cmd: list[str]) -> tuple[Server, int]:
    """`accord serve` with only the Marti HTTPS API, and a client certificate for it."""
    workdir = Path(tempfile.mkdtemp(prefix="bench-packages-"))
    data_dir, port = workdir / "data", servers.free_port()
    serve = [
        *cmd, "serve", "--data-dir", str(data_dir), "--bind", "127.0.0.1", "--https-port",
        str(port), "--tcp-port", "0", "--tls-port", "0", "--udp-port", "0", "--enroll-port", "0",
    ]  # fmt: skip
    log_path = workdir / "accord.log"
    server = Server("accord", servers._spawn(serve, workdir, log_path), workdir, log_path=log_path)
    try:
        servers._wait_listening(server, [port])
        out = workdir / "client"
        subprocess.run(
            [*cmd, "cert", "client", "bench", "--data-dir", str(data_dir), "--out", str(out)],
            check=True, timeout=servers.CERT_TIMEOUT_S, capture_output=True,
        )  # fmt: skip
        server.tls = TlsFiles(
            ca=str(data_dir / "pki" / "ca.pem"),
            cert=str(out / "bench.pem"),
            key=str(out / "bench.key"),
        )
    except BaseException:
        servers.stop(server)
        raise
    return server, port


def make_package(path: Path, mb: int) -> str:
    digest = hashlib.sha256()
    block = os.urandom(BLOCK)
    with path.open("wb") as f:
        for i in range(mb):
            piece = block[i % 251 :] + block[: i % 251]  # not one repeated block
            digest.update(piece)
            f.write(piece)
    return digest.hexdigest()


def curl_transfer(tls: TlsFiles, args: list[str]) -> str:
    common = ["curl", "-sS", "--fail-with-body", "--cacert", tls.ca, "--cert", tls.cert]
    done = subprocess.run(
        [*common, "--key", tls.key, *args], check=True, capture_output=True, timeout=600
    )
    return done.stdout.decode()


async def httpx_transfer(
    tls: TlsFiles, base: str, package: Path, digest: str, out: Path, upload: bool
) -> str:
    import httpx

    size = os.path.getsize(package)  # noqa: ASYNC240 - a stat, once, in a benchmark client
    ctx = ssl.create_default_context(cafile=tls.ca)
    ctx.load_cert_chain(tls.cert, tls.key)
    async with httpx.AsyncClient(base_url=base, verify=ctx, timeout=600) as http:
        if upload:
            boundary = "accord-bench"
            head = (
                f'--{boundary}\r\nContent-Disposition: form-data; name="assetfile"; '
                f'filename="bench.zip"\r\nContent-Type: application/x-zip-compressed\r\n\r\n'
            ).encode()
            tail = f"\r\n--{boundary}--\r\n".encode()

            async def body() -> AsyncIterator[bytes]:
                yield head
                with package.open("rb") as f:
                    while block := f.read(BLOCK):
                        yield block
                yield tail

            answer = await http.post(
                "/Marti/sync/missionupload",
                params={"filename": package.name, "hash": digest},
                content=body(),
                headers={
                    "content-type": f"multipart/form-data; boundary={boundary}",
                    "content-length": str(len(head) + size + len(tail)),
                },
            )
            answer.raise_for_status()
            return answer.text
        async with http.stream("GET", "/Marti/sync/content", params={"hash": digest}) as got:
            got.raise_for_status()
            with out.open("wb") as f:
                async for chunk in got.aiter_bytes():
                    f.write(chunk)
    return ""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mb", type=int, default=100, help="package size in MiB (100)")
    p.add_argument("--client", choices=["curl", "httpx"], help="default: curl when installed")
    p.add_argument("--accord-cmd", help="how to run Accord's CLI (default: autodetect)")
    args = p.parse_args(argv)
    client = args.client or ("curl" if shutil.which("curl") else "httpx")
    cmd = servers.accord_command(args.accord_cmd)
    if cmd is None:
        print("accord is not installed: run scripts/bootstrap", file=sys.stderr)
        return 2
    scratch = Path(tempfile.mkdtemp(prefix="bench-packages-files-"))
    server, port = start_accord_https(cmd)
    try:
        assert server.tls is not None
        package, fetched = scratch / "bench.zip", scratch / "fetched.zip"
        digest = make_package(package, args.mb)
        size = package.stat().st_size
        base = f"https://127.0.0.1:{port}"

        def upload(path: Path, sha: str) -> str:
            if client == "curl":
                form = f"assetfile=@{path};type=application/x-zip-compressed"
                url = f"{base}/Marti/sync/missionupload?filename={path.name}&hash={sha}"
                return curl_transfer(server.tls, ["-F", form, url])
            return asyncio.run(httpx_transfer(server.tls, base, path, sha, fetched, True))

        def download() -> None:
            if client == "curl":
                url = f"{base}/Marti/sync/content?hash={digest}"
                curl_transfer(server.tls, ["-o", str(fetched), url])
            else:
                asyncio.run(httpx_transfer(server.tls, base, package, digest, fetched, False))

        # Warm up (imports, first TLS handshake, the first package) with a tiny package.
        small = scratch / "small.zip"
        small.write_bytes(b"warm-up")
        upload(small, hashlib.sha256(b"warm-up").hexdigest())
        baseline = status_kib(server.pid, "VmRSS")
        peak_resets = reset_peak(server.pid)

        with RssSampler(server.pid) as up_sampler:
            start = time.perf_counter()
            url = upload(package, digest)
            up_s = time.perf_counter() - start
        up_hwm = status_kib(server.pid, "VmHWM")
        assert url.endswith(digest), url
        reset_peak(server.pid)
        before_down = status_kib(server.pid, "VmRSS")
        with RssSampler(server.pid) as down_sampler:
            start = time.perf_counter()
            download()
            down_s = time.perf_counter() - start
        down_hwm = status_kib(server.pid, "VmHWM")
        got = hashlib.sha256()
        with fetched.open("rb") as f:
            while block := f.read(BLOCK):
                got.update(block)
        assert got.hexdigest() == digest, "downloaded bytes differ"
    finally:
        servers.stop(server)
        shutil.rmtree(scratch, ignore_errors=True)

    mib = size / BLOCK
    print(f"Data packages ({args.mb} MiB), client {client}, loopback HTTPS with client certs")
    print()
    print("| step | MiB/s | seconds | server RSS before MiB | server peak MiB | growth MiB |")
    print("|---|---:|---:|---:|---:|---:|")
    for step, seconds, before, hwm, sampled in (
        ("upload (missionupload)", up_s, baseline, up_hwm, up_sampler.peak_kib),
        ("download (content)", down_s, before_down, down_hwm, down_sampler.peak_kib),
    ):
        peak = hwm if peak_resets else sampled
        print(
            f"| {step} | {mib / seconds:,.0f} | {seconds:.2f} | {before / 1024:.1f} | "
            f"{peak / 1024:.1f} | {(peak - before) / 1024:.1f} |"
        )
    print()
    print(
        f"(peak = VmHWM {'reset before each step' if peak_resets else 'not resettable'}; "
        f"sampled VmRSS peaks: {up_sampler.peak_kib / 1024:.1f} / "
        f"{down_sampler.peak_kib / 1024:.1f} MiB)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
