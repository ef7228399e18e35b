"""The web feed's queue, its message decoding, and isolation through the real hub.

Isolation (issue 15): a web session is a party of the hub with its user's groups. Random ATAK
parties in random groups send SAs, markers and GeoChat; after every loop turn each web sink
must hold exactly the items of senders the oracle of ``tests/server/test_isolation.py`` lets
reach it (``S.inbound & R.outbound``), coalesced to the latest per uid: nothing from a group
it is not in, nothing allowed missing.
"""

from __future__ import annotations

import asyncio
import json

import uvloop
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accord.api.web_batches import FeatureCache, FeatureQueue, FeedSettings, WebSink
from accord.api.web_feed import MAX_CLIENT_MESSAGE_BYTES, decode_message
from accord.cot.outgoing import Outgoing
from accord.cot.xml import decode_xml, encode_xml
from accord.domain.flow import Push
from accord.domain.geochat import Sender, to_chat
from accord.domain.groups import Membership
from accord.domain.metrics import Counters
from accord.server.hub import Hub
from tests.e2e.clients import marker, sa
from tests.server.fakes import Clock
from tests.server.test_isolation import may_reach

BASE_MS = 1_700_000_000_000
GROUPS = ("Blue", "Red", "Green")


def item(uid: str, callsign: str = "X") -> Outgoing:
    return Outgoing(decode_xml(encode_xml(sa(uid, callsign))))


def test_a_newer_position_replaces_the_queued_one_and_the_bound_drops_the_rest() -> None:
    queue = FeatureQueue(2)
    assert queue.push(item("A")) is Push.QUEUED
    assert queue.push(item("A", "A2")) is Push.COALESCED
    assert queue.push(item("B")) is Push.QUEUED
    assert queue.push(item("C")) is Push.DROPPED
    assert queue.push(Outgoing(decode_xml(encode_xml(marker("M"))))) is Push.DROPPED
    assert queue.push(item("B", "B2")) is Push.COALESCED  # still room for a newer B
    drained = queue.drain()
    assert [(o.event.uid, o.event.detail.contact.callsign) for o in drained] == [  # type: ignore[union-attr]
        ("A", "A2"),
        ("B", "B2"),
    ]
    assert len(queue) == 0


async def test_the_sink_counts_what_it_drops_and_coalesces() -> None:
    counters = Counters()
    sink = WebSink(FeedSettings(1, 1.0, lambda: BASE_MS, counters))
    assert sink.send([item("A"), item("A", "A2"), item("B")]) == 2
    assert (counters.queue_coalesced, counters.queue_dropped) == (1, 1)
    assert (sink.coalesced, sink.dropped) == (1, 1)
    sink.settings.ticker.tick()
    assert uids(sink) == ["A"]


def test_browser_messages_other_than_chat_are_refused() -> None:
    assert decode_message('{"op":"chat","text":"hi"}') == {"op": "chat", "text": "hi"}
    for bad in (
        "not json",
        "[]",
        '{"op":"subscribe"}',
        '{"op":"chat","text":5}',
        '{"op":"chat","to_uid":{}}',
        json.dumps({"op": "chat", "text": "x" * MAX_CLIENT_MESSAGE_BYTES}),
    ):
        assert decode_message(bad) is None, bad


def test_each_event_is_encoded_once_for_every_web_session() -> None:
    cache, event = FeatureCache(size=2), item("A").event
    first = cache.text(event, BASE_MS)
    assert cache.text(event, BASE_MS) is first
    assert json.loads(first)["uid"] == "A"


def by_hand(settings_: FeedSettings) -> FeedSettings:
    """Ticks only when the test calls ``tick()`` (the interval is long and has just begun)."""
    settings_.flush_interval_s = 3600.0
    settings_.ticker.tick()
    return settings_


def uids(sink: WebSink) -> list[str]:
    """The uids of the features in the messages the tick gave ``sink``."""
    return [f["uid"] for body in sink.outbox for f in json.loads(body)["items"]]


membership_st = st.builds(Membership.both, st.frozensets(st.sampled_from(GROUPS), min_size=1))
step_st = st.tuples(st.integers(0, 5), st.sampled_from(("sa", "marker", "chat")))


@settings(
    max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    st.lists(membership_st, min_size=1, max_size=6),
    st.lists(membership_st, min_size=1, max_size=3),
    st.lists(st.lists(step_st, min_size=1, max_size=4), min_size=1, max_size=5),
)
def test_a_web_session_never_gets_an_item_its_groups_do_not_allow(
    senders: list[Membership], webs: list[Membership], turns: list[list[tuple[int, str]]]
) -> None:
    uvloop.run(_play(senders, webs, turns))


