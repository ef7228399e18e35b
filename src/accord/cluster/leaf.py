"""A base on a NATS leaf node: it keeps running when its uplink is cut, and catches up after.

A base's Accord nodes connect to a NATS server at the base that is a *leaf node* of the main
cluster (``leafnodes { remotes = [...] }``), with its own JetStream domain. While the uplink
is up, NATS forwards subjects both ways by interest, so nothing changes for the bus: the
base's SAs reach the main side and are captured by its latest-SA stream too, and the other
way round. When the uplink is cut, the base's nodes keep routing to each other through their
leaf, and the base's own stream (in its own domain) keeps the latest SA of each uid for
newcomers: the base works alone.

What crossed neither way while cut is caught up when the uplink is back. Each base node
probes the main cluster's JetStream domain (``[cluster] hub_domain``); when a probe succeeds
after failing (or for the first time), it compares, subject by subject, the last SA of the
base's stream with the last of the main side's (by ``Accord-Id``, newer by CoT time):

- a newer SA that this node published while cut is published again, as stored (the same
  frame and headers, so the same ``Accord-Id``): main-side nodes deliver it once, base nodes
  that saw it live drop it as a duplicate, and the main stream captures it;
- a newer SA on the main side is handed to this node's hub (through the bus, which drops
  what it delivered already), so its clients get it once.

The comparison runs again until nothing is left to publish (interest crosses a healed leaf
connection asynchronously), at most ``CATCH_UP_ROUNDS`` times. The pure part is
:class:`LinkWatch` (probe results in, ``cut``/``healed`` out) and :func:`reconcile`
(two stream snapshots in, what to publish and deliver out); :class:`LeafLink` is the asyncio
adapter. :func:`leaf_conf` and :func:`hub_conf` write the ``nats-server`` configuration of a
base's leaf and of a main-cluster server that accepts leaves; :class:`ConfiguredNats` runs one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from nats.js.errors import NotFoundError

from accord.cluster.natsd import NatsProcess, NodeSpec, binary
from accord.cluster.subjects import BusHeaderError, decode_headers, sa_stream, token
from accord.cot.errors import CotError
from accord.cot.model import WireFormat
from accord.cot.proto import decode_proto
from accord.cot.xml import decode_xml
from accord.domain.views import Sample

log = logging.getLogger("accord.cluster")

PROBE_S = 0.5  # how often the main cluster's JetStream domain is probed
PROBE_TIMEOUT_S = 1.0
CATCH_UP_ROUNDS = 20  # comparisons after a heal, until nothing is left to publish
CATCH_UP_RETRY_S = 0.5

LinkChange = Literal["cut", "healed"]


# -- pure core -------------------------------------------------------------------------------
class LinkWatch:
    """The uplink's state from probe results: ``healed`` when a probe succeeds after failing
    or for the first time (a base started while cut catches up too), ``cut`` when one fails
    after succeeding (or for the first time)."""

    def __init__(self) -> None:
        self.up: bool | None = None
        self.cuts = 0
        self.heals = 0

    def probe(self, ok: bool) -> LinkChange | None:
        if ok == self.up:
            return None
        self.up = ok
        if ok:
            self.heals += 1
            return "healed"
        self.cuts += 1
        return "cut"


@dataclass(frozen=True, slots=True)
class Stored:
    """The last SA of one subject in one stream: who published it, its id, its CoT time."""

    node: str
    event_id: str
    time_ms: int


@dataclass(frozen=True, slots=True)
class Plan:
    republish: list[str] = field(default_factory=list)  # subjects: this node's, newer here
    deliver: list[str] = field(default_factory=list)  # subjects: newer on the main side


def reconcile(local: Mapping[str, Stored], remote: Mapping[str, Stored], node: str) -> Plan:
    """What this base ``node`` does so that both streams end with the newer SA of each subject:
    publish again what it sent itself and the main side lacks, deliver what the main side has
    newer. A newer SA of another base node is that node's to publish."""
    plan = Plan()
    for subject in sorted(local.keys() | remote.keys()):
        here, there = local.get(subject), remote.get(subject)
        if here is not None and there is not None and here.event_id == there.event_id:
            continue
        if there is None or (here is not None and here.time_ms > there.time_ms):
            if here is not None and here.node == node:
                plan.republish.append(subject)
        elif here is None or there.time_ms > here.time_ms:
            plan.deliver.append(subject)
    return plan


