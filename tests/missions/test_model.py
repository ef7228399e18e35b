"""The pure mission model: names, passwords, roles, subscriptions, contents and their
changes, logs; and the store documents round-trip."""

from __future__ import annotations

import dataclasses

import pytest

from accord.missions import model, shape
from accord.missions.codec import (
    contents_diff,
    decode_change,
    decode_mission,
    encode_change,
    encode_mission,
)
from accord.missions.model import (
    ChangeType,
    Invitation,
    Item,
    LogEntry,
    MissionError,
    Resource,
    Role,
)

T0 = 1_780_000_000_123
BLUE = frozenset({"Blue"})
HASH = "a" * 64


def new(**options: object) -> model.Mission:
    return model.create("fire", "g-1", BLUE, "ANDROID-1", T0, **options)[0]


@pytest.mark.parametrize(
    "name",
    ["..", "../etc", "a/b", "a\\b", "<script>", "x&y", "q'", 'q"', "\x00", " x", "", "n" * 129],
)
def test_hostile_names_are_refused(name: str) -> None:
    with pytest.raises(MissionError):
        model.create(name, "g", BLUE, "A", T0)


def test_ordinary_names_with_spaces_and_punctuation_are_fine() -> None:
    assert model.check_name("Fire 2026 (north) - day 1") == "Fire 2026 (north) - day 1"


def test_the_creator_owns_the_mission_and_its_first_change_is_create() -> None:
    mission, change = model.create("fire", "g", BLUE, "ANDROID-1", T0)
    assert mission.role_of("ANDROID-1") is Role.OWNER
    assert change.type is ChangeType.CREATE_MISSION


def test_a_mission_needs_a_group_and_is_seen_only_through_out_groups() -> None:
    with pytest.raises(MissionError):
        model.create("x", "g", frozenset(), "A", T0)
    mission = new()
    from accord.domain.groups import Membership

    assert mission.visible_to(Membership(frozenset(), BLUE))
    assert not mission.visible_to(Membership(BLUE, frozenset()))
    assert not mission.visible_to(Membership(frozenset(), frozenset()))


def test_passwords_are_salted_hashes_that_match_only_the_password() -> None:
    stored = model.hash_password("hunter2", b"0123456789abcdef")
    assert "hunter2" not in stored
    mission = new(password=stored)
    assert mission.password_protected
    assert model.password_matches(mission, "hunter2")
    assert not model.password_matches(mission, "hunter3")
    assert model.password_matches(new(), "anything")  # no password: nothing to match


def test_unsubscribe_keeps_the_subscription_by_default_and_resubscribe_revives_it() -> None:
    mission = model.subscribe(new(default_role=Role.READONLY), "B", "bob", T0)
    assert mission.role_of("B") is Role.READONLY
    kept = model.unsubscribe(mission, "B")
    assert not kept.subscriptions["B"].live
    assert kept.role_of("B") is Role.READONLY
    assert model.subscribe(kept, "B", "bob", T0).subscriptions["B"].live
    assert "B" not in model.unsubscribe(mission, "B", disconnect_only=False).subscriptions
    with pytest.raises(MissionError):
        model.unsubscribe(mission, "nobody")


def test_an_invitation_sets_the_role_of_the_invitee_on_subscribing() -> None:
    invited = model.invite(new(), Invitation("clientUid", "B", Role.OWNER, "ANDROID-1", T0))
    assert model.subscribe(invited, "B", "", T0).role_of("B") is Role.OWNER
    with pytest.raises(MissionError):
        model.invite(new(), Invitation("planet", "B", Role.OWNER, "A", T0))


def test_contents_change_once_and_removal_names_what_went() -> None:
    item = Item("u-1", "A", T0, "a-f-G", "Alpha", 1.0, 2.0)
    res = Resource(HASH, "plan.zip", 10, "application/zip", "A", "alice", T0)
    mission, c1 = model.add_items(new(), [item, item], T0)
    mission, c2 = model.add_resources(mission, [res], T0)
    assert [c.type for c in c1 + c2] == [ChangeType.ADD_CONTENT] * 2
    assert model.add_items(mission, [item], T0)[1] == []  # already there: no change
    gone, c3 = model.remove_content(mission, "A", T0, uid="u-1", hash=HASH)
    assert not gone.items
    assert not gone.resources
    assert [(c.type, c.item, c.resource) for c in c3] == [
        (ChangeType.REMOVE_CONTENT, item, None),
        (ChangeType.REMOVE_CONTENT, None, res),
    ]
    with pytest.raises(MissionError):
        model.remove_content(gone, "A", T0, uid="u-1")
    with pytest.raises(MissionError):
        model.add_resources(new(), [dataclasses.replace(res, hash="../x")], T0)


def test_log_entries_are_bounded() -> None:
    entry = LogEntry("1", "x" * (model.MAX_LOG_CHARS + 1), "A", T0, T0, T0)
    with pytest.raises(MissionError) as refused:
        model.put_log(new(), entry)
    assert refused.value.status == 413


def test_changes_between_is_inclusive_and_open_ended() -> None:
    _, c = model.create("m", "g", BLUE, "A", T0)
    later = dataclasses.replace(c, time_ms=T0 + 1000)
    assert model.changes_between([c, later], T0 + 1, None) == [later]
    assert model.changes_between([c, later], None, T0) == [c]


def test_store_documents_round_trip() -> None:
    mission = model.subscribe(new(password="pbkdf2$1$00$00", keywords=("k",)), "B", "bob", T0)
    mission = model.add_items(mission, [Item("u", "A", T0, keywords=("x",))], T0)[0]
    mission = model.put_log(mission, LogEntry("1", "hi", "A", T0, T0, T0, (HASH,), ("k",)))
    mission = model.invite(mission, Invitation("userName", "carol", Role.READONLY, "A", T0))
    put, drop = contents_diff(None, mission)
    assert drop == []
    assert decode_mission(encode_mission(mission), put) == mission
    assert "u" not in encode_mission(mission).split('"items"')[1][:8]  # items are rows, not doc
    later = model.remove_content(mission, "A", T0, uid="u")[0]
    assert contents_diff(mission, later) == ([], ["uid:u"])
    res = Resource(HASH, "p", 1, "m", "A", "a", T0)
    change = model.add_resources(mission, [res], T0)[1][0]
    assert decode_change(encode_change(change)) == change


def test_official_time_formats() -> None:
    assert shape.iso_ms(T0) == "2026-05-28T20:26:40.123Z"
    assert shape.iso_tenths(T0) == "2026-05-28T20:26:40.1Z"
    assert shape.parse_iso_ms("2026-05-28T20:26:40.123Z") == T0


def test_a_change_notice_is_the_official_seed_and_escapes_names() -> None:
    mission = dataclasses.replace(new(), description="")
    mission = dataclasses.replace(mission, name="a 'b'")
    xml = shape.notice_xml("t-x-m-c", "CHANGE", mission, "A", "n-1", T0)
    from accord.cot.xml import decode_xml

    event = decode_xml(xml)
    assert event.type == "t-x-m-c"
    assert event.how == "h-g-i-g-o"
    assert event.stale - event.time == shape.NOTIFY_STALE_MS
    assert "name=\"a 'b'\"" in event.detail.xml


@pytest.mark.parametrize("uid", ["", "a{b", "a}b", "<x/>", "a\nb", "u" * 300])
def test_bad_client_uids_are_refused_before_anything_is_written(uid: str) -> None:
    with pytest.raises(MissionError):
        model.subscribe(new(), uid, "", T0)
    if uid:
        with pytest.raises(MissionError):
            model.create("m", "g", BLUE, uid, T0)