async def _play(
    senders: list[Membership], webs: list[Membership], turns: list[list[tuple[int, str]]]
) -> None:
    clock = Clock(BASE_MS)
    hub = Hub(Counters(), wall_ms=clock, new_uid=lambda: "notice")
    settings_ = FeedSettings(10_000, 1.0, clock, hub.counters)
    parties = []
    for i, membership in enumerate(senders):
        party = hub.new_party(membership, f"atak{i}")
        hub.attach(party, WebSink(settings_))  # the senders' own sinks are not checked
        parties.append(party)
    web_sinks = []
    for i, membership in enumerate(webs):
        party = hub.new_party(membership, f"web{i}")
        sink = WebSink(settings_)
        hub.attach(party, sink)
        web_sinks.append((membership, sink))
    for n, turn in enumerate(turns):
        sent: dict[str, Membership] = {}  # uid -> sender groups, this turn
        for who, kind in turn:
            index = who % len(parties)
            party, clock.ms = parties[index], clock.ms + 1
            if kind == "sa":
                event, uid = sa(f"ANDROID-{index}", f"ALPHA{index}"), f"ANDROID-{index}"
            elif kind == "marker":
                uid = f"M-{index}-{n}"
                event = marker(uid)
            else:
                chat = to_chat(Sender(f"ANDROID-{index}", f"A{index}"), "hi", clock.ms, f"{n}")
                event, uid = chat, chat.uid
            hub.submit(party, decode_xml(encode_xml(event)))
            sent[uid] = party.membership
        await asyncio.sleep(0)  # the hub's end-of-turn flush
        settings_.ticker.tick()
        for membership, sink in web_sinks:
            got = set(uids(sink))
            sink.outbox = ()
            allowed = {uid for uid, s in sent.items() if may_reach(s, membership)}
            assert got == allowed, (membership, sent)


async def test_sessions_of_the_same_groups_share_one_body_per_tick() -> None:
    clock = Clock(BASE_MS)
    hub = Hub(Counters(), wall_ms=clock, new_uid=lambda: "notice")
    settings_ = by_hand(FeedSettings(10_000, 1.0, clock, hub.counters))
    blue, red = Membership.both(frozenset({"Blue"})), Membership.both(frozenset({"Red"}))
    atak = hub.new_party(blue, "atak")
    hub.attach(atak, WebSink(settings_))
    webs = []
    for membership in (blue, blue, blue, red):
        sink = WebSink(settings_)
        hub.attach(hub.new_party(membership, "web"), sink)
        webs.append(sink)
    for turn in range(3):  # three hub turns within one tick
        hub.submit(atak, decode_xml(encode_xml(sa("ANDROID-1", "ALPHA", lat=10.0 + turn))))
        await asyncio.sleep(0)
    settings_.stats.bodies = 0
    settings_.ticker.tick()
    first, second, third, red_sink = webs
    assert first.outbox
    assert first.outbox is second.outbox is third.outbox
    assert settings_.stats.bodies == 1  # the Red session was handed nothing: no body
    assert red_sink.outbox == ()
    (body,) = first.outbox
    assert [(f["uid"], f["lat"]) for f in json.loads(body)["items"]] == [("ANDROID-1", 12.0)]
    assert first.coalesced == 2
    assert hub.counters.queue_coalesced >= 6


async def test_a_session_handed_its_own_selection_gets_its_own_body() -> None:
    """A turn one web session sends in leaves its own event out of its selection: it cannot
    share that turn's body, and the others still share theirs."""
    clock = Clock(BASE_MS)
    hub = Hub(Counters(), wall_ms=clock, new_uid=lambda: "notice")
    settings_ = by_hand(FeedSettings(10_000, 1.0, clock, hub.counters))
    blue = Membership.both(frozenset({"Blue"}))
    atak = hub.new_party(blue, "atak")
    hub.attach(atak, WebSink(settings_))
    parties, webs = [], []
    for _ in range(3):
        party, sink = hub.new_party(blue, "web"), WebSink(settings_)
        hub.attach(party, sink)
        parties.append(party)
        webs.append(sink)
    hub.submit(atak, decode_xml(encode_xml(sa("ANDROID-1", "ALPHA"))))
    hub.submit(parties[0], decode_xml(encode_xml(marker("WEB-MARK"))))
    await asyncio.sleep(0)
    settings_.stats.bodies = 0
    settings_.ticker.tick()
    sender, other, another = webs
    assert other.outbox is another.outbox
    assert settings_.stats.bodies == 3  # theirs, the web sender's, the ATAK sender's (a marker)
    assert sorted(uids(other)) == ["ANDROID-1", "WEB-MARK"]
    assert uids(sender) == ["ANDROID-1"]  # no echo of its own marker


async def test_a_session_still_writing_waits_coalescing_then_gets_the_latest() -> None:
    clock = Clock(BASE_MS)
    settings_ = by_hand(FeedSettings(10_000, 1.0, clock, Counters()))
    slow, quick = WebSink(settings_), WebSink(settings_)
    slow.writing = True  # its browser is still reading the last tick's messages
    for lat in (1.0, 2.0):
        turn = [Outgoing(decode_xml(encode_xml(sa("ANDROID-1", "A", lat=lat))))]
        slow.send(turn)
        quick.send(turn)
        settings_.ticker.tick()
        quick.outbox = ()
    assert slow.outbox == ()
    assert len(slow.queue) == 1
    assert slow.coalesced == 1
    slow.writing = False
    slow.send([Outgoing(decode_xml(encode_xml(marker("M"))))])
    settings_.ticker.tick()
    assert [(f["uid"], f.get("lat")) for f in json.loads(slow.outbox[0])["items"]] == [
        ("ANDROID-1", 2.0),
        ("M", 3.0),
    ]


async def test_the_ticker_runs_at_once_when_quiet_then_at_most_once_per_interval() -> None:
    settings_ = FeedSettings(10_000, 1.0, Clock(BASE_MS), Counters())
    settings_.flush_interval_s = 0.05
    sink, loop = WebSink(settings_), asyncio.get_running_loop()
    sink.send([item("A")])
    await asyncio.sleep(0)
    assert uids(sink) == ["A"]  # a quiet picture's first event goes at once
    sink.outbox = ()
    ticked = loop.time()
    sink.send([item("B")])
    while not sink.outbox:
        await asyncio.sleep(0.005)
    assert loop.time() - ticked >= 0.045
    assert uids(sink) == ["B"]
