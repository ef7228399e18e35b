"""How long an organisation's partner links are without a node after ``kill -9`` of the node
running them (issue 17, the partner-link lease).

Two ``accord serve`` processes of one organisation (one PostgreSQL database, a 3-node NATS
cluster started here) with one partner configured (an address nobody listens on: the links
start and dial, which is all a takeover needs). Each round kills the lease holder with SIGKILL
and times until the other node has written the lease key (it then starts the links), then
starts the killed node again as the standby. The bound to compare with: the lease TTL plus one
retry after the holder's last renewal (renewals are a second apart, so 4-5.25 s after a kill).

    TEST_POSTGRES_URL=$(scripts/postgres start) \
        flock /tmp/accord-bench.lock .venv/bin/python benchmarks/lease_takeover.py --rounds 10

There is no "before": without the lease a partner configured on two nodes was linked twice.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import nats
from cryptography import x509

from accord.cluster.lease import FEDERATION_LEASE, LEASE_TTL_S, RENEW_S, RETRY_S, lease_bucket
from accord.cluster.natsd import NatsProcess, free_port, specs
from accord.federation.trust import fingerprint
from accord.identity.pki import ensure_pki

ORG = "bench-org"
NAMES = ("localhost", "127.0.0.1")


def _node_config(
    path: Path, data_dir: Path, db: str, nats_url: str, node: str, partner: str
) -> None:
    path.write_text(
        f'data_dir = "{data_dir}"\nbind = "127.0.0.1"\ntcp_port = {free_port()}\n'
        "tls_port = 0\nhttps_port = 0\nhttp_port = 0\nudp_port = 0\nenroll_port = 0\n"
        "drone_port = 0\nmetrics_port = 0\nfederation_port = 0\nfederation_files_port = 0\n"
        f'server_names = ["localhost", "127.0.0.1"]\ndatabase_url = "{db}"\n'
        f'[cluster]\nurls = ["{nats_url}"]\nnode = "{node}"\norg = "{ORG}"\n\n{partner}'
    )


def _is_running(record: Path, pid: int) -> bool:
    """Whether the node's running.json is that process's (it has started)."""
    return record.exists() and f'"pid": {pid}' in record.read_text()


async def _holder(kv: object) -> str:
    try:
        entry = await kv.get(FEDERATION_LEASE)  # type: ignore[attr-defined]
    except Exception:
        return ""
    return (entry.value or b"").decode().split(" ")[0]


async def _serve(config: Path, log: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "accord", "serve", "--config", str(config),
        stdout=asyncio.subprocess.DEVNULL, stderr=log.open("ab"),
    )  # fmt: skip


async def _until(check: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await check():  # type: ignore[operator]
            return
        await asyncio.sleep(0.01)
    raise TimeoutError(f"{what}: not within {timeout_s} s")


async def main(rounds: int, server_url: str) -> None:
    root = Path(tempfile.mkdtemp(prefix="accord-lease-bench-"))
    name = f"accord_bench_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    db = urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))
    cluster = [NatsProcess(s, peers) for peers in [specs(["n1", "n2", "n3"], root / "nats")]
               for s in peers]  # fmt: skip
    procs: dict[str, asyncio.subprocess.Process] = {}
    try:
        await asyncio.gather(*(n.start() for n in cluster))
        now = dt.datetime.now(dt.UTC)
        ensure_pki(root / "a" / "pki", NAMES, now)
        shutil.copytree(root / "a" / "pki", root / "b" / "pki")
        other = ensure_pki(root / "partner" / "pki", NAMES, now)
        ca = x509.load_pem_x509_certificate(other.ca_cert.read_bytes())
        partner = (
            f'[[partners]]\nname = "P"\nca_sha256 = "{fingerprint(ca)}"\n'
            f'ca_file = "{other.ca_cert}"\naddress = "127.0.0.1:{free_port()}"\nshare_all = true\n'
        )
        configs = {}
        for node, url in (("a", cluster[0].spec.url), ("b", cluster[1].spec.url)):
            configs[node] = root / f"{node}.toml"
            _node_config(configs[node], root / node, db, url, f"node-{node}", partner)
        for node in ("a", "b"):
            procs[node] = await _serve(configs[node], root / f"{node}.log")
        conn = await nats.connect(cluster[2].spec.url)
        js = conn.jetstream()

        async def bucket() -> bool:
            try:
                await js.key_value(lease_bucket(ORG))
                return True
            except Exception:
                return False

        await _until(bucket, 60, "the lease bucket exists")
        kv = await js.key_value(lease_bucket(ORG))

        async def held() -> bool:
            return (await _holder(kv)) in ("node-a", "node-b")

        await _until(held, 60, "a node holds the lease")
        took: list[float] = []
        for _ in range(rounds):
            holder = (await _holder(kv)).removeprefix("node-")
            standby = "b" if holder == "a" else "a"
            await asyncio.sleep(RENEW_S * (0.2 + 0.6 * (len(took) % 5) / 4))  # spread the phase
            killed_at = time.monotonic()
            procs[holder].send_signal(signal.SIGKILL)
            await procs[holder].wait()

            async def moved(standby: str = standby) -> bool:
                return await _holder(kv) == f"node-{standby}"

            await _until(moved, LEASE_TTL_S * 4, "the standby took the lease")
            took.append(time.monotonic() - killed_at)
            procs[holder] = await _serve(configs[holder], root / f"{holder}.log")
            record = root / holder / "running.json"

            async def up(record: Path = record, pid: int = procs[holder].pid) -> bool:
                return await asyncio.to_thread(_is_running, record, pid)

            await _until(up, 60, "the killed node is back as the standby")
        await conn.close()
        load = (await asyncio.to_thread(Path("/proc/loadavg").read_text)).split()[:3]
        print(f"lease takeover after kill -9, {rounds} rounds (TTL {LEASE_TTL_S} s, renew "
              f"{RENEW_S} s, retry {RETRY_S} s); load average {' '.join(load)}")  # fmt: skip
        print(f"  p50 {statistics.median(took):.2f} s, min {min(took):.2f} s, "
              f"max {max(took):.2f} s; bound TTL + retry = {LEASE_TTL_S + RETRY_S:.2f} s "
              "after the last renewal")  # fmt: skip
        print("  each: " + ", ".join(f"{t:.2f}" for t in took))
    finally:
        for proc in procs.values():
            if proc.returncode is None:
                proc.send_signal(signal.SIGKILL)
                await proc.wait()
        await asyncio.gather(*(n.stop() for n in cluster))
        admin = await asyncpg.connect(server_url)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument(
        "--database-url",
        default=os.environ.get("TEST_POSTGRES_URL", ""),
        help="a PostgreSQL server where a database may be created (default: TEST_POSTGRES_URL)",
    )
    args = parser.parse_args()
    if not args.database_url:
        parser.error("give --database-url or TEST_POSTGRES_URL (scripts/postgres start)")
    asyncio.run(main(args.rounds, args.database_url))
