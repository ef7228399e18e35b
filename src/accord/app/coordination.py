"""Composition of coordination (separation alerts, geofences, intents) and of the cluster bus."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from accord.app.running import Running, StartupError, wall_ms
from accord.app.shared_store import store_is_shared
from accord.app.tasks import Policy
from accord.config import Config
from accord.cot.model import CotEvent
from accord.domain.alert_acks import AckBook
from accord.domain.partners import Partner
from accord.geo.config import SeparationConfig, SeparationConfigError
from accord.geo.monitor import SeparationMonitor
from accord.server.coordination import Coordination, Source

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
    # In a cluster, alert uids name the organisation, not the node that computed them: a node
    # that takes over the alerts raises an ongoing conflict under the uid clients show.
    origin = config.federation_name or (
        config.cluster.org if running.cluster is not None else config.server_names[0]
    )
    coordination = running.coordination = Coordination(
        running.hub,
        SeparationMonitor(config.separation, partner_configs),
        origin=origin,
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
    if running.cluster is None:
        book = running.alert_acks = AckBook()
        coordination.cancelled = book.cleared
    else:
        _cluster_alerts(running, config, coordination)


def _cluster_alerts(running: Running, config: Config, coordination: Coordination) -> None:
    """One node computes the organisation's alerts: the holder of the ``alerts`` lease, fed
    every group's events by the alerts feed; the others stand by. Acknowledgements are shared
    through the organisation's KV bucket (see accord.cluster.alerts)."""
    from accord.cluster.alerts import ALERTS_LEASE, AlertsFeed, SharedAcks
    from accord.cluster.lease import Change, LeaseKeeper

    bus = running.cluster
    acks = running.alert_acks = SharedAcks(
        bus.connection.jetstream(), config.cluster.org, config.cluster.sa_replicas
    )
    for name, loop in (
        ("alert acks writer", acks.write_loop),
        ("alert acks watch", acks.watch_loop),
    ):
        task = running.tasks.start(name, loop, Policy.RESTART)
        running.stack.push_async_callback(running.tasks.stop, task)
    running.probes.sources.append(acks)
    coordination.cancelled = acks.cleared
    coordination.skip = bus.relayed  # the feed brings other nodes' events, once
    bus.source_of = coordination.label
    coordination.standby()

    def take(event: CotEvent, groups: frozenset[str], label: str) -> None:
        coordination.take(Source.of_label(groups, label), event)

    feed = AlertsFeed(
        bus.connection,
        org=config.cluster.org,
        node=bus.node,
        take=take,
        wall_ms=wall_ms,
        max_depth=config.max_depth,
        wants=coordination.wants,
    )
    running.probes.sources.append(feed)
    feeding: list[asyncio.Task[None]] = []

    async def changed(change: Change) -> None:
        while feeding:
            await running.tasks.stop(feeding.pop())
        if change is Change.GAINED:
            coordination.resume()
            feeding.append(running.tasks.start("cluster alerts feed", feed.run, Policy.RESTART))
            log.info("separation alerts: computed on this node (%s)", bus.node)
        else:
            coordination.standby()

    keeper = running.alerts_lease = LeaseKeeper(
        bus.connection,
        org=config.cluster.org,
        node=bus.node,
        name=ALERTS_LEASE,
        replicas=config.cluster.sa_replicas,
        on_change=changed,
    )
    feed.lease = keeper  # (its samples are the feed's: one LeaseKeeper family per /metrics)

    async def keep() -> None:
        await running.started.wait()
        await keeper.run()

    async def stop_feeding() -> None:
        while feeding:
            await running.tasks.stop(feeding.pop())

    running.stack.push_async_callback(stop_feeding)
    task = running.tasks.start("alerts lease", keep, Policy.RESTART)
    running.stack.push_async_callback(running.tasks.stop, task)


