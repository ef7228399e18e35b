"""The SQLite store's mission tables (``migrations/sqlite/0004_missions.sql``)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from accord.store.records import MissionChangeRow, MissionContentRow, MissionRow
from accord.store.sqlite_base import SqliteConnections, _insert_many


def _append(conn: sqlite3.Connection, changes: Sequence[MissionChangeRow]) -> None:
    _insert_many(
        conn,
        "INSERT INTO mission_changes (guid, seq, time_ms, doc) VALUES ",
        [tuple(c) for c in changes],
    )


class SqliteMissions(SqliteConnections):
    async def missions(self) -> list[MissionRow]:
        def work(conn: sqlite3.Connection) -> list[MissionRow]:
            rows = conn.execute("SELECT guid, name, doc FROM missions ORDER BY name")
            return [MissionRow(*r) for r in rows]

        return await self._read(work)

    async def create_mission(self, row: MissionRow, changes: Sequence[MissionChangeRow]) -> bool:
        def work(conn: sqlite3.Connection) -> bool:
            taken = conn.execute(
                "SELECT 1 FROM missions WHERE guid = ? OR name = ?", (row.guid, row.name)
            ).fetchone()
            if taken:
                return False
            conn.execute("INSERT INTO missions VALUES (?, ?, ?)", tuple(row))
            _append(conn, changes)
            return True

        return await self._write(work)

    async def update_mission(
        self,
        row: MissionRow,
        changes: Sequence[MissionChangeRow],
        put: Sequence[MissionContentRow] = (),
        drop: Sequence[str] = (),
    ) -> bool:
        def work(conn: sqlite3.Connection) -> bool:
            done = conn.execute(
                "UPDATE missions SET name = ?, doc = ? WHERE guid = ?",
                (row.name, row.doc, row.guid),
            ).rowcount
            if not done:
                return False
            conn.executemany(
                "DELETE FROM mission_contents WHERE guid = ? AND key = ?",
                [(row.guid, k) for k in drop],
            )
            _insert_many(
                conn,
                "INSERT OR REPLACE INTO mission_contents (guid, key, doc) VALUES ",
                [tuple(c) for c in put],
            )
            _append(conn, changes)
            return True

        return await self._write(work)

    async def delete_mission(self, guid: str) -> bool:
        def work(conn: sqlite3.Connection) -> bool:
            return conn.execute("DELETE FROM missions WHERE guid = ?", (guid,)).rowcount > 0

        return await self._write(work)

    async def mission_changes(self, guid: str, after: int = 0) -> list[MissionChangeRow]:
        def work(conn: sqlite3.Connection) -> list[MissionChangeRow]:
            rows = conn.execute(
                "SELECT guid, seq, time_ms, doc FROM mission_changes WHERE guid = ? AND seq > ? "
                "ORDER BY seq",
                (guid, after),
            )
            return [MissionChangeRow(*r) for r in rows]

        return await self._read(work)

    async def mission_contents(self, guid: str) -> list[MissionContentRow]:
        def work(conn: sqlite3.Connection) -> list[MissionContentRow]:
            rows = conn.execute(
                "SELECT guid, key, doc FROM mission_contents WHERE guid = ? ORDER BY key", (guid,)
            )
            return [MissionContentRow(*r) for r in rows]

        return await self._read(work)
