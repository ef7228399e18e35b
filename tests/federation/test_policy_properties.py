"""The release policy on a link, as a property, and real UAS Tool captures through it.

A's outgoing LinkConnection releases to B's under the real PolicyGate with a policy Hypothesis
draws; the messages cross a LinkPair (no gRPC: the property runs at unit speed, so it tries
many more policies than a live pair could). tests/federation/test_policy_e2e.py keeps the same
checks over the real wire.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.cot.model import CotEvent, Point
from accord.cot.xml import decode_xml, detail_from_xml
from accord.federation.gate import PolicyGate
from accord.policy import Policy, decode_policy
from accord.policy.apply import type_matches
from accord.policy.transform import coarsen
from tests.e2e.clients import new_uid
from tests.federation.link_pair import B, LinkPair

CAPTURES = Path("/work/shared/data/captures/uas-tool")
if not CAPTURES.is_dir():
    CAPTURES = Path(__file__).parents[3] / "shared" / "data" / "captures" / "uas-tool"


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


def exchange(policy: Policy, events: list[CotEvent]) -> list[CotEvent]:
    """``events`` released by A under ``policy`` and received by B: what B delivers."""
    pair = LinkPair(gate_a=PolicyGate({B.name: policy}, key=b"k" * 32))
    pair.connect()
    pair.a.send(*events, now_ms=int(time.time() * 1000))
    pair.pump()
    return pair.b.delivered


@settings(max_examples=200, deadline=None)
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
    text: str, drawn: list[tuple[str, float, float]]
) -> None:
    policy = decode_policy(text.replace('partner = "org-b"', f'partner = "{B.name}"'))
    events = [event(new_uid("P"), t, lat, lon) for t, lat, lon in drawn]
    outcome = {e.uid: expected(policy, e) for e in events}
    released = {uid for uid, o in outcome.items() if o is not None}
    got = exchange(policy, events)
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


def test_uas_tool_captures_arrive_stripped_and_coarsened() -> None:
    policy = decode_policy(UAS_POLICY.replace('partner = "org-b"', f'partner = "{B.name}"'))
    captures = sorted(CAPTURES.glob("*.xml"))
    assert captures, f"no captures in {CAPTURES}"
    now = int(time.time() * 1000)
    sent = []
    for path in captures:
        ev = decode_xml(path.read_bytes())
        # Re-stamped to now (the captures are old, hence stale): same content otherwise.
        ev = replace(ev, time=now, start=now, stale=now + 10_000, raw=b"", raw_format=None)
        sent.append(ev)
    got = exchange(policy, sent)
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
