"""The pure core of federated missions: what a partner may receive, the mirror, dedupe."""

from __future__ import annotations

import dataclasses

import pytest

from accord.missions import model
from accord.missions.federation import (
    UNSHARED_RULE,
    LogRemoved,
    Send,
    SharedError,
    Withheld,
    accept_log,
    apply,
    decode_shared,
    encode_shared,
    mirror_name,
    outbound,
)
from accord.missions.model import Item, LogEntry, Resource
from accord.policy import PolicyState, decode_policy

NOW = 1_764_000_000_000
POLICY = decode_policy(
    'name = "a->b"\npartner = "org-b"\n'
    '[[rule]]\nname = "coarse"\ntypes = ["a-f-*"]\ngrid_m = 1000\n'
    '[[mission]]\nname = "joint"\nmissions = ["Joint*"]\nshare = ["items", "logs"]\n'
    'accept = ["logs"]\n'
)
HASH = "ab" * 32


def mission(name: str = "Joint Op") -> model.Mission:
    m, _ = model.create(name, "guid-a", frozenset({"ops"}), "creator", NOW)
    return m


def item(uid: str = "u1", cot_type: str = "a-f-G-U-C") -> Item:
    return Item(uid, uid, NOW, cot_type, "Alpha", 52.123456, 4.987654)


def added(m: model.Mission, it: Item) -> tuple[model.Mission, model.Change]:
    m2, changes = model.add_items(m, [it], NOW)
    return m2, changes[0]


def test_an_item_of_a_shared_mission_goes_out_coarsened_by_the_event_rules() -> None:
    m, change = added(mission(), item())
    got = outbound(POLICY, m, "org-b", change, 2, NOW, PolicyState())
    assert isinstance(got, Send)
    assert got.rule == "joint/coarse"
    assert got.shared.id == "guid-a/item-add/u1/2"
    assert got.shared.item is not None
    assert got.shared.item.uid == "u1"
    assert (got.shared.item.lat, got.shared.item.lon) != (52.123456, 4.987654)
    assert got.shared.mission_name == "Joint Op"


def test_an_item_the_event_rules_withhold_stays_home() -> None:
    m, change = added(mission(), item("h1", "a-h-G"))
    got = outbound(POLICY, m, "org-b", change, 2, NOW, PolicyState())
    assert isinstance(got, Withheld)
    assert "withheld by the event rules" in got.reason


def test_a_part_not_shared_and_a_mission_not_named_are_withheld_and_named() -> None:
    res = Resource(HASH, "f.zip", 10, "application/zip", "c", "s", NOW)
    m, changes = model.add_resources(mission(), [res], NOW)
    got = outbound(POLICY, m, "org-b", changes[0], 2, NOW, PolicyState())
    assert got == Withheld("joint", "[[mission]] joint does not share files")
    other, change = added(mission("Local"), item())
    got = outbound(POLICY, other, "org-b", change, 2, NOW, PolicyState())
    assert isinstance(got, Withheld)
    assert got.rule == UNSHARED_RULE


def test_a_keyword_names_a_mission_too() -> None:
    policy = decode_policy(
        'name = "p"\npartner = "b"\n[[rule]]\nname = "all"\n'
        '[[mission]]\nname = "k"\nkeywords = ["share-b"]\n'
    )
    m, change = added(mission("Other"), item())
    assert isinstance(outbound(policy, m, "b", change, 1, NOW, PolicyState()), Withheld)
    m = model.Mission(**{**_fields(m), "keywords": ("share-b",)})
    assert isinstance(outbound(policy, m, "b", change, 1, NOW, PolicyState()), Send)


def _fields(m: model.Mission) -> dict[str, object]:
    return {k: getattr(m, k) for k in model.Mission.__dataclass_fields__}


def log(entry_id: str = "l1", text: str = "contact at the bridge") -> LogEntry:
    return LogEntry(entry_id, text, "bob", NOW, NOW, NOW)


