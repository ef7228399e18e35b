"""A real fake of :class:`accord.store.contract.MissionStore`, in memory (same contract as the
SQLite and PostgreSQL backends: a write is all or nothing)."""

from __future__ import annotations

from collections.abc import Sequence

from accord.store.contract import StoreError
from accord.store.records import MissionChangeRow, MissionContentRow, MissionRow


class MemoryMissions:
    def __init__(self) -> None:
        self.rows: dict[str, MissionRow] = {}
        self.changes: dict[str, list[MissionChangeRow]] = {}
        self.contents: dict[str, dict[str, MissionContentRow]] = {}

    async def missions(self) -> list[MissionRow]:
        return sorted(self.rows.values(), key=lambda r: r.name)

    def _check(self, guid: str, changes: Sequence[MissionChangeRow]) -> None:
        seen = {c.seq for c in self.changes.get(guid, [])}
        if any(c.seq in seen for c in changes) or len({c.seq for c in changes}) < len(changes):
            raise StoreError("change number already stored")

    async def create_mission(self, row: MissionRow, changes: Sequence[MissionChangeRow]) -> bool:
        if row.guid in self.rows or any(r.name == row.name for r in self.rows.values()):
            return False
        self._check(row.guid, changes)
        self.rows[row.guid] = row
        self.changes[row.guid] = list(changes)
        return True

    async def update_mission(
        self,
        row: MissionRow,
        changes: Sequence[MissionChangeRow],
        put: Sequence[MissionContentRow] = (),
        drop: Sequence[str] = (),
    ) -> bool:
        if row.guid not in self.rows:
            return False
        self._check(row.guid, changes)
        self.rows[row.guid] = row
        self.changes[row.guid] += changes
        contents = self.contents.setdefault(row.guid, {})
        for key in drop:
            contents.pop(key, None)
        for c in put:
            contents[c.key] = c
        return True

    async def mission_contents(self, guid: str) -> list[MissionContentRow]:
        return [self.contents.get(guid, {})[k] for k in sorted(self.contents.get(guid, {}))]

    async def delete_mission(self, guid: str) -> bool:
        self.changes.pop(guid, None)
        self.contents.pop(guid, None)
        return self.rows.pop(guid, None) is not None

    async def mission_changes(self, guid: str, after: int = 0) -> list[MissionChangeRow]:
        return [c for c in self.changes.get(guid, []) if c.seq > after]
