"""The MissionStore contract, on every backend: a mission's state and its changes are written
together or not at all, and the change log only grows."""

from __future__ import annotations

import pytest

from accord.store.contract import Store, StoreError
from accord.store.records import MissionChangeRow, MissionContentRow, MissionRow

GUID = "0b4f3e2a-0000-4000-8000-000000000001"


def change(seq: int, guid: str = GUID) -> MissionChangeRow:
    return MissionChangeRow(guid, seq, 1_780_000_000_000 + seq, f'{{"n":{seq}}}')


async def test_a_created_mission_is_listed_with_its_first_change(store: Store) -> None:
    assert await store.create_mission(MissionRow(GUID, "fire", "{}"), [change(1)])
    assert await store.missions() == [MissionRow(GUID, "fire", "{}")]
    assert await store.mission_changes(GUID) == [change(1)]


async def test_a_taken_name_or_guid_writes_nothing(store: Store) -> None:
    assert await store.create_mission(MissionRow(GUID, "fire", "{}"), [change(1)])
    other = "0b4f3e2a-0000-4000-8000-000000000002"
    assert not await store.create_mission(MissionRow(other, "fire", "{}"), [change(1, other)])
    assert not await store.create_mission(MissionRow(GUID, "flood", "{}"), [change(2)])
    assert [r.name for r in await store.missions()] == ["fire"]
    assert await store.mission_changes(other) == []
    assert await store.mission_changes(GUID) == [change(1)]


async def test_update_replaces_the_state_and_appends_changes_in_order(store: Store) -> None:
    await store.create_mission(MissionRow(GUID, "fire", "{}"), [change(1)])
    assert await store.update_mission(MissionRow(GUID, "fire", '{"v":2}'), [change(2), change(3)])
    assert (await store.missions())[0].doc == '{"v":2}'
    assert await store.mission_changes(GUID) == [change(1), change(2), change(3)]
    assert await store.mission_changes(GUID, after=2) == [change(3)]


async def test_a_repeated_change_number_writes_nothing(store: Store) -> None:
    await store.create_mission(MissionRow(GUID, "fire", "{}"), [change(1)])
    with pytest.raises(StoreError):
        await store.update_mission(MissionRow(GUID, "fire", '{"v":2}'), [change(1)])
    assert (await store.missions())[0].doc == "{}"  # the state did not move either
    assert await store.mission_changes(GUID) == [change(1)]


async def test_updating_or_deleting_an_unknown_mission_says_so(store: Store) -> None:
    assert not await store.update_mission(MissionRow(GUID, "fire", "{}"), [change(1)])
    assert not await store.delete_mission(GUID)
    assert await store.mission_changes(GUID) == []


async def test_delete_removes_the_mission_and_its_change_log(store: Store) -> None:
    await store.create_mission(MissionRow(GUID, "fire", "{}"), [change(1)])
    assert await store.delete_mission(GUID)
    assert await store.missions() == []
    assert await store.mission_changes(GUID) == []
    # the name is free again
    assert await store.create_mission(MissionRow(GUID, "fire", "{}"), [change(1)])


async def test_contents_are_put_replaced_and_dropped_with_the_state(store: Store) -> None:
    await store.create_mission(MissionRow(GUID, "fire", "{}"), [change(1)])
    a, b = MissionContentRow(GUID, "uid:a", "1"), MissionContentRow(GUID, "hash:b", "2")
    assert await store.update_mission(MissionRow(GUID, "fire", "{}"), [change(2)], [a, b])
    assert await store.mission_contents(GUID) == [b, a]  # by key
    a2 = MissionContentRow(GUID, "uid:a", "3")
    assert await store.update_mission(MissionRow(GUID, "fire", "{}"), [change(3)], [a2], ["hash:b"])
    assert await store.mission_contents(GUID) == [a2]
    with pytest.raises(StoreError):  # a repeated change number: the contents stay as they were
        await store.update_mission(MissionRow(GUID, "fire", "{}"), [change(3)], [b], ["uid:a"])
    assert await store.mission_contents(GUID) == [a2]
    assert await store.delete_mission(GUID)
    assert await store.mission_contents(GUID) == []
