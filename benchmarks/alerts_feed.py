"""What the alerts node pays per event of another node (issue 17): the alerts feed's header
decode, id check and CoT decode, and the coordination's take and monitor update, in process
(no NATS: what the bus adds is measured by cluster_hop.py and cluster_bytes.py).

``--drones N`` own drones of another node report in turn; ``--ground M`` ground SAs between
them (not airborne: skipped by the type prefilter before decoding, or decoded and dropped by the
coordination without it). Prints µs per event: the feed alone (the coordination's take a
no-op), feed + coordination, and feed + coordination without the prefilter.

    python benchmarks/alerts_feed.py --events 50000 --drones 200 --ground 800
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from accord.cluster.alerts import AlertsFeed
from accord.cluster.subjects import Route, encode_headers
from accord.cot.model import CotEvent, WireFormat
from accord.domain.contacts import Party
from accord.domain.groups import Membership
from accord.geo.monitor import SeparationMonitor
from accord.server.coordination import Coordination, Source


class Exchange:
    def __init__(self) -> None:
        self.keys = 0

    def new_party(
        self, membership: Membership, label: str, *, receives: bool = True, relays: bool = False
    ) -> Party:
        self.keys += 1
        return Party(self.keys, membership, label, receives=receives, relays=relays)

    def submit(self, sender: Party, event: CotEvent) -> bool:
        return False


def frame(uid: str, kind: str, lat: float, lon: float, now_ms: int) -> bytes:
    iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now_ms / 1000)) + ".000Z"
    stale = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now_ms / 1000 + 30)) + ".000Z"
    return (
        f'<event version="2.0" uid="{uid}" type="{kind}" how="m-g" time="{iso}" start="{iso}"'
        f' stale="{stale}"><point lat="{lat:.6f}" lon="{lon:.6f}" hae="600" ce="5" le="5"/>'
        f'<detail><contact callsign="{uid}"/><track course="90" speed="12"/></detail></event>'
    ).encode()


def run(
    events: int, drones: int, ground: int, with_coordination: bool, prefilter: bool = True
) -> float:
    now_ms = int(time.time() * 1000)
    coordination = Coordination(
        Exchange(), SeparationMonitor(), origin="org", wall_ms=lambda: now_ms
    )

    def take(event: CotEvent, groups: frozenset[str], label: str) -> None:
        if with_coordination:
            coordination.take(Source.of_label(groups, label), event)

    feed = AlertsFeed(
        None, org="org", node="holder", take=take, wall_ms=lambda: now_ms,
        wants=coordination.wants if prefilter else None,
    )  # fmt: skip
    senders = [(f"org.sim.{i}", "a-f-A-M-H-Q", "own") for i in range(drones)]
    senders += [(f"ANDROID-{i}", "a-f-G-U-C", "") for i in range(ground)]
    frames = [
        frame(uid, kind, 46.9 + (i % 100) * 0.01, 7.4 + (i // 100) * 0.01, now_ms)
        for i, (uid, kind, _) in enumerate(senders)
    ]
    groups = frozenset({"Blue"})

    async def go() -> float:
        started = time.perf_counter()
        for n in range(events):
            i = n % len(senders)
            route = Route("other", f"b.{n}", WireFormat.XML, groups, source=senders[i][2])
            feed._handle(encode_headers(route), frames[i], stored=False)
            if with_coordination and n % 1000 == 999:
                coordination.process()  # as the loop turn's end would
        coordination.process()
        return time.perf_counter() - started

    elapsed = asyncio.run(go())
    assert feed.received + feed.skipped == events, (feed.received, feed.dropped)
    return elapsed / events * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--drones", type=int, default=200)
    parser.add_argument("--ground", type=int, default=800)
    args = parser.parse_args()
    feed_us = run(args.events, args.drones, args.ground, with_coordination=False)
    both_us = run(args.events, args.drones, args.ground, with_coordination=True)
    whole_us = run(args.events, args.drones, args.ground, with_coordination=True, prefilter=False)
    result = {
        "feed_us_per_event": round(feed_us, 2),
        "feed_and_monitor_us": round(both_us, 2),
        "without_type_prefilter_us": round(whole_us, 2),
    }
    print(json.dumps(result | vars(args)))


if __name__ == "__main__":
    main()
