"""Separation alerts across a federation: two real servers linked over mutual TLS, each with a
simulated drone on a head-on course with the other's, each releasing drones and alerts to the
other under a pseudonymising policy. A pytak client on each side gets its own server's alert
and the partner's view of the same conflict (one pair key), then both cancels; both ledgers
verify and hold the released and received alerts."""

from __future__ import annotations

import asyncio
import configparser
import contextlib
import json
import math
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from lxml import etree

from accord.app import start
from accord.bridges.simulator import Fleet, encounter
from accord.config import DroneFeed
from accord.cot.model import CotEvent, Point
from accord.cot.xml import decode_xml, detail_from_xml, parse_fragment
from accord.store.opening import open_store
from tests.e2e.clients import OPEN_CLIENTS, CotClient
from tests.federation.test_link_e2e import Org, config, wait_up
from tests.federation.test_policy_e2e import verify_ledger

pytestmark = pytest.mark.timeout(90)
pytak = pytest.importorskip("pytak")

ORIGIN = (46.95, 7.45)
SECRET = "c2VwYXJhdGlvbi10ZXN0LXNlY3JldC0zMi1ieXRlcyE="


def policy(name: str, partner: str) -> str:
    return f"""
name = "{name}"
partner = "{partner}"
pseudonymise = true
secret = "{SECRET}"

[[rule]]
name = "drones"
types = ["a-f-A*"]
grid_m = 20

[[rule]]
name = "missions"
types = ["b-m-r", "b-m-p-w"]  # a route and its waypoints (links to b-m-p-w)

[[rule]]
name = "alerts"
types = ["b-a-*", "u-d-c-c", "u-d-f", "t-x-d-d"]
"""


@dataclass
class Watcher:
    """A pytak client: every event it reads, with when it arrived."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    got: list[tuple[float, CotEvent]] = field(default_factory=list)

    async def read(self) -> None:
        while True:
            frame = await self.reader.readuntil(b"</event>")
            if b"t-x-takp" in frame:
                continue
            self.got.append((time.monotonic(), decode_xml(frame[frame.index(b"<event") :])))

    async def wait(self, predicate: object, timeout: float) -> tuple[float, CotEvent]:
        assert callable(predicate)
        async with asyncio.timeout(timeout):
            while True:
                for arrived, event in self.got:
                    if predicate(event):
                        return arrived, event
                await asyncio.sleep(0.05)


async def watcher(port: int) -> Watcher:
    parser = configparser.ConfigParser()
    parser["pytak"] = {"COT_URL": f"tcp://127.0.0.1:{port}"}
    reader, writer = await pytak.protocol_factory(parser["pytak"])
    return Watcher(reader, writer)


def detail_of(event: CotEvent, tag: str) -> etree._Element | None:
    return parse_fragment(f"<detail>{event.detail.xml}</detail>").find(tag)


def conflict(event: CotEvent) -> tuple[str, str]:
    """(origin, pair key) of an alert or cancel, or ("", "")."""
    mark = detail_of(event, "__conflict")
    return ("", "") if mark is None else (mark.get("origin", ""), mark.get("key", ""))


def alert_from(origin: str) -> object:
    return lambda e: (
        e.type == "b-a-o-c" and conflict(e)[0] == origin and "<__separation" in e.detail.xml
    )


def cancel_from(origin: str) -> object:
    return lambda e: e.type == "b-a-o-can" and conflict(e)[0] == origin


async def fly(port: int, fleet: Fleet, seconds: float, rate_hz: float = 10.0) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    start_s = loop.time()
    try:
        while (t := loop.time() - start_s) < seconds:
            for frames in fleet.frames(t):
                sock.sendto(b"".join(frames), ("127.0.0.1", port))
            await asyncio.sleep(1 / rate_hz)
    finally:
        sock.close()


async def alert_rules(data_dir: Path, partner: str, direction: str) -> dict[str, int]:
    store = await open_store("", data_dir)
    try:
        rows = await store.ledger_entries(partner, direction, 0, 100_000)
    finally:
        await store.close()
    counts: dict[str, int] = {}
    for row in rows:
        obj = json.loads(row.data)
        key = f"{obj['decision']}:{obj['rule']}"
        counts[key] = counts.get(key, 0) + 1
    return counts


@contextlib.asynccontextmanager
async def linked(tmp_path: Path) -> AsyncIterator[tuple[Org, Org]]:
    """ORG-A and ORG-B, each with a drone feed ``sim``, linked, releasing to each other."""
    a, b = Org(tmp_path, "ORG-A"), Org(tmp_path, "ORG-B")
    (tmp_path / "a-to-b.toml").write_text(policy("org-a->org-b", "org-b"))
    (tmp_path / "b-to-a.toml").write_text(policy("org-b->org-a", "org-a"))

    def feed(org: str) -> tuple[DroneFeed, ...]:
        return (DroneFeed(name="sim", kind="udp", address="127.0.0.1:0", org=org),)

    partner_a = a.partner(share_all=False, policy_file=str(tmp_path / "b-to-a.toml"))
    try:
        b.running = await start(
            config(b, (partner_a,), drone_feeds=feed("org-b"), federation_name="org-b"),
            any_port=True,
        )
        partner_b = b.partner(dial=b, share_all=False, policy_file=str(tmp_path / "a-to-b.toml"))
        a.running = await start(
            config(a, (partner_b,), drone_feeds=feed("org-a"), federation_name="org-a"),
            any_port=True,
        )
        await wait_up(a, "ORG-B")
        await wait_up(b, "ORG-A")
        yield a, b
    finally:
        for org in (a, b):
            if org.running is not None:
                await org.running.close(grace_s=2.0)
                org.running = None


Background = tuple[list[asyncio.Task[None]], list[Watcher]]


@pytest.fixture
async def background() -> AsyncIterator[Background]:
    """The test's flying and reading tasks and its pytak clients, stopped at teardown."""
    tasks: list[asyncio.Task[None]] = []
    watchers: list[Watcher] = []
    yield tasks, watchers
    for task in tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, asyncio.IncompleteReadError):
            await task
    for w in watchers:
        w.writer.close()
        with contextlib.suppress(OSError):
            await w.writer.wait_closed()
    while OPEN_CLIENTS:
        await OPEN_CLIENTS.pop().close()


