"""Mission changes on a partner link (LinkPair, unit speed): numbered, journalled, kept in the
outbox, caught up after a flap and applied to the mirror exactly once."""

from __future__ import annotations

from accord.domain.partners import Partner
from accord.federation.connection import FEATURES
from accord.federation.proto import fig_pb2
from accord.missions import model
from accord.missions.federation import Send, apply, decode_shared, encode_shared, outbound
from accord.policy import PolicyState, decode_policy
from tests.federation.link_pair import NOW_MS, LinkPair

MISSIONS = FEATURES | fig_pb2.ACCORD_MISSIONS
POLICY = decode_policy(
    'name = "a->b"\npartner = "Org B"\n[[rule]]\nname = "all"\n'
    '[[mission]]\nname = "joint"\nmissions = ["Joint"]\n'
)


def pair() -> tuple[LinkPair, list[bytes]]:
    link = LinkPair(features_a=MISSIONS, features_b=MISSIONS)
    got: list[bytes] = []

    def collect(partner: Partner, data: bytes) -> None:
        assert partner.name == "Org A"
        got.append(data)

    link.b.conn.on_mission = collect
    return link, got


def frames(count: int, start: int = 0) -> list[bytes]:
    """``count`` item adds of mission Joint at A, decided by A's policy for B."""
    mission, _ = model.create("Joint", "guid-a", frozenset({"ops"}), "c", NOW_MS)
    out = []
    for n in range(start, start + count):
        item = model.Item(f"uid-{n}", f"uid-{n}", NOW_MS, "a-f-G", "", 1.0, 2.0)
        mission, changes = model.add_items(mission, [item], NOW_MS)
        decision = outbound(POLICY, mission, "Org B", changes[0], n + 2, NOW_MS, PolicyState())
        assert isinstance(decision, Send)
        out.append(encode_shared(decision.shared))
    return out


def test_mission_changes_cross_numbered_and_journalled_on_both_sides() -> None:
    link, got = pair()
    link.connect()
    for frame in frames(3):
        assert link.a.conn.release_mission(frame, "joint/all", "v1")
    link.pump()
    assert got == frames(3)
    assert [(seq, rule) for _, seq, rule, _, _ in link.a.journal.releases] == [
        (1, "joint/all"),
        (2, "joint/all"),
        (3, "joint/all"),
    ]
    assert [seq for _, seq, _ in link.b.journal.receipts] == [1, 2, 3]
    assert link.b.delivered == []  # not an event: nothing for B's hub


def test_a_flap_catches_up_from_the_outbox_and_the_mirror_applies_each_change_once() -> None:
    link, got = pair()
    link.connect()
    sent = frames(6)
    for frame in sent[:2]:
        link.a.conn.release_mission(frame, "joint/all", "v1")
    link.pump()
    link.disconnect()
    for frame in sent[2:4]:  # the link is down: into the outbox
        assert link.a.conn.release_mission(frame, "joint/all", "v1")
    # on reconnect A resends what B has not acknowledged, from the outbox, then the new ones
    link.connect()
    for frame in sent[4:]:
        link.a.conn.release_mission(frame, "joint/all", "v1")
    link.pump()
    assert got == sent
    mirror = None
    for data in [*got, *got]:  # a second copy (e.g. from another path) is applied no more
        done = apply(
            mirror, "Org A", decode_shared(data), guid="g-b", groups=frozenset(), now_ms=NOW_MS
        )
        if done is not None:
            mirror = done.mission
    assert mirror is not None
    assert sorted(mirror.items) == [f"uid-{n}" for n in range(6)]
    assert len(mirror.applied) == 6


def test_resent_frames_are_dropped_by_sequence_number() -> None:
    link, got = pair()
    link.connect()
    for frame in frames(2):
        link.a.conn.release_mission(frame, "joint/all", "v1")
    messages = link.a.outgoing()
    for message in [*messages, *messages]:
        link.b.conn.receive(message, NOW_MS)
    assert len(got) == 2
    assert link.b.conn.duplicates >= 1


def test_a_partner_that_does_not_take_missions_gets_none() -> None:
    link = LinkPair()  # B announced no ACCORD_MISSIONS
    link.connect()
    assert not link.a.conn.release_mission(frames(1)[0], "joint/all", "v1")
    assert link.a.journal.releases == []


def test_a_partner_known_not_to_take_missions_gets_none_while_its_link_is_down() -> None:
    link = LinkPair()
    link.connect()
    link.disconnect()
    assert not link.a.conn.release_mission(frames(1)[0], "joint/all", "v1")
    assert link.a.outbox is not None
    assert link.a.outbox.rows.get(link.a.conn.key, {}) == {}
