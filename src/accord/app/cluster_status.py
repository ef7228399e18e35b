"""Composition of ``accord cluster status`` (issue 17): each node answers for itself on NATS,
and the admin API of any node gathers every node's answer. With ``serve --workers N`` the
workers share one store, so an event relayed from another worker is not recorded again."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

from accord.app.running import Running, StartupError, WorkerRole
from accord.config import Config


async def start_cluster_status(running: Running, config: Config, worker: WorkerRole | None) -> None:
    """After ``start_cluster``: answer status requests; with ``worker``, share the store."""
    from accord.cluster.status import Report, StatusNode

    bus = running.cluster
    if worker is not None:  # the worker that received an event records it, once
        running.hub.stored_elsewhere = bus.relayed
    node = config.cluster.node or config.server_names[0]

    async def report() -> Report:
        clients = [
            {
                "uid": s.uid,
                "callsign": s.callsign,
                "user": s.user,
                "listener": s.listener,
                "address": s.address,
            }
            for s in running.census.sessions()
        ]
        doc: dict[str, Any] = {
            "node": node,
            "pid": os.getpid(),
            "worker": None if worker is None else worker.index,
            "workers": None if worker is None else worker.count,
            "started_s": running.started_s,
            "sessions": len(clients),
            "clients": clients,
            "bus": bus.view(),
            "nats": {"url": bus.connected_to, "rtt_ms": await status.rtt_ms()},
        }
        return doc

    monitors: dict[str, tuple[str, int]] = {}
    if worker is not None and worker.nats_monitor_port:
        url = urlsplit(config.cluster.urls[0])
        monitors[url.netloc] = (url.hostname or "127.0.0.1", worker.nats_monitor_port)
    status = StatusNode(config.cluster.org, node, report, monitors)
    try:
        await status.attach(bus.connection)
    except Exception as exc:  # the bus has just connected: this is rare, and said plainly
        raise StartupError(f"cannot subscribe for cluster status on NATS: {exc}") from None
    running.stack.push_async_callback(status.close)  # before the bus closes its connection
    running.cluster_status = status