async def test_both_sides_see_their_own_alert_and_the_partners_view_then_both_cancels(
    tmp_path: Path, background: Background
) -> None:
    tasks, watchers = background
    async with linked(tmp_path) as (a, b):
        assert a.running is not None
        assert b.running is not None
        wa, wb = await watcher(a.running.ports["tcp"]), await watcher(b.running.ports["tcp"])
        watchers += [wa, wb]
        tasks += [asyncio.create_task(wa.read()), asyncio.create_task(wb.read())]
        await asyncio.sleep(0.2)
        one, two = encounter("headon", ORIGIN, meet_s=6.0, speed=30.0)
        tasks.append(
            asyncio.create_task(fly(a.running.ports["drone:sim"], Fleet(vehicles=(one,)), 20))
        )
        tasks.append(
            asyncio.create_task(fly(b.running.ports["drone:sim"], Fleet(vehicles=(two,)), 20))
        )

        # Each side: its own server's alert, for its own drone against the partner's.
        _, own_a = await wa.wait(alert_from("org-a"), timeout=15.0)
        _, own_b = await wb.wait(alert_from("org-b"), timeout=15.0)
        sep_a, sep_b = detail_of(own_a, "__separation"), detail_of(own_b, "__separation")
        assert sep_a is not None
        assert sep_b is not None
        assert sep_a.get("a") == "org-a.sim.1"
        assert sep_b.get("a") == "org-b.sim.2"
        assert sep_a.get("b") != "org-b.sim.2"  # B's drone is known to A by its pseudonym
        assert "Conflict with [ORG-B] sim-2" in own_a.detail.xml or "Loss of" in own_a.detail.xml
        # ... and the partner's view of the same conflict, pseudonymised, with the same key.
        _, view_at_a = await wa.wait(alert_from("org-b"), timeout=10.0)
        _, view_at_b = await wb.wait(alert_from("org-a"), timeout=10.0)
        assert conflict(view_at_a)[1] == conflict(own_a)[1] == conflict(own_b)[1]
        assert conflict(view_at_b)[1] == conflict(own_b)[1]
        seen_by_b = detail_of(view_at_b, "__separation")
        assert seen_by_b is not None
        assert seen_by_b.get("a") != "org-a.sim.1"  # A's drone, pseudonymised for B
        assert seen_by_b.get("a") == sep_b.get("b")  # ... as B itself knows it
        assert b.running.gate is not None
        # B's own drone, by the name B released it to A as (B can map it back).
        assert seen_by_b.get("b") == b.running.gate.released_as("ORG-A", "org-b.sim.2")
        assert "<__release" in view_at_b.detail.xml
        assert "<__release" not in own_b.detail.xml

        # Latency: the alert's server time after the newest position of its pair before it.
        for got, alert, uids in ((wa, own_a, ("org-a.sim.1",)), (wb, own_b, ("org-b.sim.2",))):
            positions = [e.time for _, e in got.got if e.uid in uids and e.time <= alert.time]
            assert positions
            latency_ms = alert.time - max(positions)
            print(f"alert latency on {conflict(alert)[0]}: {latency_ms} ms after the position")

        # The drones pass and separate: each side's cancel, and the partner's.
        for w in (wa, wb):
            for origin in ("org-a", "org-b"):
                _, cancel = await w.wait(cancel_from(origin), timeout=25.0)
                assert conflict(cancel)[1] == conflict(own_a)[1]

    await verify_ledger(a.data_dir)
    await verify_ledger(b.data_dir)
    out_a = await alert_rules(a.data_dir, "ORG-B", "out")
    in_b = await alert_rules(b.data_dir, "ORG-A", "in")
    out_b = await alert_rules(b.data_dir, "ORG-A", "out")
    assert out_a.get("released:alerts", 0) >= 2  # at least an alert and its cancel
    assert out_b.get("released:alerts", 0) >= 2
    assert sum(v for k, v in in_b.items() if k.startswith("received")) >= out_a["released:alerts"]


