"""Properties over random events and random policies (Hypothesis)."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from accord.cot.model import UNKNOWN_VALUE, CotEvent, Point
from accord.cot.xml import decode_xml, detail_from_xml, encode_xml, escape_attr
from accord.policy.apply import (
    Delay,
    PolicyState,
    Release,
    Withhold,
    decide,
    rule_matches,
    rule_mismatch,
    select,
)
from accord.policy.geo import distance_m, grid_cell
from accord.policy.model import Area, Circle, Policy, Polygon, Rule, Transform, Withheld
from accord.policy.transform import coarsen, pseudonym
from tests.policy.helpers import NOW_MS

TYPES = ["a-f-G-U-C", "a-f-A-M-H-Q", "a-h-G", "a-n-A", "b-m-p-s-p-i", "b-t-f", "t-x-c", "b-m-r"]
GLOBS = ["a-f-*", "a-h-*", "a-?-A*", "b-*", "*", "b-m-p-s-p-i", "t-*", "a-f-G*"]
TAGS = ["contact", "track", "remarks", "__video", "sensor", "_flow-tags_", "shape", "status"]

lats = st.floats(-90, 90, allow_nan=False)
lons = st.floats(-180, 180, allow_nan=False)
grids = st.floats(1.0, 500_000.0, allow_nan=False)
errors = st.one_of(st.just(UNKNOWN_VALUE), st.floats(0, 10_000, allow_nan=False))
uids = st.text(st.characters(codec="ascii", categories=["L", "N", "P"]), min_size=1, max_size=40)


@st.composite
def points(draw: st.DrawFn) -> Point:
    return Point(draw(lats), draw(lons), draw(st.floats(-500, 20_000)), draw(errors), draw(errors))


@st.composite
def details(draw: st.DrawFn) -> str:
    parts = []
    for tag in draw(st.lists(st.sampled_from(TAGS), max_size=6)):
        parts.append(f'<{tag} a="{draw(st.integers())}"/>')
    for target in draw(st.lists(st.sampled_from(TYPES), max_size=3)):
        parts.append(f'<link uid="{escape_attr(draw(uids))}" type="{target}"/>')
    return "".join(parts)


@st.composite
def events(draw: st.DrawFn) -> CotEvent:
    time = NOW_MS - draw(st.integers(0, 120_000))
    return CotEvent(
        uid=draw(uids),
        type=draw(st.sampled_from(TYPES)),
        how="m-g",
        time=time,
        start=time,
        stale=time + 60_000,
        point=draw(points()),
        detail=detail_from_xml(draw(details())),
    )


AREAS = {
    "box": Area("box", Polygon(((10.0, 10.0), (10.0, 20.0), (-10.0, 20.0), (-10.0, 10.0)))),
    "dateline": Area(
        "dateline", Polygon(((-30.0, 170.0), (-30.0, -170.0), (30.0, -170.0), (30.0, 170.0)))
    ),
    "disc": Area("disc", Circle(0.0, 0.0, 2_000_000.0)),
}


@st.composite
def rules(draw: st.DrawFn, index: int) -> Rule:
    tags = st.frozensets(st.sampled_from(TAGS), max_size=3)
    return Rule(
        name=f"r{index}",
        types=tuple(draw(st.lists(st.sampled_from(GLOBS), max_size=2))),
        areas=tuple(draw(st.lists(st.sampled_from(sorted(AREAS)), max_size=1))),
        not_areas=tuple(draw(st.lists(st.sampled_from(sorted(AREAS)), max_size=1))),
        max_age_s=draw(st.one_of(st.none(), st.floats(0, 200))),
        release=draw(st.booleans()),
        transform=Transform(
            keep=draw(st.one_of(st.none(), tags)),
            strip=draw(tags),
            grid_m=draw(st.one_of(st.just(0.0), grids)),
            altitude_m=draw(st.sampled_from([0.0, 1.0, 10.0, 100.0])),
            delay_s=draw(st.sampled_from([0.0, 0.0, 30.0])),
            min_interval_s=draw(st.sampled_from([0.0, 1.0])),
        ),
    )


@st.composite
def policies(draw: st.DrawFn) -> Policy:
    count = draw(st.integers(0, 4))
    return Policy(
        name="random",
        partner=draw(st.sampled_from(["org-b", "org-c"])),
        version="sha256:0000000000000000",
        rules=tuple(draw(rules(i)) for i in range(count)),
        areas=AREAS,
        always_withhold=Withheld(
            tuple(draw(st.lists(st.sampled_from(GLOBS), max_size=1))),
            tuple(draw(st.lists(st.sampled_from(sorted(AREAS)), max_size=1))),
        ),
        pseudonymise=draw(st.booleans()),
        pseudonym_prefix="org-a.",
        secret=b"s" * 32,
    )


@settings(max_examples=300, deadline=None)
@given(events(), policies(), st.integers(0, 60_000))
def test_decisions_are_well_formed_and_withholding_sends_nothing(
    event: CotEvent, policy: Policy, later_ms: int
) -> None:
    state = PolicyState()
    now = NOW_MS + later_ms
    decision = decide(event, policy, now, state)
    assert state.counters.total() == 1
    if isinstance(decision, Withhold | Delay):
        assert not hasattr(decision, "event")
        return
    assert isinstance(decision, Release)
    rule = next(r for r in policy.rules if r.name == decision.rule)
    assert rule.release
    out = decision.event
    # The core decoder reads what goes out, and reads it back unchanged.
    again = decode_xml(encode_xml(out))
    assert replace(again, raw=b"", raw_format=None) == out
    assert out.detail.xml.count("<__release ") == 1
    if policy.pseudonymise:
        assert out.uid != event.uid
        assert out.uid == pseudonym(event.uid, b"s" * 32, policy.partner, "org-a.")
    for tag in ("__video", "_flow-tags_", "remarks", "sensor"):
        if rule.transform.keep is None or tag not in rule.transform.keep:
            assert f"<{tag} " not in out.detail.xml
    if rule.transform.grid_m > 0:
        cell = grid_cell(event.point.lat, event.point.lon, rule.transform.grid_m)
        assert (out.point.lat, out.point.lon) == (cell.lat, cell.lon)


@settings(max_examples=300, deadline=None)
@given(events(), policies(), st.integers(0, 60_000))
def test_deciding_picks_the_rule_an_explanation_shows(
    event: CotEvent, policy: Policy, later_ms: int
) -> None:
    now = NOW_MS + later_ms
    rule, withheld, _ = select(policy, event, now, explain=False)
    assert (rule, withheld) == select(policy, event, now)[:2]
    for each in policy.rules:
        assert rule_matches(each, policy, event, now) == (
            rule_mismatch(each, policy, event, now) is None
        )


@settings(max_examples=500, deadline=None)
@given(points(), grids)
def test_coarse_positions_stay_in_their_cell_and_ce_covers_the_move(
    point: Point, grid_m: float
) -> None:
    cell = grid_cell(point.lat, point.lon, grid_m)
    slack = 1e-9
    assert cell.south - slack <= point.lat <= cell.north + slack
    assert cell.west - slack <= point.lon <= cell.east + slack
    assert cell.south <= cell.lat <= cell.north
    assert cell.west <= cell.lon <= cell.east
    assert -90 <= cell.lat <= 90
    assert -180 <= cell.lon <= 180
    out = coarsen(point, grid_m, 0.0)
    assert (out.lat, out.lon) == (cell.lat, cell.lon)
    moved = distance_m(point.lat, point.lon, out.lat, out.lon)
    assert moved <= cell.radius_m + 1e-6
    if point.ce != UNKNOWN_VALUE:
        assert out.ce >= cell.radius_m
        assert out.ce >= point.ce


@given(uids, uids, st.binary(min_size=16, max_size=64), st.sampled_from(["", "org-a."]))
def test_pseudonyms_never_equal_the_uid_and_do_not_collide(
    a: str, b: str, key: bytes, prefix: str
) -> None:
    pa, pb = pseudonym(a, key, "org-b", prefix), pseudonym(b, key, "org-b", prefix)
    assert pa != a
    assert (pa == pb) == (a == b)
