"""The Store contract, checked the same way on every backend."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from accord.store.contract import (
    Backend,
    HistoryStore,
    LedgerStore,
    MissionStore,
    OutboxStore,
    PackageStore,
    Store,
    StoreError,
    VideoStore,
)
from accord.store.records import (
    BBox,
    HistoryQuery,
    LedgerCheckpoint,
    LedgerCosignature,
    LedgerEntry,
    LedgerReceipt,
    OutboxRow,
    Package,
    PackageQuery,
    Payload,
    StoredEvent,
    VideoFeed,
)

T0 = 1_780_000_000_000  # ms, a fixed instant
CONCERNS = (
    Backend,
    HistoryStore,
    PackageStore,
    VideoStore,
    LedgerStore,
    OutboxStore,
    MissionStore,
)


def members(protocol: type) -> set[str]:
    """What a protocol class itself declares: its methods and annotated attributes."""
    declared = {n for n, v in vars(protocol).items() if inspect.isfunction(v)}
    return {n for n in declared | set(vars(protocol).get("__annotations__", {})) if n[0] != "_"}


def test_store_is_its_concerns_and_nothing_besides() -> None:
    assert members(Store) == set()  # every method belongs to one concern
    seen: set[str] = set()
    for concern in CONCERNS:
        assert not members(concern) & seen, f"{concern.__name__} repeats another concern"
        seen |= members(concern)
    assert all(concern in Store.__mro__ for concern in CONCERNS)


@pytest.mark.parametrize("concern", CONCERNS, ids=lambda c: c.__name__)
async def test_every_backend_implements_every_concern(store: Store, concern: type) -> None:
    for name in members(concern):
        assert hasattr(store, name), f"{store.name} lacks {concern.__name__}.{name}"
        if inspect.isfunction(vars(concern).get(name)):
            method = getattr(store, name)
            assert inspect.iscoroutinefunction(method), f"{store.name}.{name} is not async"


def ev(
    uid: str = "u1",
    *,
    t: int = 0,
    type: str = "a-f-G-U-C",
    lat: float = 10.0,
    lon: float = 20.0,
    groups: tuple[str, ...] = ("A",),
    stale: int = 60_000,
) -> StoredEvent:
    return StoredEvent(
        uid=uid,
        type=type,
        how="m-g",
        time_ms=T0 + t,
        start_ms=T0 + t,
        stale_ms=T0 + t + stale,
        lat=lat,
        lon=lon,
        hae=100.5,
        callsign=f"cs-{uid}",
        groups=groups,
        payload=f"<event uid='{uid}' t='{t}'/>".encode(),
        payload_format=Payload.XML,
    )


def same(a: StoredEvent, b: StoredEvent) -> bool:
    return a._replace(id=0) == b._replace(id=0)


async def test_written_events_come_back_intact_and_in_time_order(store: Store) -> None:
    events = [ev("a", t=2000), ev("b", t=1000), ev("c", t=3000)]
    proto = ev("p", t=1500)._replace(payload=b"\x00\xff\xbf", payload_format=Payload.PROTO)
    await store.write_events([*events, proto], [])
    page = await store.history(HistoryQuery())
    assert [e.uid for e in page.events] == ["b", "p", "a", "c"]
    assert same(page.events[1], proto)
    assert same(page.events[0], events[1])
    assert page.next is None
    assert all(e.id > 0 for e in page.events)


async def test_history_filters_by_uid_type_prefix_and_time(store: Store) -> None:
    await store.write_events(
        [
            ev("a", t=0, type="a-f-G-U-C"),
            ev("a", t=10, type="a-f-G-U-C"),
            ev("b", t=20, type="a-h-G"),
            ev("c", t=30, type="b-m-p-s-m"),
            ev("d", t=40, type="a-f_G%"),
        ],
        [],
    )

    async def uids(**kw: object) -> list[str]:
        return [e.uid for e in (await store.history(HistoryQuery(**kw))).events]  # type: ignore[arg-type]

    assert await uids(uid="a") == ["a", "a"]
    assert await uids(type_prefix="a-") == ["a", "a", "b", "d"]
    assert await uids(type_prefix="a-f") == ["a", "a", "d"]
    assert await uids(type_prefix="a-f_") == ["d"]  # _ is a character, not a wildcard
    assert await uids(since_ms=T0 + 10, until_ms=T0 + 30) == ["a", "b"]
    assert await uids(uid="zzz") == []


async def test_history_bbox_is_exact_and_handles_the_antimeridian(store: Store) -> None:
    await store.write_events(
        [
            ev("in", lat=10.0, lon=20.0),
            ev("edge", t=1, lat=10.5, lon=20.5),
            ev("out", t=2, lat=10.0, lon=20.5000001),
            ev("east", t=3, lat=0.0, lon=179.9),
            ev("west", t=4, lat=0.0, lon=-179.9),
            ev("mid", t=5, lat=0.0, lon=0.0),
        ],
        [],
    )

    async def uids(box: BBox) -> list[str]:
        return [e.uid for e in (await store.history(HistoryQuery(bbox=box))).events]

    assert await uids(BBox(9.5, 19.5, 10.5, 20.5)) == ["in", "edge"]
    assert await uids(BBox(-1, 179, 1, -179)) == ["east", "west"]


async def test_bbox_and_time_range_combine(store: Store) -> None:
    await store.write_events(
        [ev(f"u{i}", t=i * 1000, lat=10 + i * 0.01, lon=20.0) for i in range(100)], []
    )
    page = await store.history(
        HistoryQuery(bbox=BBox(10.1, 19.0, 10.5, 21.0), since_ms=T0 + 20_000, until_ms=T0 + 40_000)
    )
    assert [e.uid for e in page.events] == [f"u{i}" for i in range(20, 40)]


async def test_pages_walk_every_event_once(store: Store) -> None:
    # Equal times: the cursor must order by id as well.
    await store.write_events([ev(f"u{i}", t=i // 3) for i in range(25)], [])
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = await store.history(HistoryQuery(limit=7, after=cursor))
        seen += [e.uid for e in page.events]
        pages += 1
        if page.next is None:
            break
        cursor = page.next
    assert seen == [f"u{i}" for i in range(25)]
    assert pages == 4


async def test_history_shows_only_what_the_callers_groups_may_see(store: Store) -> None:
    await store.write_events(
        [
            ev("a", groups=("A",)),
            ev("b", t=1, groups=("B",)),
            ev("ab", t=2, groups=("A", "B")),
            ev("a2", t=3, groups=("AA",)),  # a name that contains another
        ],
        [],
    )

    async def uids(visible: frozenset[str] | None) -> list[str]:
        return [e.uid for e in (await store.history(HistoryQuery(visible_to=visible))).events]

    assert await uids(frozenset({"A"})) == ["a", "ab"]
    assert await uids(frozenset({"B"})) == ["b", "ab"]
    assert await uids(frozenset()) == []
    assert await uids(None) == ["a", "b", "ab", "a2"]


async def test_latest_keeps_the_newest_event_per_uid(store: Store) -> None:
    await store.write_events([], [ev("a", t=100), ev("b", t=0)])
    await store.write_events([], [ev("a", t=50)])  # older: must not replace
    await store.write_events([], [ev("b", t=10)])
    a, b = await store.latest("a"), await store.latest("b")
    assert a is not None
    assert a.time_ms == T0 + 100
    assert b is not None
    assert b.time_ms == T0 + 10
    assert await store.latest("nobody") is None


async def test_latest_fresh_leaves_out_stale_events(store: Store) -> None:
    await store.write_events([], [ev("old", stale=1_000), ev("new", stale=600_000)])
    fresh = await store.latest_fresh(T0 + 10_000)
    assert [e.uid for e in fresh] == ["new"]


async def test_prune_by_age_and_by_count(store: Store) -> None:
    await store.write_events([ev(f"u{i}", t=i * 1000) for i in range(20)], [])
    assert await store.prune_history(T0 + 5_000, keep_newest=1_000_000) == 5
    stats = await store.history_stats()
    assert (stats.events, stats.oldest_ms, stats.newest_ms) == (15, T0 + 5000, T0 + 19000)
    assert await store.prune_history(0, keep_newest=4) == 11
    page = await store.history(HistoryQuery())
    assert [e.uid for e in page.events] == ["u16", "u17", "u18", "u19"]
    # Pruned rows are gone from the spatial index too.
    box = await store.history(HistoryQuery(bbox=BBox(-90, -180, 90, 180)))
    assert [e.uid for e in box.events] == ["u16", "u17", "u18", "u19"]


async def test_packages_add_find_update_delete(store: Store) -> None:
    pkg = Package(
        hash="ab" * 32,
        name="plan.zip",
        size=1234,
        keywords=("missionpackage", "ops"),
        groups=("A",),
        creator_uid="ANDROID-1",
        submitter="alice",
        submitted_ms=T0,
        lat=1.5,
        lon=2.5,
    )
    assert await store.add_package(pkg) == pkg
    assert await store.package(pkg.hash) == pkg
    # The same bytes shared again in another group: first metadata kept, groups joined.
    again = dataclasses.replace(pkg, name="other.zip", groups=("B",), submitted_ms=T0 + 5)
    merged = await store.add_package(again)
    assert merged == dataclasses.replace(pkg, groups=("A", "B"))
    assert await store.package(pkg.hash) == merged

    second = Package(hash="cd" * 32, name="b.zip", size=1, groups=("C",), submitted_ms=T0 + 9)
    await store.add_package(second)
    everything = await store.packages(PackageQuery())
    assert [p.hash for p in everything] == [second.hash, pkg.hash]  # newest first
    assert [p.hash for p in await store.packages(PackageQuery(visible_to=frozenset({"B"})))] == [
        pkg.hash
    ]
    assert await store.packages(PackageQuery(visible_to=frozenset())) == []
    assert [p.name for p in await store.packages(PackageQuery(keyword="ops"))] == ["plan.zip"]
    assert [p.name for p in await store.packages(PackageQuery(name="b.zip"))] == ["b.zip"]

    assert await store.update_package(pkg.hash, tool="private") is True
    assert (await store.package(pkg.hash)).tool == "private"  # type: ignore[union-attr]
    assert await store.update_package("00" * 32, tool="private") is False
    assert await store.delete_package(pkg.hash) is True
    assert await store.delete_package(pkg.hash) is False
    assert await store.package(pkg.hash) is None


async def test_video_feeds_add_replace_filter_delete(store: Store) -> None:
    feed = VideoFeed("v1", "Drone 1", "rtsp://10.0.0.5:8554/live", ("A",), {"fov": "60"})
    await store.put_video(feed)
    await store.put_video(VideoFeed("v2", "Gate", "rtsp://h:554/g", ("B",)))
    assert await store.videos(frozenset({"A"})) == [feed]
    replaced = dataclasses.replace(feed, alias="Drone One", active=False)
    await store.put_video(replaced)
    assert [v.alias for v in await store.videos(None)] == ["Drone One", "Gate"]
    assert await store.delete_video("v1") is True
    assert await store.delete_video("v1") is False
    assert [v.uid for v in await store.videos(None)] == ["v2"]


@pytest.mark.parametrize("bad", [{"limit": 0}, {"limit": 1001}])
def test_history_query_limits_are_checked(bad: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="limit"):
        HistoryQuery(**bad)  # type: ignore[arg-type]


async def test_one_batch_may_carry_the_same_uid_several_times(store: Store) -> None:
    await store.write_events([], [ev("a", t=5), ev("a", t=9), ev("a", t=7), ev("b", t=1)])
    await store.write_events([], [ev("a", t=8), ev("a", t=3)])  # both older than what is kept
    a = await store.latest("a")
    assert a is not None
    assert a.time_ms == T0 + 9
    assert [e.uid for e in await store.latest_fresh(T0)] == ["b", "a"]


# -- sharing ledger ------------------------------------------------------------------------------
def _ledger_rows(partner: str, direction: str, start: int, n: int) -> list[LedgerEntry]:
    return [
        LedgerEntry(partner, direction, i, f'{{"seq":{i}}}'.encode(), bytes([i % 256]) * 32)
        for i in range(start, start + n)
    ]


async def test_ledger_entries_come_back_in_index_order_by_page(store: Store) -> None:
    await store.ledger_append(_ledger_rows("org-b", "out", 0, 25))
    await store.ledger_append(_ledger_rows("org-b", "in", 0, 3))
    await store.ledger_append(_ledger_rows("org-c", "out", 0, 1))
    first = await store.ledger_entries("org-b", "out", 0, limit=10)
    assert [e.seq for e in first] == list(range(10))
    rest = await store.ledger_entries("org-b", "out", 10)
    assert [e.seq for e in rest] == list(range(10, 25))
    assert rest[0] == _ledger_rows("org-b", "out", 10, 1)[0]
    assert await store.ledger_size("org-b", "out") == 25
    assert await store.ledger_size("org-b", "in") == 3
    assert await store.ledger_size("org-x", "out") == 0
    assert await store.ledger_logs() == [("org-b", "in"), ("org-b", "out"), ("org-c", "out")]


async def test_ledger_append_is_all_or_nothing(store: Store) -> None:
    await store.ledger_append(_ledger_rows("org-b", "out", 0, 5))
    with pytest.raises(StoreError):
        await store.ledger_append(
            _ledger_rows("org-b", "out", 5, 3) + _ledger_rows("org-b", "out", 4, 1)
        )
    assert await store.ledger_size("org-b", "out") == 5
    await store.ledger_append([])


async def test_ledger_checkpoints_cosignatures_and_receipts_are_kept(store: Store) -> None:
    cp = LedgerCheckpoint("org-b", "out", 10, b"note 10\n\n\xe2\x80\x94 a sig\n")
    assert await store.add_ledger_checkpoint(cp) is True
    assert await store.add_ledger_checkpoint(cp._replace(note=b"other")) is False
    await store.add_ledger_checkpoint(cp._replace(size=5, note=b"note 5"))
    assert [c.size for c in await store.ledger_checkpoints("org-b", "out")] == [5, 10]
    assert (await store.ledger_checkpoints("org-b", "out"))[1] == cp
    assert await store.ledger_checkpoints("org-b", "in") == []
    assert await store.ledger_logs() == [("org-b", "out")]
    cosig = LedgerCosignature("org-b", "out", 10, "\u2014 org-b AAAA\n")
    await store.add_ledger_cosignature(cosig)
    await store.add_ledger_cosignature(cosig)
    assert await store.ledger_cosignatures("org-b", "out") == [cosig]
    receipt = LedgerReceipt("org-b", "out", 3, b"receipt")
    assert await store.ledger_receipted("org-b", "out") == 0
    assert await store.add_ledger_receipt(receipt) is True
    assert await store.ledger_receipted("org-b", "out") == 4
    assert await store.ledger_receipted("org-b", "in") == 0
    assert await store.add_ledger_receipt(receipt._replace(note=b"again")) is False
    assert await store.ledger_receipts("org-b", "out") == [receipt]


# -- federation store and forward ----------------------------------------------------------------
def _outbox(partner: str, first: int, n: int) -> list[OutboxRow]:
    return [OutboxRow(partner, s, b"frame %d" % s, T0 + s) for s in range(first, first + n)]


async def test_outbox_reads_in_order_from_a_seq_and_deletes_what_was_acknowledged(
    store: Store,
) -> None:
    await store.outbox_append(_outbox("org-b:outgoing", 1, 30))
    await store.outbox_append(_outbox("org-c:incoming", 1, 2))
    assert await store.outbox_read("org-b:outgoing", 0, limit=5) == _outbox("org-b:outgoing", 1, 5)
    assert await store.outbox_read("org-b:outgoing", 25) == _outbox("org-b:outgoing", 26, 5)
    assert await store.outbox_count("org-b:outgoing") == 30
    assert await store.outbox_delete("org-b:outgoing", 10) == 10
    assert await store.outbox_delete("org-b:outgoing", 10) == 0
    assert (await store.outbox_read("org-b:outgoing"))[0].seq == 11
    assert await store.outbox_count("org-b:outgoing") == 20
    assert await store.outbox_count("org-c:incoming") == 2
    assert await store.outbox_count("org-x:outgoing") == 0
    assert await store.outbox_read("org-x:outgoing") == []


async def test_outbox_append_is_all_or_nothing(store: Store) -> None:
    await store.outbox_append(_outbox("org-b:outgoing", 1, 3))
    with pytest.raises(StoreError):
        await store.outbox_append(_outbox("org-b:outgoing", 4, 2) + _outbox("org-b:outgoing", 3, 1))
    assert await store.outbox_count("org-b:outgoing") == 3
    await store.outbox_append([])


async def test_link_marks_only_rise_and_survive_per_link_and_kind(store: Store) -> None:
    assert await store.link_mark("org-b:outgoing", "sent") == 0
    await store.set_link_mark("org-b:outgoing", "sent", 7)
    await store.set_link_mark("org-b:outgoing", "sent", 5)
    await store.set_link_mark("org-b:outgoing", "received", 3)
    assert await store.link_mark("org-b:outgoing", "sent") == 7
    assert await store.link_mark("org-b:outgoing", "received") == 3
    assert await store.link_mark("org-b:incoming", "sent") == 0