def test_the_mirror_is_qualified_remembers_its_origin_and_applies_a_resend_once() -> None:
    m, change = added(mission(), item())
    sent = outbound(POLICY, m, "org-b", change, 2, NOW, PolicyState())
    assert isinstance(sent, Send)
    wire = decode_shared(encode_shared(sent.shared))
    assert wire == sent.shared
    first = apply(None, "Org A", wire, guid="guid-b", groups=frozenset({"b"}), now_ms=NOW)
    assert first is not None
    assert first.created
    mirror = first.mission
    assert mirror.name == mirror_name("Org A", "Joint Op") == "Org A:Joint Op"
    assert (mirror.origin, mirror.origin_guid, mirror.guid) == ("Org A", "guid-a", "guid-b")
    assert list(mirror.items) == ["u1"]
    assert [c.type for c in first.changes] == [model.ChangeType.ADD_CONTENT]
    assert apply(mirror, "Org A", wire, guid="x", groups=frozenset(), now_ms=NOW) is None


def test_a_mirror_sends_back_only_its_logs_and_only_to_its_origin() -> None:
    m, _ = added(mission(), item())
    sent = outbound(POLICY, m, "org-b", log(), 0, NOW, PolicyState())
    assert isinstance(sent, Send)
    made = apply(None, "org-a", sent.shared, guid="gb", groups=frozenset({"b"}), now_ms=NOW)
    assert made is not None
    mirror = made.mission
    back_policy = decode_policy(
        'name = "b->a"\npartner = "org-a"\n'
        '[[mission]]\nname = "back"\nmissions = ["Joint*"]\nshare = ["logs"]\n'
    )
    reply = log("l2", "seen from B")
    got = outbound(back_policy, mirror, "org-a", reply, 0, NOW, PolicyState())
    assert isinstance(got, Send)
    assert got.shared.mission_guid == "guid-a"
    assert outbound(back_policy, mirror, "org-c", reply, 0, NOW, PolicyState()) is None
    m2, change = added(mirror, item("u9"))
    assert outbound(back_policy, m2, "org-a", change, 9, NOW, PolicyState()) is None
    # at the origin: taken only because its policy accepts logs, once
    taken = accept_log(POLICY, m, "org-b", got.shared)
    assert isinstance(taken, model.Mission)
    assert taken.logs["l2"].content == "seen from B"
    assert accept_log(POLICY, taken, "org-b", got.shared) == taken
    closed = decode_policy(
        'name = "a->b"\npartner = "org-b"\n[[mission]]\nname = "j"\nmissions = ["Joint*"]\n'
    )
    assert isinstance(accept_log(closed, m, "org-b", got.shared), str)


@pytest.mark.parametrize(
    "data",
    [
        b"not json",
        b"[]",
        b'{"id": "x"}',
        b'{"id":"x","mission_guid":"g","mission_name":"../etc","kind":"log","time_ms":1}',
        b'{"id":"x","mission_guid":"g","mission_name":"M","kind":"explode","time_ms":1}',
        b'{"id":"x","mission_guid":"g","mission_name":"M","kind":"log","time_ms":1}',
        b"{" + b" " * 70_000 + b"}",
        b'{"id":"x","mission_guid":"g","mission_name":"M","kind":"file-add","time_ms":1,'
        b'"resource":{"hash":"' + b"ab" * 32 + b'","name":"f","size":1,"mime_type":"m",'
        b'"creator_uid":"c","submitter":"s","time_ms":1},"url":"http://plain/text"}',
    ],
)
def test_bad_changes_from_a_partner_are_refused_with_a_reason(data: bytes) -> None:
    with pytest.raises(SharedError):
        decode_shared(data)


