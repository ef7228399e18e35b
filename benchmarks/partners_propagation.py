"""How fast a change of partners or release policies crosses a cluster's nodes (issue 17).

- **Policy**: node A's operator edits the partner's policy file and reloads (what SIGHUP does
  in a cluster: ``reload_wanted``); how long until the new version is in force on node B (the
  record published by A, watched by B, checked by ``load_policies`` and put in force), and on
  the link of the lease holder (A, which applies its own record from the same watch).
- **Partner**: ``partners.toml`` written on A (``accord partner add``); how long until B knows
  the partner (A's poll of the file every 0.25 s, then the same path).

A 3-node NATS cluster (separate processes), both Accord nodes in this process (as in the
tests); the partner is a CA only (no link is dialled).

    flock /tmp/accord-bench.lock .venv/bin/python benchmarks/partners_propagation.py --rounds 20
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptography import x509

from accord.app import Running, start
from accord.cluster.natsd import NatsProcess, specs
from accord.config import ClusterConfig, Config
from accord.domain.partners import Partner
from accord.federation import partners_toml
from accord.federation.gate import PolicyGate
from accord.federation.trust import fingerprint
from accord.identity.pki import ensure_pki
from accord.policy import decode_policy

WAIT_S = 10.0


def policy(n: int) -> str:
    return f'name = "c->p/{n}"\npartner = "P"\n\n[[rule]]\nname = "r{n}"\ntypes = ["a-{n}-*"]\n'


async def until(check: Callable[[], bool], what: str = "") -> float:
    async with asyncio.timeout(WAIT_S):
        while not check():  # noqa: ASYNC110 (state of the node, no event to wait on)
            await asyncio.sleep(0.001)
    return time.perf_counter()


def _row(name: str, took: list[float]) -> str:
    q = statistics.quantiles(took, n=20) if len(took) > 1 else took * 19
    return f"{name:44s} n={len(took):3d} p50 {statistics.median(took):8.1f} ms  p95 {q[18]:8.1f} ms"


def _in_force(node: Running, partner: str) -> str:
    held = node.shared_partners.policies.get(partner) if node.shared_partners else None
    return "" if held is None else held.version


def _gate_version(node: Running) -> str:
    gate = node.gate  # (a new one each time the links are brought up again)
    return gate.policies["P"].version if isinstance(gate, PolicyGate) else ""


async def main(rounds: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="accord-partners-bench-"))
    nats_nodes = [
        NatsProcess(s, peers) for peers in [specs(["n1", "n2", "n3"], root / "nats")] for s in peers
    ]
    try:
        await asyncio.gather(*(n.start() for n in nats_nodes))
        now = dt.datetime.now(dt.UTC)
        cas = [ensure_pki(root / f"partner{i}", ("localhost",), now).ca_cert for i in range(2)]

        def pin(ca: Path) -> str:
            return fingerprint(x509.load_pem_x509_certificate(ca.read_bytes()))

        policy_file = root / "policy.toml"
        policy_file.write_text(policy(0))
        partner = Partner(
            "P", pin(cas[0]), str(cas[0]), share_all=False, policy_file=str(policy_file)
        )
        base = {"https_port": 0, "enroll_port": 0, "udp_port": 0, "tls_port": 0, "drone_port": 0,
                "federation_port": 0, "federation_files_port": 0, "archive": False}  # fmt: skip

        def config(name: str, url: str) -> Config:
            return Config(data_dir=root / name, cluster=ClusterConfig((url,), name),
                          partners=(partner,), **base)  # type: ignore[arg-type]  # fmt: skip

        a = await start(config("a", nats_nodes[0].spec.url), any_port=True)
        shutil.copytree(root / "a" / "pki", root / "b" / "pki")
        b = await start(config("b", nats_nodes[1].spec.url), any_port=True)
        assert a.shared_partners is not None
        await until(lambda: isinstance(a.gate, PolicyGate), "A runs the links")
        policy_b: list[float] = []
        policy_link: list[float] = []
        added: list[float] = []
        try:
            for n in range(1, rounds + 1):
                text = policy(n)
                want = decode_policy(text.encode()).version
                policy_file.write_text(text)
                t0 = time.perf_counter()
                a.shared_partners.reload_wanted.set()
                on_b = until(lambda: _in_force(b, "P") == want)  # noqa: B023 (awaited here)
                on_link = until(lambda: _gate_version(a) == want)  # noqa: B023
                got_b, got_link = await asyncio.gather(on_b, on_link)
                policy_b.append((got_b - t0) * 1000)
                policy_link.append((got_link - t0) * 1000)
                # A second partner added on A, then removed (both through partners.toml).
                extra = Partner(f"Q{n}", pin(cas[1]), str(cas[1]))
                t0 = time.perf_counter()
                partners_toml.write(root / "a", (extra,))
                got = await until(lambda: any(p.name == extra.name for p in b.partners))  # noqa: B023
                added.append((got - t0) * 1000)
                partners_toml.write(root / "a", ())
                await until(lambda: all(p.name != extra.name for p in b.partners))  # noqa: B023
        finally:
            for running in (a, b):
                await running.close(grace_s=1.0)
        print(f"load average {os.getloadavg()[0]:.2f}")
        print(_row("policy reloaded on A, in force on B", policy_b))
        print(_row("policy reloaded on A, on A's link", policy_link))
        print(_row("partner added on A (partners.toml), on B", added))
    finally:
        await asyncio.gather(*(n.stop() for n in nats_nodes))
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main(args.rounds))
