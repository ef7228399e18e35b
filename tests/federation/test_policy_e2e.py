"""Two real servers: A releases to B under a written policy and both keep the sharing ledger."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from accord.app import Running, StartupError, start
from accord.cli import main
from accord.cot.model import CotEvent, Point
from accord.policy.transform import coarsen
from accord.store.opening import open_store
from tests.e2e.clients import OPEN_CLIENTS, marker, new_uid, sa
from tests.federation.test_link_e2e import Org, callsign, client, config, wait_up

pytestmark = pytest.mark.timeout(60)

AREA = "[[-10.0, -10.0], [-10.0, 10.0], [10.0, 10.0], [10.0, -10.0]]"
POLICY = f"""
name = "org-a->org-b/test"
partner = "org-b"

[area.shared]
polygon = {AREA}

[always_withhold]
types = ["b-m-p*"]

[[rule]]
name = "sa"
types = ["a-f-G*"]
areas = ["shared"]
grid_m = 100
strip = ["__video", "remarks"]
"""


class Pair:
    def __init__(self, a: Org, b: Org) -> None:
        self.a, self.b = a, b

    @property
    def ra(self) -> Running:
        assert self.a.running is not None
        return self.a.running

    @property
    def rb(self) -> Running:
        assert self.b.running is not None
        return self.b.running

    async def stop(self) -> None:
        for org in (self.a, self.b):
            if org.running is not None:
                await org.running.close(grace_s=2.0)
                org.running = None


async def launch_pair(tmp_path: Path, policy: str) -> Pair:
    """B listens (shares all with A); A dials B and releases under ``policy``."""
    a, b = Org(tmp_path, "ORG-A"), Org(tmp_path, "ORG-B")
    policy_file = tmp_path / "a-to-b.toml"
    policy_file.write_text(policy)
    b.running = await start(config(b, (a.partner(),)), any_port=True)
    partner_b = b.partner(dial=b, share_all=False, policy_file=str(policy_file))
    a.running = await start(config(a, (partner_b,)), any_port=True)
    await wait_up(a, "ORG-B")
    await wait_up(b, "ORG-A")
    return Pair(a, b)


@pytest.fixture
async def pair_factory(tmp_path: Path) -> AsyncIterator[Callable[[str], Any]]:
    made: list[Pair] = []

    async def make(policy: str = POLICY) -> Pair:
        p = await launch_pair(tmp_path, policy)
        made.append(p)
        return p

    yield make
    while OPEN_CLIENTS:
        await OPEN_CLIENTS.pop().close()
    for p in made:
        await p.stop()


async def verify_ledger(data_dir: Path) -> str:
    """`accord ledger verify` on a stopped server's data dir (in a thread: it runs its own
    event loop)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = await asyncio.to_thread(main, ["ledger", "verify", "--data-dir", str(data_dir)])
    assert code == 0, out.getvalue()
    return out.getvalue()


async def ledger_counts(data_dir: Path, partner: str, direction: str) -> dict[str, int]:
    store = await open_store("", data_dir)
    try:
        rows = await store.ledger_entries(partner, direction, 0, 100_000)
    finally:
        await store.close()
    counts: dict[str, int] = {}
    for row in rows:
        decision = json.loads(row.data)["decision"]
        counts[decision] = counts.get(decision, 0) + 1
    return counts