def test_the_origins_deletion_crosses_deletes_the_mirror_once_and_a_mirror_never_sends_one() -> (
    None
):
    m, change = added(mission(), item())
    sent = outbound(POLICY, m, "org-b", change, 2, NOW, PolicyState())
    assert isinstance(sent, Send)
    made = apply(None, "org-a", sent.shared, guid="g-b", groups=frozenset({"x"}), now_ms=NOW)
    assert made is not None
    gone = model.Change(model.ChangeType.DELETE_MISSION, NOW, "creator")
    deletion = outbound(POLICY, m, "org-b", gone, 0, NOW, PolicyState())
    assert isinstance(deletion, Send)
    assert deletion.shared.kind == "mission-delete"
    assert deletion.rule == "joint"
    wire = decode_shared(encode_shared(deletion.shared))  # no payload, still a valid change
    assert wire == deletion.shared
    done = apply(made.mission, "org-a", wire, guid="g-b", groups=frozenset({"x"}), now_ms=NOW)
    assert done is not None
    assert done.deleted
    assert done.changes == []
    # a resend after the mirror is gone changes nothing
    assert apply(None, "org-a", wire, guid="g-b", groups=frozenset({"x"}), now_ms=NOW) is None
    # deleting a mirror here does not delete the partner's mission
    assert outbound(POLICY, made.mission, "org-a", gone, 0, NOW, PolicyState()) is None
    # a mission no section names: its deletion is withheld and counted like its changes
    other, _ = model.create("Other", "g-o", frozenset({"ops"}), "c", NOW)
    withheld = outbound(POLICY, other, "org-b", gone, 0, NOW, PolicyState())
    assert isinstance(withheld, Withheld)
    assert withheld.rule == UNSHARED_RULE


def test_a_removed_log_entry_crosses_both_ways_and_the_origin_removes_only_the_mirrors_own() -> (
    None
):
    m = dataclasses.replace(mission(), logs={"l1": log("l1", "origin's note")})
    wrote = outbound(POLICY, m, "org-b", log("l1", "origin's note"), 0, NOW, PolicyState())
    assert isinstance(wrote, Send)
    made = apply(None, "org-a", wrote.shared, guid="gb", groups=frozenset({"b"}), now_ms=NOW)
    assert made is not None
    assert list(made.mission.logs) == ["l1"]
    # the origin removes its entry: the mirror's copy goes, once
    gone = outbound(POLICY, m, "org-b", LogRemoved(log("l1")), 0, NOW, PolicyState())
    assert isinstance(gone, Send)
    assert gone.shared.kind == "log-remove"
    wire = decode_shared(encode_shared(gone.shared))
    assert wire == gone.shared
    done = apply(made.mission, "org-a", wire, guid="x", groups=frozenset(), now_ms=NOW)
    assert done is not None
    assert done.mission.logs == {}
    assert apply(done.mission, "org-a", wire, guid="x", groups=frozenset(), now_ms=NOW) is None
    # the mirror's own entry, taken by the origin, may be removed from the mirror
    back = decode_policy(
        'name = "b->a"\npartner = "org-a"\n'
        '[[mission]]\nname = "back"\nmissions = ["Joint*"]\nshare = ["logs"]\n'
    )
    mirror = done.mission
    own = outbound(back, mirror, "org-a", log("l2", "from B"), 0, NOW, PolicyState())
    assert isinstance(own, Send)
    origin = accept_log(POLICY, m, "org-b", own.shared)
    assert isinstance(origin, model.Mission)
    assert "l2" in origin.logs
    unsaid = outbound(back, mirror, "org-a", LogRemoved(log("l2")), 0, NOW, PolicyState())
    assert isinstance(unsaid, Send)
    after = accept_log(POLICY, origin, "org-b", unsaid.shared)
    assert isinstance(after, model.Mission)
    assert "l2" not in after.logs
    assert "l1" in after.logs
    assert accept_log(POLICY, after, "org-b", unsaid.shared) == after  # a resend: no change
    # ...but the partner cannot remove what the origin wrote
    theirs = outbound(back, mirror, "org-a", LogRemoved(log("l1")), 0, NOW, PolicyState())
    assert isinstance(theirs, Send)
    refused = accept_log(POLICY, after, "org-b", theirs.shared)
    assert isinstance(refused, str)
    assert "not org-b's" in refused
    # and a removal of a part the policy does not share stays home
    no_logs = decode_policy(
        'name = "a->b"\npartner = "org-b"\n[[mission]]\nname = "j"\nmissions = ["Joint*"]\n'
        'share = ["items"]\n'
    )
    held = outbound(no_logs, m, "org-b", LogRemoved(log("l1")), 0, NOW, PolicyState())
    assert isinstance(held, Withheld)


def test_a_log_removal_without_its_entry_is_refused() -> None:
    with pytest.raises(SharedError):
        decode_shared(
            b'{"id":"x","mission_guid":"g","mission_name":"M","kind":"log-remove","time_ms":1}'
        )
