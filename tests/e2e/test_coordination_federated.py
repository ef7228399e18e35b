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
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from lxml import etree

from accord.app import start
from accord.bridges.simulator import Fleet, encounter
from accord.config import DroneFeed
from accord.cot.model import CotEvent
from accord.cot.xml import decode_xml, parse_fragment
from accord.store.opening import open_store
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
name = "alerts"
types = ["b-a-*", "u-d-c-c", "t-x-d-d"]
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
    return lambda e: e.type == "b-a-o-c" and conflict(e)[0] == origin


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


async def test_both_sides_see_their_own_alert_and_the_partners_view_then_both_cancels(
    tmp_path: Path,
) -> None:
    a, b = Org(tmp_path, "ORG-A"), Org(tmp_path, "ORG-B")
    (tmp_path / "a-to-b.toml").write_text(policy("org-a->org-b", "org-b"))
    (tmp_path / "b-to-a.toml").write_text(policy("org-b->org-a", "org-a"))

    def feed(org: str) -> tuple[DroneFeed, ...]:
        return (DroneFeed(name="sim", kind="udp", address="127.0.0.1:0", org=org),)

    partner_a = a.partner(share_all=False, policy_file=str(tmp_path / "b-to-a.toml"))
    b.running = await start(
        config(b, (partner_a,), drone_feeds=feed("org-b"), federation_name="org-b"),
        any_port=True,
    )
    partner_b = b.partner(dial=b, share_all=False, policy_file=str(tmp_path / "a-to-b.toml"))
    a.running = await start(
        config(a, (partner_b,), drone_feeds=feed("org-a"), federation_name="org-a"),
        any_port=True,
    )
    watchers: list[Watcher] = []
    tasks: list[asyncio.Task[None]] = []
    try:
        await wait_up(a, "ORG-B")
        await wait_up(b, "ORG-A")
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
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, asyncio.IncompleteReadError):
                await task
        for w in watchers:
            w.writer.close()
        for org in (a, b):
            if org.running is not None:
                await org.running.close(grace_s=2.0)
                org.running = None

    await verify_ledger(a.data_dir)
    await verify_ledger(b.data_dir)
    out_a = await alert_rules(a.data_dir, "ORG-B", "out")
    in_b = await alert_rules(b.data_dir, "ORG-A", "in")
    out_b = await alert_rules(b.data_dir, "ORG-A", "out")
    assert out_a.get("released:alerts", 0) >= 2  # at least an alert and its cancel
    assert out_b.get("released:alerts", 0) >= 2
    assert sum(v for k, v in in_b.items() if k.startswith("received")) >= out_a["released:alerts"]
