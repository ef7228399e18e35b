"""How fast cluster state crosses nodes (issue 17): a departure and a revocation.

- **Departure**: a client identified on node A disconnects; how long until a watcher on A
  (same node: the hub's own ``t-x-d-d``) and a watcher on node B (presence bucket, watch,
  B's ``t-x-d-d``) get the ``t-x-d-d``. Before the cluster presence there was none on B: the
  contact stayed there until its SA went stale (minutes).
- **Revocation**: a client of node B's is revoked by ``accord cert revoke`` on node A's host
  (``registry.revoke`` on A's PKI); how long until B cuts its session. Against it, one server
  revoking its own client with the default ``revocation_check_s`` (5 s): the bound of one server.

A 3-node NATS cluster (separate processes), both Accord nodes in this process (as in the
tests). Rounds alternate cluster and single server.

    flock /tmp/accord-bench.lock .venv/bin/python benchmarks/state_propagation.py --rounds 20
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import shutil
import ssl
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from accord.app import Running, start
from accord.cluster.natsd import NatsProcess, specs
from accord.config import ClusterConfig, Config
from accord.cot.framing import XmlSplitter
from accord.cot.model import CotEvent, Point
from accord.cot.xml import decode_xml, detail_from_xml, encode_xml
from accord.identity import registry
from accord.identity.ca import PkiPaths
from accord.identity.pki import issue_client

WAIT_S = 30.0


def _sa(uid: str) -> CotEvent:
    now = int(time.time() * 1000)
    detail = detail_from_xml(f'<contact callsign="{uid[-8:]}" endpoint="*:-1:stcp"/>')
    return CotEvent(
        uid=uid, type="a-f-G-U-C", how="m-g", time=now, start=now, stale=now + 300_000,
        point=Point(1.0, 2.0, 1.0, 1.0, 1.0), detail=detail,
    )  # fmt: skip


class Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.splitter = XmlSplitter()

    @classmethod
    async def tls(cls, port: int, pki: PkiPaths, certs: Path, name: str) -> Client:
        files = issue_client(pki, name, certs, dt.datetime.now(dt.UTC), ou="Blue")
        ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
        ctx.load_cert_chain(files.cert, files.key)
        ctx.check_hostname = False
        return cls(*await asyncio.open_connection("127.0.0.1", port, ssl=ctx))

    async def send(self, event: CotEvent) -> None:
        self.writer.write(encode_xml(event))
        await self.writer.drain()

    async def until(self, want: str) -> float:
        """Read until an event of type ``want`` (or EOF for "eof"); the perf_counter then."""
        async with asyncio.timeout(WAIT_S):
            while True:
                data = await self.reader.read(65536)
                if not data:
                    if want == "eof":
                        return time.perf_counter()
                    raise ConnectionError("closed")
                self.splitter.feed(data)
                while (frame := self.splitter.next_frame()) is not None:
                    if decode_xml(frame).type == want:
                        return time.perf_counter()

    def close(self) -> None:
        self.writer.close()


async def departure(a: Running, b: Running, pki: PkiPaths, certs: Path) -> tuple[float, float]:
    n = uuid.uuid4().hex[:8]
    watch_a = await Client.tls(a.ports["tls"], pki, certs, f"wa{n}")
    watch_b = await Client.tls(b.ports["tls"], pki, certs, f"wb{n}")
    await watch_a.send(_sa(f"WA-{n}"))
    await watch_b.send(_sa(f"WB-{n}"))
    leaver = await Client.tls(a.ports["tls"], pki, certs, f"lv{n}")
    uid = f"LEAVER-{n}"
    await leaver.send(_sa(uid))
    presence_b = b.cluster.presence
    async with asyncio.timeout(WAIT_S):
        while presence_b.table.where(uid) != ["a"]:  # noqa: ASYNC110 (a table, no event)
            await asyncio.sleep(0.01)
    await asyncio.sleep(0.2)  # the SAs delivered, the sockets quiet
    t0 = time.perf_counter()
    leaver.close()
    got_a, got_b = await asyncio.gather(watch_a.until("t-x-d-d"), watch_b.until("t-x-d-d"))
    watch_a.close()
    watch_b.close()
    return (got_a - t0) * 1000, (got_b - t0) * 1000


async def revocation(revoker: PkiPaths, server: Running, pki: PkiPaths, certs: Path) -> float:
    name = f"rv{uuid.uuid4().hex[:8]}"
    victim = await Client.tls(server.ports["tls"], pki, certs, name)
    await victim.send(_sa(name.upper()))
    await asyncio.sleep(0.3)
    t0 = time.perf_counter()
    registry.revoke(revoker, name, dt.datetime.now(dt.UTC))
    cut = await victim.until("eof")
    return (cut - t0) * 1000


def _row(name: str, took: list[float]) -> str:
    q = statistics.quantiles(took, n=20) if len(took) > 1 else took * 19
    return f"{name:44s} n={len(took):3d} p50 {statistics.median(took):8.1f} ms  p95 {q[18]:8.1f} ms"


async def main(rounds: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="accord-state-bench-"))
    nats_nodes = [
        NatsProcess(s, peers) for peers in [specs(["n1", "n2", "n3"], root / "nats")] for s in peers
    ]
    try:
        await asyncio.gather(*(n.start() for n in nats_nodes))

        def config(name: str, nats_url: str | None) -> Config:
            cluster = ClusterConfig((nats_url,), name) if nats_url else ClusterConfig()
            return Config(data_dir=root / name, cluster=cluster, **base)

        base = {"https_port": 0, "enroll_port": 0, "udp_port": 0, "tcp_port": 0, "drone_port": 0,
                "archive": False}  # fmt: skip
        a = await start(config("a", nats_nodes[0].spec.url), any_port=True)
        shutil.copytree(root / "a" / "pki", root / "b" / "pki")
        shutil.copytree(root / "a" / "pki", root / "one" / "pki")
        b = await start(config("b", nats_nodes[1].spec.url), any_port=True)
        one = await start(config("one", None), any_port=True)
        pki_a, pki_b, pki_one = (PkiPaths(root / d / "pki") for d in ("a", "b", "one"))
        certs = root / "certs"
        same: list[float] = []
        cross: list[float] = []
        revoke_cluster: list[float] = []
        revoke_one: list[float] = []
        try:
            for _ in range(rounds):
                s, c = await departure(a, b, pki_a, certs)
                same.append(s)
                cross.append(c)
                revoke_cluster.append(await revocation(pki_a, b, pki_b, certs))
                revoke_one.append(await revocation(pki_one, one, pki_one, certs))
        finally:
            for running in (a, b, one):
                await running.close(grace_s=1.0)
        print(_row("t-x-d-d, watcher on the same node", same))
        print(_row("t-x-d-d, watcher on the other node", cross))
        added = statistics.median(cross) - statistics.median(same)
        print(f"added by crossing nodes: p50 {added:.1f} ms")
        print(_row("revoked on A, session on B cut", revoke_cluster))
        print(_row("one server, revocation_check_s 5 s, cut", revoke_one))
    finally:
        await asyncio.gather(*(n.stop() for n in nats_nodes))
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(main(args.rounds))
