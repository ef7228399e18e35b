"""Composition of coordination (separation alerts, geofences, intents) and of the cluster bus."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from accord.app.running import Running, StartupError, wall_ms
from accord.app.tasks import Policy
from accord.config import Config
from accord.domain.partners import Partner
from accord.geo.config import SeparationConfig, SeparationConfigError
from accord.geo.monitor import SeparationMonitor
from accord.server.coordination import Coordination

log = logging.getLogger("accord")


def start_coordination(running: Running, config: Config, partners: Sequence[Partner]) -> None:
    """Separation alerts: the monitor taps every routed event (see server/coordination.py)."""

    def released_as(partner: str, uid: str) -> str | None:
        return None if running.gate is None else running.gate.released_as(partner, uid)

    partner_configs: dict[str, SeparationConfig] = {}
    for partner in partners:  # the thresholds agreed with each partner
        if partner.separation:
            try:
                partner_configs[partner.name] = config.separation.replace(
                    dict(partner.separation), f"partner {partner.name}: separation"
                )
            except SeparationConfigError as exc:
                raise StartupError(str(exc)) from None
    coordination = running.coordination = Coordination(
        running.hub,
        SeparationMonitor(config.separation, partner_configs),
        origin=config.federation_name or config.server_names[0],
        wall_ms=wall_ms,
        released_as=released_as,
    )
    ok, what = coordination.load_fence_files(config.geofence_files)
    if not ok:
        raise StartupError(f"{what}; fix it or remove it from geofence_files")
    if config.geofence_files:
        log.info("%s", what)
    running.hub.taps.append(coordination.tap)
    running.probes.sources.append(coordination)
    running.probes.coordination = coordination
    # Restarted when it fails: the monitor's state outlives the task.
    ticking = running.tasks.start("separation ticker", coordination.run, Policy.RESTART)
    running.stack.push_async_callback(running.tasks.stop, ticking)


async def start_cluster(running: Running, config: Config) -> None:
    """Join the NATS bus of ``[cluster]`` (issue 17); imported only when configured."""
    from accord.cluster.bus import Bus, BusError

    hub = running.hub

    def heard() -> set[str]:
        return {g for p in hub.roster.receivers() for g in p.membership.outbound}

    bus = Bus(
        hub,
        heard,
        node=config.cluster.node or config.server_names[0],
        org=config.cluster.org,
        sa_replicas=config.cluster.sa_replicas,
        max_depth=config.max_depth,
    )
    try:
        await bus.connect(config.cluster.urls)
    except BusError as exc:
        raise StartupError(str(exc)) from None
    running.cluster = bus
    running.stack.push_async_callback(bus.close)
    for name, loop in (
        ("cluster publisher", bus.publish_loop),
        ("cluster interest", bus.interest_loop),
    ):
        task = running.tasks.start(name, loop, Policy.RESTART)
        running.stack.push_async_callback(running.tasks.stop, task)
    hub.bus = bus.routed
    running.probes.sources.append(bus)
    if config.cluster.hub_domain:
        start_leaf(running, config, bus)


def start_leaf(running: Running, config: Config, bus: object) -> None:
    """A base on a leaf NATS: catch up with the main cluster's domain after a cut."""
    from accord.cluster.leaf import LeafLink

    leaf = running.cluster_leaf = LeafLink(
        bus, config.cluster.hub_domain, max_depth=config.max_depth
    )
    task = running.tasks.start("cluster leaf", leaf.run, Policy.RESTART)
    running.stack.push_async_callback(running.tasks.stop, task)
    running.probes.sources.append(leaf)
