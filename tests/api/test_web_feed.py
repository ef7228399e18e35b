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

from accord.api.web_feed import (
    MAX_CLIENT_MESSAGE_BYTES,
    FeatureCache,
    FeatureQueue,
    FeedSettings,
    WebSink,
    decode_message,
)
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


def test_the_sink_counts_what_it_drops_and_coalesces() -> None:
    counters = Counters()
    sink = WebSink(FeedSettings(1, 1.0, lambda: BASE_MS, counters))
    assert sink.send([item("A"), item("A", "A2"), item("B")]) == 2
    assert (counters.queue_coalesced, counters.queue_dropped) == (1, 1)
    assert (sink.coalesced, sink.dropped) == (1, 1)


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
        for membership, sink in web_sinks:
            got = {o.event.uid for o in sink.queue.drain()}
            allowed = {uid for uid, s in sent.items() if may_reach(s, membership)}
            assert got == allowed, (membership, sent)