def leaf_conf(spec: NodeSpec, *, domain: str, remotes: list[str], reconnect_s: float = 1.0) -> str:
    """``nats-server -c`` text for a base's leaf: its own JetStream domain, and the leaf
    connection to the main cluster's leafnode ports (``nats-leaf://host:7422``)."""
    urls = ", ".join(f'"{u}"' for u in remotes)
    return (
        f"server_name: {spec.name}\n"
        f"listen: 127.0.0.1:{spec.client_port}\n"
        f"http: 127.0.0.1:{spec.monitor_port}\n"
        f'jetstream {{ domain: "{domain}", store_dir: "{spec.store}" }}\n'
        f'leafnodes {{ reconnect: "{reconnect_s:g}s", remotes: [ {{ urls: [ {urls} ] }} ] }}\n'
    )


def hub_conf(
    spec: NodeSpec,
    *,
    domain: str,
    leaf_port: int,
    peers: list[NodeSpec],
    cluster: str = "accord",
    advertise: bool = True,
) -> str:
    """``nats-server -c`` text for a main-cluster server in JetStream domain ``domain`` that
    accepts leaf nodes on ``leaf_port``, routed to ``peers``. With ``advertise`` it tells its
    leaves the other servers' leafnode ports (to fail over to); a test whose only uplink is a
    link it cuts turns that off, or the leaf would reconnect around the cut."""
    text = (
        f"server_name: {spec.name}\n"
        f"listen: 127.0.0.1:{spec.client_port}\n"
        f"http: 127.0.0.1:{spec.monitor_port}\n"
        f'jetstream {{ domain: "{domain}", store_dir: "{spec.store}" }}\n'
        f"leafnodes {{ listen: 127.0.0.1:{leaf_port}, "
        f"no_advertise: {str(not advertise).lower()} }}\n"
    )
    routes = [f'"nats://127.0.0.1:{p.cluster_port}"' for p in peers if p != spec]
    if routes:
        text += (
            f"cluster {{ name: {cluster}, listen: 127.0.0.1:{spec.cluster_port}, "
            f"routes: [ {', '.join(routes)} ] }}\n"
        )
    return text


class ConfiguredNats(NatsProcess):
    """A ``nats-server -c FILE``: a leaf, or a main-cluster server that accepts leaves."""

    def __init__(self, spec: NodeSpec, conf: str) -> None:
        super().__init__(spec, [])
        self.conf = conf

    def args(self) -> list[str]:
        path = self.spec.store.parent / f"{self.spec.name}.conf"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.conf)
        return [str(binary()), "-c", str(path)]


# -- asyncio adapter -------------------------------------------------------------------------
def _stored(headers: Mapping[str, str] | None, payload: bytes, max_depth: int) -> Stored:
    route = decode_headers(headers)
    if route.wire_format is WireFormat.XML:
        event = decode_xml(payload, max_depth=max_depth)
    else:
        event = decode_proto(payload, max_depth=max_depth)
    return Stored(route.node, route.event_id, event.time)