def fence_event(uid: str, half_m: float) -> CotEvent:
    """A square no-fly zone drawn in ATAK around ORIGIN, breached on entry at any height."""
    now = int(time.time() * 1000)
    dlat = half_m / 111_320
    dlon = half_m / (111_320 * math.cos(math.radians(ORIGIN[0])))
    corners = [(-1, -1), (-1, 1), (1, 1), (1, -1)]
    links = "".join(
        f'<link point="{ORIGIN[0] + n * dlat},{ORIGIN[1] + e * dlon}"/>' for n, e in corners
    )
    return CotEvent(
        uid=uid, type="u-d-f", how="h-e", time=now, start=now, stale=now + 3_600_000,
        point=Point(*ORIGIN), detail=detail_from_xml(
            f'<contact callsign="No-fly A"/>{links}'
            '<__geofence trigger="Entry" monitor="All" elevationMonitored="false"/>'
        ),
    )  # fmt: skip


async def test_a_fence_drawn_on_a_and_released_to_b_raises_a_breach_for_bs_drone_on_both_sides(
    tmp_path: Path, background: Background
) -> None:
    tasks, watchers = background
    async with linked(tmp_path) as (a, b):
        assert a.running is not None
        assert b.running is not None
        wa, wb = await watcher(a.running.ports["tcp"]), await watcher(b.running.ports["tcp"])
        watchers += [wa, wb]
        tasks += [asyncio.create_task(wa.read()), asyncio.create_task(wb.read())]
        drawer = await CotClient.connect(a.running.ports["tcp"])
        await drawer.send(fence_event("FENCE-1", 60.0))
        # B has A's fence (released, pseudonymised) before B's drone takes off.
        await wb.wait(lambda e: e.type == "u-d-f", timeout=5.0)
        coordination_b = b.running.coordination
        assert coordination_b is not None
        async with asyncio.timeout(5):
            while not coordination_b.fences.fences:
                await asyncio.sleep(0.05)
        _, two = encounter("headon", ORIGIN, meet_s=6.0, speed=30.0)
        port = b.running.ports["drone:sim"]
        tasks.append(asyncio.create_task(fly(port, Fleet(vehicles=(two,)), 12)))

        def breach(origin: str) -> object:
            return lambda e: e.type == "b-a-g" and f'origin="{origin}"' in e.detail.xml

        _, on_b = await wb.wait(breach("org-b"), timeout=12.0)
        _, on_a = await wa.wait(breach("org-a"), timeout=12.0)
        mark_b, mark_a = detail_of(on_b, "__breach"), detail_of(on_a, "__breach")
        assert mark_b is not None
        assert mark_a is not None
        assert mark_b.get("track") == "org-b.sim.2"  # B's own drone
        assert mark_b.get("kind") == "entry"
        assert mark_b.get("fence_partner") == "ORG-A"  # the fence came from A
        assert mark_a.get("fence") == "FENCE-1"  # A's own fence ...
        assert mark_a.get("track") != "org-b.sim.2"  # ... and B's drone, by its pseudonym
        assert mark_a.get("track_partner") == "ORG-B"
        assert '<emergency type="Geo-fence Breached">' in on_a.detail.xml
        assert "sim-2 entered [ORG-A] No-fly A" in on_b.detail.xml
        # The drawer (A's author) hears A's breach too.
        await drawer.recv_until(lambda e: e.type == "b-a-g", timeout=5.0)


