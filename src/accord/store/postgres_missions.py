"""The PostgreSQL store's mission tables (``migrations/postgres/0004_missions.sql``)."""

from __future__ import annotations

from collections.abc import Sequence

from accord.store.postgres_base import Connection, PostgresConnections, _count
from accord.store.records import MissionChangeRow, MissionContentRow, MissionRow


async def _append(conn: Connection, changes: Sequence[MissionChangeRow]) -> None:
    if changes:
        await conn.executemany(
            "INSERT INTO mission_changes (guid, seq, time_ms, doc) VALUES ($1, $2, $3, $4)",
            [tuple(c) for c in changes],
        )


class PostgresMissions(PostgresConnections):
    async def missions(self) -> list[MissionRow]:
        async with self._connection() as conn:
            rows = await conn.fetch("SELECT guid, name, doc FROM missions ORDER BY name")
        return [MissionRow(r[0], r[1], r[2]) for r in rows]

    async def create_mission(self, row: MissionRow, changes: Sequence[MissionChangeRow]) -> bool:
        async with self._transaction() as conn:
            status = await conn.execute(
                "INSERT INTO missions VALUES ($1, $2, $3) ON CONFLICT DO NOTHING", *row
            )
            if not _count(status):
                return False
            await _append(conn, changes)
            return True

    async def update_mission(
        self,
        row: MissionRow,
        changes: Sequence[MissionChangeRow],
        put: Sequence[MissionContentRow] = (),
        drop: Sequence[str] = (),
    ) -> bool:
        async with self._transaction() as conn:
            status = await conn.execute(
                "UPDATE missions SET name = $1, doc = $2 WHERE guid = $3",
                row.name,
                row.doc,
                row.guid,
            )
            if not _count(status):
                return False
            if drop:
                await conn.execute(
                    "DELETE FROM mission_contents WHERE guid = $1 AND key = ANY($2::text[])",
                    row.guid,
                    list(drop),
                )
            if put:
                await conn.executemany(
                    "INSERT INTO mission_contents (guid, key, doc) VALUES ($1, $2, $3) "
                    "ON CONFLICT (guid, key) DO UPDATE SET doc = excluded.doc",
                    [tuple(c) for c in put],
                )
            await _append(conn, changes)
            return True

    async def delete_mission(self, guid: str) -> bool:
        async with self._transaction() as conn:
            status = await conn.execute("DELETE FROM missions WHERE guid = $1", guid)
        return _count(status) > 0

    async def mission_changes(self, guid: str, after: int = 0) -> list[MissionChangeRow]:
        async with self._connection() as conn:
            rows = await conn.fetch(
                "SELECT guid, seq, time_ms, doc FROM mission_changes WHERE guid = $1 "
                "AND seq > $2 ORDER BY seq",
                guid,
                after,
            )
        return [MissionChangeRow(r[0], r[1], r[2], r[3]) for r in rows]

    async def mission_contents(self, guid: str) -> list[MissionContentRow]:
        async with self._connection() as conn:
            rows = await conn.fetch(
                "SELECT guid, key, doc FROM mission_contents WHERE guid = $1 ORDER BY key", guid
            )
        return [MissionContentRow(r[0], r[1], r[2]) for r in rows]