class LeafLink:
    """A base node's catch-up with the main cluster's domain ``hub_domain``, run by the owner
    next to the bus (see the module's docstring)."""

    def __init__(self, bus: Any, hub_domain: str, *, max_depth: int = 32) -> None:
        self._bus = bus
        self.hub_domain = hub_domain
        self._max_depth = max_depth
        self._stream = sa_stream(bus.org)
        self._filter = f"accord.{token(bus.org)}.sa.>"
        self.watch = LinkWatch()
        self.republished = 0
        self.delivered = 0
        self.dropped = 0  # stored messages that could not be read (headers, payload)
        self.failed = 0  # catch-ups that did not finish (the link went again, NATS errors)
        self.completed = 0  # catch-ups that finished

    async def run(self) -> None:
        while True:
            change = self.watch.probe(await self._probe())
            if change == "cut":
                log.warning("cluster: uplink to JetStream domain %s cut", self.hub_domain)
            elif change == "healed":
                log.info("cluster: uplink to JetStream domain %s up; catching up", self.hub_domain)
                try:
                    await self.catch_up()
                    self.completed += 1
                except Exception as exc:  # the link went again: the next heal catches up
                    self.failed += 1
                    log.warning("cluster: catch-up with %s not finished: %s", self.hub_domain, exc)
            await asyncio.sleep(PROBE_S)

    async def _probe(self) -> bool:
        nc = self._bus.nats
        if nc is None:
            return False
        try:
            await nc.request(f"$JS.{self.hub_domain}.API.INFO", b"", timeout=PROBE_TIMEOUT_S)
        except Exception:  # no responders, timeout, disconnected: the uplink is not there
            return False
        return True

    async def catch_up(self) -> int:
        """Compare the base's stream with the main side's until nothing is left to publish;
        returns how many SAs were published again."""
        nc = self._bus.nats
        local_js, remote_js = nc.jetstream(), nc.jetstream(domain=self.hub_domain)
        delivered: set[str] = set()
        total = 0
        for _ in range(CATCH_UP_ROUNDS):
            local = await self._snapshot(local_js)
            remote = await self._snapshot(remote_js)
            plan = reconcile(
                {s: v[0] for s, v in local.items()}, {s: v[0] for s, v in remote.items()},
                self._bus.node,
            )  # fmt: skip
            for subject in plan.deliver:
                stored, msg = remote[subject]
                if stored.event_id not in delivered:
                    delivered.add(stored.event_id)
                    if self._bus.deliver_stored(msg.headers, msg.data or b""):
                        self.delivered += 1
            for subject in plan.republish:
                msg = local[subject][1]
                await nc.publish(subject, msg.data or b"", headers=msg.headers)
                self.republished += 1
                total += 1
            await nc.flush()
            if not plan.republish:
                break
            await asyncio.sleep(CATCH_UP_RETRY_S)
        return total

    async def _snapshot(self, js: Any) -> dict[str, tuple[Stored, Any]]:
        """The last SA of every subject of the organisation's stream in one domain."""
        try:
            info = await js.stream_info(self._stream, subjects_filter=self._filter)
        except NotFoundError:
            return {}
        out: dict[str, tuple[Stored, Any]] = {}
        for subject in info.state.subjects or {}:
            try:
                msg = await js.get_last_msg(self._stream, subject)
            except NotFoundError:
                continue  # aged out or replaced meanwhile
            try:
                out[subject] = (_stored(msg.headers, msg.data or b"", self._max_depth), msg)
            except (BusHeaderError, CotError, ValueError):
                self.dropped += 1
        return out

    def samples(self) -> list[Sample]:
        values: tuple[tuple[str, Literal["gauge", "counter"], str, float], ...] = (
            ("cluster_leaf_up", "gauge", "1 while the uplink to the main cluster answers",
             float(bool(self.watch.up))),
            ("cluster_leaf_cuts_total", "counter", "uplink cuts seen", float(self.watch.cuts)),
            ("cluster_leaf_republished_total", "counter",
             "SAs of this node published again after a cut", float(self.republished)),
            ("cluster_leaf_delivered_total", "counter",
             "main-side SAs delivered after a cut", float(self.delivered)),
            ("cluster_leaf_failed_total", "counter", "catch-ups not finished",
             float(self.failed)),
        )  # fmt: skip
        return [Sample(name, kind, text, value) for name, kind, text, value in values]

    def view(self) -> dict[str, int | str | bool]:
        return {
            "hub_domain": self.hub_domain,
            "up": bool(self.watch.up),
            "cuts": self.watch.cuts,
            "republished": self.republished,
            "delivered": self.delivered,
            "dropped": self.dropped,
            "failed": self.failed,
            "completed": self.completed,
        }