def intent_alert(e: CotEvent) -> bool:
    return e.type == "b-a-o-c" and "<__intent_conflict" in e.detail.xml


async def wait_for(condition: object, timeout: float) -> None:
    assert callable(condition)
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.05)


@pytest.mark.parametrize("apart_m", [0.0, 5000.0])
async def test_intersecting_missions_alert_both_sides_before_take_off_and_distant_ones_do_not(
    tmp_path: Path, background: Background, apart_m: float
) -> None:
    tasks, watchers = background
    async with linked(tmp_path) as (a, b):
        assert a.running is not None
        assert b.running is not None
        ca, cb = a.running.coordination, b.running.coordination
        assert ca is not None
        assert cb is not None
        wa, wb = await watcher(a.running.ports["tcp"]), await watcher(b.running.ports["tcp"])
        watchers += [wa, wb]
        tasks += [asyncio.create_task(wa.read()), asyncio.create_task(wb.read())]
        # Missions: each drone's pattern square (300 m) around its origin; nobody flies yet
        # into the other (the meeting is far in the future: a strategic check).
        one, _ = encounter("headon", ORIGIN, meet_s=3600.0)
        far = (ORIGIN[0] + apart_m / 111_320, ORIGIN[1])
        _, two = encounter("headon", far, meet_s=3600.0)
        tasks.append(
            asyncio.create_task(fly(a.running.ports["drone:sim"], Fleet(vehicles=(one,)), 2))
        )
        tasks.append(
            asyncio.create_task(fly(b.running.ports["drone:sim"], Fleet(vehicles=(two,)), 2))
        )
        # Both sides know both intents (their own and the partner's, released).
        await wait_for(lambda: len(ca.intents) == 2 and len(cb.intents) == 2, timeout=10.0)
        if apart_m:
            await asyncio.sleep(0.3)  # a wrong alert would be submitted in the same turn
            assert ca.intent_conflicts == cb.intent_conflicts == 0
            assert not any(intent_alert(e) for w in (wa, wb) for _, e in w.got)
            return
        for w in (wa, wb):
            for origin in ("org-a", "org-b"):  # its own server's view and the partner's
                _, alert = await w.wait(
                    lambda e, o=origin: intent_alert(e) and conflict(e)[0] == o, timeout=10.0
                )
                mark = detail_of(alert, "__intent_conflict")
                assert mark is not None
                assert mark.get("mission_a")
                assert mark.get("mission_b")
                assert "meet near" in alert.detail.xml
        own_a = next(e for _, e in wa.got if intent_alert(e) and conflict(e)[0] == "org-a")
        own_b = next(e for _, e in wb.got if intent_alert(e) and conflict(e)[0] == "org-b")
        assert conflict(own_a)[1] == conflict(own_b)[1]  # one conflict, two views
        mark_a = detail_of(own_a, "__intent_conflict")
        assert mark_a is not None
        assert mark_a.get("a") == "org-a.sim.1.mission"
        assert mark_a.get("mission_b") == "[ORG-B] sim-2 mission"
