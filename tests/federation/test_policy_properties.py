"""The release policy over a live link, as a property, and real UAS Tool captures through it.

One pair of servers (A releases to B under a policy the test swaps per example) runs on an event
loop in a background thread for the whole module; Hypothesis drives examples synchronously and
runs each one's traffic on that loop.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accord.cot.model import CotEvent, Point
from accord.cot.xml import decode_xml, detail_from_xml
from accord.policy import Policy, decode_policy
from accord.policy.apply import type_matches
from accord.policy.transform import coarsen
from tests.e2e.clients import CotClient, new_uid
from tests.federation.test_policy_e2e import POLICY, Pair, launch_pair

pytestmark = pytest.mark.timeout(120)
T = TypeVar("T")
CAPTURES = Path("/work/shared/data/captures/uas-tool")
if not CAPTURES.is_dir():
    CAPTURES = Path(__file__).parents[3] / "shared" / "data" / "captures" / "uas-tool"


class Live:
    """The servers and a client on each side, on a loop in another thread."""

    def __init__(self, tmp: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.pair: Pair = self.run(launch_pair(tmp, POLICY))
        self.alice: CotClient = self.run(CotClient.connect(self.pair.ra.ports["tcp"]))
        self.bob: CotClient = self.run(CotClient.connect(self.pair.rb.ports["tcp"]))
        self.run(asyncio.sleep(0.1))

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def set_policy(self, policy: Policy) -> None:
        gate = self.pair.ra.gate
        assert gate is not None

        async def swap() -> None:
            gate.set_policy("ORG-B", policy)

        self.run(swap())

    def close(self) -> None:
        async def stop() -> None:
            await self.alice.close()
            await self.bob.close()
            await self.pair.stop()

        self.run(stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    servers = Live(tmp_path_factory.mktemp("policy-live"))
    yield servers
    servers.close()


TYPES = ["a-f-G-U-C", "a-h-G", "a-f-A-M-H-Q", "b-m-p-s-m"]
RULE = """
[[rule]]
name = "r{i}"
types = ["{glob}"]
{body}
"""


@st.composite
def policies(draw: st.DrawFn) -> str:
    """A policy from templates: a few rules over type globs, each release (maybe coarsened,
    maybe letting remarks through) or withhold; maybe an always_withhold."""
    globs = ["a-f-*", "a-h-*", "a-f-A-*", "b-m-p*", "*"]
    text = 'name = "prop"\npartner = "org-b"\n'
    if draw(st.booleans()):
        text += f'[always_withhold]\ntypes = ["{draw(st.sampled_from(globs))}"]\n'
    for i in range(draw(st.integers(1, 3))):
        action = draw(st.sampled_from(["release", "withhold"]))
        if action == "withhold":
            body = 'action = "withhold"'
        else:
            grid = draw(st.sampled_from([0, 100, 1000]))
            body = f"grid_m = {grid}" if grid else ""
            if draw(st.booleans()):  # remarks are stripped unless allowed
                body += '\nallow = ["remarks"]'
        text += RULE.format(i=i, glob=draw(st.sampled_from(globs)), body=body)
    return text


def event(uid: str, type_: str, lat: float, lon: float) -> CotEvent:
    now = int(time.time() * 1000)
    return CotEvent(
        uid=uid,
        type=type_,
        how="h-e",
        time=now,
        start=now,
        stale=now + 300_000,
        point=Point(lat, lon, 100.0, 9999999.0, 9999999.0),
        detail=detail_from_xml("<remarks>private note</remarks>"),
    )


def expected(policy: Policy, ev: CotEvent) -> tuple[float, bool] | None:
    """(grid, remarks stripped) for a release, None for a withhold (no areas, ages, delays)."""
    if type_matches(policy.always_withhold.types, ev.type) and policy.always_withhold.types:
        return None
    for rule in policy.rules:
        if type_matches(rule.types, ev.type):
            if not rule.release:
                return None
            return rule.transform.grid_m, "remarks" not in rule.transform.allow
    return None


async def exchange(live: Live, events: list[CotEvent], released: set[str]) -> list[CotEvent]:
    for ev in events:
        await live.alice.send(ev)
    got: list[CotEvent] = []
    uids = {e.uid for e in events}
    want = set(released)
    async with asyncio.timeout(10):
        while want:
            e = await live.bob.recv()
            if e.uid in uids:
                got.append(e)
                want.discard(e.uid)
    got += [e for e in await live.bob.expect_silence(0.25) if e.uid in uids]
    return got


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    text=policies(),
    drawn=st.lists(
        st.tuples(
            st.sampled_from(TYPES),
            st.floats(-60, 60, allow_nan=False),
            st.floats(-170, 170, allow_nan=False),
        ),
        min_size=1,
        max_size=5,
    ),
)
def test_nothing_withheld_arrives_and_every_release_arrives_once_as_the_rule_says(
    live: Live, text: str, drawn: list[tuple[str, float, float]]
) -> None:
    policy = decode_policy(text)
    live.set_policy(policy)
    events = [event(new_uid("P"), t, lat, lon) for t, lat, lon in drawn]
    outcome = {e.uid: expected(policy, e) for e in events}
    released = {uid for uid, o in outcome.items() if o is not None}
    got = live.run(exchange(live, events, released))
    uids = [e.uid for e in got]
    assert sorted(uids) == sorted(released), text  # each release once, no withheld item
    sent = {e.uid: e for e in events}
    for e in got:
        rule = outcome[e.uid]
        assert rule is not None
        grid, stripped = rule
        want = coarsen(sent[e.uid].point, grid, 0)
        assert e.point.lat == pytest.approx(want.lat, abs=1e-6)
        assert e.point.lon == pytest.approx(want.lon, abs=1e-6)
        assert ("remarks" in e.detail.xml) != stripped
        assert "<__release" in e.detail.xml


UAS_POLICY = """
name = "org-a->org-b/uas"
partner = "org-b"

[[rule]]
name = "drones"
types = ["a-f-A-M-*"]
grid_m = 100
altitude_m = 10
strip = ["__video", "remarks"]
"""


def test_uas_tool_captures_arrive_stripped_and_coarsened(live: Live) -> None:
    live.set_policy(decode_policy(UAS_POLICY))
    captures = sorted(CAPTURES.glob("*.xml"))
    assert captures, f"no captures in {CAPTURES}"
    now = int(time.time() * 1000)
    sent = []
    for path in captures:
        ev = decode_xml(path.read_bytes())
        # Re-stamped to now (the captures are old, hence stale): same content otherwise.
        ev = replace(ev, time=now, start=now, stale=now + 10_000, raw=b"", raw_format=None)
        sent.append(ev)
    got = live.run(exchange(live, sent, {e.uid for e in sent}))
    assert sorted(e.uid for e in got) == sorted(e.uid for e in sent)
    by_uid = {e.uid: e for e in sent}
    for e in got:
        original = by_uid[e.uid]
        want = coarsen(original.point, 100, 10)
        assert e.point.lat == pytest.approx(want.lat, abs=1e-6)
        assert e.point.lon == pytest.approx(want.lon, abs=1e-6)
        assert e.point.hae == pytest.approx(want.hae, abs=1e-6)
        assert e.point.ce == pytest.approx(want.ce, abs=1e-6)
        xml = e.detail.xml
        for secret in ("__video", "rtsp://", "remarks", "<sensor", "_route", "ANDROID-"):
            assert secret not in xml, (secret, xml)
        assert "<__release" in xml
        assert 'rule="drones"' in xml
        assert "<track" in xml
