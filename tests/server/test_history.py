"""The history writer: everything routed reaches the store, and nothing waits for it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from accord.cot.model import CotEvent, WireFormat
from accord.cot.outgoing import Outgoing
from accord.cot.proto import decode_proto, encode_proto
from accord.cot.xml import decode_xml, encode_xml
from accord.domain.groups import Membership
from accord.domain.metrics import Counters
from accord.server.history import HistoryRules, HistoryWriter
from accord.server.hub import Hub
from accord.store import records
from accord.store.contract import Store
from accord.store.opening import open_store
from accord.store.records import HistoryQuery, Payload, to_event
from tests.cot.samples import make_event, sa_event
from tests.server.fakes import Clock, RecordingSink
from tests.waiting import next_turn

NOW_MS = 1_700_000_000_000
A = frozenset({"A"})


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await open_store("", tmp_path)
    yield opened
    await opened.close()


def history_writer(store: Store, rules: HistoryRules | None = None, **kw: int) -> HistoryWriter:
    return HistoryWriter(store, rules or HistoryRules(), Counters(), wall_ms=Clock(NOW_MS), **kw)


async def test_routed_events_reach_history_and_latest_with_their_groups(store: Store) -> None:
    counters = Counters()
    arch = HistoryWriter(store, HistoryRules(), counters, wall_ms=Clock(NOW_MS))
    hub = Hub(counters, wall_ms=Clock(NOW_MS), new_uid=lambda: "x", recorder=arch)
    alice = hub.new_party(Membership.both(["A"]), "alice")
    hub.attach(alice, RecordingSink())
    first = sa_event("uid-alice", "ALICE", now_ms=NOW_MS)
    second = sa_event("uid-alice", "ALICE", now_ms=NOW_MS + 1000)
    hub.submit(alice, first)
    hub.submit(alice, make_event("marker-1", "b-m-p-s-m", now_ms=NOW_MS))
    hub.submit(alice, second)
    hub.submit(alice, make_event("ping", "t-x-c-t", now_ms=NOW_MS))  # a ping is not routed
    await arch.flush()
    page = await store.history(HistoryQuery())
    assert [(e.uid, e.time_ms) for e in page.events] == [
        ("uid-alice", NOW_MS),
        ("marker-1", NOW_MS),
        ("uid-alice", NOW_MS + 1000),
    ]
    assert {e.groups for e in page.events} == {("A",)}
    assert page.events[0].callsign == "ALICE"
    latest = await store.latest("uid-alice")
    assert latest is not None
    assert to_event(latest) == second
    assert counters.archived == 3


async def test_the_payload_is_kept_in_the_format_it_arrived_in(store: Store) -> None:
    arch = history_writer(store)
    xml = decode_xml(encode_xml(make_event("x", now_ms=NOW_MS)))
    proto = decode_proto(encode_proto(make_event("p", now_ms=NOW_MS)))
    assert proto.raw_format is WireFormat.PROTOBUF
    arch.record(xml, A)
    arch.record(proto, A)
    await arch.flush()
    events = (await store.history(HistoryQuery())).events
    assert [(e.uid, e.payload_format) for e in events] == [("x", Payload.XML), ("p", Payload.PROTO)]
    assert events[0].payload == xml.raw
    assert events[1].payload == proto.raw
    assert [to_event(e) for e in events] == [xml, proto]


async def test_an_event_made_here_is_stored_as_the_xml_its_clients_were_sent(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    arch = history_writer(store)
    made = make_event("made", now_ms=NOW_MS)  # no received bytes: a partner's, a drone's
    item = Outgoing(made)
    sent = item.frame(WireFormat.XML)  # what an XML client got
    encoded: list[str] = []

    def counting(event: CotEvent) -> bytes:
        encoded.append(event.uid)
        return encode_xml(event)

    monkeypatch.setattr(records, "encode_xml", counting)
    arch.record(made, A, item)
    arch.record(make_event("alone", now_ms=NOW_MS), A)  # nobody needed its XML yet
    await arch.flush()
    assert encoded == ["alone"]  # the frame already made was not encoded again
    events = (await store.history(HistoryQuery())).events
    assert events[0].payload == sent
    assert events[1].payload == encode_xml(make_event("alone", now_ms=NOW_MS))
    assert [to_event(e).uid for e in events] == ["made", "alone"]


async def test_skipped_types_stay_out_of_history_but_keep_their_latest(store: Store) -> None:
    arch = history_writer(store, HistoryRules(skip_types=("a-f-A-M",)))
    arch.record(make_event("drone", "a-f-A-M-H-Q", now_ms=NOW_MS), A)
    arch.record(make_event("person", "a-f-G-U-C", now_ms=NOW_MS), A)
    await arch.flush()
    assert [e.uid for e in (await store.history(HistoryQuery())).events] == ["person"]
    assert await store.latest("drone") is not None


async def test_a_full_queue_drops_and_counts_instead_of_waiting(store: Store) -> None:
    arch = history_writer(store, queue_events=3)
    for i in range(5):
        arch.record(make_event(f"u{i}", now_ms=NOW_MS + i), A)  # returns at once, every time
    assert arch.queued == 3
    assert arch.counters.archive_dropped == 2
    await arch.flush()
    assert [e.uid for e in (await store.history(HistoryQuery())).events] == ["u0", "u1", "u2"]


async def test_a_failing_store_loses_the_batch_not_the_writer(tmp_path: Path) -> None:
    broken = await open_store("", tmp_path / "broken")
    await broken.close()  # every write now fails
    arch = history_writer(broken)
    arch.record(make_event("u", now_ms=NOW_MS), A)
    await arch.flush()
    assert arch.counters.archive_failed == 1
    assert arch.queued == 0


async def test_retention_removes_old_events_and_keeps_the_newest(store: Store) -> None:
    day = 86_400_000
    arch = history_writer(store, HistoryRules(max_age_days=1, max_events=2))
    for i, age_days in enumerate((3, 0.5, 0.25, 0.1)):
        arch.record(make_event(f"u{i}", now_ms=NOW_MS - int(age_days * day)), A)
    await arch.flush()
    assert await arch.prune() == 2
    assert [e.uid for e in (await store.history(HistoryQuery())).events] == ["u2", "u3"]


async def test_flush_waits_for_the_batch_the_writer_task_has_in_flight(store: Store) -> None:
    arch = history_writer(store)
    task = asyncio.get_running_loop().create_task(arch.run())
    for i in range(3000):  # more than one batch
        arch.record(make_event(f"u{i}", now_ms=NOW_MS + i), A)
    await next_turn()  # the task takes the first batch and starts writing it
    await arch.flush()
    task.cancel()
    assert (await store.history_stats()).events == 3000
