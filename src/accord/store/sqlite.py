"""The default store: one SQLite file in WAL mode, in the data directory.

sqlite3 blocks, so the database is used from two threads of its own: one writer (every write
is serialised there, as SQLite wants) and one reader (WAL lets it read while a write is in
flight, so a history query never waits behind a history batch). The event loop only awaits.
``synchronous=NORMAL`` in WAL mode: a committed transaction survives the process being
killed; only a power cut can lose the last ones.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from accord.store.contract import StoreError
from accord.store.migrate import pending
from accord.store.records import (
    BBox,
    Cursor,
    HistoryPage,
    HistoryQuery,
    HistoryStats,
    Package,
    PackageQuery,
    StoredEvent,
    VideoFeed,
    event_from_row,
    event_row,
    group_key,
    groups_of,
    package_from_row,
    package_row,
)
from accord.store.sqlite_base import _connect, _insert_many
from accord.store.sqlite_federation import SqliteFederation
from accord.store.sqlite_missions import SqliteMissions

_EVENT_COLUMNS = (
    "uid, type, how, time_ms, start_ms, stale_ms, lat, lon, hae, callsign, groups, "
    "payload_format, payload"
)
_PACKAGE_COLUMNS = (
    "hash, name, size, mimetype, keywords, tool, groups, creator_uid, submitter, submitted_ms, "
    "lat, lon, expiration_ms"
)
_PRUNE_CHUNK = 10_000  # rows per delete statement: keeps each write transaction short


class SqliteStore(SqliteFederation, SqliteMissions):
    @classmethod
    async def open(cls, path: Path) -> SqliteStore:
        """Open (creating if needed) and migrate the database at ``path``."""
        store = cls(path)
        store._writer = await store._in(store._writer_pool, lambda: _open_writer(path))
        row = await store._write(lambda c: c.execute("SELECT max(id) FROM history").fetchone())
        store._next_id = (row[0] or 0) + 1
        store._reader = await store._in(store._reader_pool, lambda: _connect(path))
        return store

    # -- history and latest ----------------------------------------------------------------------
    async def write_events(
        self, history: Sequence[StoredEvent], latest: Sequence[StoredEvent]
    ) -> None:
        def work(conn: sqlite3.Connection) -> None:
            # Rows are built here, off the event loop. Ids are handed out here too, under the
            # write lock (BEGIN IMMEDIATE): past the largest id in the table, since another
            # process (a worker of `serve --workers`) may write the same file; a rolled-back
            # batch only leaves a gap.
            (largest,) = conn.execute("SELECT max(id) FROM history").fetchone()
            first = max(self._next_id, (largest or 0) + 1)
            self._next_id += len(history)
            _insert_many(
                conn,
                f"INSERT INTO history (id, {_EVENT_COLUMNS}) VALUES ",
                [(first + i, *_event_row(e)) for i, e in enumerate(history)],
            )
            _insert_many(
                conn,
                f"INSERT INTO latest ({_EVENT_COLUMNS}) VALUES ",
                [_event_row(e) for e in latest],
                " ON CONFLICT (uid) DO UPDATE SET type=excluded.type, how=excluded.how, "
                "time_ms=excluded.time_ms, start_ms=excluded.start_ms, "
                "stale_ms=excluded.stale_ms, lat=excluded.lat, lon=excluded.lon, "
                "hae=excluded.hae, callsign=excluded.callsign, groups=excluded.groups, "
                "payload_format=excluded.payload_format, payload=excluded.payload "
                "WHERE excluded.time_ms >= latest.time_ms",
            )

        await self._write(work)

    async def history(self, query: HistoryQuery) -> HistoryPage:
        if query.visible_to is not None and not query.visible_to:
            return HistoryPage([], None)
        boxes: list[BBox | None] = [None]
        if query.bbox is not None:
            boxes = [
                BBox(query.bbox.south, west, query.bbox.north, east)
                for west, east in query.bbox.lon_ranges()
            ]

        def work(conn: sqlite3.Connection) -> list[StoredEvent]:
            found: list[StoredEvent] = []
            for box in boxes:
                sql, args = _history_sql(query, box)
                found.extend(_event(row) for row in conn.execute(sql, args))
            found.sort(key=lambda e: (e.time_ms, e.id))
            return found[: query.limit + 1]

        events = await self._read(work)
        if len(events) > query.limit:
            events = events[: query.limit]
            return HistoryPage(events, Cursor(events[-1].time_ms, events[-1].id))
        return HistoryPage(events, None)

    async def history_stats(self) -> HistoryStats:
        def work(conn: sqlite3.Connection) -> HistoryStats:
            count, oldest, newest = conn.execute(
                "SELECT count(*), min(time_ms), max(time_ms) FROM history"
            ).fetchone()
            return HistoryStats(count, oldest, newest)

        return await self._read(work)

    async def prune_history(self, older_than_ms: int, keep_newest: int) -> int:
        def work(conn: sqlite3.Connection) -> int:
            # Two index walks (time, then id) rather than one OR that could scan the table.
            ids = [
                row[0]
                for row in conn.execute(
                    "SELECT id FROM history WHERE time_ms < ? LIMIT ?",
                    (older_than_ms, _PRUNE_CHUNK),
                )
            ]
            if len(ids) < _PRUNE_CHUNK:
                # Ids are dense (gaps only where a batch rolled back), so the newest N are
                # those above max(id) - N: no OFFSET walk over millions of rows.
                newest = conn.execute("SELECT max(id) FROM history").fetchone()[0] or 0
                ids += [
                    row[0]
                    for row in conn.execute(
                        "SELECT id FROM history WHERE id <= ? LIMIT ?",
                        (newest - keep_newest, _PRUNE_CHUNK - len(ids)),
                    )
                ]
            # The R*Tree rows go by trigger.
            conn.executemany("DELETE FROM history WHERE id = ?", ((i,) for i in set(ids)))
            return len(set(ids))

        total = 0
        while True:
            removed = await self._write(work)
            total += removed
            if removed == 0:
                return total

    async def latest(self, uid: str) -> StoredEvent | None:
        def work(conn: sqlite3.Connection) -> StoredEvent | None:
            row = conn.execute(
                f"SELECT 0, {_EVENT_COLUMNS} FROM latest WHERE uid = ?", (uid,)
            ).fetchone()
            return _event(row) if row is not None else None

        return await self._read(work)

    async def latest_fresh(self, now_ms: int) -> list[StoredEvent]:
        def work(conn: sqlite3.Connection) -> list[StoredEvent]:
            sql = f"SELECT 0, {_EVENT_COLUMNS} FROM latest WHERE stale_ms > ? ORDER BY time_ms"
            return [_event(row) for row in conn.execute(sql, (now_ms,))]

        return await self._read(work)

    # -- packages --------------------------------------------------------------------------------
    async def add_package(self, package: Package) -> Package:
        def work(conn: sqlite3.Connection) -> Package:
            row = conn.execute(
                f"SELECT {_PACKAGE_COLUMNS} FROM packages WHERE hash = ?", (package.hash,)
            ).fetchone()
            if row is None:
                conn.execute(
                    f"INSERT INTO packages ({_PACKAGE_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    _package_row(package),
                )
                return package
            stored = _package(row)
            groups = tuple(sorted(set(stored.groups) | set(package.groups)))
            conn.execute(
                "UPDATE packages SET groups = ? WHERE hash = ?", (group_key(groups), package.hash)
            )
            return replace(stored, groups=groups)

        return await self._write(work)

    async def package(self, hash: str) -> Package | None:
        def work(conn: sqlite3.Connection) -> Package | None:
            row = conn.execute(
                f"SELECT {_PACKAGE_COLUMNS} FROM packages WHERE hash = ?", (hash,)
            ).fetchone()
            return _package(row) if row is not None else None

        return await self._read(work)

    async def packages(self, query: PackageQuery) -> list[Package]:
        if query.visible_to is not None and not query.visible_to:
            return []
        where: list[str] = ["1"]
        args: list[Any] = []
        for column, value in (
            ("name", query.name),
            ("tool", query.tool),
            ("mimetype", query.mimetype),
            ("creator_uid", query.creator_uid),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if query.since_ms is not None:
            where.append("submitted_ms >= ?")
            args.append(query.since_ms)
        if query.until_ms is not None:
            where.append("submitted_ms < ?")
            args.append(query.until_ms)
        if query.visible_to is not None:
            where.append(_groups_clause(query.visible_to, "groups", args))
        sql = (
            f"SELECT {_PACKAGE_COLUMNS} FROM packages WHERE {' AND '.join(where)} "
            "ORDER BY submitted_ms DESC, hash"
        )

        def work(conn: sqlite3.Connection) -> list[Package]:
            found = [_package(row) for row in conn.execute(sql, args)]
            if query.keyword is not None:
                found = [p for p in found if query.keyword in p.keywords]
            return found

        return await self._read(work)

    async def update_package(
        self, hash: str, *, tool: str | None = None, mimetype: str | None = None
    ) -> bool:
        def work(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "UPDATE packages SET tool = coalesce(?, tool), mimetype = coalesce(?, mimetype) "
                "WHERE hash = ?",
                (tool, mimetype, hash),
            )
            return cur.rowcount > 0

        return await self._write(work)

    async def delete_package(self, hash: str) -> bool:
        def work(conn: sqlite3.Connection) -> bool:
            return conn.execute("DELETE FROM packages WHERE hash = ?", (hash,)).rowcount > 0

        return await self._write(work)

    # -- video -----------------------------------------------------------------------------------
    async def put_video(self, feed: VideoFeed) -> None:
        row = (
            feed.uid,
            feed.alias,
            feed.url,
            group_key(feed.groups),
            json.dumps(feed.fields, sort_keys=True),
            int(feed.active),
        )

        def work(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT OR REPLACE INTO videos VALUES (?,?,?,?,?,?)", row)

        await self._write(work)

    async def videos(self, visible_to: frozenset[str] | None) -> list[VideoFeed]:
        if visible_to is not None and not visible_to:
            return []
        args: list[Any] = []
        where = _groups_clause(visible_to, "groups", args) if visible_to is not None else "1"

        def work(conn: sqlite3.Connection) -> list[VideoFeed]:
            sql = f"SELECT uid, alias, url, groups, fields, active FROM videos WHERE {where}"
            return [
                VideoFeed(uid, alias, url, groups_of(groups), json.loads(fields), bool(active))
                for uid, alias, url, groups, fields, active in conn.execute(
                    sql + " ORDER BY alias, uid", args
                )
            ]

        return await self._read(work)

    async def delete_video(self, uid: str) -> bool:
        def work(conn: sqlite3.Connection) -> bool:
            return conn.execute("DELETE FROM videos WHERE uid = ?", (uid,)).rowcount > 0

        return await self._write(work)


def _open_writer(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = _connect(path)
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations "
        "(number INTEGER PRIMARY KEY, name TEXT NOT NULL)"
    )
    applied = {row[0] for row in conn.execute("SELECT number FROM schema_migrations")}
    for migration in pending("sqlite", applied):
        # executescript commits on its own; wrap the migration and its record in one
        # transaction so a crash mid-migration leaves the schema as it was.
        conn.executescript(
            "BEGIN IMMEDIATE;\n"
            + migration.sql
            + f"\nINSERT INTO schema_migrations VALUES ({migration.number}, "
            f"'{migration.name}');\nCOMMIT;"
        )
    result = conn.execute("PRAGMA quick_check").fetchone()
    if result[0] != "ok":
        raise StoreError(f"SQLite database {path} is damaged ({result[0]}); restore a backup")
    return conn


def _groups_clause(groups: frozenset[str], column: str, args: list[Any]) -> str:
    # Each group is matched as a whole name between separators (records.group_key).
    parts = []
    for name in sorted(groups):
        parts.append(f"instr({column}, ?) > 0")
        args.append(f"\x1f{name}\x1f")
    return "(" + " OR ".join(parts) + ")"


def _history_sql(query: HistoryQuery, box: BBox | None) -> tuple[str, list[Any]]:
    where: list[str] = []
    args: list[Any] = []
    join = ""
    if box is not None:
        # The R*Tree narrows by place and time; the row's own columns settle it exactly.
        join = "JOIN history_space s ON s.id = h.id"
        where += ["s.lat_max >= ?", "s.lat_min <= ?", "s.lon_max >= ?", "s.lon_min <= ?"]
        args += [box.south, box.north, box.west, box.east]
        where += ["h.lat BETWEEN ? AND ?", "h.lon BETWEEN ? AND ?"]
        args += [box.south, box.north, box.west, box.east]
        if query.since_ms is not None:
            where.append("s.t_max >= ?")
            args.append(query.since_ms)
        if query.until_ms is not None:
            where.append("s.t_min <= ?")
            args.append(query.until_ms)
    if query.uid is not None:
        where.append("h.uid = ?")
        args.append(query.uid)
    if query.type_prefix:
        # A range, not LIKE: it uses the index and treats % and _ as the characters they are.
        where.append("h.type >= ? AND h.type < ?")
        args += [query.type_prefix, query.type_prefix + "\U0010ffff"]
    if query.since_ms is not None:
        where.append("h.time_ms >= ?")
        args.append(query.since_ms)
    if query.until_ms is not None:
        where.append("h.time_ms < ?")
        args.append(query.until_ms)
    if query.after is not None:
        where.append("(h.time_ms > ? OR (h.time_ms = ? AND h.id > ?))")
        args += [query.after.time_ms, query.after.time_ms, query.after.id]
    if query.visible_to is not None:
        where.append(_groups_clause(query.visible_to, "h.groups", args))
    columns = ", ".join(f"h.{c.strip()}" for c in _EVENT_COLUMNS.split(","))
    sql = f"SELECT h.id, {columns} FROM history h {join}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY h.time_ms, h.id LIMIT ?"
    args.append(query.limit + 1)
    return sql, args


def _event_row(e: StoredEvent) -> tuple[Any, ...]:
    return event_row(e, group_key(e.groups))


def _event(row: Sequence[Any]) -> StoredEvent:
    return event_from_row(row, groups_of(row[11]))


def _package_row(p: Package) -> tuple[Any, ...]:
    return package_row(p, json.dumps(list(p.keywords)), group_key(p.groups))


def _package(row: Sequence[Any]) -> Package:
    return package_from_row(row, tuple(json.loads(row[4])), groups_of(row[6]))
