"""``accord cluster status``: the nodes of the cluster this data directory's server is in, their
sessions, the NATS servers and their health, the latest-SA stream (issue 17).

It asks the admin API of the server on this data directory (as ``accord status`` does, with
the admin certificate), which gathers every node's own report over NATS. It reads only: no
state is made, on disk or on NATS.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from typing import Any, TextIO

from accord.cli.status import StatusError, admin_context, admin_request, base_url
from accord.config import Config
from accord.identity.ca import PkiPaths

EXIT_NOT_CLUSTERED = 3


def add_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    p = sub.add_parser("cluster", help="a cluster's nodes, NATS servers and latest-SA stream")
    verbs = p.add_subparsers(dest="verb", required=True)
    status = verbs.add_parser(
        "status",
        parents=[common],
        help="every node (pid, sessions, bus counters), the NATS servers, the SA stream",
    )
    status.add_argument("--url", help="a node's HTTPS API (default: this data directory's)")
    status.add_argument("--json", action="store_true", help="print the status as JSON")
    status.add_argument("--clients", action="store_true", help="list every node's clients")
    status.add_argument("--timeout", type=float, default=5.0, help="seconds to wait (default 5)")


def run(args: argparse.Namespace, config: Config) -> int:
    try:
        url = base_url(args.url, config)
        pki = PkiPaths(config.data_dir / "pki")
        ctx = admin_context(url, pki, args.timeout)
        code, doc = admin_request(
            url, "/api/admin/cluster", ctx, args.timeout, pki, answers=(404, 503)
        )
    except StatusError as exc:
        print(f"accord: {exc}", file=sys.stderr)
        return exc.code
    if code == 404 and "cluster" in str(doc.get("error", "")):
        print(f"accord: {doc['error']}", file=sys.stderr)
        return EXIT_NOT_CLUSTERED
    if code != 200:
        print(f"accord: {url}: {doc.get('error') or f'answered {code}'}", file=sys.stderr)
        return 1
    if args.json:
        json.dump(doc, sys.stdout, indent=2)
        print()
    else:
        render(doc, sys.stdout, clients=args.clients)
    return 0


def _started(seconds: object) -> str:
    if not isinstance(seconds, int | float):
        return "?"
    when = dt.datetime.fromtimestamp(seconds, dt.UTC)
    return when.strftime("%Y-%m-%d %H:%M:%S UTC")


def render(doc: dict[str, Any], out: TextIO, *, clients: bool = False) -> None:
    nodes = doc.get("nodes") or []
    out.write(
        f"cluster    {len(nodes)} nodes, {doc.get('sessions', 0)} sessions "
        f"(asked {doc.get('asked', '?')})\n"
    )
    for node in nodes:
        bus = node.get("bus") or {}
        nats = node.get("nats") or {}
        rtt = nats.get("rtt_ms")
        out.write(
            f"node       {node.get('node')}  pid {node.get('pid')}  "
            f"{node.get('sessions', 0)} sessions  since {_started(node.get('started_s'))}\n"
            f"           bus: {bus.get('groups', 0)} groups, published {bus.get('published', 0)}"
            f", received {bus.get('received', 0)}, duplicates {bus.get('duplicates', 0)}"
            f", dropped {bus.get('dropped', 0)}, degraded {bus.get('degraded', 0)}; "
            f"NATS {nats.get('url') or 'not connected'}"
            + (f" ({rtt:g} ms)" if isinstance(rtt, int | float) else "")
            + "\n"
        )
        if clients:
            for c in node.get("clients") or []:
                out.write(
                    f"             {c.get('callsign') or '-':<16} {c.get('uid') or '-':<38} "
                    f"{c.get('listener', '')} {c.get('address', '')}\n"
                )
    if doc.get("refused_replies"):
        out.write(f"refused    {doc['refused_replies']} replies that were not node reports\n")
    for server in doc.get("nats_servers") or []:
        healthy = server.get("healthy")
        health = {True: "healthy", False: "UNHEALTHY", None: "health not monitored"}[healthy]
        name = f" {server['name']}" if server.get("name") else ""
        version = f" v{server['version']}" if server.get("version") else ""
        users = ", ".join(server.get("nodes") or []) or "no node"
        out.write(f"nats       {server.get('url')}{name}{version}: {health}; used by {users}\n")
    stream = doc.get("sa_stream") or {}
    if "error" in stream:
        out.write(f"sa stream  {stream.get('name')}: {stream['error']}\n")
    elif stream:
        peers = stream.get("peers")
        where = f", leader {stream['leader']}" if stream.get("leader") else ""
        lagging = [p["name"] for p in peers or [] if not p.get("current")]
        out.write(
            f"sa stream  {stream.get('name')}: {stream.get('subjects', 0)} uids, "
            f"{stream.get('messages', 0)} messages, {stream.get('bytes', 0)} bytes, "
            f"{stream.get('replicas', 1)} replicas{where}"
            + (f", not current: {', '.join(lagging)}" if lagging else "")
            + "\n"
        )
