"""The link's state machine without gRPC: two LinkConnections back to back (LinkPair)."""

from __future__ import annotations

from accord.cot.model import CotEvent, Point
from accord.cot.xml import detail_from_xml
from accord.federation.codec import flow_tags, to_federated
from accord.federation.connection import (
    BATCH_FRAMES,
    FEATURES,
    ROL_QUEUE_MESSAGES,
    LinkConnection,
    Own,
    Seen,
    backoff_s,
)
from accord.federation.proto import fig_pb2
from tests.federation.link_pair import NOW_MS, A, B, Journal, LinkPair, ShareAll, partner


def sa(uid: str, *, type_: str = "a-f-G-U-C", detail: str = "") -> CotEvent:
    xml = detail or f'<contact callsign="{uid}" endpoint="*:-1:stcp"/>'
    return CotEvent(
        uid, type_, "m-g", NOW_MS, NOW_MS, NOW_MS + 60_000, Point(1.0, 2.0), detail_from_xml(xml)
    )


def uids(events: list[CotEvent]) -> list[str]:
    return [e.uid for e in events]


def test_an_accord_partner_gets_batches_and_every_event_arrives_once_in_order() -> None:
    pair = LinkPair()
    pair.connect()
    sent = [f"u{i}" for i in range(1200)]
    assert pair.a.send(*(sa(u) for u in sent)) == 1200
    pair.pump()
    assert uids(pair.b.delivered) == sent
    # 1200 frames in ceil(1200 / BATCH_FRAMES) accordBatch messages, not 1200 messages.
    assert len(pair.a.written) == -(-1200 // BATCH_FRAMES)
    assert pair.a.conn.messages_out == len(pair.a.written)
    assert pair.a.conn.view().extensions == ("batch", "store-forward")
    assert (pair.a.conn.events_out, pair.b.conn.events_in) == (1200, 1200)


def test_a_tak_server_gets_one_event_per_message_and_nothing_stays_in_the_outbox() -> None:
    pair = LinkPair(features_b=0)
    pair.connect()
    pair.a.send(sa("u1"), sa("u2"), sa("u3"))
    assert pair.a.outbox is not None
    assert len(pair.a.outbox.rows[pair.a.conn.key]) == 3  # kept until written
    messages = pair.a.outgoing()
    assert len(messages) == 3
    assert all(not fig_pb2.FederatedEvent.FromString(m).accordBatch for m in messages)
    # It cannot acknowledge: what went into its stream counts as delivered.
    assert pair.a.outbox.rows[pair.a.conn.key] == {}
    assert pair.a.conn.view().extensions == ()


def test_the_rule_that_released_an_event_goes_with_its_frame_into_the_journal() -> None:
    class ByType(ShareAll):
        def release(self, event, partner, now_ms):  # type: ignore[no-untyped-def]
            released = super().release(event, partner, now_ms)
            if released is None:
                return None
            return type(released)(released.event, f"rule-for-{event.type}", "v7")

    pair = LinkPair(gate_a=ByType(refuse=("b-m-p",)))
    pair.connect()
    pair.a.send(sa("u1"), sa("m1", type_="b-m-p-s-m"), sa("d1", type_="a-h-G"), sa("u2"))
    releases = pair.a.journal.releases
    assert [(seq, rule, policy) for _, seq, rule, policy, _ in releases] == [
        (1, "rule-for-a-f-G-U-C", "v7"),
        (2, "rule-for-a-h-G", "v7"),
        (3, "rule-for-a-f-G-U-C", "v7"),
    ]
    assert pair.a.conn.withheld == 1
    pair.pump()
    # B's mirror has exactly the bytes A's ledger recorded, in the same order.
    assert [frame for *_, frame in releases] == [f for _, _, f in pair.b.journal.receipts]
    assert [seq for _, seq, _ in pair.b.journal.receipts] == [1, 2, 3]


def test_after_a_reconnect_the_unacknowledged_are_resent_once_and_resends_are_dropped() -> None:
    pair = LinkPair()
    pair.connect()
    pair.a.send(sa("u1"), sa("u2"))
    pair.pump()
    # B stored u1, u2 and acknowledged them; u3, u4 arrive but the stream breaks before B
    # stored their marks, so its acknowledgement at the reconnect still says 2.
    pair.a.send(sa("u3"), sa("u4"))
    in_flight = pair.a.outgoing()
    pair.disconnect()
    pair.a.send(sa("u5"))  # while down: to the outbox only
    for message in in_flight:
        pair.b.delivered += pair.b.conn.receive(message, NOW_MS)
    pair.connect()
    pair.pump()
    assert uids(pair.b.delivered) == ["u1", "u2", "u3", "u4", "u5"]
    assert pair.b.conn.duplicates == 2  # u3 and u4 came again from A's outbox
    assert pair.a.outbox is not None
    assert pair.a.outbox.rows[pair.a.conn.key] == {}  # all acknowledged


def test_a_full_queue_is_caught_up_from_the_store_in_order() -> None:
    pair = LinkPair(queue_frames=3)
    pair.connect()
    pair.a.send(*(sa(f"u{i}") for i in range(10)))  # 7 skip the queue, none are lost
    assert pair.a.conn.dropped == 0
    pair.pump()
    assert uids(pair.b.delivered) == [f"u{i}" for i in range(10)]
    pair.a.send(sa("after"))
    pair.pump()
    assert uids(pair.b.delivered)[-1] == "after"
    assert pair.b.conn.duplicates == 0


def test_a_full_queue_without_a_store_drops_and_journals_the_drop_with_its_rule() -> None:
    pair = LinkPair(durable=False, queue_frames=2)
    pair.connect()
    assert pair.a.send(sa("u1"), sa("u2"), sa("u3")) == 2
    assert pair.a.conn.dropped == 1
    assert [(p, rule) for p, rule, _ in pair.a.journal.drops] == [("Org B", "everything")]
    pair.pump()
    assert uids(pair.b.delivered) == ["u1", "u2"]


def test_nothing_is_taken_while_down_without_a_store() -> None:
    pair = LinkPair(durable=False)
    assert pair.a.send(sa("u1")) == 0
    assert pair.a.journal.releases == []


def test_an_event_never_goes_back_to_a_server_it_came_through() -> None:
    pair = LinkPair()
    pair.connect()
    pair.b.send(sa("from-b"))
    pair.pump()
    (relayed,) = pair.a.delivered
    assert flow_tags(relayed) == (B.server_id,)
    assert pair.a.send(relayed) == 0  # offered back to B: dropped
    assert pair.a.conn.dropped == 1


def test_a_loop_and_a_second_copy_by_another_path_are_dropped_on_receipt() -> None:
    seen = Seen()
    c = LinkConnection(
        partner(Own("accord-cccccccccccccccc", "Org C")),
        "incoming",
        gate=ShareAll(),
        journal=Journal(),
        own=A,
        seen=seen,
        now_s=0.0,
    )
    c.hello(FEATURES, 0.0)
    ours = to_federated(sa("x"), [(A.server_id, "Org A")], 8).SerializeToString()
    assert c.receive(ours, NOW_MS) == []  # it went round: A is in its provenance
    via_b = to_federated(sa("y"), [(B.server_id, "Org B")], 8).SerializeToString()
    assert uids(c.receive(via_b, NOW_MS)) == ["y"]
    assert c.receive(via_b, NOW_MS) == []  # the same event again (another path)
    assert c.dropped == 2


def test_bad_messages_are_dropped_and_counted_and_the_link_goes_on() -> None:
    pair = LinkPair()
    pair.connect()
    conn = pair.b.conn
    assert conn.receive(b"\xff\xff not protobuf", NOW_MS) == []
    nameless = fig_pb2.FederatedEvent()
    nameless.event.lat = 1.0
    assert conn.receive(nameless.SerializeToString(), NOW_MS) == []
    note = fig_pb2.FederatedEvent()  # a TAK Server's contact presence note: no event, no drop
    note.contact.operation, note.contact.uid = fig_pb2.CREATE, "tak-uid"
    assert conn.receive(note.SerializeToString(), NOW_MS) == []
    assert conn.dropped == 2
    pair.a.send(sa("fine"))
    pair.pump()
    assert uids(pair.b.delivered) == ["fine"]


def test_a_link_that_comes_up_forgets_its_last_error() -> None:
    conn = LinkPair().a.conn
    assert conn.set_state("connecting", 1.0)
    assert conn.set_state("down", 2.0, "Connection refused")
    assert conn.last_error == "Connection refused"
    conn.set_state("connecting", 3.0)
    assert conn.last_error == "Connection refused"  # still the reason it is not up
    assert conn.set_state("up", 4.0)
    assert (conn.state, conn.since_s, conn.last_error) == ("up", 4.0, "")
    assert not conn.set_state("up", 5.0)
    assert conn.since_s == 4.0


def test_an_incoming_link_of_a_partner_we_dial_is_in_use_only_once_it_dialled() -> None:
    pair = LinkPair()
    assert pair.a.conn.in_use  # outgoing: always
    assert pair.b.conn.in_use  # incoming from a partner without an address: the only way
    dialled = LinkConnection(
        partner(B, address="127.0.0.1:1"),
        "incoming",
        gate=ShareAll(),
        journal=Journal(),
        own=A,
        seen=Seen(),
        now_s=0.0,
    )
    assert not dialled.in_use
    dialled.hello(FEATURES, 1.0)
    assert dialled.in_use


def test_an_accepted_stream_expires_without_health_checks() -> None:
    conn = LinkPair().b.conn
    conn.hello(FEATURES, 100.0)
    assert not conn.health_expired(114.0, 15.0)
    conn.health(110.0)
    assert not conn.health_expired(125.0, 15.0)
    assert conn.health_expired(125.5, 15.0)


def test_the_rol_queue_is_bounded_and_closed_drops_nothing_in() -> None:
    conn = LinkPair().a.conn
    conn.rol_send(b"before")
    assert conn.rol_messages() == []  # not open: nothing kept
    conn.rol_open()
    for n in range(ROL_QUEUE_MESSAGES + 5):
        conn.rol_send(b"%d" % n)
    assert len(conn.rol_messages()) == ROL_QUEUE_MESSAGES
    conn.rol_close()
    assert not conn.rol_streaming


def test_backoff_doubles_to_a_ceiling_with_jitter() -> None:
    assert backoff_s(0, lambda: 0.0) == 0.25
    assert backoff_s(0, lambda: 1.0) == 0.5
    assert backoff_s(3, lambda: 1.0) == 4.0
    assert backoff_s(50, lambda: 1.0) == 30.0
    assert backoff_s(50, lambda: 0.0) == 15.0


def test_seen_drops_the_second_copy_only() -> None:
    seen = Seen(size=2)
    assert seen.first("a", sa("u"))
    assert not seen.first("a", sa("u"))
    assert seen.first("b", sa("u"))
