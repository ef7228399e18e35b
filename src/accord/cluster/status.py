"""``accord cluster status``: every node's report, gathered over NATS by the node asked.

Each node answers requests on ``accord.<org>.ctl.status`` with a JSON report of itself (its
sessions, its bus counters, the NATS server it is connected to); the node that is asked (its
admin API) publishes one request and takes the replies that arrive within a short window, then
adds the NATS servers' health and the latest-SA stream's state. Nothing is created: a request
and its replies leave no state behind (no stream, no consumer, no key).

The pure part (:func:`summarise`) turns the replies, the stream's state and the servers'
monitoring answers into the document the API returns; the adapter (:class:`StatusNode`) owns
no connection of its own: it subscribes on the bus's, whose reconnects and close it follows.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from nats.aio.msg import Msg

from accord.cluster.natsd import monitor
from accord.cluster.subjects import PREFIX, sa_stream, token

log = logging.getLogger("accord.cluster")

GATHER_S = 0.5  # how long the asked node waits for the other nodes' reports
MAX_REPORT_BYTES = 512 * 1024  # a node's report beyond this is cut to its counts

Report = dict[str, Any]


def status_subject(org: str) -> str:
    return f"{PREFIX}.{token(org)}.ctl.status"


def parse_reports(replies: Iterable[bytes]) -> tuple[list[Report], int]:
    """The nodes' reports (one per node name, sorted) and how many replies were refused."""
    nodes: dict[str, Report] = {}
    refused = 0
    for data in replies:
        try:
            report = json.loads(data)
        except ValueError:
            refused += 1
            continue
        if not isinstance(report, dict) or not isinstance(report.get("node"), str):
            refused += 1
            continue
        nodes[report["node"]] = report
    return [nodes[name] for name in sorted(nodes)], refused


def summarise(
    reports: list[Report],
    refused: int,
    stream: Report | None,
    servers: Mapping[str, Report],
    *,
    asked: str,
) -> Report:
    """The cluster status document: nodes, NATS servers (by URL), the SA stream."""
    in_use: dict[str, list[str]] = {}
    for report in reports:
        url = str((report.get("nats") or {}).get("url", ""))
        if url:
            in_use.setdefault(url, []).append(str(report["node"]))
    urls = sorted(set(servers) | set(in_use))
    nats_servers = []
    for url in urls:
        health = servers.get(url) or {}
        nats_servers.append(
            {
                "url": url,
                "nodes": sorted(in_use.get(url, [])),
                "name": health.get("server_name", ""),
                "version": health.get("version", ""),
                "healthy": health.get("healthy"),  # None: no monitoring port known
                "connections": health.get("connections"),
                "in_msgs": health.get("in_msgs"),
                "out_msgs": health.get("out_msgs"),
                "in_bytes": health.get("in_bytes"),
                "out_bytes": health.get("out_bytes"),
            }
        )
    return {
        "asked": asked,
        "nodes": reports,
        "sessions": sum(int(r.get("sessions", 0)) for r in reports),
        "refused_replies": refused,
        "nats_servers": nats_servers,
        "sa_stream": stream,
    }


def stream_view(info: Any) -> Report:
    """What ``accord cluster status`` shows of the latest-SA stream (a ``StreamInfo``)."""
    state, cluster = info.state, info.cluster
    view: Report = {
        "name": info.config.name,
        "messages": state.messages,
        "bytes": state.bytes,
        # One message per subject (max_msgs_per_subject = 1): each is a (group, uid)'s SA.
        "subjects": state.messages,
        "first_seq": state.first_seq,
        "last_seq": state.last_seq,
        "replicas": info.config.num_replicas,
    }
    if cluster is not None:
        view["leader"] = cluster.leader or ""
        view["peers"] = [
            {"name": p.name, "current": bool(p.current), "offline": bool(p.offline), "lag": p.lag}
            for p in cluster.replicas or []
        ]
    return view


async def server_health(monitor_host: str, monitor_port: int) -> Report:
    """One NATS server's ``/varz`` and ``/healthz``, as summarise wants them."""
    try:
        varz = await monitor(monitor_host, monitor_port, "varz")
        healthz = await monitor(monitor_host, monitor_port, "healthz")
    except OSError as exc:
        return {"healthy": False, "error": str(exc)}
    return {
        "healthy": healthz.get("status") == "ok",
        "server_name": varz.get("server_name", ""),
        "version": varz.get("version", ""),
        "connections": varz.get("connections"),
        "in_msgs": varz.get("in_msgs"),
        "out_msgs": varz.get("out_msgs"),
        "in_bytes": varz.get("in_bytes"),
        "out_bytes": varz.get("out_bytes"),
    }


class StatusNode:
    """One node's answering of status requests, and the gathering of everyone's."""

    def __init__(
        self,
        org: str,
        node: str,
        report: Callable[[], Awaitable[Report]],
        monitors: Mapping[str, tuple[str, int]] | None = None,
    ) -> None:
        self.org = org
        self.node = node
        self._report = report
        self._monitors = dict(monitors or {})  # NATS client URL -> its monitoring host, port
        self._nc: Any = None
        self._sub: Any = None
        self.answered = 0
        self.failed = 0  # requests this node could not answer (counted, never raised)

    async def attach(self, nc: Any) -> None:
        """Answer status requests on ``nc`` (the bus's connection: its reconnects and its
        close are the bus's)."""
        self._nc = nc
        self._sub = await nc.subscribe(status_subject(self.org), cb=self._on_request)
        await nc.flush()

    async def close(self) -> None:
        """Before the bus closes its connection."""
        sub, self._sub = self._sub, None
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def rtt_ms(self) -> float | None:
        """The round trip to this node's NATS server (a flush), in ms; None when down."""
        started = time.perf_counter()
        try:
            await self._nc.flush(timeout=1)
        except Exception:
            return None
        return round((time.perf_counter() - started) * 1000, 3)

    async def _on_request(self, msg: Msg) -> None:
        try:
            report = await self._report()
            data = json.dumps(report).encode()
            if len(data) > MAX_REPORT_BYTES:
                report.pop("clients", None)
                report["clients_cut"] = True
                data = json.dumps(report).encode()
            await msg.respond(data)
            self.answered += 1
        except Exception as exc:  # a status request never harms the node
            self.failed += 1
            log.warning("cluster status: not answered: %s", exc)

    async def gather(self, window_s: float = GATHER_S, expect: int | None = None) -> Report:
        """Every node's report (this one's too), the NATS servers, the SA stream. ``expect``:
        the number of *other* nodes' replies after which not to wait out the window."""
        nc = self._nc
        replies: list[bytes] = []
        done = asyncio.Event()

        async def on_reply(msg: Msg) -> None:
            replies.append(msg.data)
            if expect is not None and len(replies) >= expect:
                done.set()

        inbox = nc.new_inbox()
        sub = await nc.subscribe(inbox, cb=on_reply)
        try:
            await nc.publish(status_subject(self.org), b"", reply=inbox)
            await nc.flush()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), window_s)
        finally:
            await sub.unsubscribe()
        # The bus's connection is no_echo: this node's own subscription never sees the
        # request it published, so its own report is taken here.
        replies.append(json.dumps(await self._report()).encode())
        reports, refused = parse_reports(replies)
        stream: Report | None
        try:
            stream = stream_view(await nc.jetstream().stream_info(sa_stream(self.org)))
        except Exception as exc:
            stream = {"name": sa_stream(self.org), "error": str(exc) or type(exc).__name__}
        health = {url: await server_health(*where) for url, where in self._monitors.items()}
        return summarise(reports, refused, stream, health, asked=self.node)