async def start_cluster(running: Running, config: Config) -> None:
    """Join the NATS bus of ``[cluster]`` (issue 17); imported only when configured."""
    from accord.cluster.bus import Bus, BusError
    from accord.cluster.state import Member, StateError, ca_fingerprint
    from accord.identity.ca import PkiPaths
    from accord.store.migrate import migrations

    hub = running.hub
    node = config.cluster.node or config.server_names[0]
    backend = "postgres" if config.database_url.startswith("postgres") else "sqlite"
    try:
        ca = ca_fingerprint(PkiPaths(config.data_dir / "pki").ca_cert.read_bytes())
    except (OSError, StateError) as exc:
        raise StartupError(f"cannot read this node's CA to join the cluster: {exc}") from None
    member = Member(node, migrations(backend)[-1].number, ca)

    def heard() -> set[str]:
        return {g for p in hub.roster.receivers() for g in p.membership.outbound}

    bus = Bus(
        hub,
        heard,
        node=node,
        org=config.cluster.org,
        sa_replicas=config.cluster.sa_replicas,
        max_depth=config.max_depth,
        wall_ms=wall_ms,
        member=member,
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
    # Presence (which node each contact is on; t-x-d-d across nodes; contact lists).
    presence = bus.presence
    if presence is not None:
        for name, loop in (
            ("cluster presence writer", presence.write_loop),
            ("cluster presence heartbeat", presence.beat_loop),
            ("cluster presence watch", presence.watch_loop),
        ):
            task = running.tasks.start(name, loop, Policy.RESTART)
            running.stack.push_async_callback(running.tasks.stop, task)
        hub.presence = presence.changed
        hub.remote_contacts = presence.remote_contacts
    await start_shared_state(running, config)
    if running.store is not None and store_is_shared(config, running.store):
        # The node that received an event from its client writes it to the shared store.
        hub.stored_elsewhere = bus.relayed
        hub.missions_elsewhere = True
        _share_missions(running, config, bus)
    if config.cluster.hub_domain:
        start_leaf(running, config, bus)


def cluster_changed(running: Running) -> asyncio.Event:
    """Set when a user or certificate changed, by this server's admin API or (in a cluster)
    by another node's, written into this node's files: the identity watcher applies it at
    once."""
    shared = getattr(running.cluster, "shared", None)
    return running.identity_changed if shared is None else shared.changed


async def start_shared_state(running: Running, config: Config) -> None:
    """Users and certificates from the cluster's state bucket, before anything reads them."""
    from accord.cluster.shared import SharedState
    from accord.identity.ca import PkiPaths

    bus = running.cluster
    if bus is None or bus.state_kv is None:
        return
    shared = SharedState(bus.state_kv, config.data_dir, PkiPaths(config.data_dir / "pki"))
    try:
        await shared.open()
    except Exception as exc:  # a broken users file, a broken index, NATS gone meanwhile
        raise StartupError(f"cannot take the cluster's users and certificates: {exc}") from None
    bus.shared = shared
    for name, loop in (
        ("cluster state poll", shared.poll_loop),
        ("cluster state watch", shared.watch_loop),
    ):
        task = running.tasks.start(name, loop, Policy.RESTART)
        running.stack.push_async_callback(running.tasks.stop, task)


def _share_missions(running: Running, config: Config, bus: Any) -> None:
    """Missions changed on one node are re-read by the others (they share the store)."""
    from accord.app.http import mission_book
    from accord.cluster.missions_sync import MissionSync

    book = mission_book(running, config)
    sync = MissionSync(bus.connection, book.reload, config.cluster.org, bus.node)
    book.on_stored = sync.stored
    running.probes.sources.append(sync)
    task = running.tasks.start("cluster mission notices", sync.run, Policy.RESTART)
    running.stack.push_async_callback(running.tasks.stop, task)


def start_leaf(running: Running, config: Config, bus: object) -> None:
    """A base on a leaf NATS: catch up with the main cluster's domain after a cut."""
    from accord.cluster.leaf import LeafLink

    leaf = running.cluster_leaf = LeafLink(
        bus, config.cluster.hub_domain, max_depth=config.max_depth
    )
    task = running.tasks.start("cluster leaf", leaf.run, Policy.RESTART)
    running.stack.push_async_callback(running.tasks.stop, task)
    running.probes.sources.append(leaf)