async def test_b_sees_only_what_the_policy_releases_in_the_shape_it_says(
    pair_factory: Any, tmp_path: Path
) -> None:
    pair: Pair = await pair_factory()
    alice = await client(pair.ra)
    bob = await client(pair.rb)
    await alice.send(marker("marker-1"))
    uid = new_uid()
    extra = '<__video url="rtsp://10.0.0.1/secret"/><remarks>the password is x</remarks>'
    await alice.send(sa(uid, "alice", lat=1.23456, lon=2.34567, extra=extra))
    got = await bob.recv_until(lambda e: e.uid in (uid, "marker-1"))
    assert got.uid == uid
    expected = coarsen(Point(1.23456, 2.34567, 10.0, 5.0, 9999999.0), 100, 0)
    assert got.point.lat == pytest.approx(expected.lat, abs=1e-7)
    assert got.point.lon == pytest.approx(expected.lon, abs=1e-7)
    assert (got.point.lat, got.point.lon) != (1.23456, 2.34567)
    xml = got.detail.xml
    assert "__video" not in xml
    assert "remarks" not in xml
    assert "<__release" in xml
    assert 'rule="sa"' in xml
    assert callsign(got) == "[ORG-A] alice"
    # marker-1 went first the same ordered way (alice's session, A's hub, the link's stream),
    # so bob, who got the SA and not the marker before it, cannot get the marker any more.
    decisions = pair.ra.gate.decisions("ORG-B") if pair.ra.gate else {}
    assert decisions["sa"]["release"] >= 1
    assert decisions["(always_withhold)"]["withhold"] == 1
    await pair.stop()

    await verify_ledger(pair.a.data_dir)
    await verify_ledger(pair.b.data_dir)
    out_a = await ledger_counts(pair.a.data_dir, "ORG-B", "out")
    in_b = await ledger_counts(pair.b.data_dir, "ORG-A", "in")
    assert out_a["withheld"] >= 1
    assert out_a["released"] == in_b["received"] >= 1


async def test_a_bad_policy_is_refused_at_start_naming_line_and_key(tmp_path: Path) -> None:
    a, b = Org(tmp_path, "ORG-A"), Org(tmp_path, "ORG-B")
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\npartner = "org-b"\n[[rule]]\nname = "r"\ngrid_m = -5\n')
    partner_b = b.partner(dial=None, share_all=False, policy_file=str(bad))
    with pytest.raises(StartupError, match=r"bad\.toml:5: .*grid_m"):
        await start(config(a, (partner_b,)), any_port=True)


async def test_a_release_delay_holds_the_event_until_it_is_due(pair_factory: Any) -> None:
    delayed = POLICY.replace('strip = ["__video", "remarks"]', "delay_s = 0.4")
    pair: Pair = await pair_factory(delayed)
    alice = await client(pair.ra)
    bob = await client(pair.rb)
    uid = new_uid()
    event = sa(uid, "alice")
    await alice.send(event)
    got = await bob.recv_until(lambda e: e.uid == uid, timeout=5.0)
    # Due at the event's time + the delay (the clock A decides by): never heard before it.
    assert time.time() * 1000 >= event.time + 400
    assert "<__release" in got.detail.xml


async def test_an_edited_policy_takes_effect_on_reload_and_a_bad_one_changes_nothing(
    pair_factory: Callable[[str], Any], tmp_path: Path
) -> None:
    p = await pair_factory(POLICY)
    alice = await client(p.ra)
    bob = await client(p.rb)
    await alice.send(marker("before"))
    after = new_uid()  # released, and behind the marker on the same ordered way
    await alice.send(sa(after, "alice"))
    got: list[CotEvent] = []
    await bob.recv_until(lambda e: got.append(e) or e.uid == after)
    assert [e.uid for e in got] == [after]  # markers are always withheld

    policy_file = tmp_path / "a-to-b.toml"
    released = POLICY.replace('types = ["b-m-p*"]', 'types = ["t-x-*"]') + (
        '\n[[rule]]\nname = "markers"\ntypes = ["b-m-p*"]\n'
    )
    policy_file.write_text(released)
    ok, what = p.ra.reload_policies()
    assert ok, what
    assert "org-b" in what.lower()
    await alice.send(marker("after"))
    assert (await bob.recv_until(lambda e: e.uid == "after")).uid == "after"

    policy_file.write_text(released + "\n[[rule]]\nname = 'broken'\ntypes = 3\n")
    ok, what = p.ra.reload_policies()
    assert not ok
    assert "a-to-b.toml" in what
    assert p.ra.reload_policies()[0] is False  # still broken; the last good one stays
    await alice.send(marker("still"))
    assert (await bob.recv_until(lambda e: e.uid == "still")).uid == "still"
